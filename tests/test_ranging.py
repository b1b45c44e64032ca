"""Ranging: pure fault decisions on a made-up clock (so "within 0.5 s" is
exact), replay, then the real gpiozero DistanceSensor code path on
MockFactory pins (its queue threads run: we wait on conditions). The fake
sensors' echo edges are exact on the pin factory's ticks (fakes.ExactEchoPin),
so every reading is asserted exactly, however loaded the machine."""

from __future__ import annotations

import itertools
import random
import threading
import time
import warnings
from collections.abc import Callable
from typing import ClassVar

import pytest
from gpiozero import Button
from gpiozero.exc import DistanceSensorNoEcho
from gpiozero.pins.mock import MockFactory, MockPWMPin, MockTriggerPin

from device.core.clock import NS_PER_S, MonotonicClock
from device.core.config import UltrasonicSensorConfig
from device.core.types import Range
from device.decision.threat import SensorTrack
from device.record.format import DEFAULT_SENSOR, read_ranges_csv
from device.sensing.ultrasonic import (
    ECHO_NEVER_FALLS,
    ECHO_NEVER_RISES,
    FROZEN_VALUE,
    IMPOSSIBLE_JUMPS,
    IMPOSSIBLE_VALUE,
    MISSED_RISE,
    NEVER_FELL,
    NEVER_ROSE,
    SILENT,
    Ping,
    RangeSource,
    RangingError,
    RecordedRanges,
    SensorHealth,
    UltrasonicRanger,
    planned_rate_hz,
)
from fakes import (
    SPEED_OF_SOUND,
    ExactEchoPin,
    ExactEchoPWMPin,
    PingClock,
    SyncPWMTriggerPin,
    SyncTriggerPin,
    echo_time_for,
    fake_hcsr04,
    reads,
)

MS = 1_000_000
MAX_M = 4.0


def reads_exactly(metres: list[float | None], expected: float) -> bool:
    """Every echo (at least three) reads `expected` (plus the fake's known
    mm steps): the fake sensor's echo edges are exact on the pin factory's
    ticks. A ping a loaded machine made gpiozero give up on gives no
    reading at all, never a wrong one."""
    echoes = [m for m in metres if m is not None]
    return len(echoes) >= 3 and all(reads(m, expected) for m in echoes)


def frac(metres: float) -> float:
    return metres / MAX_M


# ---------------------------------------------------------------- SensorHealth


def test_valid_pings_become_ranges_in_metres():
    h = SensorHealth("centre", MAX_M, start_ns=0)
    assert h.observe(Ping(60 * MS, 0.25)) == Range(60 * MS, "centre", 1.0)
    assert h.fault is None


def test_max_distance_means_nothing_in_range_not_a_fault():
    h = SensorHealth("centre", MAX_M, start_ns=0)
    for i in range(1, 100):  # 10 s of an open park
        t = i * 100 * MS
        for raw in (1.0, 0.995):
            assert h.observe(Ping(t, raw)) == Range(t, "centre", None, None)
        assert h.check(t + 50 * MS) is None
    assert h.fault is None


def test_single_failed_pings_are_dropped_not_faults():
    h = SensorHealth("centre", MAX_M, start_ns=0)
    t = 0
    for failure in itertools.islice(itertools.cycle((NEVER_ROSE, NEVER_FELL, MISSED_RISE)), 50):
        t += 100 * MS  # every other ping fails: never 0.3 s without a good one
        assert h.observe(Ping(t, 0.5 + (t % 7) * 1e-3)) is not None
        t += 100 * MS
        assert h.observe(Ping(t, None, failure)) is None
        assert h.check(t) is None
    assert h.fault is None


def test_a_reading_below_the_sensor_minimum_is_dropped():
    jsn = SensorHealth("jsn", MAX_M, start_ns=0, min_distance_m=0.23)
    hc = SensorHealth("hc", MAX_M, start_ns=0, min_distance_m=0.02)
    assert jsn.observe(Ping(60 * MS, frac(0.2))) is None  # impossible for a JSN-SR04T
    assert hc.observe(Ping(60 * MS, frac(0.2))) == Range(60 * MS, "hc", pytest.approx(0.2))
    assert jsn.fault is None  # one impossible reading is a spike, not yet a fault


