"""Ranging: pure fault timing and replay, then the real gpiozero DistanceSensor
code path on MockFactory pins (its queue thread runs: we wait on conditions)."""

from __future__ import annotations

import threading
import time
import warnings

import pytest
from gpiozero import Button
from gpiozero.exc import DistanceSensorNoEcho
from gpiozero.pins.mock import MockFactory, MockPWMPin, MockTriggerPin

from device.clock import NS_PER_S, MonotonicClock
from device.config import UltrasonicSensorConfig
from device.ranging import (
    NO_ECHO_SIGNAL,
    RangeSource,
    RangingError,
    RecordedRanges,
    SensorHealth,
    UltrasonicRanger,
)
from device.types import Range

MS = 1_000_000
SPEED_OF_SOUND = 343.26  # what gpiozero uses


def echo_time_for(metres: float) -> float:
    return 2 * metres / SPEED_OF_SOUND


def reads_about(metres: list[float], expected: float) -> bool:
    """The mock echo thread times its pulse with sleep(), which can only
    overshoot - by milliseconds on a loaded machine. So no ping may read
    short, and the best (shortest) of several must be close."""
    return min(metres) >= expected - 0.02 and min(metres) <= expected + 0.25


# ---------------------------------------------------------------- SensorHealth


def test_valid_pings_become_ranges_in_metres():
    h = SensorHealth("centre", 4.0, start_ns=0)
    assert h.observe(60 * MS, 0.25) == Range(60 * MS, "centre", 1.0)
    assert h.fault is None


def test_max_distance_means_nothing_in_range_not_a_fault():
    h = SensorHealth("centre", 4.0, start_ns=0)
    for i in range(1, 100):  # 10 s of an open park
        t = i * 100 * MS
        for raw in (1.0, 0.995):
            assert h.observe(t, raw) == Range(t, "centre", None, None)
        assert h.check(t + 50 * MS) is None
    assert h.fault is None


def test_single_failed_pings_are_dropped_not_faults():
    h = SensorHealth("centre", 4.0, start_ns=0)
    t = 0
    for _ in range(50):  # every other ping fails: never 0.3 s without a good one
        t += 100 * MS
        assert h.observe(t, 0.5) is not None
        t += 100 * MS
        assert h.observe(t, None) is None
        assert h.check(t) is None
    assert h.fault is None


def test_no_valid_ping_for_0_3_s_is_a_fault_and_a_good_ping_clears_it():
    h = SensorHealth("left", 4.0, start_ns=0)
    h.observe(1_000 * MS, 0.5)
    assert h.observe(1_100 * MS, None) is None
    assert h.observe(1_200 * MS, None) is None
    assert h.observe(1_299 * MS, None) is None
    r = h.observe(1_300 * MS, None)
    assert r == Range(1_300 * MS, "left", None, NO_ECHO_SIGNAL)
    assert h.fault == NO_ECHO_SIGNAL
    back = h.observe(1_400 * MS, 0.25)
    assert back == Range(1_400 * MS, "left", 1.0, None)
    assert h.fault is None
    assert h.check(1_500 * MS) is None


def test_a_silent_sensor_is_caught_by_check_alone():
    """A read that never returns (no pings at all) still faults in time."""
    h = SensorHealth("centre", 4.0, start_ns=5 * NS_PER_S)
    assert h.check(5 * NS_PER_S + 299 * MS) is None
    r = h.check(5 * NS_PER_S + 300 * MS)
    assert r is not None and r.fault == NO_ECHO_SIGNAL and r.metres is None


def test_a_standing_fault_is_re_reported_but_not_every_call():
    h = SensorHealth("centre", 4.0, start_ns=0)
    emitted = [t for t in range(300 * MS, 600 * MS, 10 * MS) if h.check(t) is not None]
    assert emitted == [300 * MS, 350 * MS, 400 * MS, 450 * MS, 500 * MS, 550 * MS]


# -------------------------------------------------------------- RecordedRanges


