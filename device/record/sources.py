"""A recording as the pipeline's frame source, on a replay clock."""

from __future__ import annotations

from collections.abc import Iterator

from device.core.clock import ReplayClock
from device.core.types import Frame
from device.record.format import Recording


class RecordedFrames:
    """A FrameSource over a recording: the newest frame whose time has come."""

    def __init__(self, recording: Recording, clock: ReplayClock) -> None:
        self._frames: Iterator[Frame] = recording.frames()
        self._clock = clock
        self._next: Frame | None = next(self._frames, None)
        self.width = recording.meta.camera.width
        self.height = recording.meta.camera.height
        self.dropped = 0

    def latest(self) -> Frame | None:
        now = self._clock.now_ns()
        newest = None
        while self._next is not None and self._next.t_ns <= now:
            if newest is not None:
                self.dropped += 1
            newest = self._next
            self._next = next(self._frames, None)
        return newest

    def wait(self, timeout: float) -> bool:
        # Replay time only moves between steps: a frame is due now or not at all.
        return self._next is not None and self._next.t_ns <= self._clock.now_ns()

    @property
    def ended(self) -> bool:
        return self._next is None

    @property
    def error(self) -> str | None:
        return None  # the end of a recording is the end of the replay, not a fault

    def close(self) -> None:
        self._next = None
