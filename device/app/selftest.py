"""The start-up self-test: every part answers, or the runner is told.

Run once when the device starts, before the loop: a short greeting on the
motor and the buzzer (the runner feels and hears that it is alive), a
camera frame, a model warm-up inference, and a reading from every sensor.
A part that fails becomes a fault; the loop then runs in whatever degraded
mode still works (for example ultrasonic-only), with the FAULT rhythm.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from device.core.clock import NS_PER_S, Clock
from device.core.faults import Fault, Kind, Part
from device.core.ports import AlertSink, Detector, FrameSource, RangeSource
from device.core.types import AlertLevel

log = logging.getLogger(__name__)

GREETING_S = 0.15
SELFTEST_TIMEOUT_S = 2.0  # per part: a camera frame, the sensors' first readings
# The longest the self-test waits (camera, then sensors), which is when the
# READY cue comes at the latest, not counting the model's warm-up inference.
READY_WITHIN_S = GREETING_S + 2 * SELFTEST_TIMEOUT_S


@dataclass(frozen=True)
class SelfTestReport:
    faults: tuple[Fault, ...]
    passed: tuple[str, ...] = field(default_factory=tuple)



def greet(alerter: AlertSink, clock: Clock, sleep: Callable[[float], None]) -> None:
    """One short buzz on both outputs: proof of life, and a check a builder
    can feel and hear."""
    alerter.update(AlertLevel.DANGER, clock.now_ns())
    sleep(GREETING_S)
    alerter.update(AlertLevel.CLEAR, clock.now_ns())


def self_test(
    *,
    clock: Clock,
    sleep: Callable[[float], None],
    frames: FrameSource | None,
    detector: Detector | None,
    ranges: RangeSource | None,
    sensor_names: tuple[str, ...],
    timeout_s: float = SELFTEST_TIMEOUT_S,
) -> SelfTestReport:
    faults: list[Fault] = []
    passed: list[str] = []
    image = None
    if frames is not None:
        if frames.wait(timeout_s) and (frame := frames.latest()) is not None:
            image = frame.image
            passed.append(f"camera: {frame.image.shape[1]}x{frame.image.shape[0]} frame")
        else:
            faults.append(Fault(Part.CAMERA, Kind.UNAVAILABLE, f"no frame within {timeout_s:.0f} s"
                                + (f" ({frames.error})" if frames.error else "")))
    if detector is not None:
        probe = image if image is not None else np.zeros((360, 640, 3), np.uint8)
        try:
            detector.detect(probe)
            passed.append("model: warm-up inference")
        except Exception as err:  # any failure here means no camera alerts: say so
            faults.append(Fault(Part.MODEL, Kind.FAILED, f"warm-up failed: {err}"))
    if ranges is not None and sensor_names:
        answered: set[str] = set()
        broken: dict[str, str] = {}
        deadline = clock.now_ns() + round(timeout_s * NS_PER_S)
        while clock.now_ns() < deadline and len(answered) < len(sensor_names):
            for r in ranges.poll(clock.now_ns()):
                if r.fault is None:
                    answered.add(r.sensor)
                    broken.pop(r.sensor, None)
                elif r.sensor not in answered:
                    broken[r.sensor] = r.fault
            sleep(0.02)
        for name in sensor_names:
            if name in answered:
                passed.append(f"sensor {name}: answering")
            else:
                faults.append(Fault(Part.SENSOR, Kind.UNAVAILABLE, f"{broken.get(name, 'no reading')} within "
                                    f"{timeout_s:.0f} s", name=name))
    for f in faults:
        log.error("self-test: %s", f)
    for p in passed:
        log.info("self-test ok: %s", p)
    return SelfTestReport(tuple(faults), tuple(passed))