def test_recorded_ranges_release_each_reading_once_in_time_order():
    a = Range(100, "centre", 1.0)
    b = Range(200, "left", None)
    c = Range(200, "centre", 0.9)
    d = Range(350, "centre", None, NO_ECHO_SIGNAL)
    src: RangeSource = RecordedRanges([d, a, b, c])  # any order in
    assert src.poll(99) == []
    assert src.poll(100) == [a]  # t_ns <= now_ns
    assert src.poll(100) == []  # never twice
    assert src.poll(50) == []  # an earlier now returns nothing new
    assert src.poll(349) == [b, c]  # equal times keep their given order
    assert src.poll(10_000) == [d]
    assert src.poll(20_000) == []
    src.close()


def test_recorded_ranges_from_the_shared_hcsr04_log():
    """A real HC-SR04 log (cm, 400 = no echo) replays as Ranges at its own times."""
    from pathlib import Path

    log = Path(__file__).resolve().parents[1].parent / "shared" / "ultrasonic" / "hcsr04_log.csv"
    if not log.is_file():
        pytest.skip(f"shared test data not found: {log}")
    rows = log.read_text().splitlines()[1:]
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


# ------------------------------------------------- UltrasonicRanger on mock pins


def sensor(name, trigger, echo, **kw) -> UltrasonicSensorConfig:
    return UltrasonicSensorConfig(name=name, trigger_pin=trigger, echo_pin=echo, **kw)


@pytest.fixture
def factory():
    f = MockFactory()
    yield f
    f.close()


def fake_hcsr04(factory, trigger, echo, echo_time, pin_class=MockTriggerPin):
    echo_pin = factory.pin(echo)
    return factory.pin(trigger, pin_class=pin_class, echo_pin=echo_pin, echo_time=echo_time)


def collect_until(ranger, done, timeout_s=5.0):
    """Poll like the main loop until done(readings) or the timeout; no fixed sleeps."""
    clock = MonotonicClock()
    got: list[Range] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got += ranger.poll(clock.now_ns())
        if done(got):
            return got
        time.sleep(0.02)  # the main loop's 50 Hz: a poll interval, not a wait-and-hope
    raise AssertionError(f"condition not met within {timeout_s} s; got {got}")


def test_echo_of_5_8_ms_reads_about_one_metre(factory):
    fake_hcsr04(factory, 23, 24, echo_time=0.0058)
    with UltrasonicRanger([sensor("centre", 23, 24)], MonotonicClock(), pin_factory=factory) as r:
        got = collect_until(r, lambda g: len(g) >= 10)
    assert all(x.sensor == "centre" and x.fault is None for x in got)
    metres = [x.metres for x in got]
    assert None not in metres
    assert reads_about(metres, 1.0)
    ts = [x.t_ns for x in got]
    assert ts == sorted(ts) and len(set(ts)) == len(ts)


def test_every_ping_is_reported_not_a_median(factory):
    trig = fake_hcsr04(factory, 23, 24, echo_time=echo_time_for(1.0))
    with UltrasonicRanger([sensor("centre", 23, 24)], MonotonicClock(), pin_factory=factory) as r:
        collect_until(r, lambda g: len(g) >= 2)
        trig.echo_time = echo_time_for(3.0)
        # The very next pings show 3 m; a median of 9 would lag for ~5 pings.
        got = collect_until(r, lambda g: any(x.metres and x.metres > 2.8 for x in g))
    first_far = next(i for i, x in enumerate(got) if x.metres and x.metres > 2.8)
    assert first_far <= 2  # the ping in flight at the switch may still be short


def test_echo_beyond_max_distance_is_nothing_in_range(factory):
    fake_hcsr04(factory, 23, 24, echo_time=0.038)  # HC-SR04's "nothing there": ~6.5 m
    cfg = sensor("centre", 23, 24, max_distance_m=4.0)
    with UltrasonicRanger([cfg], MonotonicClock(), pin_factory=factory) as r:
        got = collect_until(r, lambda g: len(g) >= 3)
    assert all(x.metres is None and x.fault is None for x in got)