def test_a_silent_sensor_is_caught_by_check_alone():
    """A read that never returns (no pings at all) still faults in time."""
    h = SensorHealth("centre", MAX_M, start_ns=5 * NS_PER_S)
    assert h.check(5 * NS_PER_S + 299 * MS) is None
    r = h.check(5 * NS_PER_S + 300 * MS)
    assert r is not None and r.fault == SILENT and r.metres is None


def test_a_standing_fault_is_re_reported_but_not_every_call():
    h = SensorHealth("centre", MAX_M, start_ns=0)
    emitted = [t for t in range(300 * MS, 600 * MS, 10 * MS) if h.check(t) is not None]
    assert emitted == [300 * MS, 350 * MS, 400 * MS, 450 * MS, 500 * MS, 550 * MS]


# Each broken state as a sensor shows it, ping after ping: (value, failure,
# how long the ping takes). gpiozero waits 0.1 s for an echo that never
# comes and 0.05 s for a line stuck high to fall.
Breakage = Callable[[int], tuple[float | None, str | None, float]]

BREAKAGES: dict[str, tuple[Breakage, str]] = {
    "unplugged": (lambda i: (None, NEVER_ROSE, 0.1), ECHO_NEVER_RISES),
    "echo stuck high": (lambda i: (None, NEVER_FELL, 0.05), ECHO_NEVER_FALLS),
    "clone echoing its trigger": (lambda i: (frac(0.004 + 0.001 * (i % 3)), None, 0.001), IMPOSSIBLE_VALUE),
    "pulse too short to time": (lambda i: (None, MISSED_RISE, 0.001), IMPOSSIBLE_VALUE),
    "frozen": (lambda i: (frac(1.234), None, 0.007), FROZEN_VALUE),
    "garbage": (lambda i: (frac(0.3 if i % 2 else 3.5) + 1e-4 * (i % 5), None, 0.02), IMPOSSIBLE_JUMPS),
}


def run_sensor(health: SensorHealth, period_s: float, broken_from_s: float, breakage: Breakage,
               fixed_from_s: float, until_s: float) -> list[Range]:
    """A healthy sensor (a wall at 1.5 m, jittering by mm), broken from one
    time to another, one ping every period_s; the loop polls check() at 50 Hz."""
    rng = random.Random(7)
    out: list[Range] = []
    t, i, next_poll = 0.0, 0, 0.0
    while t < until_s:
        if broken_from_s <= t < fixed_from_s:
            value, failure, took = breakage(i)
        else:
            value, failure, took = frac(1.5 + rng.uniform(-0.005, 0.005)), None, echo_time_for(1.5)
        done = t + took
        while next_poll < done:
            r = health.check(round(next_poll * NS_PER_S))
            out += [r] if r else []
            next_poll += 0.02
        r = health.observe(Ping(round(done * NS_PER_S), value, failure))
        out += [r] if r else []
        t, i = max(t + period_s, done), i + 1
    return out


@pytest.mark.parametrize("n_sensors", [1, 2, 3])
@pytest.mark.parametrize("kind", list(BREAKAGES))
def test_each_broken_state_is_a_named_fault_in_time_and_recovers(kind: str, n_sensors: int):
    breakage, fault = BREAKAGES[kind]
    period = n_sensors * 0.06  # sensors take turns, one ping per 60 ms cycle
    health = SensorHealth("centre", MAX_M, start_ns=0)
    out = run_sensor(health, period, broken_from_s=1.0, breakage=breakage, fixed_from_s=3.0, until_s=4.0)
    before = [r for r in out if r.t_ns < NS_PER_S]
    assert before and all(r.fault is None and r.metres == pytest.approx(1.5, abs=0.01) for r in before)
    first = next(r for r in out if r.fault is not None)
    assert first.fault == fault
    delay = (first.t_ns - NS_PER_S) / NS_PER_S
    if kind in ("frozen", "garbage") and n_sensors == 3:
        # Four equal readings, or three impossible jumps in a row, take four
        # of this sensor's pings: 0.72 s when three sensors share the cycle.
        assert delay <= 4 * period
    else:
        assert delay <= 0.5
    # While broken, nothing but the fault: no distance, and no "nothing in range".
    broken = [r for r in out if first.t_ns <= r.t_ns < 3 * NS_PER_S]
    assert all(r.fault == fault and r.metres is None for r in broken)
    assert max(b.t_ns - a.t_ns for a, b in itertools.pairwise(broken)) <= 0.1 * NS_PER_S  # never stale
    # Repaired: readings come back by themselves within a few pings.
    back = next(r for r in out if r.t_ns >= 3 * NS_PER_S and r.fault is None)
    assert back.metres == pytest.approx(1.5, abs=0.01)
    assert (back.t_ns - 3 * NS_PER_S) / NS_PER_S <= 3 * period + 0.1
    assert all(r.fault is None for r in out if r.t_ns >= back.t_ns)
    assert health.fault is None


