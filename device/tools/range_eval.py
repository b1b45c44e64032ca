"""Measuring the range filter against gpiozero's default queue.

Two kinds of input:
- simulated traces: known true distances, pinged on each method's own
  schedule (gpiozero's queue waits 60 ms *after* each ping; Rearguard starts
  a ping every `cycle_s`), with echo jitter, random false echoes (spikes)
  and lost echoes (dropouts), from a seeded generator: the same numbers on
  every run;
- a real log (an HC-SR04 serial log or a recording's ranges.csv), where
  nothing is known but the readings: both methods see the same pings.

`rearguard check ranging --trace CSV` and `--simulated` print these tables;
docs/ranging.md quotes them.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from device.core.clock import NS_PER_S
from device.core.types import Range
from device.decision.range_filter import DEFAULT_PARAMS, FilterParams, MedianQueue, RangeFilter
from device.sensing.ultrasonic import NO_ECHO_S as NO_ECHO_PULSE_S
from device.sensing.ultrasonic import SPEED_OF_SOUND_MPS as SPEED_OF_SOUND

GPIOZERO_SAMPLE_WAIT_S = 0.06
# A reading is a false spike when it is further than this from every true
# distance of the last SPIKE_LOOKBACK_S: lag alone cannot explain it.
SPIKE_TOLERANCE_M = 0.3
SPIKE_LOOKBACK_S = 1.0
MAX_AGE_S = 0.15  # what the estimator would use for one sensor
MEDIAN_QUEUE_LEN = 9  # gpiozero DistanceSensor's default queue_len

Truth = Callable[[float], float | None]  # seconds -> metres, None: nothing in range


@dataclass(frozen=True)
class Scenario:
    name: str
    truth: Truth
    duration_s: float
    dropout: float  # chance a ping loses a present object's echo
    spike: float  # chance a ping returns a random distance instead
    jitter_m: float = 0.01
    # (start, end, speed) of a constant-speed approach, for the lag measure
    approach: tuple[float, float, float] | None = None
    step_at_s: float | None = None  # an object appears here, for the step lag


def _approach(d0: float, v: float, t0: float, stop_m: float) -> Truth:
    def truth(t: float) -> float | None:
        d = d0 - v * max(0.0, t - t0)
        d = max(d, stop_m)
        return d if d < 4.0 else None

    return truth


def scenarios() -> list[Scenario]:
    def step(t: float) -> float | None:
        return 1.5 if 2.0 <= t < 5.0 else None

    def hand(t: float) -> float | None:
        return 0.15 + 0.05 * math.sin(2 * math.pi * 0.7 * t)

    def park(t: float) -> float | None:
        return None

    def wall(t: float) -> float | None:
        return 2.0

    return [
        Scenario("walk back onto a wall, 1.5 m/s", _approach(5.5, 1.5, 0.0, 0.3), 6.0, 0.05, 0.02,
                 approach=(1.0, 3.4, 1.5)),
        Scenario("run back onto a wall, 3 m/s", _approach(6.0, 3.0, 0.0, 0.3), 4.0, 0.05, 0.02,
                 approach=(0.67, 1.9, 3.0)),
        Scenario("cyclist closing at 8 m/s", _approach(8.0, 8.0, 0.0, 0.3), 2.0, 0.05, 0.02,
                 approach=(0.5, 0.95, 8.0)),
        Scenario("person steps into the beam at 1.5 m", step, 7.0, 0.05, 0.02, step_at_s=2.0),
        Scenario("hand (soft) at 10-20 cm, 35 % echoes lost", hand, 20.0, 0.35, 0.02),
        Scenario("standing wall at 2 m, 5 % spikes", wall, 30.0, 0.02, 0.05),
        Scenario("open park, 5 % spikes", park, 60.0, 0.0, 0.05),
    ]


def ping_times(duration_s: float, rng: random.Random, truth: Truth, gpiozero: bool, cycle_s: float) -> list[tuple[float, float]]:
    """(trigger time, echo end time) of each ping over the duration."""
    out = []
    t = 0.0
    while t < duration_s:
        d = truth(t)
        echo = 2 * d / SPEED_OF_SOUND if d is not None else NO_ECHO_PULSE_S
        end = t + 0.0005 + echo + rng.uniform(0, 0.0005)  # trigger pulse and Python's overhead
        out.append((t, end))
        t = end + GPIOZERO_SAMPLE_WAIT_S if gpiozero else max(t + cycle_s, end + 0.001)
    return out


def simulate(sc: Scenario, *, gpiozero: bool, seed: int, cycle_s: float = 0.06,
             max_distance_m: float = 4.0) -> list[Range]:
    """One sensor's Ranges for the scenario, stamped when each ping ended."""
    rng = random.Random(f"{sc.name}/{seed}/{gpiozero}")
    out = []
    for t_trig, t_end in ping_times(sc.duration_s, rng, sc.truth, gpiozero, cycle_s):
        d = sc.truth(t_trig)
        u = rng.random()
        if u < sc.spike:
            m: float | None = rng.uniform(0.02, max_distance_m)
        elif d is None or u < sc.spike + sc.dropout:
            m = None
        else:
            m = max(0.02, d + rng.gauss(0.0, sc.jitter_m))
        out.append(Range(round(t_end * NS_PER_S), "sim", m))
    return out


