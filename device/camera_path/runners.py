"""How a camera path's stages are run, chosen independently of the stages:

- `Inline`: every stage on the newest frame, on the loop's pass (replays
  and tests: deterministic).
- `Threaded`: the live device. A frames thread owns the camera (opens it,
  shares every frame, and reopens it when it is not there or dies), and each
  stage runs in its own thread on its own newest frame, so the loop never
  waits for an inference and looming keeps camera rate whatever the
  detector's pace.
- `Paced`: a replay of the threaded device at a modelled detector pace
  (`DetectorPace`, see device/perception/boards.py): pure and deterministic.

Each runner owns its frame sources and closes them.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from device.camera_path.stages import MainStage, Stage, share_camera
from device.camera_path.watch import FrameWatch
from device.core.camera import CameraResult
from device.core.clock import Clock
from device.core.ports import FrameSource, RecordSink
from device.core.priority import background_thread
from device.core.types import Frame
from device.sensing.camera import LatestSlot

log = logging.getLogger(__name__)

# How long a worker thread rests when its source says "ready" but holds
# nothing: a closed slot (a camera that died, a source closed under it)
# answers wait() at once, and without a rest the worker would spin a core
# against the loop until it is closed itself.
IDLE_S = 0.05

T = TypeVar("T")


def serve_newest(stop: threading.Event, wait: Callable[[float], bool], take: Callable[[], T | None],
                 handle: Callable[[T], None]) -> None:
    """A worker thread's loop until `stop`: wait for the newest item
    (bounded, so close() is never kept waiting), take it, hand it on. When
    a wake-up finds nothing (a source closed under the worker answers wait()
    at once) it rests IDLE_S instead of spinning a core against the loop."""
    while not stop.is_set():
        if not wait(0.1):
            continue
        item = take()
        if item is None:
            stop.wait(IDLE_S)
        else:
            handle(item)


class Runner(Protocol):
    watch: FrameWatch  # the frames the main stage took
    generation: int  # counts the frame sources opened (a new one restarts the stall timer)

    def start(self) -> None: ...
    def poll(self) -> dict[str, Any]: ...  # slot -> the newest result, for the slots that have one
    @property
    def error(self) -> str | None: ...  # the main stage or its frame source
    @property
    def ended(self) -> bool: ...  # a finite source ran out
    @property
    def unavailable(self) -> str | None: ...  # no source could be opened (why)
    def side_errors(self) -> list[tuple[Stage, str]]: ...
    def close(self) -> None: ...


def _ended(source: Any) -> bool:
    return bool(getattr(source, "ended", False))  # see FrameSource


class _OnTheLoop:
    """What a runner that works on the loop's own pass (inline, paced) says
    of its frames: their error and end are the path's, its stages run in no
    thread of their own (so none can crash apart), and closing it closes them."""

    frames: Any

    @property
    def error(self) -> str | None:
        return self.frames.error

    @property
    def ended(self) -> bool:
        return _ended(self.frames)

    def side_errors(self) -> list[tuple[Stage, str]]:
        return []

    def close(self) -> None:
        self.frames.close()


# ---------------------------------------------------------------- inline


class InlineRunner(_OnTheLoop):
    """Every stage on the newest frame, synchronously, when the loop polls."""

    def __init__(self, frames: FrameSource, main: MainStage, sides: Sequence[Stage] = (),
                 recorder: RecordSink | None = None) -> None:
        self.frames, self.main, self.sides, self.recorder = frames, main, tuple(sides), recorder
        self.watch = FrameWatch()
        self.generation = 1
        self.unavailable: str | None = None

    def start(self) -> None:
        pass

    def poll(self) -> dict[str, Any]:
        frame = self.frames.latest()
        if frame is None:
            return {}
        self.watch.saw(frame)
        if self.recorder is not None:
            self.recorder.write_frame(frame)
        out = {self.main.slot: self.main.process(frame)}
        share_camera(self.sides, out[self.main.slot])
        for stage in self.sides:  # the very frames the main stage takes, in order
            out[stage.slot] = stage.process(frame)
        return out



# ---------------------------------------------------------------- threaded


class ThreadedRunner:
    """The live device's camera path: a frames thread and one thread per stage.

    The frames thread owns the frame source. With `opener`, a camera that
    is not there (a slow driver, a loose ribbon) is looked for again every
    `retry_s`, and one that dies mid-run is closed and reopened the same
    way, off the loop's thread (an open can block for seconds). Without it
    (a video file) the source's end or error stands."""

    def __init__(self, frames: FrameSource | None, main: MainStage, sides: Sequence[Stage] = (),
                 recorder: RecordSink | None = None, *, opener: Callable[[], FrameSource] | None = None,
                 retry_s: float = 5.0, unavailable: str | None = None) -> None:
        self.main, self.sides, self.recorder = main, tuple(sides), recorder
        self.opener, self.retry_s = opener, retry_s
        self.watch = FrameWatch()
        self._lock = threading.Lock()
        self._frames = frames
        self._unavailable = None if frames is not None else (unavailable or "no camera")
        self._lost: str | None = None  # the error of a source that died, until one is reopened
        self.generation = 1 if frames is not None else 0
        self._stages: tuple[Stage, ...] = (main, *self.sides)
        self._inbox: list[LatestSlot[Frame]] = [LatestSlot() for _ in self._stages]
        self._outbox: list[LatestSlot[Any]] = [LatestSlot() for _ in self._stages]
        self._crash: list[str | None] = [None for _ in self._stages]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.newest: dict[str, Any] = {}  # slot -> the newest result made (a viewer's, not the loop's)

    @property
    def frames(self) -> FrameSource | None:
        return self._frames

    def with_stages(self, main: MainStage, sides: Sequence[Stage] = ()) -> ThreadedRunner:
        """The same frame source, opener and recorder with other stages (before
        start: a model that failed its warm-up leaves frames-only)."""
        assert not self._threads, "before start()"
        return ThreadedRunner(self._frames, main, sides, self.recorder, opener=self.opener, retry_s=self.retry_s,
                              unavailable=self._unavailable)

    def start(self) -> None:
        if self._threads:
            return
        self._threads = [background_thread(self._pump, name="rearguard-frames")]
        for i, stage in enumerate(self._stages):
            self._threads.append(background_thread(self._lane, name=stage.thread_name, kwargs={"i": i}))
        for t in self._threads:
            t.start()

    # -- the frames thread

    def _pump(self) -> None:
        next_open = time.monotonic() + self.retry_s
        while not self._stop.is_set():
            src = self._frames
            if src is None:
                if self.opener is None:
                    return
                if time.monotonic() < next_open:
                    self._stop.wait(min(0.1, max(0.0, next_open - time.monotonic())))
                    continue
                next_open = time.monotonic() + self.retry_s
                self._reopen()
                continue
            if src.error is not None:
                if self.opener is None or _ended(src):
                    self._stop.wait(IDLE_S)  # stands: the fault says so for as long as it lasts
                    continue
                log.warning("camera lost (%s); looking for it again every %g s", src.error, self.retry_s)
                with self._lock:
                    self._frames, self._lost = None, src.error
                src.close()
                next_open = time.monotonic() + self.retry_s
                continue
            if not src.wait(0.1):
                continue
            frame = src.latest()
            if frame is None:
                self._stop.wait(IDLE_S)
                continue
            self.watch.arrived(frame.t_ns)
            for box in self._inbox:
                box.put(frame)

    def _reopen(self) -> None:
        assert self.opener is not None
        try:
            src = self.opener()
        except Exception as err:  # noqa: BLE001 - any failure to open is "not there yet"
            log.debug("camera retry failed: %s", err)
            if self._lost is None:
                self._unavailable = str(err)
            return
        with self._lock:
            if self._stop.is_set():
                src.close()
                return
            self._frames, self._unavailable, self._lost = src, None, None
            self.generation += 1
        log.warning("camera is back")

    # -- one thread per stage

    def _lane(self, i: int) -> None:
        stage, inbox, outbox = self._stages[i], self._inbox[i], self._outbox[i]
        main = i == 0

        def handle(frame: Frame) -> None:
            if main:
                self.watch.saw(frame)
                if self.recorder is not None:
                    self.recorder.write_frame(frame)
            result = stage.process(frame)
            if main:
                share_camera(self.sides, result)
            self.newest[stage.slot] = result
            outbox.put(result)

        try:
            serve_newest(self._stop, inbox.wait, inbox.take, handle)
        except Exception as err:  # a crash here must become a fault, not silence
            log.exception("%s thread stopped", stage.thread_name)
            self._crash[i] = f"{stage.crash_prefix}stopped: {err}"

    def poll(self) -> dict[str, Any]:
        out = {}
        for stage, box in zip(self._stages, self._outbox, strict=True):
            result = box.take()
            if result is not None:
                out[stage.slot] = result
        return out

    @property
    def error(self) -> str | None:
        if self._crash[0] is not None:
            return self._crash[0]
        src = self._frames
        return src.error if src is not None else self._lost

    @property
    def ended(self) -> bool:
        return self._crash[0] is None and _ended(self._frames)

    @property
    def unavailable(self) -> str | None:
        return self._unavailable if self._lost is None else None

    def side_errors(self) -> list[tuple[Stage, str]]:
        return [(s, c) for s, c in zip(self._stages[1:], self._crash[1:], strict=True) if c is not None]

    def close(self) -> None:
        self._stop.set()
        for box in self._inbox:
            box.close()
        for t in self._threads:
            t.join(timeout=5)
        with self._lock:
            src, self._frames = self._frames, None
        if src is not None:
            src.close()