def test_no_echo_is_never_a_fault_however_long():
    h = SensorHealth("centre", MAX_M, start_ns=0)
    out = run_sensor(h, 0.06, broken_from_s=0.5, breakage=lambda i: (1.0, None, 0.038),
                     fixed_from_s=60.0, until_s=30.0)
    assert not [r for r in out if r.fault]
    assert sum(r.metres is None for r in out) > 400


def test_real_echoes_are_not_frozen_jumps_or_impossible(shared):
    """The shared HC-SR04 log (a wall, then a hand with lost echoes) raises
    no fault. Its readings are rounded to whole centimetres, where equal
    values are normal (check_frozen=False is for such data); even so its
    longest run of equal readings is three, one short of "frozen"."""
    ranges = read_ranges_csv(shared / "ultrasonic" / "hcsr04_log.csv", [DEFAULT_SENSOR])

    def replay(check_frozen):
        h = SensorHealth("centre", MAX_M, start_ns=0, check_frozen=check_frozen)
        out = []
        for r in ranges:
            value = 1.0 if r.metres is None else r.metres / MAX_M
            out += [x for x in (h.check(r.t_ns), h.observe(Ping(r.t_ns, value))) if x]
        return out

    for check_frozen in (False, True):
        out = replay(check_frozen)
        assert [r.fault for r in out if r.fault] == []
        assert [r.metres for r in out] == [pytest.approx(r.metres) if r.metres else None for r in ranges]


# -------------------------------------------------------------- RecordedRanges


def test_recorded_ranges_release_each_reading_once_in_time_order():
    a = Range(100, "centre", 1.0)
    b = Range(200, "left", None)
    c = Range(200, "centre", 0.9)
    d = Range(350, "centre", None, ECHO_NEVER_RISES)
    src: RangeSource = RecordedRanges([d, a, b, c])  # any order in
    assert src.poll(99) == []
    assert src.poll(100) == [a]  # t_ns <= now_ns
    assert src.poll(100) == []  # never twice
    assert src.poll(50) == []  # an earlier now returns nothing new
    assert src.poll(349) == [b, c]  # equal times keep their given order
    assert src.poll(10_000) == [d]
    assert src.poll(20_000) == []
    src.close()


def test_recorded_ranges_from_the_shared_hcsr04_log(shared):
    """A real HC-SR04 log (cm, 400 = no echo) replays as Ranges at its own times."""
    rows = (shared / "ultrasonic" / "hcsr04_log.csv").read_text().splitlines()[1:]
    ranges = []
    for row in rows:
        stamp, cm = row.split(",")
        h, m, s = stamp.split(":")
        t_ns = round((int(h) * 3600 + int(m) * 60 + float(s)) * NS_PER_S)
        ranges.append(Range(t_ns, "centre", None if int(cm) >= 400 else int(cm) / 100))
    src = RecordedRanges(ranges)
    got, now = [], ranges[0].t_ns
    while src.remaining:
        got += src.poll(now)
        now += 20 * MS  # a 50 Hz main loop
    assert got == ranges
    assert sum(r.metres is None for r in got) == 26


def test_planned_rate():
    assert planned_rate_hz(1, 0.06) == pytest.approx(16.67, abs=0.01)
    assert planned_rate_hz(3, 0.06) == pytest.approx(5.56, abs=0.01)


# ------------------------------------------------- UltrasonicRanger on mock pins


def sensor(name, trigger, echo, **kw) -> UltrasonicSensorConfig:
    return UltrasonicSensorConfig(name=name, trigger_pin=trigger, echo_pin=echo, **kw)


@pytest.fixture
def factory(mock_factory):
    return mock_factory


def collect_until(ranger, done, clock=None, timeout_s=20.0):
    """Poll like the main loop (at `clock`'s now: the ranger's) until
    done(readings); no fixed sleeps. The timeout only ends a hung test."""
    clock = clock or MonotonicClock()
    got: list[Range] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got += ranger.poll(clock.now_ns())
        if done(got):
            return got
        time.sleep(0.02)  # the main loop's 50 Hz: a poll interval, not a wait-and-hope
    raise AssertionError(f"condition not met within {timeout_s} s; got {got}")