class TimedTriggerPin(MockTriggerPin):
    """Records when each ping starts (trigger high) and its echo ends."""

    pings: list[tuple[str, float, float]] = []

    def _set_state(self, value):
        if value:
            self._t_trigger = time.monotonic()
        super()._set_state(value)

    def _echo(self):
        time.sleep(0.001)
        self.echo_pin.drive_high()
        time.sleep(self.echo_time)
        end = time.monotonic()  # before the fall: the fall releases the other sensor
        TimedTriggerPin.pings.append((self.info.name, self._t_trigger, end))
        self.echo_pin.drive_low()


def test_two_sensors_both_read_and_take_turns(factory):
    TimedTriggerPin.pings = []
    fake_hcsr04(factory, 23, 24, echo_time_for(1.0), pin_class=TimedTriggerPin)
    fake_hcsr04(factory, 17, 27, echo_time_for(2.0), pin_class=TimedTriggerPin)
    sensors = [sensor("left", 23, 24), sensor("right", 17, 27)]
    with UltrasonicRanger(sensors, MonotonicClock(), pin_factory=factory) as r:
        got = collect_until(
            r, lambda g: all(sum(x.sensor == n for x in g) >= 10 for n in ("left", "right"))
        )
    assert reads_about([x.metres for x in got if x.sensor == "left"], 1.0)
    assert reads_about([x.metres for x in got if x.sensor == "right"], 2.0)
    # DistanceSensor.ECHO_LOCK: no ping of one sensor overlaps one of the other.
    pings = sorted(TimedTriggerPin.pings, key=lambda p: p[1])
    assert {p[0] for p in pings} == {"GPIO23", "GPIO17"}
    for (_, _, end), (_, start, _) in zip(pings, pings[1:]):
        assert end <= start


def test_an_unplugged_sensor_faults_and_recovers_when_reconnected(factory):
    unconnected = factory.pin(5)  # the echo goes nowhere the sensor listens
    echo = factory.pin(24)
    trig = factory.pin(23, pin_class=MockTriggerPin, echo_pin=unconnected, echo_time=echo_time_for(1.0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with UltrasonicRanger([sensor("centre", 23, 24)], MonotonicClock(), pin_factory=factory) as r:
            got = collect_until(r, lambda g: any(x.fault for x in g))
            fault = next(x for x in got if x.fault)
            assert fault.fault == NO_ECHO_SIGNAL and fault.metres is None
            assert all(x.fault for x in got)  # nothing claimed "clear" meanwhile
            trig.echo_pin = echo  # plug it back in
            got = collect_until(r, lambda g: any(x.fault is None for x in g))
            back = next(x for x in got if x.fault is None)
            assert back.metres is not None and back.metres >= 0.95
    # The failed pings were logged by us, not spammed by gpiozero.
    assert not [w for w in caught if issubclass(w.category, DistanceSensorNoEcho)]


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


class PWMTriggerPin(MockTriggerPin, MockPWMPin):
    """A fake HC-SR04 trigger for a MockFactory(pin_class=MockPWMPin).

    MockFactory refuses a pre-made pin whose PWM-ness differs from its
    default pin class, and the Alerter's haptic pin needs PWM: so a factory
    shared by ranging and alerts needs trigger pins that are both."""


def test_ranger_and_alerter_share_one_mock_factory():
    from device.alerts import Alerter
    from device.config import Config
    from device.types import AlertLevel

    cfg = Config()
    f = MockFactory(pin_class=MockPWMPin)
    for s in cfg.ranging.sensors:
        fake_hcsr04(f, s.trigger_pin, s.echo_pin, echo_time_for(1.0), pin_class=PWMTriggerPin)
    with (
        UltrasonicRanger(cfg.ranging.sensors, MonotonicClock(), pin_factory=f) as r,
        Alerter(cfg.outputs, pin_factory=f) as a,
    ):
        got = collect_until(r, lambda g: len(g) >= 8)
        a.update(AlertLevel.DANGER, 0)
        assert f.pin(cfg.outputs.haptic_pin).state == 1.0
    assert reads_about([x.metres for x in got], 1.0)
    f.close()