def run_filter(ranges: Sequence[Range], params: FilterParams = DEFAULT_PARAMS,
               max_age_s: float = MAX_AGE_S) -> list[tuple[int, float | None]]:
    """(time, distance) as Rearguard reports it after each ping."""
    f = RangeFilter(params)
    out = []
    max_age = round(max_age_s * NS_PER_S)
    for r in ranges:
        f.update(r)
        e = f.estimate(r.t_ns, max_age)
        out.append((r.t_ns, None if e is None else e.distance_m))
    return out


def run_median(ranges: Sequence[Range], max_distance_m: float = 4.0,
               queue_len: int = MEDIAN_QUEUE_LEN) -> list[tuple[int, float | None]]:
    """(time, distance) as gpiozero's DistanceSensor(queue_len=9) reports it after each ping."""
    q = MedianQueue(max_distance_m, queue_len)
    out = []
    for r in ranges:
        q.update(r)
        out.append((r.t_ns, q.distance()))
    return out


def run_raw(ranges: Sequence[Range]) -> list[tuple[int, float | None]]:
    return [(r.t_ns, r.metres) for r in ranges]


@dataclass
class Score:
    lag_s: list[float] = field(default_factory=list)  # approach: how late each reported distance is
    first_lag_s: dict[float, list[float]] = field(default_factory=dict)  # threshold -> delays
    step_lag_s: list[float] = field(default_factory=list)
    spikes: int = 0
    outputs: int = 0
    pings: int = 0
    hidden_s: float = 0.0  # an object was in range but nothing was reported
    present_s: float = 0.0
    rate_hz: list[float] = field(default_factory=list)


def score(sc: Scenario, out: list[tuple[int, float | None]], s: Score) -> None:
    ts = [t / NS_PER_S for t, _ in out]
    if len(ts) > 1:
        s.rate_hz.append((len(ts) - 1) / (ts[-1] - ts[0]))
    grid = [i * 0.01 for i in range(int(sc.duration_s / 0.01) + 1)]
    s.pings += len(out)
    for (_, y), t in zip(out, ts, strict=True):
        if y is None:
            continue
        s.outputs += 1
        lo = max(0.0, t - SPIKE_LOOKBACK_S)
        recent = [sc.truth(u) for u in grid if lo <= u <= t] + [sc.truth(t)]
        if not any(d is not None and abs(d - y) <= SPIKE_TOLERANCE_M for d in recent):
            s.spikes += 1
        if sc.approach is not None:
            a0, a1, v = sc.approach
            if a0 <= t <= a1:
                # When was the truth at y?  truth(t*) = y on the constant-speed ramp.
                d_at = sc.truth(t)
                if d_at is not None:
                    s.lag_s.append((y - d_at) / v)
    if sc.approach is not None:
        for thr in (2.0, 0.8):
            t_true = next((u for u in grid if (d := sc.truth(u)) is not None and d < thr), None)
            t_out = next((t for (_, y), t in zip(out, ts, strict=True) if y is not None and y < thr), None)
            if t_true is not None and t_out is not None:
                s.first_lag_s.setdefault(thr, []).append(t_out - t_true)
    if sc.step_at_s is not None:
        want = sc.truth(sc.step_at_s)
        t_out = next((t for (_, y), t in zip(out, ts, strict=True) if t >= sc.step_at_s and y is not None
                      and want is not None and abs(y - want) <= 0.15), None)
        if t_out is not None:
            s.step_lag_s.append(t_out - sc.step_at_s)
    # Hidden time, on the ping grid: reported nothing while something was there.
    for (_, y), t, t_next in zip(out, ts, ts[1:], strict=False):
        if sc.truth(t) is not None:
            s.present_s += t_next - t
            if y is None:
                s.hidden_s += t_next - t


@dataclass(frozen=True)
class Row:
    scenario: str
    method: str
    rate_hz: float
    lag_s: float | None
    warn_lag_s: float | None
    danger_lag_s: float | None
    step_lag_s: float | None
    spikes_per_1000: float
    hidden_pct: float | None


