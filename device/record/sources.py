"""A recording as the pipeline's frame source, on a replay clock.

Bad input costs only what it must: a frame that cannot be decoded is
skipped, counted and shown as a camera fault until the next good frame;
a sensor whose log ends while the recording goes on is given a `silent`
fault row (`silence_ends`), as the device itself would have logged it.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from itertools import pairwise

from device.core.clock import NS_PER_S, ReplayClock
from device.core.types import Frame, Range
from device.record.format import BadFrame, Recording
from device.sensing.ultrasonic import FAULT_AFTER_S, SILENT

STOP_TAIL_NS = NS_PER_S  # a log ending within the last second is the run stopping


class RecordedFrames:
    """A FrameSource over a recording: the newest frame whose time has come."""

    def __init__(self, recording: Recording, clock: ReplayClock) -> None:
        self._frames: Iterator[Frame | BadFrame] = recording.frame_items()
        self._times = recording.frame_times
        self._clock = clock
        self._next: Frame | BadFrame | None = next(self._frames, None)
        self.width = recording.meta.camera.width
        self.height = recording.meta.camera.height
        self.dropped = 0
        self.bad: list[BadFrame] = []
        self._error: str | None = None

    def latest(self) -> Frame | None:
        return self.latest_at(self._clock.now_ns())

    def next_t_ns(self) -> int | None:
        """When the next frame (good or bad) arrives (None: no more frames)."""
        return self._next.t_ns if self._next is not None else None

    def arrived_ns(self, now: int) -> int | None:
        """The time of the newest frame (good or bad) due by `now`, without
        taking it (None: none yet)."""
        i = bisect.bisect_right(self._times, now)
        return self._times[i - 1] if i else None

    def latest_at(self, now: int) -> Frame | None:
        """The newest good frame due by `now`; older ones due too are dropped
        (counted), bad ones skipped (counted in `bad`)."""
        newest = None
        while self._next is not None and self._next.t_ns <= now:
            item, self._next = self._next, next(self._frames, None)
            if isinstance(item, BadFrame):
                # Skipped; a camera fault until the next good frame, as a
                # camera that delivered garbage would be.
                self.bad.append(item)
                self._error = f"frame {item.seq} cannot be decoded"
                continue
            if newest is not None:
                self.dropped += 1
            newest, self._error = item, None
        return newest

    def wait(self, timeout: float) -> bool:
        # Replay time only moves between steps: a frame is due now or not at all.
        return self._next is not None and self._next.t_ns <= self._clock.now_ns()

    @property
    def ended(self) -> bool:
        return self._next is None

    @property
    def error(self) -> str | None:
        return self._error  # the end of a recording is the end of the replay, not a fault

    def close(self) -> None:
        self._next = None


def silence_ends(recording: Recording) -> list[Range]:
    """A `silent` fault for each sensor whose log ends while the recording
    goes on: on the device a sensor that stops answering gets fault rows
    (after FAULT_AFTER_S), so a log that simply ends is a sensor gone silent
    or a log cut short, never "nothing there". This holds for from-video
    recordings too: the device they stand for would have had no sensor
    either once the log ends.
    """
    times: dict[str, list[int]] = {}
    last: dict[str, Range] = {}
    for r in recording.ranges:
        times.setdefault(r.sensor, []).append(r.t_ns)
        last[r.sensor] = r
    out = []
    for name, r in last.items():
        # A slow ping cycle (many sensors, a long sample_wait_s) is not silence.
        gaps = sorted(b - a for a, b in pairwise(times[name]))
        after = max(round(FAULT_AFTER_S * NS_PER_S), 3 * gaps[len(gaps) // 2] if gaps else 0)
        # Within the last second is the run stopping, not the sensor: the
        # camera thread writes its last frames after the loop's last ping.
        if r.fault is None and recording.end_ns - r.t_ns >= max(after, STOP_TAIL_NS):
            out.append(Range(t_ns=r.t_ns + after, sensor=name, metres=None, fault=SILENT))
    return out
