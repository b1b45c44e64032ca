"""The range filter (pure, on a made-up clock) and its measurement against
gpiozero's default queue, on the real HC-SR04 log and simulated traces."""

from __future__ import annotations

import random

import numpy as np
import pytest

from device.core.clock import NS_PER_S
from device.core.config import UltrasonicSensorConfig
from device.core.types import Range
from device.decision.range_filter import DEFAULT_PARAMS, FilterParams, MedianQueue, RangeFilter, _Track, theil_sen_slope
from device.record.format import DEFAULT_SENSOR, read_ranges_csv
from device.tools.range_eval import compare_simulated, compare_trace, run_filter, run_median, scenarios, simulate
from fakes import ns

MAX_AGE = round(0.15 * NS_PER_S)
CYCLE = 0.06


def feed(f: RangeFilter, metres: list[float | None], cycle: float = CYCLE, t0: float = 0.0) -> list[float | None]:
    """One reading per cycle; what the filter reports right after each."""
    out = []
    for i, m in enumerate(metres):
        t = ns(t0 + i * cycle)
        f.update(Range(t, "s", m))
        e = f.estimate(t, MAX_AGE)
        out.append(None if e is None else e.distance_m)
    return out


# ------------------------------------------------------------------ the fit


def numpy_theil_sen(points: list[tuple[int, float]]) -> float:
    """The textbook estimator in numpy, as the filter computed it before."""
    t = np.array([p[0] for p in points], dtype=np.float64) / NS_PER_S
    d = np.array([p[1] for p in points], dtype=np.float64)
    i, j = np.triu_indices(len(t), k=1)
    ok = t[j] - t[i] > 0
    return float(np.median((d[j] - d[i])[ok] / (t[j] - t[i])[ok]))


@pytest.mark.parametrize("seed", range(20))
def test_the_slope_is_the_textbook_theil_sen_to_the_last_bit(seed: int) -> None:
    rng = random.Random(seed)
    t, points = 0, []
    for _ in range(rng.randint(3, 24)):
        t += rng.choice([0, 1, 60_000_000, rng.randint(1, 200_000_000)])  # repeated times are skipped
        points.append((t, rng.uniform(0.02, 6.0)))
    if points[-1][0] == points[0][0]:
        points.append((t + 1, 1.0))
    assert theil_sen_slope(points) == numpy_theil_sen(points)


def test_the_remembered_line_follows_every_new_echo() -> None:
    """line() is kept between pings; a new echo (also once the history is
    full and its length stops changing) or other params give a fresh fit."""
    rng = random.Random(7)
    pts = [(ns(i * CYCLE), 3.0 - 1.5 * i * CYCLE + rng.gauss(0, 0.01)) for i in range(3)]
    tr = _Track(pts)
    for i in range(3, 40):
        assert tr.line(DEFAULT_PARAMS) == _Track(list(tr.points)).line(DEFAULT_PARAMS)
        tr.points.append((ns(i * CYCLE), 3.0 - 1.5 * i * CYCLE + rng.gauss(0, 0.01)))
    wider = FilterParams(rate_window_s=1.2)
    assert tr.line(wider) == _Track(list(tr.points)).line(wider) != tr.line(DEFAULT_PARAMS)


# ------------------------------------------------------------------ spikes


@pytest.mark.parametrize("spike", [0.05, 0.3, 1.0, 2.5, 3.9])
def test_a_lone_spike_is_never_an_obstacle(spike: float) -> None:
    f = RangeFilter()
    assert feed(f, [None, None, spike, None, None, None]) == [None] * 6


def test_a_spike_next_to_a_followed_object_does_not_move_it() -> None:
    f = RangeFilter()
    out = feed(f, [2.0, 2.01, 1.99, 2.0, 0.4, 2.01, 2.0])
    assert out[1:4] == [2.01, 1.99, 2.0]
    assert out[4] == 2.0  # the spike waits for a second ping that never agrees
    assert out[5:] == [2.01, 2.0]


