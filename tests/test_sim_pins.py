"""The simulated HC-SR04s (GPIOZERO_PIN_FACTORY=mock, `--mock-pins`): their
echo timing must not depend on how loaded the machine is.

gpiozero's MockTriggerPin times its echo with a thread and sleep(), which
overran on a loaded machine and made the simulated sensors flap between
FAULT and CLEAR. The simulated pins answer synchronously with time-stamped
edges; these tests hold them to gpiozero's real DistanceSensor (through the
device's UltrasonicRanger), and forbid the thread and the sleeps.
"""

from __future__ import annotations

import math

import gpiozero.pins.mock
import pytest

from device.app.compose import SIMULATED_NO_ECHO_S, make_pin_factory
from device.core.clock import MonotonicClock
from device.core.config import Config
from device.sensing.simulated import simulated_factory
from device.sensing.ultrasonic import UltrasonicRanger
from tests.test_ranging import collect_until, echo_time_for


@pytest.fixture
def no_threads_or_sleeps(monkeypatch):
    """Any use of gpiozero's mock echo thread or its sleeps is an error."""

    def boom(*args, **kwargs):
        raise AssertionError("the simulated sensor must not sleep or start a thread")

    monkeypatch.setattr(gpiozero.pins.mock, "sleep", boom)
    monkeypatch.setattr(gpiozero.pins.mock, "Thread", boom)


def test_echo_edges_are_stamped_exactly_echo_time_apart(no_threads_or_sleeps):
    f = simulated_factory([(23, 24)], echo_time_s=0.0123)
    echo, trig = f.pin(24), f.pin(23)
    echo.function = "input"
    echo.edges = "both"
    edges: list[tuple[float, bool]] = []

    def seen(ticks: float, level: int) -> None:
        edges.append((ticks, bool(level)))

    echo.when_changed = seen  # (gpiozero keeps only a weak reference)
    trig.function = "output"
    for _ in range(3):
        trig.state = True
        trig.state = False
    assert [level for _, level in edges] == [True, False] * 3
    for (rise, _), (fall, _) in zip(edges[::2], edges[1::2], strict=True):
        # exact but for the one rounding of rise + 0.0123: the stamps are
        # monotonic() seconds, whose last bit grows with the machine's uptime
        assert fall - rise == pytest.approx(0.0123, abs=math.ulp(fall))
    assert echo.state == 0  # the line is low again after each ping
    f.close()


def test_default_sensors_read_nothing_in_range_without_faults(no_threads_or_sleeps):
    cfg = Config()
    f = make_pin_factory("mock", cfg)
    with UltrasonicRanger.from_config(cfg.ranging, MonotonicClock(), pin_factory=f) as r:
        got = collect_until(r, lambda g: len(g) >= 3 * len(cfg.ranging.sensors) + 3)
    assert {x.fault for x in got} == {None}, [x for x in got if x.fault]
    assert {x.metres for x in got} == {None}  # a 38 ms echo is past max distance: an open park
    assert SIMULATED_NO_ECHO_S == 0.038
    f.close()


def test_a_set_distance_reads_exactly(no_threads_or_sleeps):
    # No overshoot at all: gpiozero's thread-timed echo could only be held to
    # "the best of several is close". (Only the first three: from the fourth
    # identical echo on, the device calls the sensor frozen, as it should.)
    cfg = Config()
    pins = [(s.trigger_pin, s.echo_pin) for s in cfg.ranging.sensors]
    f = simulated_factory(pins, echo_time_s=echo_time_for(1.0))
    with UltrasonicRanger.from_config(cfg.ranging, MonotonicClock(), pin_factory=f) as r:
        got = collect_until(r, lambda g: len(g) >= 3)[:3]
    assert all(x.fault is None and x.metres == pytest.approx(1.0, abs=1e-6) for x in got), got
    f.close()


def test_the_simulated_pins_history_is_bounded() -> None:
    """gpiozero's MockPin logs every state change in `states`, forever: on a
    long `--mock-pins` run that was most of a 38 MB/hour growth (issue 23)."""
    from device.sensing.simulated import MAX_PIN_STATES, mock_factory

    f = simulated_factory([(23, 24)], echo_time_s=0.001)
    echo, trig = f.pin(24), f.pin(23)
    echo.function = "input"
    trig.function = "output"
    motor = mock_factory().pin(12)
    motor.function = "output"
    for i in range(3 * MAX_PIN_STATES):
        trig.state = i % 2
        motor.state = (i % 10) / 10
    for pin in (echo, trig, motor):
        assert len(pin.states) <= 2 * MAX_PIN_STATES
    assert [s.state for s in motor.states[-3:]] == [(i % 10) / 10 for i in range(3 * MAX_PIN_STATES - 3, 3 * MAX_PIN_STATES)]
    motor.clear_states()  # gpiozero replaces the list: still bounded after
    for i in range(3 * MAX_PIN_STATES):
        motor.state = i % 2
    assert len(motor.states) <= 2 * MAX_PIN_STATES
