"""The recorder off the alert loop: a bounded queue and one writer thread.

The loop and the detector thread hand frames, ranges and alert events to a
`RecorderThread`; handing over is an append to a bounded queue under a lock
that is never held during I/O, so it never blocks them. Everything slow
happens in the writer thread: JPEG encoding (OpenCV's MJPG writer), CSV
lines, segment rotation and deleting old segments. When the disk is slower
than the camera the queue fills and the newest items are dropped (counted,
logged, and reported as a fault if the writer stays stuck), so a stalled SD
card costs footage, never an alert.

Any exception in the sink becomes its recording fault (the sink retries by
itself); should the writer thread ever die, its fault names it and the
next hand-over starts a new one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from device.core.faults import Fault, Kind, Part
from device.core.priority import background_thread
from device.core.types import AlertEvent, Frame, Range

log = logging.getLogger(__name__)

# ~2 s of frames at 15 fps; at 640x360 that is ~22 MB of images held at most.
MAX_FRAMES = 32
# Range batches (one per loop pass that had readings): ~40 s at 50 passes/s.
MAX_RANGE_BATCHES = 2000
MAX_EVENTS = 256
# A writer that has not finished one item for this long while items wait is
# reported as stuck (a fault), not only as dropped frames.
STUCK_S = 10.0


class WriterSink(Protocol):
    """What the writer thread drives (DeviceRecording; alert events go to its
    `on_event`, where it has one)."""

    @property
    def fault(self) -> str | None: ...

    def write_frame(self, frame: Frame) -> None: ...
    def write_ranges(self, ranges: Iterable[Range]) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class QueueStats:
    frames_dropped: int
    ranges_dropped: int
    events_dropped: int
    queued: int


class RecorderThread:
    """Never blocks its callers; see the module docstring."""

    def __init__(
        self,
        sink: WriterSink,
        *,
        max_frames: int = MAX_FRAMES,
        max_range_batches: int = MAX_RANGE_BATCHES,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sink = sink
        self._max_frames = max_frames
        self._max_ranges = max_range_batches
        self._monotonic = monotonic  # only for the "stuck" report, never for recorded times
        self._lock = threading.Lock()  # guards the queue and counters only; never held during I/O
        self._ready = threading.Condition(self._lock)
        self._queue: deque[tuple[str, object]] = deque()
        self._frames_queued = 0
        self._ranges_queued = 0
        self._events_queued = 0
        self.frames_dropped = 0
        self.ranges_dropped = 0
        self.events_dropped = 0
        self._busy_since: float | None = None
        self._closing = False
        self._crash: str | None = None
        self._thread: threading.Thread | None = None
        self._start()

    # ------------------------------------------------------------ callers

    def write_frame(self, frame: Frame) -> None:
        with self._lock:
            if self._frames_queued >= self._max_frames:
                self.frames_dropped += 1
                if self.frames_dropped == 1 or self.frames_dropped % 100 == 0:
                    log.warning("recording falls behind: %d frames dropped so far", self.frames_dropped)
                return
            self._frames_queued += 1
            self._push("frame", frame)

    def write_ranges(self, ranges: Iterable[Range]) -> None:
        batch = tuple(ranges)
        if not batch:
            return
        with self._lock:
            if self._ranges_queued >= self._max_ranges:
                self.ranges_dropped += len(batch)
                return
            self._ranges_queued += 1
            self._push("ranges", batch)

    def note_event(self, event: AlertEvent) -> None:
        """An alert change, for the incident clips (handled in the writer thread)."""
        with self._lock:
            if self._events_queued >= MAX_EVENTS:
                self.events_dropped += 1
                return
            self._events_queued += 1
            self._push("event", event)

    def _push(self, kind: str, item: object) -> None:
        # Called with the lock held.
        if self._closing:
            return
        self._queue.append((kind, item))
        self._ready.notify()
        if self._thread is None or not self._thread.is_alive():
            self._start_locked()

    @property
    def fault(self) -> str | None:
        """The fault's text ("recording: ..."), as the recording parts word it."""
        faults = self.faults()
        return str(faults[0]) if faults else None

    def faults(self) -> tuple[Fault, ...]:
        """The recording's fault, typed: a crash in the writer failed, a
        writer stuck on a slow disk stalled, and the segments' and clips' own
        (disk full, no inodes, a clip not saved) failed."""
        if self._crash is not None:
            return (_recording_fault(Kind.FAILED, self._crash),)
        busy = self._busy_since
        if busy is not None and self._queue and self._monotonic() - busy > STUCK_S:
            return (Fault(Part.RECORDING, Kind.STALLED, f"writer stuck for {self._monotonic() - busy:.0f} s "
                                                         f"({self.frames_dropped} frames dropped)"),)
        text = self.sink.fault
        return (_recording_fault(Kind.FAILED, text),) if text else ()

    def stats(self) -> QueueStats:
        with self._lock:
            return QueueStats(self.frames_dropped, self.ranges_dropped, self.events_dropped, len(self._queue))

    # ------------------------------------------------------------ writer thread

    def _start(self) -> None:
        with self._lock:
            self._start_locked()

    def _start_locked(self) -> None:
        if self._crash is not None:
            log.warning("restarting the recorder thread after: %s", self._crash)
        self._thread = background_thread(self._run, name="rearguard-record")
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    while not self._queue and not self._closing:
                        self._ready.wait()
                    if not self._queue:
                        return  # closing and drained
                    kind, item = self._queue.popleft()
                    if kind == "frame":
                        self._frames_queued -= 1
                    elif kind == "ranges":
                        self._ranges_queued -= 1
                    else:
                        self._events_queued -= 1
                    self._busy_since = self._monotonic()
                try:
                    self._handle(kind, item)
                    self._crash = None
                except Exception as err:  # the sink should not raise; if it does, it is still only recording
                    log.exception("recording: %s not written", kind)
                    self._crash = f"recording: {type(err).__name__}: {err}"
                finally:
                    self._busy_since = None
        except BaseException as err:  # pragma: no cover - interpreter shutdown and the like
            self._crash = f"recording: writer thread stopped: {err!r}"
            raise

    def _handle(self, kind: str, item: object) -> None:
        if kind == "frame":
            assert isinstance(item, Frame)
            self.sink.write_frame(item)
        elif kind == "ranges":
            assert isinstance(item, tuple)
            self.sink.write_ranges(item)
        else:
            assert isinstance(item, AlertEvent)
            on_event = getattr(self.sink, "on_event", None)
            if on_event is not None:
                on_event(item)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (up to `timeout`), then close the sink."""
        with self._lock:
            self._closing = True
            self._ready.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.error("recording: the writer did not finish within %.0f s; %d items lost",
                          timeout, len(self._queue))
                return  # the sink is still in use by the stuck thread: leave it
        try:
            self.sink.close()
        except Exception as err:
            log.error("recording: closing failed: %s", err)


def summary(stats: QueueStats) -> str | None:
    """One line for the end-of-run report, or None when nothing was lost."""
    lost = [f"{n} {what}" for n, what in ((stats.frames_dropped, "frames"), (stats.ranges_dropped, "ranges"),
                                          (stats.events_dropped, "alert events")) if n]
    return f"recording fell behind: dropped {', '.join(lost)}" if lost else None


def _recording_fault(kind: Kind, text: str) -> Fault:
    # The recording's parts word their faults in full ("recording: disk full ...").
    return Fault(Part.RECORDING, kind, text.removeprefix(f"{Part.RECORDING.value}: "))