def test_two_chance_echoes_then_silence_are_not_held() -> None:
    """Two agreeing false echoes happen; they must not hold an alert."""
    f = RangeFilter()
    out = feed(f, [None, 1.2, 1.25] + [None] * 8)
    assert out[2] == 1.25
    held_s = sum(1 for x in out[3:] if x is not None) * CYCLE
    assert held_s <= DEFAULT_PARAMS.young_hold_s


# ------------------------------------------------------------------ lag


def test_standing_object_is_reported_at_the_second_ping() -> None:
    f = RangeFilter()
    assert feed(f, [None, 1.5, 1.51, 1.5]) == [None, None, 1.51, 1.5]


def test_approach_is_reported_with_no_lag_and_a_closing_speed() -> None:
    f = RangeFilter()
    metres = [3.0 - 1.5 * i * CYCLE for i in range(12)]
    out = feed(f, metres)
    assert out[1:] == metres[1:]  # the newest echo, not a median of old ones
    e = f.estimate(ns(11 * CYCLE), MAX_AGE)
    assert e is not None and e.closing_mps == pytest.approx(1.5)


def test_a_fast_object_is_confirmed_by_three_pings_on_a_line() -> None:
    """8 m/s: 0.48 m between pings, too far to 'agree', but on one line."""
    f = RangeFilter()
    metres = [3.5 - 8.0 * i * CYCLE for i in range(6)]
    out = feed(f, [None] + metres)
    assert out[:3] == [None, None, None]
    assert out[3:] == metres[2:]


def test_nearer_object_wins_over_a_farther_one() -> None:
    """A hand in front of a wall: echoes from both, the hand is reported."""
    f = RangeFilter()
    out = feed(f, [1.0, 1.0, 0.2, 0.21, 1.0, 0.2, 1.01, 0.2])
    assert out[3:] == [0.21, 0.21, 0.2, 0.2, 0.2]


# ------------------------------------------------------------------ dropouts


def test_soft_target_losing_echoes_does_not_look_clear() -> None:
    f = RangeFilter()
    out = feed(f, [0.15, 0.16, 0.15, None, None, None, 0.14, None, 0.15])
    assert all(x is not None and x < 0.2 for x in out[1:])


def test_soft_target_echoing_only_every_other_ping_is_confirmed() -> None:
    f = RangeFilter()
    out = feed(f, [0.3, None, 0.31, None, 0.3, None, 0.29])
    first = next(i for i, x in enumerate(out) if x is not None)
    assert first * CYCLE <= 0.5 and out[first] == pytest.approx(0.3)


def test_an_object_that_has_gone_is_cleared_within_the_hold() -> None:
    f = RangeFilter()
    out = feed(f, [0.5] * 5 + [None] * 12)
    last = max(i for i, x in enumerate(out) if x is not None)
    assert (last - 4) * CYCLE <= DEFAULT_PARAMS.hold_s
    assert out[-1] is None


def test_remembered_object_comes_back_on_one_echo() -> None:
    f = RangeFilter()
    out = feed(f, [0.5] * 5 + [None] * 10 + [0.52])  # 0.6 s without an echo, then one
    assert out[-2] is None and out[-1] == 0.52


# ------------------------------------------------------------------ staleness, faults


def test_nothing_is_reported_once_the_sensor_stops_pinging() -> None:
    f = RangeFilter()
    feed(f, [1.0, 1.0])
    assert f.estimate(ns(0.06) + MAX_AGE, MAX_AGE) is not None
    assert f.estimate(ns(0.06) + MAX_AGE + 1, MAX_AGE) is None


def test_a_fault_resets_everything() -> None:
    f = RangeFilter()
    feed(f, [1.0, 1.0, 1.0])
    f.update(Range(ns(0.2), "s", None, fault="echo-never-rises"))
    assert f.estimate(ns(0.2), MAX_AGE) is None
    # The first reading after the fault is not confirmed by ones before it.
    f.update(Range(ns(0.3), "s", 1.0))
    assert f.estimate(ns(0.3), MAX_AGE) is None


# ------------------------------------------------------------------ gpiozero's queue