# ---------------------------------------------------------------- paced


MAX_DETECTOR_MS = 60_000.0  # a modelled detector slower than a minute a frame is a typo


@dataclass(frozen=True)
class DetectorPace:
    """How long one inference keeps the detector busy, and how long after
    its frame the result reaches the loop (normally the same). `jitter_ms`
    adds 0 to jitter_ms more to each inference, drawn from a generator
    seeded with `seed`: an irregular detector (a loaded CPU, a throttling
    Pi), still the same on every replay."""

    busy_ms: float
    latency_ms: float | None = None
    jitter_ms: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        # At most a minute each: 1e308 ms overflowed to a traceback (issue 23).
        if not (math.isfinite(self.busy_ms) and 0 < self.busy_ms <= MAX_DETECTOR_MS):
            raise ValueError(f"detector time must be a positive number of ms up to {MAX_DETECTOR_MS:g} "
                             f"(got {self.busy_ms})")
        if not (math.isfinite(self.jitter_ms) and 0 <= self.jitter_ms <= MAX_DETECTOR_MS):
            raise ValueError(f"detector jitter must be 0 to {MAX_DETECTOR_MS:g} ms (got {self.jitter_ms})")
        if self.latency_ms is not None and not (math.isfinite(self.latency_ms)
                                                and self.busy_ms <= self.latency_ms <= MAX_DETECTOR_MS):
            raise ValueError(f"detector latency must be at least its busy time {self.busy_ms} ms and at most "
                             f"{MAX_DETECTOR_MS:g} (got {self.latency_ms})")

    @property
    def busy_ns(self) -> int:
        return round(self.busy_ms * 1e6)

    @property
    def latency_ns(self) -> int:
        return round((self.latency_ms if self.latency_ms is not None else self.busy_ms) * 1e6)

    @property
    def rate_hz(self) -> float:
        return 1e3 / self.busy_ms


