"""Recording on the device within a disk budget.

A run is recorded as a series of segments, each a complete recording (see
docs/recording-format.md) of at most `segment_s` seconds, in one directory.
When the segments exceed `budget_mb`, or the disk's free space falls below
`min_free_mb`, the oldest segments are deleted: the last N minutes are kept
and the SD card never fills. Two segments are never deleted: the one being
written and the newest finished one (the footage just before it), so the
recording of the last seconds is never lost to make room. A segment is cut
short when it reaches half the budget, so those two always fit in it.

If space cannot be made, or anything else goes wrong (a write fails, no
inode is left for the next segment's files, a frame is refused), recording
stops with a fault that names what happened, retried every 10 s, so the
fault clears when it can; the device goes on warning the runner. This class
is driven by one thread, the recorder's (device/record/worker.py), so its
slow work (rotation, deleting old segments) is never under a lock the
alert loop or the detector waits on.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from device.core.clock import NS_PER_S
from device.core.types import Frame, Range
from device.record.format import FRAMES, RecordingError, RecordingWriter, SensorLike

log = logging.getLogger(__name__)

MB = 1_000_000
SEGMENT_GLOB = "seg-*"
CHECK_EVERY_NS = 2 * NS_PER_S
RETRY_NS = 10 * NS_PER_S  # after a fault, recording is retried this often


def _dir_bytes(d: Path) -> int:
    try:
        return sum(f.stat().st_size for f in d.iterdir() if f.is_file())
    except OSError:  # deleted meanwhile, or unreadable: it holds nothing we can count
        return 0


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


def free_inodes(path: Path) -> int | None:
    """Inodes an unprivileged writer may still create, or None where unknown."""
    try:
        st = os.statvfs(path)
    except (OSError, AttributeError):
        return None
    return st.f_favail if st.f_files else None  # f_files 0: the filesystem has no inode limit


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
        inodes: Callable[[Path], int | None] = free_inodes,
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
        self._inodes = inodes
        self._new_writer = writer
        self._lock = threading.Lock()  # only the recorder thread and close() take it
        self._current: RecordingWriter | None = None
        self._current_path: Path | None = None
        self._segment_start: int | None = None
        self._next_index = 1 + max((self._index(d) for d in self.segments()), default=0)
        self.fault: str | None = None
        self._pending_ranges: list[Range] = []
        self._last_check: int | None = None
        self._retry_at: int | None = None
        self._cut = False
        # Segments another part still needs (an incident clip being cut from them).
        self.keep: Callable[[Path], bool] = lambda _p: False
        # Called after each frame is written (the incident clips follow the time).
        self.after_frame: Callable[[Frame], None] | None = None

    @staticmethod
    def _index(d: Path) -> int:
        return segment_index(d)

    def segments(self) -> list[Path]:
        return sorted((d for d in self.directory.glob(SEGMENT_GLOB) if d.is_dir()), key=self._index)

    @property
    def current(self) -> Path | None:
        """The segment being written, if any."""
        return self._current_path if self._current is not None else None

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
                self._close_current()
            try:
                if (
                    self._current is None
                    or self._cut
                    or frame.t_ns - (self._segment_start or 0) >= self.segment_ns
                    or self._check_due(frame.t_ns)
                ):
                    self._rotate(frame.t_ns)
                if self._current is None:
                    return
                self._current.write_frame(frame)
                if self._pending_ranges:
                    self._current.write_ranges(self._pending_ranges)
                    self._pending_ranges = []
            except Exception as err:  # any recording error is the recording's fault, never the caller's
                self._stop(self._describe(err, "write failed"))
                return
        if self.after_frame is not None:
            self.after_frame(frame)

    def write_ranges(self, ranges: Iterable[Range]) -> None:
        with self._lock:
            if self.fault is not None:
                return
            ranges = list(ranges)
            if self._current is None:
                # Before the first frame: keep them for the first segment.
                self._pending_ranges.extend(ranges)
                del self._pending_ranges[:-10_000]  # bounded, should frames never come
                return
            try:
                self._current.write_ranges(ranges)
            except Exception as err:
                self._stop(self._describe(err, "write failed"))

    def cut(self) -> None:
        """End the current segment at the next frame (an incident clip needs it complete)."""
        self._cut = True

    # ------------------------------------------------------------ rotation

    def _check_due(self, t_ns: int) -> bool:
        """Every couple of seconds: is the free space below the reserve, or
        the segment past half the budget? Then the segment is cut so old ones
        can be deleted."""
        if self._last_check is not None and t_ns - self._last_check < CHECK_EVERY_NS:
            return False
        self._last_check = t_ns
        if self._current_path is not None and 2 * _dir_bytes(self._current_path) >= self.budget:
            return True
        return self._free(self.directory) < self.min_free

    def _close_current(self) -> None:
        if self._current is not None:
            writer, self._current = self._current, None
            try:
                writer.close()
            except Exception as err:
                log.error("recording: closing %s failed: %s", self._current_path, err)

    def _rotate(self, t_ns: int) -> None:
        self._close_current()
        self._cut = False
        self._make_room()
        if self.fault is not None:
            return
        path = self.directory / f"seg-{self._next_index:06d}"
        self._next_index += 1
        self._current_path = path
        try:
            self._current = self._new_writer(path, **self._writer_args)
        except Exception as err:  # e.g. no inode left for its files
            fault = self._describe(err, f"cannot start segment {path.name}")
            # A half-made segment is no recording, and it holds inodes: remove it.
            shutil.rmtree(path, ignore_errors=True)
            self._stop(fault)
            return
        self._segment_start = t_ns
        log.info("recording segment %s", path)

    def _make_room(self) -> None:
        """Delete the oldest finished segments until the budget and the free
        space allow a new one; the newest finished segment is kept."""
        closed = self.segments()
        seg_guess = max((_dir_bytes(d) for d in closed), default=0)
        newest = closed[-1] if closed else None
        deletable = [d for d in closed if d != newest and not self.keep(d)]
        used = sum(_dir_bytes(d) for d in closed)
        while used + seg_guess > self.budget and deletable:
            oldest = deletable.pop(0)
            used -= _dir_bytes(oldest)
            self._delete(oldest, "recording budget")
        while self._free(self.directory) - seg_guess < self.min_free and deletable:
            self._delete(deletable.pop(0), "low disk space")
        if used + seg_guess > self.budget:
            log.warning("recording budget: %.1f MB over (the newest footage is kept)",
                        (used + seg_guess - self.budget) / MB)
        free = self._free(self.directory)
        if free - seg_guess < self.min_free:
            self._stop(self._space_fault(free))

    def _delete(self, segment: Path, why: str) -> None:
        log.info("%s: deleting %s", why, segment)
        shutil.rmtree(segment, ignore_errors=True)

    def _space_fault(self, free: int) -> str:
        if free < max(self.min_free // 10, 1 * MB):
            return f"recording: disk full ({free / MB:.0f} MB free): recording stopped, footage kept"
        return (
            f"recording: low disk space ({free / MB:.0f} MB free, recording keeps "
            f"{self.min_free / MB:.0f} MB spare): recording stopped, footage kept"
        )

    def _describe(self, err: Exception, what: str) -> str:
        """The fault for `err`, named for what it is."""
        if (isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)) or isinstance(err, RecordingError):
            inodes = self._inodes(self.directory)
            if inodes is not None and inodes <= 0:
                return f"recording: no free inodes on the disk ({what}): recording stopped"
            try:
                free = self._free(self.directory)
            except OSError:
                free = None
            if free is not None and free < max(self.min_free // 10, 1 * MB):
                return f"recording: disk full ({what}): recording stopped"
        if isinstance(err, OSError):
            return f"recording: {what}: {err.strerror or err}"
        return f"recording: {what}: {err}"

    def _stop(self, fault: str) -> None:
        log.error("%s", fault)
        self.fault = fault
        self._close_current()

    def close(self) -> None:
        with self._lock:
            self._close_current()


def segment_index(d: Path) -> int:
    """seg-000012 -> 12 (0 for a name without a number): the order segments were written in."""
    try:
        return int(d.name.split("-")[1])
    except (IndexError, ValueError):
        return 0


def segment_span(segment: Path) -> tuple[int, int] | None:
    """First and last frame t_ns of a segment, from its frames.csv (cheap: no video read)."""
    try:
        lines = (segment / FRAMES).read_text(encoding="utf-8").splitlines()[1:]
        times = [int(line.split(",")[1]) for line in lines if line.count(",") == 1]
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return None
    return (times[0], times[-1]) if times else None

