"""Faults as values: which part failed, how, and the human text derived.

Every part that can fail (camera, model, ranging, recording, one sensor)
reports a `Fault`; code decides on `part` and `kind`, never on the text.
The text (`str(fault)`, "part: detail") is what the runner's log, the
status line, systemd's STATUS and `replay --json` show; those texts are
unchanged from when faults were plain strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Part(StrEnum):
    CAMERA = "camera"
    MODEL = "model"
    RANGING = "ranging"
    RECORDING = "recording"
    SENSOR = "sensor"  # one ultrasonic sensor; Fault.name says which
    LOOMING = "looming"  # the any-obstacle path beside the detector (device.perception.looming)
    ACCELERATOR = "accelerator"  # the AI Camera or Hailo backend; detection falls back to the CPU model


class Kind(StrEnum):
    UNAVAILABLE = "unavailable"  # could not be opened or loaded at all
    FAILED = "failed"  # worked, then broke (a crash, a write error, a bad echo line)
    STALLED = "stalled"  # no new data for too long
    FROZEN = "frozen"  # data keeps coming but never changes
    BLIND = "blind"  # frames keep coming and changing, but show nothing: a covered, dark or fogged lens
    TOO_SLOW = "too slow"  # works, but too slowly for its results to be of any use (the camera path)
    ENDED = "ended"  # a finite source (a video file) ran out: not a fault of the device


@dataclass(frozen=True)
class Fault:
    part: Part
    kind: Kind
    detail: str
    name: str | None = None  # the sensor's name, for Part.SENSOR

    def __str__(self) -> str:
        return f"{self.name if self.part is Part.SENSOR and self.name else self.part.value}: {self.detail}"


def texts(faults: tuple[Fault, ...]) -> tuple[str, ...]:
    """The human texts, in order, as `Threat.faults` and events carry them."""
    return tuple(str(f) for f in faults)
