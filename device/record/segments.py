"""Recording on the device within a disk budget.

A run is recorded as a series of segments, each a complete recording (see
docs/recording-format.md) of at most `segment_s` seconds, in one directory.
When the segments exceed `budget_mb`, or the disk's free space falls below
`min_free_mb`, the oldest segments are deleted: the last N minutes are kept
and the SD card never fills. If space cannot be made (nothing old left to
delete, or a write fails), recording stops with a fault (retried every
10 s, so the fault clears when space comes back); the device goes on
warning the runner. Recording must never be the reason an alert is lost.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from device.core.clock import NS_PER_S
from device.record.format import RecordingError, RecordingWriter, SensorLike
from device.core.types import Frame, Range

log = logging.getLogger(__name__)

MB = 1_000_000
SEGMENT_GLOB = "seg-*"
CHECK_EVERY_NS = 2 * NS_PER_S
RETRY_NS = 10 * NS_PER_S  # after a fault, recording is retried this often


def _dir_bytes(d: Path) -> int:
    return sum(f.stat().st_size for f in d.iterdir() if f.is_file())


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


class SegmentedRecorder:
    def __init__(
        self,
        directory: str | Path,
        *,
        width: int,
        height: int,
        fps: float,
        hfov_deg: float,
        sensors: Sequence[SensorLike],
        source: str,
        segment_s: float = 300.0,
        budget_mb: float = 2000.0,
        min_free_mb: float = 500.0,
        free: Callable[[Path], int] = free_bytes,
        writer: Callable[..., RecordingWriter] = RecordingWriter,
    ) -> None:
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RecordingError(f"cannot create the recording directory {self.directory}: {err}") from None
        self._writer_args = dict(width=width, height=height, fps=fps, hfov_deg=hfov_deg,
                                 sensors=sensors, source=source)
        self.segment_ns = round(segment_s * NS_PER_S)
        self.budget = round(budget_mb * MB)
        self.min_free = round(min_free_mb * MB)
        self._free = free
        self._new_writer = writer
        self._lock = threading.Lock()
        self._current: RecordingWriter | None = None
        self._segment_start: int | None = None
        self._next_index = 1 + max((self._index(d) for d in self.segments()), default=0)
        self.fault: str | None = None
        self._pending_ranges: list[Range] = []
        self._last_check: int | None = None
        self._retry_at: int | None = None

    @staticmethod
    def _index(d: Path) -> int:
        try:
            return int(d.name.split("-")[1])
        except (IndexError, ValueError):
            return 0

    def segments(self) -> list[Path]:
        return sorted((d for d in self.directory.glob(SEGMENT_GLOB) if d.is_dir()), key=self._index)

    # ------------------------------------------------------------ writing

    def write_frame(self, frame: Frame) -> None:
        with self._lock:
            if self.fault is not None:
                if self._retry_at is None:
                    self._retry_at = frame.t_ns + RETRY_NS
                if frame.t_ns < self._retry_at:
                    return
                # Space may have been freed (or the card swapped): try again.
                self.fault, self._retry_at = None, None
                self._current = None
            try:
                if (
                    self._current is None
                    or frame.t_ns - (self._segment_start or 0) >= self.segment_ns
                    or self._disk_low(frame.t_ns)
                ):
                    self._rotate(frame.t_ns)
                if self._current is None:
                    return
                self._current.write_frame(frame)
                if self._pending_ranges:
                    self._current.write_ranges(self._pending_ranges)
                    self._pending_ranges = []
            except OSError as err:
                self._stop(f"recording: write failed: {err.strerror or err}")

    def write_ranges(self, ranges: Iterable[Range]) -> None:
        with self._lock:
            if self.fault is not None:
                return
            ranges = list(ranges)
            if self._current is None:
                # Before the first frame: keep them for the first segment.
                self._pending_ranges.extend(ranges)
                return
            try:
                self._current.write_ranges(ranges)
            except OSError as err:
                self._stop(f"recording: write failed: {err.strerror or err}")

    # ------------------------------------------------------------ rotation

    def _disk_low(self, t_ns: int) -> bool:
        """Every couple of seconds: is the free space below the reserve? Then
        the segment is cut short so old ones can be deleted."""
        if self._last_check is not None and t_ns - self._last_check < CHECK_EVERY_NS:
            return False
        self._last_check = t_ns
        return self._free(self.directory) < self.min_free

    def _rotate(self, t_ns: int) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None
        self._make_room()
        if self.fault is not None:
            return
        path = self.directory / f"seg-{self._next_index:06d}"
        self._next_index += 1
        self._current = self._new_writer(path, **self._writer_args)
        self._segment_start = t_ns
        log.info("recording segment %s", path)

    def _make_room(self) -> None:
        """Delete the oldest closed segments until the budget and the free
        space allow a new one."""
        seg_guess = 0
        closed = self.segments()
        if closed:
            seg_guess = max(_dir_bytes(d) for d in closed)
        while True:
            used = sum(_dir_bytes(d) for d in closed)
            free = self._free(self.directory)
            if used + seg_guess <= self.budget and free - seg_guess >= self.min_free:
                return
            if not closed:
                self._stop(
                    f"recording: disk full ({free / MB:.0f} MB free, need {self.min_free / MB:.0f} MB "
                    "to spare): recording stopped"
                )
                return
            oldest = closed.pop(0)
            log.info("recording budget: deleting %s", oldest)
            shutil.rmtree(oldest, ignore_errors=True)

    def _stop(self, fault: str) -> None:
        log.error("%s", fault)
        self.fault = fault
        if self._current is not None:
            try:
                self._current.close()
            except OSError:
                pass
            self._current = None

    def close(self) -> None:
        with self._lock:
            if self._current is not None:
                self._current.close()
                self._current = None
