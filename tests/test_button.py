"""The button on gpiozero's MockFactory, read on the exact clock as the loop
reads it (once a pass, 50 Hz): press = pause with a felt acknowledgement and
a felt resume, hold = shut down; while paused DANGER still plays."""

from __future__ import annotations

import pytest
from gpiozero import Button
from gpiozero.pins.mock import MockFactory, MockPWMPin

from device.core.clock import NS_PER_S
from device.core.config import ButtonConfig, Config, ConfigError, OutputsConfig, from_dict
from device.core.types import AlertLevel
from device.output.alerts import PAUSED, RESUMED, SHUTTING_DOWN, Alerter
from device.output.button import ButtonControl, GatedSink

PIN = 16
PASS_NS = NS_PER_S // 50


class Rig:
    """A button on a mock pin, the control, and the alerter behind the gate, stepped at 50 Hz."""

    def __init__(self, **cfg: float) -> None:
        self.factory = MockFactory(pin_class=MockPWMPin)
        self.button = Button(PIN, pull_up=True, pin_factory=self.factory)
        self.control = ButtonControl(ButtonConfig(pin=PIN, **cfg))
        self.alerter = Alerter(OutputsConfig(haptic_pin=12, buzzer_pin=25), pin_factory=self.factory)
        self.sink = GatedSink(self.alerter, self.control)
        self.t = 0
        self.actions: list[tuple[float, str]] = []

    def run(self, seconds: float, level: AlertLevel = AlertLevel.CLEAR, pressed: bool | None = None) -> None:
        pin = self.factory.pin(PIN)
        if pressed is True:
            pin.drive_low()  # to ground: pressed
        elif pressed is False:
            pin.drive_high()
        end = self.t + round(seconds * NS_PER_S)
        while self.t < end:
            act = self.control.update(self.t, self.button.is_pressed)
            if act.cue is not None:
                self.alerter.cue(act.cue)
                self.actions.append((self.t / NS_PER_S, act.cue.name))
            if act.power_off:
                self.actions.append((self.t / NS_PER_S, "power off"))
            self.sink.update(level, self.t)
            self.t += PASS_NS


def test_a_press_pauses_with_a_felt_ack_and_resumes_by_itself_with_a_felt_resume() -> None:
    rig = Rig(pause_s=30)
    rig.run(1.0)
    rig.run(0.2, pressed=True)
    rig.run(0.02, pressed=False)  # released at 1.2 s: a press
    assert rig.actions == [(1.2, "paused")]
    assert rig.alerter.cue_playing == "paused" and rig.alerter.output[0] == 1.0  # felt at once
    rig.run(30.0 - 0.02, level=AlertLevel.WARN)  # a WARN while paused: not played
    assert rig.control.paused and rig.alerter.output == (0.0, False)
    rig.run(0.04, level=AlertLevel.CLEAR)
    assert rig.actions == [(1.2, "paused"), (31.2, "resumed")]  # pause_s after the press, exactly
    assert rig.alerter.cue_playing == "resumed"
    rig.run(1.0, level=AlertLevel.WARN)
    assert rig.alerter.level is AlertLevel.WARN  # alerts are back


def test_while_paused_danger_still_plays_and_a_second_press_resumes_early() -> None:
    rig = Rig(pause_s=60)
    rig.run(0.1, pressed=True)
    rig.run(0.5, pressed=False)
    for level in (AlertLevel.CAUTION, AlertLevel.WARN, AlertLevel.FAULT):
        rig.run(0.5, level=level)
        assert rig.alerter.level is AlertLevel.CLEAR and rig.alerter.output == (0.0, False), level
    rig.run(0.1, level=AlertLevel.DANGER)
    assert rig.alerter.level is AlertLevel.DANGER and rig.alerter.output == (1.0, True)
    rig.run(0.1, pressed=True)
    rig.run(0.1, pressed=False)
    assert [a for _, a in rig.actions] == ["paused", "resumed"] and not rig.control.paused


def test_a_hold_plays_shutting_down_then_asks_once_for_the_power_off() -> None:
    rig = Rig(hold_s=3)
    rig.run(0.5)
    rig.run(3.5, pressed=True, level=AlertLevel.WARN)  # held from 0.5 s; a WARN meanwhile plays until the hold
    period = SHUTTING_DOWN.pattern.period_ns / NS_PER_S
    assert rig.actions[0] == (3.5, "shutting down")
    assert rig.alerter.cue_playing == "shutting down" and rig.alerter.output == (1.0, True)
    rig.run(3.0, pressed=False, level=AlertLevel.WARN)
    assert rig.actions == [(3.5, "shutting down"), (round(3.5 + period, 2), "power off")]
    assert rig.control.gate(AlertLevel.DANGER) is AlertLevel.DANGER  # to the very end


def test_the_cues_are_told_apart() -> None:
    pats = {c.name: c.pattern for c in (PAUSED, RESUMED, SHUTTING_DOWN)}
    assert len(set(pats.values())) == 3
    assert [s.buzzer for s in PAUSED.pattern.segments] == [False] * 3  # quiet at a water stop


def test_button_config_is_off_by_default_and_its_pin_is_checked() -> None:
    assert Config().button.pin is None
    with pytest.raises(ConfigError, match="GPIO12 is used twice"):
        from_dict({"button": {"pin": 12}})
    with pytest.raises(ConfigError, match="button.hold_s"):
        from_dict({"button": {"pin": 16, "hold_s": 0.5}})


def test_the_device_opens_the_configured_button_and_runs_on_without_a_broken_one() -> None:
    from device.app.live import open_button

    factory = MockFactory(pin_class=MockPWMPin)
    notes: list[str] = []
    assert open_button(Config(), factory, notes) == (None, None)  # no pin: no button
    button, control = open_button(from_dict({"button": {"pin": PIN}}), factory, notes)
    assert control is not None and not button.is_pressed
    factory.pin(PIN).drive_low()
    assert button.is_pressed  # to ground, through the internal pull-up
    # the same pin again cannot be claimed: said in STATUS, the device goes on
    assert open_button(from_dict({"button": {"pin": PIN}}), factory, notes) == (None, None)
    assert notes and notes[0].startswith(f"button off: GPIO{PIN}")
    button.close()
