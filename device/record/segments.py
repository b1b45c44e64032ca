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
import fcntl
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TextIO

from device.core.clock import NS_PER_S
from device.core.types import Frame, Range
from device.record.format import FRAMES, RecordingError, RecordingWriter, SensorLike

log = logging.getLogger(__name__)

MB = 1_000_000
SEGMENT_GLOB = "seg-*"
CHECK_EVERY_NS = 2 * NS_PER_S
RETRY_NS = 10 * NS_PER_S  # after a fault, recording is retried this often
LOCK_FILE = ".rearguard-recording.lock"  # held by the run recording into the directory


def claim(directory: Path) -> TextIO | None:
    """The directory for this run alone (issue 23: two runs in one directory
    deleted each other's segments): an exclusive flock on a lock file in it,
    held while the file stays open, released by the kernel however the run
    ends. None where no lock file can be made (a read-only disk): then no
    segment can be written either, and the writer's fault says why."""
    try:
        f = (directory / LOCK_FILE).open("a+", encoding="utf-8")
    except OSError as err:
        log.warning("recording: cannot make the lock file in %s: %s", directory, err.strerror or err)
        return None
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        f.seek(0)
        holder = f.read(32).strip()
        f.close()
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise RecordingError(
                f"the recording directory {directory} is in use by another run"
                + (f" (pid {holder})" if holder.isdigit() else "")
                + ": stop that run, or record into another directory"
            ) from None
        log.warning("recording: cannot lock %s: %s", directory, err.strerror or err)
        return None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f


def _dir_bytes(d: Path) -> int:
    try:
        return sum(f.stat().st_size for f in d.iterdir() if f.is_file())
    except OSError:  # deleted meanwhile, or unreadable: it holds nothing we can count
        return 0


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


def total_bytes(path: Path) -> int:
    return shutil.disk_usage(path).total


FULL_FRACTION = 0.05  # "disk full" only when less than this much of the disk is free


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
        total: Callable[[Path], int] = total_bytes,
        inodes: Callable[[Path], int | None] = free_inodes,
        writer: Callable[..., RecordingWriter] = RecordingWriter,
        mount_height_m: float | None = None,
        pitch_deg: float | None = None,
    ) -> None:
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RecordingError(f"cannot create the recording directory {self.directory}: {err}") from None
        self._claim = claim(self.directory)
        self._writer_args = dict(width=width, height=height, fps=fps, hfov_deg=hfov_deg,
                                 sensors=sensors, source=source, mount_height_m=mount_height_m,
                                 pitch_deg=pitch_deg)
        self.segment_ns = round(segment_s * NS_PER_S)
        self.budget = round(budget_mb * MB)
        self.min_free = round(min_free_mb * MB)
        self._free = free
        self._total = total
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
        try:
            path = self._new_segment_dir()
        except OSError as err:
            self._stop(self._describe(err, "cannot start a segment"))
            return
        self._current_path = path
        try:
            self._current = self._new_writer(path, **self._writer_args)
        except Exception as err:  # e.g. no inode left for its files
            fault = self._describe(err, f"cannot start segment {path.name}")
            # A half-made segment is no recording, and it holds inodes: remove
            # it (this run made the directory just now: it is nobody else's).
            shutil.rmtree(path, ignore_errors=True)
            self._stop(fault)
            return
        self._segment_start = t_ns
        log.info("recording segment %s", path)

    def _new_segment_dir(self) -> Path:
        """The next seg-N, made by this run (mkdir without exist_ok): one that
        is already there (made by hand, or by a writer that took no lock) is
        skipped, never written into or deleted. Raises OSError."""
        for _ in range(1000):
            path = self.directory / f"seg-{self._next_index:06d}"
            self._next_index += 1
            try:
                path.mkdir()
            except FileExistsError:
                log.warning("recording: %s exists already (not this run's): skipped", path)
                continue
            return path
        raise OSError(errno.EEXIST, f"no free segment name after seg-{self._next_index - 1:06d}")

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

    def _full(self, free: int) -> bool:
        """Little free, and little of the disk: an empty 3 MB filesystem is small, not full."""
        if free >= max(self.min_free // 10, 1 * MB):
            return False
        try:
            return free < FULL_FRACTION * self._total(self.directory)
        except OSError:
            return True

    def _space_fault(self, free: int) -> str:
        if self._full(free):
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
            if self._claim is not None:  # the directory is free for the next run
                self._claim.close()
                self._claim = None


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