def _med(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def compare_simulated(seeds: int = 20, n_sensors: int = 1, cycle_s: float = 0.06,
                      params: FilterParams = DEFAULT_PARAMS) -> list[Row]:
    """Each scenario, `seeds` runs, Rearguard's filter against gpiozero's default.

    One sensor: each method on its own schedule (gpiozero's DistanceSensor
    waits 60 ms after each ping; Rearguard starts one every cycle_s). More
    sensors: both on Rearguard's turn-taking schedule (each sensor pings
    every n_sensors x cycle_s), so only the filtering differs.
    """
    rows = []
    for sc in scenarios():
        for method, gz in ((f"gpiozero queue_len={MEDIAN_QUEUE_LEN}", True), ("Rearguard filter", False)):
            s = Score()
            for seed in range(seeds):
                if n_sensors == 1:
                    ranges = simulate(sc, gpiozero=gz, seed=seed, cycle_s=cycle_s)
                else:
                    ranges = simulate(sc, gpiozero=False, seed=seed, cycle_s=n_sensors * cycle_s)
                # max_age covers the turn of every sensor, as the config requires
                out = run_median(ranges) if gz else run_filter(ranges, params, max_age_s=max(MAX_AGE_S, 1.25 * n_sensors * cycle_s))
                score(sc, out, s)
            rows.append(Row(
                scenario=sc.name, method=method, rate_hz=statistics.mean(s.rate_hz),
                lag_s=_med(s.lag_s), warn_lag_s=_med(s.first_lag_s.get(2.0, [])),
                danger_lag_s=_med(s.first_lag_s.get(0.8, [])), step_lag_s=_med(s.step_lag_s),
                spikes_per_1000=1000 * s.spikes / max(1, s.pings),
                hidden_pct=100 * s.hidden_s / s.present_s if s.present_s else None,
            ))
    return rows


@dataclass(frozen=True)
class TraceRow:
    method: str
    first_below: dict[float, float | None]  # threshold -> seconds from the trace's start
    reported_pct: float  # share of pings after which a distance was reported
    isolated_passed: int  # readings unlike their neighbours on both sides that became the output
    near_lost_pct: float | None  # after the first reading < 0.8 m: share of time reported as >= 0.8 m or nothing


def isolated_readings(ranges: Sequence[Range], tol_m: float = SPIKE_TOLERANCE_M, window_s: float = 0.5) -> set[int]:
    """Indices of echoes unlike every echo within window_s before *and*
    after them (so an echo at either end of the trace is never isolated)."""
    echoes = [(i, r.t_ns, r.metres) for i, r in enumerate(ranges) if r.metres is not None]
    w = round(window_s * NS_PER_S)
    out = set()
    for i, t, d in echoes:
        before = [d2 for _, t2, d2 in echoes if t - w <= t2 < t]
        after = [d2 for _, t2, d2 in echoes if t < t2 <= t + w]
        if before and after and all(abs(d2 - d) > tol_m for d2 in before + after):
            out.add(i)
    return out


def compare_trace(ranges: Sequence[Range], max_distance_m: float = 4.0) -> list[TraceRow]:
    """The raw pings, gpiozero's default queue and Rearguard's filter on one
    recorded sensor's pings (all three see the same pings)."""
    rows = []
    iso = isolated_readings(ranges)
    t0 = ranges[0].t_ns if ranges else 0
    first_near = next((r.t_ns for r in ranges if r.metres is not None and r.metres < 0.8), None)
    for name, out in (
        ("raw pings", run_raw(ranges)),
        (f"gpiozero queue_len={MEDIAN_QUEUE_LEN}", run_median(ranges, max_distance_m)),
        # A log's pings may be further apart than the device's max_age_s:
        # staleness is the device's business, not the filter's.
        ("Rearguard filter", run_filter(ranges, max_age_s=1.0)),
    ):
        firsts = {
            thr: next(((t - t0) / NS_PER_S for t, y in out if y is not None and y < thr), None)
            for thr in (2.0, 0.8)
        }
        passed = 0
        for i in iso:
            y, m = out[i][1], ranges[i].metres
            if y is not None and m is not None and abs(y - m) < 1e-9:
                passed += 1
        near_lost = None
        if first_near is not None:
            lost = total = 0
            for (t, y), (t_next, _) in pairwise(out):
                if t >= first_near:
                    total += t_next - t
                    if y is None or y >= 0.8:
                        lost += t_next - t
            near_lost = 100 * lost / total if total else None
        rows.append(TraceRow(
            method=name, first_below=firsts,
            reported_pct=100 * sum(y is not None for _, y in out) / max(1, len(out)),
            isolated_passed=passed, near_lost_pct=near_lost,
        ))
    return rows