def test_echo_of_5_8_ms_reads_0_995_m(factory):
    fake_hcsr04(factory, 23, 24, echo_time=0.0058)
    clock = PingClock()
    with clock.attach(UltrasonicRanger([sensor("centre", 23, 24)], clock, pin_factory=factory)) as r:
        got = collect_until(r, lambda g: sum(x.metres is not None for x in g) >= 10, clock)
    assert all(x.sensor == "centre" and x.fault is None for x in got)
    assert reads_exactly([x.metres for x in got], 0.0058 * SPEED_OF_SOUND / 2)
    ts = [x.t_ns for x in got]
    assert ts == sorted(ts) and len(set(ts)) == len(ts)


def test_every_ping_is_reported_not_a_median(factory):
    trig = fake_hcsr04(factory, 23, 24, echo_time=echo_time_for(1.0))
    clock = PingClock()
    with clock.attach(UltrasonicRanger([sensor("centre", 23, 24)], clock, pin_factory=factory)) as r:
        collect_until(r, lambda g: len(g) >= 2, clock)
        trig.echo_time = echo_time_for(3.0)
        # The very next pings show 3 m; a median of 9 would lag for ~5 pings.
        got = collect_until(r, lambda g: any(x.metres and x.metres > 2.8 for x in g), clock)
    first_far = next(i for i, x in enumerate(got) if x.metres and x.metres > 2.8)
    assert first_far <= 2  # pings done before the switch, and the one in flight, may still be short
    assert all(reads(x.metres, 1.0) for x in got[:first_far] if x.metres is not None)
    assert reads(got[first_far].metres, 3.0)


def test_echo_beyond_max_distance_is_nothing_in_range(factory):
    fake_hcsr04(factory, 23, 24, echo_time=0.038)  # HC-SR04's "nothing there": ~6.5 m
    cfg = sensor("centre", 23, 24, max_distance_m=4.0)
    clock = PingClock()
    with clock.attach(UltrasonicRanger([cfg], clock, pin_factory=factory)) as r:
        got = collect_until(r, lambda g: len(g) >= 3, clock)
    assert all(x.metres is None and x.fault is None for x in got)


class TimedTriggerPin(SyncTriggerPin):
    """Records when each ping starts (trigger high) and its echo ends. The
    echo lasts its echo time for real (so pings have their real length),
    but in the pinging thread, like SyncTriggerPin's: gpiozero never gives
    up on it, however late a loaded machine wakes the thread."""

    pings: ClassVar[list[tuple[str, float, float]]] = []

    def _set_state(self, value):
        was = self._state
        if value:
            self._t_trigger = time.monotonic()
        super(MockTriggerPin, self)._set_state(value)
        if was and not value:
            self.echo_pin.drive_high()
            time.sleep(self.echo_time)  # the pulse's length, not a wait for anything
            end = time.monotonic()  # before the fall: the fall ends the ping
            TimedTriggerPin.pings.append((self.info.name, self._t_trigger, end))
            self.echo_pin.drive_low()


def test_three_sensors_take_turns_one_ping_per_cycle(factory):
    TimedTriggerPin.pings = []
    fake_hcsr04(factory, 23, 24, echo_time_for(1.0), pin_class=TimedTriggerPin)
    fake_hcsr04(factory, 17, 27, echo_time_for(2.0), pin_class=TimedTriggerPin)
    fake_hcsr04(factory, 5, 6, 0.038, pin_class=TimedTriggerPin)  # nothing in range: the longest ping
    sensors = [sensor("left", 23, 24), sensor("right", 17, 27), sensor("centre", 5, 6)]
    clock = PingClock(0.06)
    with clock.attach(UltrasonicRanger(sensors, clock, pin_factory=factory, cycle_s=0.06)) as r:
        got = collect_until(
            r, lambda g: all(sum(x.sensor == n and x.fault is None for x in g) >= 8 for n in ("left", "right", "centre")),
            clock,
        )
        rates = r.rates(clock.now_ns())
        starts = list(r.scheduler.starts)
    assert reads_exactly([x.metres for x in got if x.sensor == "left"], 1.0)
    assert reads_exactly([x.metres for x in got if x.sensor == "right"], 2.0)
    assert all(x.metres is None and x.fault is None for x in got if x.sensor == "centre")
    # One ping at a time: no ping of one sensor overlaps one of another ...
    pings = sorted(TimedTriggerPin.pings, key=lambda p: p[1])
    assert {p[0] for p in pings} == {"GPIO23", "GPIO17", "GPIO5"}
    for (_, _, end), (_, start, _) in itertools.pairwise(pings):
        assert end <= start
    # ... each started a full cycle after the one before, whoever's it was ...
    assert all(b[1] - a[1] >= 0.06 for a, b in itertools.pairwise(starts))
    # ... in turn, so every sensor gets its share, and the rate is reported.
    counts = [sum(s[0] == n for s in starts) for n in ("left", "right", "centre")]
    assert max(counts) - min(counts) <= 2
    assert set(rates) == {"left", "right", "centre"} and all(v > 0 for v in rates.values())


