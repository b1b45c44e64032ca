"""The ports: what the loop needs from the world, as protocols.

Hardware and recordings sit behind these; the composition root
(`device.app.compose`) picks the implementation. A new perception source
implements `FrameSource` (frames in) or, for a different kind of camera
result, a `device.pipeline.CameraFeed`; see docs/architecture.md.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from device.core.types import AlertLevel, Detections, Frame, Range


@runtime_checkable
class FrameSource(Protocol):
    """Frames in: the Pi camera, a webcam, a video file, a recording."""

    width: int
    height: int

    def latest(self) -> Frame | None:
        """The newest frame not yet returned, or None if none arrived since. Never blocks."""
        ...

    @property
    def error(self) -> str | None:
        """Why the source stopped delivering ("end of video", ...), else None."""
        ...

    # A finite source (a video file, a recording) that has run out also has
    # `ended` True: the end of the input, which stops a run rather than being
    # a camera fault. Sources without an `ended` never end.

    def wait(self, timeout: float) -> bool:
        """Block until a frame is ready for latest() or timeout; True if one is."""
        ...

    def close(self) -> None: ...


class RangeSource(Protocol):
    """Ultrasonic readings in: the sensors, or a recording's ranges."""

    def poll(self, now_ns: int) -> list[Range]:
        """Readings taken since the last poll with t_ns <= now_ns, oldest first. Never blocks."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Detector(Protocol):
    """Objects in one image: YOLOX on onnxruntime, or a test's stand-in."""

    def detect(self, image: np.ndarray) -> Detections:
        """Objects in one HxWx3 uint8 BGR image, boxes in that image's pixels."""
        ...

    def close(self) -> None: ...


class AlertSink(Protocol):
    """The felt level out: the Alerter's pins, behind the stall guard."""

    def update(self, level: AlertLevel, now_ns: int, direction: str | None = None) -> None: ...


class RecordSink(Protocol):
    """What the loop hands the recorder: every frame and every reading. On
    the device a RecorderThread (device/record/worker.py): both calls only
    enqueue, so neither the loop nor the detector ever waits on the disk."""

    def write_frame(self, frame: Frame) -> None: ...
    def write_ranges(self, ranges: list[Range]) -> None: ...
