"""Start-up self-test on mock pins: the real gpiozero sensor path, a fake
camera and detector; each failing part becomes its own fault."""

from __future__ import annotations

import time

import numpy as np
from gpiozero.pins.mock import MockFactory, MockPWMPin

from device.app.compose import make_pin_factory
from device.app.selftest import greet, self_test
from device.core.clock import MonotonicClock, ReplayClock
from device.core.config import Config
from device.core.faults import Part
from device.core.types import Frame
from device.output.alerts import Alerter
from device.sensing.ultrasonic import UltrasonicRanger
from fakes import FailingDetector, FixedDetector

CFG = Config()
NAMES = tuple(s.name for s in CFG.ranging.sensors)


class OneFrame:
    width, height, error = 64, 48, None

    def __init__(self, ok: bool = True) -> None:
        self.ok = ok

    def wait(self, timeout: float) -> bool:
        return self.ok

    def latest(self) -> Frame | None:
        return Frame(0, 0, np.zeros((48, 64, 3), np.uint8)) if self.ok else None

    def close(self) -> None: ...


def test_greeting_buzzes_both_outputs_then_stops() -> None:
    factory = MockFactory(pin_class=MockPWMPin)
    alerter = Alerter(CFG.outputs, pin_factory=factory)
    clock = ReplayClock(0)
    slept: list[float] = []
    greet(alerter, clock, lambda s: (slept.append(s), clock.advance(s)))
    haptic = factory.pin(CFG.outputs.haptic_pin)
    buzzer = factory.pin(CFG.outputs.buzzer_pin)
    assert [s.state for s in haptic.states][-2:] == [1.0, 0.0]
    assert [bool(s.state) for s in buzzer.states][-2:] == [True, False]
    assert slept == [0.15]
    alerter.close()


def test_all_parts_answer_on_mock_pins() -> None:
    clock = MonotonicClock()
    factory = make_pin_factory("mock", CFG)  # sensors answer "nothing in range"
    ranger = UltrasonicRanger(CFG.ranging.sensors, clock, pin_factory=factory)
    det = FixedDetector()
    try:
        report = self_test(clock=clock, sleep=time.sleep, frames=OneFrame(), detector=det,
                           ranges=ranger, sensor_names=NAMES, timeout_s=3.0)
    finally:
        ranger.close()
    assert report.faults == ()
    assert det.seen == [(48, 64, 3)]  # the warm-up ran on the real camera frame
    assert any("sensor centre" in p for p in report.passed)


def test_each_failing_part_is_named() -> None:
    clock = MonotonicClock()
    factory = MockFactory(pin_class=MockPWMPin)  # plain pins: the echo never rises
    ranger = UltrasonicRanger(CFG.ranging.sensors, clock, pin_factory=factory)
    try:
        report = self_test(clock=clock, sleep=time.sleep, frames=OneFrame(ok=False), detector=FailingDetector(),
                           ranges=ranger, sensor_names=NAMES, timeout_s=1.0)
    finally:
        ranger.close()
    parts = sorted((f.part.value, f.name or "") for f in report.faults)
    assert parts == [("camera", ""), ("model", ""), ("sensor", "centre")]
    assert "bad model" in str(next(f for f in report.faults if f.part is Part.MODEL))
    assert str(next(f for f in report.faults if f.part is Part.SENSOR)).startswith("centre: ")