def run_broken(factory, break_it, fix_it, fault: str, **sensor_kw):
    """Start a healthy sensor, break it, see the named fault and nothing
    else until it is fixed, then see readings come back by themselves."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clock = PingClock()
        with clock.attach(UltrasonicRanger([sensor("centre", 23, 24, **sensor_kw)], clock, pin_factory=factory)) as r:
            collect_until(r, lambda g: any(x.metres is not None for x in g), clock)
            break_it()
            got = collect_until(r, lambda g: any(x.fault for x in g), clock)
            after = got[next(i for i, x in enumerate(got) if x.fault):]
            assert after[0].fault == fault and after[0].metres is None
            after += collect_until(r, lambda g: len(g) >= 4, clock)
            assert all(x.fault == fault and x.metres is None for x in after)  # nothing claimed clear
            fix_it()
            got = collect_until(r, lambda g: sum(x.fault is None and x.metres is not None for x in g) >= 5, clock)
            # The ping in flight at the repair may time a stray edge; every
            # one after it reads the repaired sensor's 1 m exactly.
            good = [x.metres for x in got if x.fault is None and x.metres is not None]
            assert reads_exactly(good[1:], 1.0)
    # The failed pings were logged by us, not spammed by gpiozero.
    assert not [w for w in caught if issubclass(w.category, DistanceSensorNoEcho)]


def test_an_unplugged_sensor_faults_and_recovers_when_reconnected(factory):
    trig = fake_hcsr04(factory, 23, 24, echo_time_for(1.0))
    echo = trig.echo_pin
    unconnected = factory.pin(5)  # the echo goes nowhere the sensor listens

    def fix():
        trig.echo_pin = echo

    run_broken(factory, lambda: setattr(trig, "echo_pin", unconnected), fix, ECHO_NEVER_RISES)


def test_an_echo_line_stuck_high_faults_and_recovers(factory):
    trig = fake_hcsr04(factory, 23, 24, echo_time_for(1.0))
    echo = trig.echo_pin

    def stick():
        trig.echo_pin = factory.pin(5)  # the sensor no longer drives it ...
        echo.drive_high()  # ... and it reads high: shorted, or a hung clone

    def fix():
        echo.drive_low()
        trig.echo_pin = echo

    run_broken(factory, stick, fix, ECHO_NEVER_FALLS)


def scripted(factory, pulses=None) -> ExactEchoPin:
    """A sensor whose echo pulses come from `pulses` (fixed, impossibly
    short, jumping, recorded); None: the object 1 m away."""
    echo = fake_hcsr04(factory, 23, 24, echo_time_for(1.0)).echo_pin
    echo.pulses = pulses
    return echo


def test_a_frozen_reading_faults_and_recovers(factory):
    echo = scripted(factory)
    run_broken(factory, lambda: setattr(echo, "pulses", itertools.repeat(echo_time_for(1.234))),
               lambda: setattr(echo, "pulses", None), FROZEN_VALUE)


def test_a_clone_echoing_its_trigger_is_an_impossible_value(factory):
    echo = scripted(factory)
    rng = random.Random(3)
    short = (echo_time_for(rng.uniform(0.002, 0.01)) for _ in itertools.count())
    run_broken(factory, lambda: setattr(echo, "pulses", short), lambda: setattr(echo, "pulses", None),
               IMPOSSIBLE_VALUE)


def test_a_jsn_sr04t_reading_inside_its_blind_zone_is_impossible(factory):
    echo = scripted(factory)
    rng = random.Random(4)
    blind = (echo_time_for(rng.uniform(0.1, 0.2)) for _ in itertools.count())  # fine for an HC-SR04
    run_broken(factory, lambda: setattr(echo, "pulses", blind), lambda: setattr(echo, "pulses", None),
               IMPOSSIBLE_VALUE, type="jsn-sr04t")


def test_readings_jumping_about_are_impossible_jumps(factory):
    echo = scripted(factory)
    rng = random.Random(5)
    jumps = (echo_time_for((0.3 if i % 2 else 3.5) + rng.uniform(0, 0.01)) for i in itertools.count())
    run_broken(factory, lambda: setattr(echo, "pulses", jumps), lambda: setattr(echo, "pulses", None),
               IMPOSSIBLE_JUMPS)


def test_the_real_log_through_the_real_distance_sensor(factory, shared):
    """The shared HC-SR04 log's distances as echo pulses, ping by ping,
    through gpiozero's DistanceSensor, SensorHealth and the range filter:
    every reading arrives, none is a fault, and the hand is followed."""
    logged = [r.metres for r in read_ranges_csv(shared / "ultrasonic" / "hcsr04_log.csv", [DEFAULT_SENSOR])]
    pulses = (echo_time_for(m) if m is not None else 0.038 for m in itertools.chain(logged, itertools.repeat(None)))
    scripted(factory, pulses)
    cfg = sensor("centre", 23, 24)
    clock = PingClock(0.02)
    # A short cycle: the mock sensor has no echoes to let die away.
    with clock.attach(UltrasonicRanger([cfg], clock, pin_factory=factory, cycle_s=0.02)) as r:
        got = collect_until(r, lambda g: len(g) >= len(logged), clock, timeout_s=60.0)
    got = got[: len(logged)]
    assert [x.fault for x in got if x.fault] == []
    assert [x.metres for x in got] == [None if m is None else pytest.approx(m, abs=1e-6) for m in logged]
    track = SensorTrack(cfg)
    reported = []
    for x in got:
        track.add(x)
        c = track.candidate(x.t_ns, round(0.15 * NS_PER_S), 0.3)
        reported.append(None if c is None else c.distance_m)
    hand = next(i for i, m in enumerate(logged) if m is not None and m < 0.8)
    assert reported[hand] != pytest.approx(logged[hand])  # one echo is not yet an obstacle ...
    assert reported[hand + 1] == pytest.approx(logged[hand + 1])  # ... two agreeing ones are


def test_close_is_idempotent_and_frees_the_pins(factory):
    fake_hcsr04(factory, 23, 24, echo_time=echo_time_for(1.0))
    before = set(threading.enumerate())
    r = UltrasonicRanger([sensor("centre", 23, 24)], MonotonicClock(), pin_factory=factory)
    collect_until(r, lambda g: len(g) >= 1)
    assert set(threading.enumerate()) - before  # gpiozero's queue thread ran
    r.close()
    r.close()
    assert r.poll(time.monotonic_ns()) == []
    Button(24, pin_factory=factory).close()  # free again
    # The queue thread has stopped (mock echo threads may still be finishing).
    assert not [t for t in set(threading.enumerate()) - before if "fill" in t.name]


def test_close_does_not_wait_for_a_sensor_queued_behind_a_slow_one(factory):
    """Sensors wait their turn inside gpiozero's thread; closing must not hang there."""
    factory.pin(23, pin_class=MockTriggerPin, echo_pin=factory.pin(5), echo_time=0.01)  # never rises: 0.1 s pings
    fake_hcsr04(factory, 17, 27, echo_time_for(1.0))
    r = UltrasonicRanger([sensor("a", 23, 24), sensor("b", 17, 27)], MonotonicClock(), pin_factory=factory)
    collect_until(r, lambda g: any(x.sensor == "b" for x in g))
    done = threading.Event()
    threading.Thread(target=lambda: (r.close(), done.set()), daemon=True).start()
    assert done.wait(10.0)


