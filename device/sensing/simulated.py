"""Simulated pins (gpiozero's MockFactory) for laptops, replays and tests.

Imported only when simulated pins are asked for: gpiozero's mock module is
not needed on a Pi.
"""

from __future__ import annotations

from time import monotonic

from gpiozero.pins.mock import MockFactory, MockPWMPin, MockTriggerPin, PinState

MAX_PIN_STATES = 1000  # state changes a simulated pin remembers (tests read the newest)


class _BoundedStates(list):
    """gpiozero's `MockPin.states`, trimmed to the newest MAX_PIN_STATES once
    twice that many gathered: a list still (gpiozero and tests compare it to
    one), but a `--mock-pins` run no longer grows by the hour."""

    def append(self, item: object) -> None:
        super().append(item)
        if len(self) > 2 * MAX_PIN_STATES:
            del self[:-MAX_PIN_STATES]


class BoundedPWMPin(MockPWMPin):
    """MockPWMPin whose state history is bounded (gpiozero re-creates the
    list in clear_states(); the setter bounds every one)."""

    @property
    def states(self) -> list:
        return self._bounded_states

    @states.setter
    def states(self, value: list) -> None:
        self._bounded_states = _BoundedStates(value)


class PWMTriggerPin(MockTriggerPin, MockPWMPin):
    """A simulated HC-SR04 trigger pin that answers with an echo pulse.

    MockFactory refuses a pre-made pin whose PWM support differs from its
    default pin class (PWM, for the motor), so the trigger must be PWM-capable too.
    """


def mock_factory() -> MockFactory:
    """Simulated pins that can drive PWM outputs (the vibration motor)."""
    return MockFactory(pin_class=BoundedPWMPin)


# ---- load-proof simulated HC-SR04s (what `--mock-pins` and
# GPIOZERO_PIN_FACTORY=mock use; PWMTriggerPin above stays for tests that
# need gpiozero's own thread-timed echo).
#
# gpiozero's own MockTriggerPin answers a trigger from a new thread that
# sleeps 1 ms, raises the echo, sleeps the echo time and lowers it. On a
# loaded machine those sleeps overrun: the echo rises after DistanceSensor
# stopped waiting (a "silent" sensor) or falls too late ("echo-never-falls"),
# so a laptop run flapped between FAULT and CLEAR with nothing wrong.
#
# Here the echo is answered at once, in the thread that fires the trigger,
# with both edges time-stamped: the rise now, the fall exactly `echo_time`
# later. DistanceSensor measures the pulse from those stamps, so every ping
# reads the same distance whatever the load. The sensor's own pacing
# (ranging.sample_wait_s, its scheduler) still sets the ping rate.
#
# The echo pin sets gpiozero's MockPin state fields itself (`_state`,
# `_last_change`, `states`) because MockPin time-stamps an edge with the
# moment it is driven; tests/test_sim_pins.py holds that to gpiozero's real
# DistanceSensor.


class SimulatedEchoPin(BoundedPWMPin):
    """An echo line that can play a whole pulse with exact edge times."""

    _last_change: float  # MockPin's; declared because gpiozero has no types

    def pulse(self, width_s: float) -> None:
        rise = monotonic()
        for level, at in ((True, rise), (False, rise + width_s)):
            self._state = level
            self.states.append(PinState(at - self._last_change, level))
            self._last_change = at
            wanted = "rising" if level else "falling"
            if self._when_changed is not None and self._edges in ("both", wanted):
                self._call_when_changed()


class SimulatedTriggerPin(MockTriggerPin, BoundedPWMPin):
    """A trigger whose rising edge plays the echo pulse synchronously.

    PWM-capable because MockFactory refuses a pre-made pin whose PWM support
    differs from its default pin class (MockPWMPin here).
    """

    def _set_state(self, value: bool) -> None:
        BoundedPWMPin._set_state(self, value)  # not MockTriggerPin's: no thread, no sleeps
        if value:
            self.echo_pin.pulse(self.echo_time)


def simulated_factory(pins: list[tuple[int, int]], echo_time_s: float) -> MockFactory:
    """mock_factory() with a simulated sensor on each (trigger, echo) pin
    pair, answering every ping with an echo of echo_time_s."""
    factory = mock_factory()
    for trigger, echo in pins:
        echo_pin = factory.pin(echo, pin_class=SimulatedEchoPin)
        factory.pin(trigger, pin_class=SimulatedTriggerPin, echo_pin=echo_pin, echo_time=echo_time_s)
    return factory
