"""Simulated pins (gpiozero's MockFactory) for laptops, replays and tests.

Imported only when simulated pins are asked for: gpiozero's mock module is
not needed on a Pi.
"""

from __future__ import annotations

from gpiozero.pins.mock import MockFactory, MockPWMPin, MockTriggerPin


class PWMTriggerPin(MockTriggerPin, MockPWMPin):
    """A simulated HC-SR04 trigger pin that answers with an echo pulse.

    MockFactory refuses a pre-made pin whose PWM support differs from its
    default pin class (PWM, for the motor), so the trigger must be PWM-capable too.
    """


def mock_factory() -> MockFactory:
    """Simulated pins that can drive PWM outputs (the vibration motor)."""
    return MockFactory(pin_class=MockPWMPin)