def test_pin_in_use_is_a_ranging_error_naming_sensor_and_pin(factory):
    fake_hcsr04(factory, 23, 24, echo_time=echo_time_for(1.0))
    other = Button(24, pin_factory=factory)
    with pytest.raises(RangingError, match="GPIO24") as err:
        UltrasonicRanger([sensor("centre", 23, 24)], MonotonicClock(), pin_factory=factory)
    assert "'centre'" in str(err.value) and "in use" in str(err.value)
    other.close()


def test_two_sensors_on_one_pin_fail_and_free_the_first(factory):
    fake_hcsr04(factory, 23, 24, echo_time=echo_time_for(1.0))
    sensors = [sensor("left", 23, 24), sensor("right", 17, 24)]
    with pytest.raises(RangingError, match="'right'.*GPIO24"):
        UltrasonicRanger(sensors, MonotonicClock(), pin_factory=factory)
    # The sensor built before the error was closed, not leaked.
    Button(24, pin_factory=factory).close()


def test_a_pin_the_board_does_not_have_is_a_ranging_error(factory):
    # Config validation keeps pins to 2-27; model_construct skips it to reach gpiozero.
    bad = UltrasonicSensorConfig.model_construct(
        name="centre", trigger_pin=99, echo_pin=24, max_distance_m=4.0
    )
    with pytest.raises(RangingError, match="GPIO99") as err:
        UltrasonicRanger([bad], MonotonicClock(), pin_factory=factory)
    assert "not a valid pin" in str(err.value)


