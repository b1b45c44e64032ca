"""The composition root: the one place where hardware is chosen and injected.

The CLI, the replay and the tests build their objects here, so a Pi, a
laptop with simulated pins and a replay differ only in what is passed in
(pin factory, frame source, range source, clock).
"""

from __future__ import annotations

import logging
import os

from device.model_store import store as models
from device.core.config import Config
from device.perception.detector import Detector, ModelError, YoloxDetector
from device.core.coco import class_id

log = logging.getLogger(__name__)

# An HC-SR04 holds its echo line high for ~38 ms when nothing answers: that
# is what the simulated sensors do, so a laptop run sees an open park.
SIMULATED_NO_ECHO_S = 0.038


def build_detector(config: Config) -> tuple[Detector | None, tuple[str, ...]]:
    """The configured detector, or None and a fault saying why not.

    A missing or corrupt model must not stop the device: it carries on
    ultrasonic-only, with the fault pattern telling the runner so.
    """
    d = config.detector
    try:
        path = models.resolve(d.model)
        det = YoloxDetector(
            path,
            input_size=d.input_size,
            score_threshold=d.score_threshold,
            nms_iou=d.nms_iou,
            class_ids=[class_id(c) for c in d.classes],
            threads=d.threads,
        )
    except ModelError as err:
        log.error("detector unavailable: %s", err)
        return None, (f"model: {err}",)
    return det, ()


def wants_mock_pins() -> bool:
    return os.environ.get("GPIOZERO_PIN_FACTORY", "").strip().lower() == "mock"


def make_pin_factory(kind: str | None, config: Config):  # -> gpiozero Factory | None
    """`mock`: gpiozero's MockFactory with every configured ultrasonic sensor
    simulated as answering "nothing in range"; None: gpiozero's own choice
    (GPIOZERO_PIN_FACTORY, else lgpio on a Pi)."""
    if kind is None and wants_mock_pins():
        kind = "mock"
    if kind != "mock":
        return None
    from gpiozero.pins.mock import MockFactory, MockPWMPin, MockTriggerPin

    # MockFactory refuses a pre-made pin whose PWM support differs from its
    # default pin class, so the simulated trigger pins must be PWM-capable too.
    class PWMTriggerPin(MockTriggerPin, MockPWMPin):
        pass

    factory = MockFactory(pin_class=MockPWMPin)
    for s in config.ranging.sensors:
        echo = factory.pin(s.echo_pin)
        factory.pin(s.trigger_pin, pin_class=PWMTriggerPin, echo_pin=echo, echo_time=SIMULATED_NO_ECHO_S)
    return factory