class TimedFrameSource(Protocol):
    """Recorded frames, addressable by time (replay only)."""

    def next_t_ns(self) -> int | None: ...
    def arrived_ns(self, t_ns: int) -> int | None: ...  # the newest frame's time due by t_ns, taken or not
    def latest_at(self, t_ns: int) -> Frame | None: ...
    @property
    def dropped(self) -> int: ...
    @property
    def error(self) -> str | None: ...
    def close(self) -> None: ...


class PacedRunner(_OnTheLoop):
    """The threaded device's camera path, modelled on the replay clock.

    The main stage is busy `pace.busy_ms` per inference. When it comes free
    it takes the newest frame that has arrived (the ones that arrived
    meanwhile are dropped and counted, as the threaded path drops them), or,
    if none is waiting, the next frame the moment it arrives; its result
    reaches the loop `pace.latency_ms` after the inference began. The other
    stages, at camera rate on the device, read every frame of their own
    copy of the recording (`side_frames`). Pure and deterministic: the same
    recording and pace give the same frames detected and the same results
    at the same times on any machine, however fast it really detects. The
    loop (ultrasonic ranging, alerts) keeps its own rate meanwhile, as on
    the device.
    """

    def __init__(self, frames: TimedFrameSource, main: MainStage, pace: DetectorPace, clock: Clock,
                 sides: Sequence[Stage] = (), side_frames: FrameSource | None = None) -> None:
        if sides and side_frames is None:
            raise ValueError("paced side stages need their own frames")
        self.frames, self.main, self.pace, self.clock = frames, main, pace, clock
        self.sides, self.side_frames = tuple(sides), side_frames
        self.detected = 0  # inferences started
        self.taken: list[int] = []  # seq of every frame detected, in order (tests, `--json`)
        self._free_ns: int | None = None  # when the detector is next free (None: idle from the start)
        self._rng = random.Random(pace.seed)
        self._in_flight: deque[tuple[int, CameraResult]] = deque()
        self.watch = FrameWatch()
        self.generation = 1
        self.unavailable: str | None = None

    @property
    def dropped(self) -> int:
        return self.frames.dropped

    def start(self) -> None:
        pass

    def _start_due(self, now: int) -> None:
        """Start every inference that would have started by `now`."""
        while True:
            nxt = self.frames.next_t_ns()
            if nxt is None:
                return
            start = nxt if self._free_ns is None else max(self._free_ns, nxt)
            if start > now:
                return
            frame = self.frames.latest_at(start)
            if frame is None:  # only undecodable frames were due: they are skipped
                continue
            self.watch.saw(frame)
            result = self.main.process(frame)
            self.detected += 1
            self.taken.append(frame.seq)
            extra = round(self._rng.random() * self.pace.jitter_ms * 1e6) if self.pace.jitter_ms else 0
            self._free_ns = start + self.pace.busy_ns + extra
            self._in_flight.append((start + self.pace.latency_ns + extra, result))
            # Results in flight are finished in order; the next inference can
            # only start once the detector is free again.

    def poll(self) -> dict[str, Any]:
        now = self.clock.now_ns()
        self._start_due(now)
        if (arrived := self.frames.arrived_ns(now)) is not None:  # the camera delivers while the detector is busy
            self.watch.arrived(arrived)
        out: dict[str, Any] = {}
        while self._in_flight and self._in_flight[0][0] <= now:
            out[self.main.slot] = self._in_flight.popleft()[1]  # newest finished wins, as in LatestSlot
            share_camera(self.sides, out[self.main.slot])  # when the device's loop would have it
        if self.side_frames is not None:
            frame = self.side_frames.latest()
            if frame is not None:
                for stage in self.sides:
                    out[stage.slot] = stage.process(frame)
        return out

    def close(self) -> None:
        super().close()
        if self.side_frames is not None:
            self.side_frames.close()