def test_ranger_and_alerter_share_one_mock_factory():
    from device.core.config import Config
    from device.core.types import AlertLevel
    from device.output.alerts import Alerter

    cfg = Config()
    f = MockFactory(pin_class=MockPWMPin)
    for s in cfg.ranging.sensors:
        fake_hcsr04(f, s.trigger_pin, s.echo_pin, echo_time_for(1.0), pin_class=SyncPWMTriggerPin,
                    echo_class=ExactEchoPWMPin)
    clock = PingClock(cfg.ranging.sample_wait_s)
    with (
        clock.attach(UltrasonicRanger.from_config(cfg.ranging, clock, pin_factory=f)) as r,
        Alerter(cfg.outputs, pin_factory=f) as a,
    ):
        got = collect_until(r, lambda g: sum(x.metres is not None for x in g) >= 8, clock)
        a.update(AlertLevel.DANGER, 0)
        assert f.pin(cfg.outputs.haptic_pin).state == 1.0
    assert reads_exactly([x.metres for x in got], 1.0)
    f.close()


# ------------------------------------------------------- rearguard check ranging


def test_check_ranging_live_on_simulated_pins(capsys):
    from device.cli.main import main

    assert main(["check", "ranging", "--mock-pins", "--duration", "1.2"]) == 0
    out = capsys.readouterr().out
    assert "centre: hc-sr04, trigger GPIO23, echo GPIO24" in out
    assert "no echo" in out and "/s" in out
    assert "centre: ok;" in out


def test_check_ranging_names_a_broken_sensor_and_fails(capsys, monkeypatch):
    import device.app.compose
    from device.cli.main import main

    def unplugged(kind, config):
        f = MockFactory(pin_class=MockPWMPin)
        for s in config.ranging.sensors:
            f.pin(s.echo_pin, pin_class=MockPWMPin)
            f.pin(s.trigger_pin, pin_class=SyncPWMTriggerPin, echo_pin=f.pin(5, pin_class=MockPWMPin), echo_time=0.01)
        return f

    monkeypatch.setattr(device.app.compose, "make_pin_factory", unplugged)
    assert main(["check", "ranging", "--mock-pins", "--duration", "1.2"]) == 1
    out = capsys.readouterr().out
    assert "FAULT echo-never-rises" in out
    assert "centre: FAULT echo-never-rises;" in out


def test_check_ranging_trace_of_the_real_log(capsys, shared):
    from device.cli.main import main

    assert main(["check", "ranging", "--trace", str(shared / "ultrasonic" / "hcsr04_log.csv")]) == 0
    out = capsys.readouterr().out
    assert "110 pings over 15.4 s (26 no echo, 0 faults)" in out
    lines = {line.split("  ")[1].strip(): line for line in out.splitlines() if line.startswith("  ") and "s " in line}
    assert "0.233 s" in lines["Rearguard filter"] and "2.742 s" in lines["Rearguard filter"]
    assert "0.978 s" in lines["gpiozero queue_len=9"] and "3.159 s" in lines["gpiozero queue_len=9"]


def test_check_ranging_trace_errors_are_clear(capsys, tmp_path):
    from device.cli.main import main

    assert main(["check", "ranging", "--trace", str(tmp_path / "nope.csv")]) == 1
    assert "ranges file not found" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("when,where\n1,2\n")
    assert main(["check", "ranging", "--trace", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "unknown CSV header" in err and "Traceback" not in err