def test_median_queue_is_gpiozeros_default() -> None:
    q = MedianQueue(max_distance_m=4.0)
    for i in range(8):
        q.update(Range(i, "s", 1.0))
    assert q.distance() is None  # partial=False: nothing until 9 pings
    q.update(Range(8, "s", None))  # no echo counts as max distance
    assert q.distance() == pytest.approx(1.0)
    for i in range(5):
        q.update(Range(9 + i, "s", None))
    assert q.distance() is None  # a majority of no-echo: nothing in range


# ------------------------------------------------------------------ measurements


@pytest.fixture(scope="module")
def hcsr04_log(shared) -> list[Range]:
    return read_ranges_csv(shared / "ultrasonic" / "hcsr04_log.csv", [DEFAULT_SENSOR])


def test_real_log_filter_against_gpiozero(hcsr04_log: list[Range]) -> None:
    """The shared HC-SR04 log: a wall at ~1 m, then a hand at 6-27 cm with
    no-echo (400 cm) pings interleaved. Both methods see the same pings."""
    raw, median, ours = compare_trace(hcsr04_log)
    # The wall: first two echoes at +0.107 s and +0.233 s; gpiozero waits for nine pings.
    assert ours.first_below[2.0] == pytest.approx(0.233)
    assert median.first_below[2.0] == pytest.approx(0.978)
    # The hand: first two echoes (21 cm) at +2.618 s and +2.742 s.
    assert ours.first_below[0.8] == pytest.approx(2.742)
    assert median.first_below[0.8] == pytest.approx(3.159)
    # Through the hand's lost echoes and the wall seen past it.
    assert ours.near_lost_pct is not None and median.near_lost_pct is not None
    assert ours.near_lost_pct < median.near_lost_pct / 3
    assert ours.isolated_passed == 0 <= median.isolated_passed


def test_real_log_filter_never_reports_a_reading_it_was_not_given(hcsr04_log: list[Range]) -> None:
    given = {r.metres for r in hcsr04_log}
    assert {y for _, y in run_filter(hcsr04_log, max_age_s=1.0)} <= given | {None}


def test_simulated_traces_less_lag_and_no_more_false_spikes() -> None:
    """Seeded simulations, so the numbers are the same on every run."""
    rows = {(r.scenario, r.method.split()[0]): r for r in compare_simulated(seeds=3)}
    for sc in scenarios():
        gz, ours = rows[(sc.name, "gpiozero")], rows[(sc.name, "Rearguard")]
        if sc.approach is not None:
            assert gz.lag_s is not None and ours.lag_s is not None
            assert ours.lag_s < gz.lag_s / 3
            assert ours.danger_lag_s is not None and gz.danger_lag_s is not None
            assert ours.danger_lag_s < gz.danger_lag_s
        if sc.step_at_s is not None:
            assert ours.step_lag_s is not None and gz.step_lag_s is not None
            assert ours.step_lag_s < gz.step_lag_s / 2
    spikes = {m: sum(r.spikes_per_1000 for (_, mm), r in rows.items() if mm == m) for m in ("gpiozero", "Rearguard")}
    assert spikes["Rearguard"] <= spikes["gpiozero"]
    park = rows[(scenarios()[-1].name, "Rearguard")]
    assert park.spikes_per_1000 == 0  # 5 % random false echoes in an open park never alert


def test_simulation_is_deterministic() -> None:
    sc = scenarios()[0]
    assert simulate(sc, gpiozero=False, seed=1) == simulate(sc, gpiozero=False, seed=1)
    assert run_median(simulate(sc, gpiozero=True, seed=1))[-1][1] is not None


def test_jsn_sr04t_has_its_own_minimum() -> None:
    s = UltrasonicSensorConfig(name="a", trigger_pin=5, echo_pin=6, type="jsn-sr04t")
    assert s.min_distance_m == 0.23
    assert UltrasonicSensorConfig(name="a", trigger_pin=5, echo_pin=6).min_distance_m == 0.02
    assert UltrasonicSensorConfig(name="a", trigger_pin=5, echo_pin=6, type="jsn-sr04t", min_distance_m=0.25).min_distance_m == 0.25
