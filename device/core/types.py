"""The data that flows through Rearguard: small, frozen, and free of I/O.

Times are integer nanoseconds from the injected clock (`device.core.clock`), never
wall-clock floats, so that a replay reproduces a run to the nanosecond.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from device.core.faults import Fault


class AlertLevel(IntEnum):
    """What the runner is told. Ordered: a higher value is more urgent.

    FAULT is not "worse than DANGER": it means the device cannot see part of
    what it should. How FAULT combines with a real threat is decided in
    `device.output.alerts.effective_level`.
    """

    CLEAR = 0
    CAUTION = 1
    WARN = 2
    DANGER = 3
    FAULT = 4


@dataclass(frozen=True, eq=False)
class Frame:
    """One camera image. `seq` counts frames from the source's start."""

    seq: int
    t_ns: int
    image: np.ndarray  # HxWx3 uint8, BGR (OpenCV's order)


@dataclass(frozen=True, eq=False)
class Detections:
    """Detections of one frame as parallel arrays (the supervision layout).

    xyxy is in the pixel coordinates of the frame that was detected on.
    """

    xyxy: np.ndarray  # (N, 4) float32
    confidence: np.ndarray  # (N,) float32
    class_id: np.ndarray  # (N,) int32

    def __post_init__(self) -> None:
        n = len(self.confidence)
        if self.xyxy.shape != (n, 4) or self.class_id.shape != (n,):
            raise ValueError(
                f"Detections arrays disagree: xyxy {self.xyxy.shape}, "
                f"confidence {self.confidence.shape}, class_id {self.class_id.shape}"
            )

    @classmethod
    def empty(cls) -> Detections:
        return cls(
            xyxy=np.zeros((0, 4), np.float32),
            confidence=np.zeros((0,), np.float32),
            class_id=np.zeros((0,), np.int32),
        )

    def __len__(self) -> int:
        return len(self.confidence)

    def __getitem__(self, mask: np.ndarray | slice) -> Detections:
        """Boolean-mask or index filtering, as in supervision."""
        return Detections(
            xyxy=self.xyxy[mask],
            confidence=self.confidence[mask],
            class_id=self.class_id[mask],
        )


@dataclass(frozen=True)
class Range:
    """One ultrasonic reading.

    metres is None when nothing echoed within range: the normal state in an
    open park, never an obstacle. `fault` names a broken sensor state (for
    example "no-echo-signal"); a faulted reading carries no distance.
    """

    t_ns: int
    sensor: str
    metres: float | None
    fault: str | None = None


@dataclass(frozen=True)
class Threat:
    """The single most urgent thing behind the runner, and what to do about it."""

    t_ns: int
    level: AlertLevel
    source: str  # "camera" | "ultrasonic" | "fused" | "fault" | "none"
    distance_m: float | None = None
    ttc_s: float | None = None
    closing_mps: float | None = None
    bearing_deg: float | None = None
    label: str | None = None
    # Typed from where they arose (`device.core.faults`) to the pins
    # (`effective_level`); `texts(faults)` is what a person reads.
    faults: tuple[Fault, ...] = field(default_factory=tuple)
    # "left" | "centre" | "right" of the runner (from bearing_deg and
    # alerts.centre_deg): which side motor plays, where there are two.
    direction: str | None = None


@dataclass(frozen=True)
class AlertEvent:
    """A change of the level the runner feels."""

    t_ns: int
    level: AlertLevel
    source: str
    distance_m: float | None
    ttc_s: float | None
    faults: tuple[str, ...] = ()  # the texts, as logged and recorded (`texts` of the threat's faults)
    # What it was and where: the threat's class (a sensor's name for an
    # echo), bearing (negative = the runner's left) and side (`Threat.direction`).
    label: str | None = None
    bearing_deg: float | None = None
    direction: str | None = None

    def what(self) -> str:
        """What and which side, for a person: "person 2.6 m, 10 deg left (camera)",
        "echo 0.9 m, behind (ultrasonic centre)"; the faults for FAULT."""
        if self.source == "fault":
            return "faults: " + ("; ".join(self.faults) or "-")
        if self.level == AlertLevel.CLEAR or (self.distance_m is None and self.label is None):
            return f"nothing in the way ({self.source})"
        return describe_thing(self.source, self.label, self.distance_m, self.ttc_s, self.bearing_deg, self.direction)


def describe_thing(source: str, label: str | None, distance_m: float | None, ttc_s: float | None,
                   bearing_deg: float | None, direction: str | None) -> str:
    """"person 2.6 m, 10 deg left, ttc 3.1 s (camera)": the one wording of a
    threat, in the terminal's status line, the event lines and the journal."""
    thing = "echo" if source == "ultrasonic" else label or "object"
    via = f"{source} {label}" if source == "ultrasonic" and label else source
    parts = [thing + (f" {distance_m:.1f} m" if distance_m is not None else "")]
    if direction in ("left", "right") and bearing_deg is not None:
        parts.append(f"{abs(bearing_deg):.0f} deg {direction}")
    elif direction == "centre":
        parts.append("behind")
    text = ", ".join(parts)
    if ttc_s is not None:
        text += f", ttc {ttc_s:.1f} s"
    return f"{text} ({via})"
