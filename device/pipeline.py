"""The loop: frames and ranges in, one threat and the alert out.

`Pipeline.step()` does one pass with no sleeps and no threads of its own;
time comes from the injected clock. The device runs it about 50 times a
second from `run_forever`; a replay calls it on a replay clock. Both use
the same code, so a replay is the device's behaviour on recorded input.

The camera reaches the pipeline through a `CameraFeed`: on the device the
detector runs in its own thread (`ThreadedCamera`), so an ultrasonic DANGER
is acted on within one loop pass, never after the next inference; in replay
detection runs inline (`InlineCamera`) so results are deterministic.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import numpy as np

from device.core.clock import NS_PER_S, Clock
from device.core.config import CameraConfig, Config
from device.core.faults import Fault, Kind, Part
from device.core.ports import AlertSink, Detector, FrameSource, RangeSource, RecordSink
from device.core.priority import background_thread
from device.core.types import AlertEvent, AlertLevel, Frame, Range, Threat
from device.decision.threat import CameraResult, ThreatEstimator, camera_tracks
from device.output.alerts import effective_level
from device.perception.geometry import CameraGeometry
from device.perception.looming import LoomingEstimator, LoomingResult
from device.perception.tracking import IouTracker
from device.sensing.camera import LatestSlot

log = logging.getLogger(__name__)

# The live loop: 50 passes a second, so a pattern edge lands at most 20 ms
# late; after a pass that overran its slot, this much rest before the next.
LOOP_PERIOD_S = 0.02
MIN_REST_S = 0.002
# How long a worker thread rests when its source says "ready" but holds
# nothing: a closed slot (a camera that died, a source closed under it)
# answers wait() at once, and without a rest the worker would spin a core
# against the loop until it is closed itself.
IDLE_S = 0.05

T = TypeVar("T")


class CameraStage:
    """Detector, geometry and tracker for one frame at a time."""

    def __init__(self, detector: Detector, camera: CameraConfig) -> None:
        self.detector = detector
        self.camera = camera
        self.tracker = IouTracker()
        self._geometry: CameraGeometry | None = None

    def process(self, frame: Frame) -> CameraResult:
        h, w = frame.image.shape[:2]
        if self._geometry is None or (self._geometry.width, self._geometry.height) != (w, h):
            # The configured camera (mount height, pitch) at the frames' real size.
            self._geometry = CameraGeometry.for_camera(self.camera, w, h)
        t0 = time.perf_counter()  # measurement only; never steers a decision
        dets = self.detector.detect(frame.image)
        detect_ms = (time.perf_counter() - t0) * 1e3
        tracks = self.tracker.update(frame.t_ns, dets)
        return CameraResult(
            t_ns=frame.t_ns,
            seq=frame.seq,
            tracks=camera_tracks(tracks, self._geometry),
            detect_ms=detect_ms,
            frame=frame,
        )


class FrameStage(Protocol):
    """What a camera feed runs on each frame it takes."""

    def process(self, frame: Frame) -> CameraResult: ...


class FramesOnlyStage:
    """No detector (the model is missing or broken): each frame still gives
    a result, with no tracks, so the camera is still watched (a stall or a
    frozen image is a fault), recorded and shown, and looming reads the
    same frames. No inference, no detect time."""

    def process(self, frame: Frame) -> CameraResult:
        return CameraResult(t_ns=frame.t_ns, seq=frame.seq, tracks=(), frame=frame)


class CameraFeed(Protocol):
    def poll(self) -> CameraResult | None: ...
    def last_frame_ns(self) -> int | None: ...
    def frozen_for_ns(self) -> int: ...
    @property
    def error(self) -> str | None: ...
    @property
    def ended(self) -> bool: ...
    def close(self) -> None: ...


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


def image_signature(image: np.ndarray) -> bytes:
    """A cheap fingerprint: a real sensor's noise changes it every frame, a
    frozen camera (or a driver re-sending its last buffer) does not."""
    return hashlib.blake2b(np.ascontiguousarray(image[::8, ::8]).data, digest_size=16).digest()


class FrameWatch:
    """When the camera path last took a frame, and since when its frames
    have been bit-identical: the staleness and frozen-image checks of
    every camera feed."""

    def __init__(self) -> None:
        self.last_ns: int | None = None
        self._signature: bytes | None = None
        self._changed_ns: int | None = None

    def saw(self, frame: Frame) -> None:
        self.last_ns = frame.t_ns
        sig = image_signature(frame.image)
        if sig != self._signature:
            self._signature, self._changed_ns = sig, frame.t_ns

    def frozen_for_ns(self) -> int:
        """How long the frames have been bit-identical (0 while they change)."""
        if self.last_ns is None or self._changed_ns is None:
            return 0
        return self.last_ns - self._changed_ns


class InlineCamera:
    """Detect synchronously on the newest frame: replays and tests."""

    def __init__(self, frames: FrameSource, stage: FrameStage, recorder: RecordSink | None = None) -> None:
        self.frames = frames
        self.stage = stage
        self.recorder = recorder
        self._watch = FrameWatch()

    def poll(self) -> CameraResult | None:
        frame = self.frames.latest()
        if frame is None:
            return None
        self._watch.saw(frame)
        if self.recorder is not None:
            self.recorder.write_frame(frame)
        return self.stage.process(frame)

    def last_frame_ns(self) -> int | None:
        return self._watch.last_ns

    def frozen_for_ns(self) -> int:
        return self._watch.frozen_for_ns()

    @property
    def error(self) -> str | None:
        return self.frames.error

    @property
    def ended(self) -> bool:
        return bool(getattr(self.frames, "ended", False))  # see FrameSource

    def close(self) -> None:
        self.frames.close()


class ThreadedCamera:
    """Detect in a worker thread; the loop takes the newest result only."""

    def __init__(self, frames: FrameSource, stage: FrameStage, recorder: RecordSink | None = None,
                 *, name: str = "rearguard-detect") -> None:
        self._inline = InlineCamera(frames, stage, recorder)
        self._results: LatestSlot[CameraResult] = LatestSlot()
        self._stop = threading.Event()
        self._crash: str | None = None
        self._what = "frame reader" if isinstance(stage, FramesOnlyStage) else "detector"  # in the fault text
        self._thread = background_thread(self._work, name=name)
        self._thread.start()

    def _work(self) -> None:
        try:
            serve_newest(self._stop, self._inline.frames.wait, self._inline.poll, self._results.put)
        except Exception as err:  # a crash here must become a fault, not silence
            log.exception("%s thread stopped", self._what)
            self._crash = f"{self._what} stopped: {err}"

    def poll(self) -> CameraResult | None:
        return self._results.take()

    def last_frame_ns(self) -> int | None:
        return self._inline.last_frame_ns()

    def frozen_for_ns(self) -> int:
        return self._inline.frozen_for_ns()

    @property
    def error(self) -> str | None:
        return self._crash or self._inline.error

    @property
    def ended(self) -> bool:
        return self._crash is None and self._inline.ended

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._inline.close()


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
        if not (math.isfinite(self.busy_ms) and self.busy_ms > 0):
            raise ValueError(f"detector time must be a positive number of ms (got {self.busy_ms})")
        if not (math.isfinite(self.jitter_ms) and self.jitter_ms >= 0):
            raise ValueError(f"detector jitter must be >= 0 ms (got {self.jitter_ms})")
        if self.latency_ms is not None and not (math.isfinite(self.latency_ms) and self.latency_ms >= self.busy_ms):
            raise ValueError(f"detector latency must be at least its busy time {self.busy_ms} ms "
                             f"(got {self.latency_ms})")

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
    def latest_at(self, t_ns: int) -> Frame | None: ...
    @property
    def dropped(self) -> int: ...
    @property
    def error(self) -> str | None: ...
    def close(self) -> None: ...


class PacedCamera:
    """The threaded device's camera path, modelled on the replay clock.

    The detector is busy `pace.busy_ms` per inference. When it comes free
    it takes the newest frame that has arrived (the ones that arrived
    meanwhile are dropped and counted, as `ThreadedCamera` drops them), or,
    if none is waiting, the next frame the moment it arrives; its result
    reaches the loop `pace.latency_ms` after the inference began. Pure and
    deterministic: the same recording and pace give the same frames
    detected and the same results at the same times on any machine, however
    fast it really detects. The loop (ultrasonic ranging, alerts) keeps its
    own rate meanwhile, as on the device.
    """

    def __init__(self, frames: TimedFrameSource, stage: CameraStage, pace: DetectorPace, clock: Clock) -> None:
        self.frames = frames
        self.stage = stage
        self.pace = pace
        self.clock = clock
        self.detected = 0  # inferences started
        self.taken: list[int] = []  # seq of every frame detected, in order (tests, `--json`)
        self._free_ns: int | None = None  # when the detector is next free (None: idle from the start)
        self._rng = random.Random(pace.seed)
        self._in_flight: deque[tuple[int, Frame, CameraResult]] = deque()
        self._watch = FrameWatch()
        self.last_view: tuple[Frame, CameraResult] | None = None

    @property
    def dropped(self) -> int:
        return self.frames.dropped

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
            self._watch.saw(frame)
            result = self.stage.process(frame)
            self.detected += 1
            self.taken.append(frame.seq)
            extra = round(self._rng.random() * self.pace.jitter_ms * 1e6) if self.pace.jitter_ms else 0
            self._free_ns = start + self.pace.busy_ns + extra
            self._in_flight.append((start + self.pace.latency_ns + extra, frame, result))
            # Results in flight are finished in order; the next inference can
            # only start once the detector is free again.

    def poll(self) -> CameraResult | None:
        now = self.clock.now_ns()
        self._start_due(now)
        out = None
        while self._in_flight and self._in_flight[0][0] <= now:
            _, frame, out = self._in_flight.popleft()  # newest finished wins, as in LatestSlot
            self.last_view = (frame, out)
        return out

    def last_frame_ns(self) -> int | None:
        return self._watch.last_ns

    def frozen_for_ns(self) -> int:
        return self._watch.frozen_for_ns()

    @property
    def error(self) -> str | None:
        return self.frames.error

    @property
    def ended(self) -> bool:
        return bool(getattr(self.frames, "ended", False))  # as InlineCamera's

    def close(self) -> None:
        self.frames.close()


# --- looming: its own camera-rate path, beside the detector -----------------


class LoomingFeed(Protocol):
    def poll(self) -> LoomingResult | None: ...
    @property
    def last_result(self) -> LoomingResult | None: ...
    @property
    def error(self) -> str | None: ...
    def close(self) -> None: ...


class FrameTap:
    """A FrameSource that shows every frame it hands out to `on_frame` as
    well: in replay the detector's inline feed and looming see the same
    frames in the same order, deterministically."""

    def __init__(self, source: FrameSource, on_frame: Callable[[Frame], None]) -> None:
        self._source = source
        self._on_frame = on_frame

    def latest(self) -> Frame | None:
        frame = self._source.latest()
        if frame is not None:
            self._on_frame(frame)
        return frame

    def wait(self, timeout: float) -> bool:
        return self._source.wait(timeout)

    @property
    def error(self) -> str | None:
        return self._source.error

    def close(self) -> None:
        self._source.close()

    def __getattr__(self, name: str):  # width, height, fps, dropped of the source
        return getattr(self._source, name)


class InlineLooming:
    """Looming on the frames offered to it, run when the loop polls: replay."""

    def __init__(self, estimator: LoomingEstimator, source: FrameSource | None = None) -> None:
        self.estimator = estimator
        self.source = source  # its own frames (beside a paced detector), else offered ones
        self._pending: Frame | None = None
        self.last_result: LoomingResult | None = None
        self.error: str | None = None

    def offer(self, frame: Frame) -> None:
        self._pending = frame

    def poll(self) -> LoomingResult | None:
        if self.source is not None:
            self.offer_newest()
        frame, self._pending = self._pending, None
        if frame is None:
            return None
        self.last_result = self.estimator.update(frame.t_ns, frame.seq, frame.image)
        return self.last_result

    def offer_newest(self) -> None:
        assert self.source is not None
        frame = self.source.latest()
        if frame is not None:
            self._pending = frame

    def close(self) -> None:
        self._pending = None
        if self.source is not None:
            self.source.close()


class FrameFanout:
    """Every frame of one source to several consumers, each taking its own
    newest: the detector and looming each go at their own pace, and looming
    (a few ms) sees every frame however long an inference takes."""

    def __init__(self, source: FrameSource, branches: int = 2) -> None:
        self.source = source
        self._slots: list[LatestSlot[Frame]] = [LatestSlot() for _ in range(branches)]
        self._stop = threading.Event()
        self._thread = background_thread(self._pump, name="rearguard-frames")
        self._thread.start()

    def _pump(self) -> None:
        def share(frame: Frame) -> None:
            for slot in self._slots:
                slot.put(frame)

        try:  # a source closed or in fault: its consumers report it
            serve_newest(self._stop, self.source.wait, self.source.latest, share)
        finally:
            for slot in self._slots:
                slot.close()

    def branch(self, i: int) -> _Branch:
        return _Branch(self, self._slots[i])

    def close(self) -> None:
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join(timeout=5)
            self.source.close()


class _Branch:
    def __init__(self, fan: FrameFanout, slot: LatestSlot[Frame]) -> None:
        self._fan, self._slot = fan, slot

    def latest(self) -> Frame | None:
        return self._slot.take()

    def wait(self, timeout: float) -> bool:
        return self._slot.wait(timeout)

    @property
    def error(self) -> str | None:
        return self._fan.source.error

    def close(self) -> None:
        self._fan.close()

    def __getattr__(self, name: str):
        return getattr(self._fan.source, name)


class ThreadedLooming:
    """Looming in its own thread on its own branch of the frames; the loop
    takes the newest result only, so the ultrasonic path never waits for it."""

    def __init__(self, frames: FrameSource, estimator: LoomingEstimator) -> None:
        self._frames = frames
        self.estimator = estimator
        self._results: LatestSlot[LoomingResult] = LatestSlot()
        self.last_result: LoomingResult | None = None
        self._crash: str | None = None
        self._stop = threading.Event()
        self._thread = background_thread(self._work, name="rearguard-looming")
        self._thread.start()

    def _look(self, frame: Frame) -> None:
        result = self.estimator.update(frame.t_ns, frame.seq, frame.image)
        self.last_result = result
        self._results.put(result)

    def _work(self) -> None:
        try:
            serve_newest(self._stop, self._frames.wait, self._frames.latest, self._look)
        except Exception as err:  # a crash here must become a fault, not silence
            log.exception("looming thread stopped")
            self._crash = f"stopped: {err}"

    def poll(self) -> LoomingResult | None:
        return self._results.take()

    @property
    def error(self) -> str | None:
        return self._crash

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def threaded_with_looming(source: FrameSource, config: Config) -> tuple[FrameSource, ThreadedLooming | None]:
    """On the device: the frames for the detector, and looming on its own
    branch of them (None, and the source untouched, when it is off)."""
    if not config.looming.enabled:
        return source, None
    from device.decision.looming import looming_params

    fan = FrameFanout(source, 2)
    return fan.branch(0), ThreadedLooming(fan.branch(1), LoomingEstimator(looming_params(config)))


def paced_looming(source: FrameSource, config: Config) -> InlineLooming | None:
    """In a replay at a board's pace: looming on every frame of its own
    source, at camera rate as on the device, whatever the detector skips."""
    if not config.looming.enabled:
        source.close()
        return None
    from device.decision.looming import looming_params

    return InlineLooming(LoomingEstimator(looming_params(config)), source=source)


def inline_with_looming(source: FrameSource, config: Config) -> tuple[FrameSource, InlineLooming | None]:
    """In replay: the frames for the inline detector, tapped for looming."""
    if not config.looming.enabled:
        return source, None
    from device.decision.looming import looming_params

    loom = InlineLooming(LoomingEstimator(looming_params(config)))
    return FrameTap(source, loom.offer), loom


@dataclass
class StageStats:
    """Per-stage wall times in ms, for `replay --json` and the status line."""

    detect_ms: list[float] = field(default_factory=list)
    looming_ms: list[float] = field(default_factory=list)
    total_ms: list[float] = field(default_factory=list)
    frames: int = 0

    def summary(self) -> dict[str, float | None]:
        def med(xs: list[float]) -> float | None:
            return round(statistics.median(xs), 3) if xs else None

        return {"detect_ms": med(self.detect_ms), "looming_ms": med(self.looming_ms), "total_ms": med(self.total_ms)}


@dataclass(frozen=True)
class View:
    """The loop's newest state for a viewer in another thread (the preview).

    Only references to immutable objects the loop has already made: taking
    a view copies no image and draws nothing. `frame` and `camera` belong
    together (the boxes were found in that frame); `threat` is the loop's
    newest judgement, at most one pass newer.
    """

    frame: Frame | None
    camera: CameraResult | None  # as judged: its distances are the decision's
    threat: Threat | None
    level: AlertLevel  # what the runner feels (`effective_level` of the threat)
    ranges: Mapping[str, Range]  # newest reading per sensor name
    steps: int  # loop passes so far
    frames: int  # camera results the loop has taken
    looming: LoomingResult | None = None  # the newest looming result (its own frame times)


class Pipeline:
    def __init__(
        self,
        config: Config,
        clock: Clock,
        ranges: RangeSource,
        alerter: AlertSink,
        camera: CameraFeed | None = None,
        *,
        static_faults: tuple[Fault, ...] = (),
        recorder: RecordSink | None = None,
        on_event: Callable[[AlertEvent, Threat], None] | None = None,
        extra_faults: Callable[[], tuple[Fault, ...]] | None = None,
        looming: LoomingFeed | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.ranges = ranges
        self.alerter = alerter
        self.camera = camera
        # Faults known at start that do not clear by themselves (no model).
        self.static_faults = static_faults
        self.recorder = recorder
        self.on_event = on_event
        # Faults from parts outside the loop that come and go (the recorder).
        self.extra_faults = extra_faults
        self.looming = looming  # any upright surface, no class: its own feed beside the camera's
        self.estimator = ThreatEstimator(config)
        self.stats = StageStats()
        self.events: list[AlertEvent] = []
        self.threat: Threat | None = None
        self.steps = 0
        self.last_ranges: Mapping[str, Range] = {}
        # What the runner feels, computed once per pass for the pins and
        # every view; nothing at start.
        self.level = AlertLevel.CLEAR
        self._started_ns = clock.now_ns()
        self._stall_ns = round(config.camera.max_age_s * NS_PER_S)

    def set_camera(self, camera: CameraFeed | None) -> CameraFeed | None:
        """Swap the camera feed (a camera that came up late, or came back);
        returns the old one for the caller to close. The stall timer
        restarts, so the new feed gets `camera.max_age_s` to deliver."""
        old, self.camera = self.camera, camera
        self._started_ns = self.clock.now_ns()
        return old

    def set_looming(self, looming: LoomingFeed | None) -> LoomingFeed | None:
        """Swap the looming feed (with a new camera); returns the old one to close."""
        old, self.looming = self.looming, looming
        return old

    def _poll_looming(self) -> None:
        loom = self.looming.poll() if self.looming is not None else None
        if loom is not None:
            self.estimator.set_looming(loom)
            if loom.process_ms is not None:
                self.stats.looming_ms.append(loom.process_ms)

    def looming_faults(self) -> tuple[Fault, ...]:
        if self.looming is None or not self.looming.error:
            return ()
        return (Fault(Part.LOOMING, Kind.FAILED, self.looming.error),)

    def camera_faults(self, now_ns: int) -> tuple[Fault, ...]:
        if self.camera is None:
            return ()
        if self.camera.error:
            kind = Kind.ENDED if self.camera.ended else Kind.FAILED
            return (Fault(Part.CAMERA, kind, self.camera.error),)
        last = self.camera.last_frame_ns()
        since = now_ns - (last if last is not None else self._started_ns)
        if since > self._stall_ns:
            return (Fault(Part.CAMERA, Kind.STALLED, f"no frame for {since / NS_PER_S:.1f} s"),)
        frozen = self.camera.frozen_for_ns()
        if frozen > self._stall_ns:
            return (Fault(Part.CAMERA, Kind.FROZEN, f"image frozen for {frozen / NS_PER_S:.1f} s"),)
        return ()

    def step(self) -> Threat:
        t0 = time.perf_counter()
        now = self.clock.now_ns()
        ranges = self.ranges.poll(now)
        if ranges:
            self.estimator.add_ranges(ranges)
            # A new small dict, swapped in whole: a viewer never sees it change.
            self.last_ranges = {**self.last_ranges, **{r.sensor: r for r in ranges}}
            if self.recorder is not None:
                self.recorder.write_ranges(ranges)
        result = self.camera.poll() if self.camera is not None else None
        if result is not None:
            result = self.estimator.set_camera(result)
        self._poll_looming()
        faults = self.static_faults + self.camera_faults(now) + self.looming_faults()
        if self.extra_faults is not None:
            faults += self.extra_faults()
        threat = self.estimator.assess(now, faults)
        level = effective_level(threat.level, threat.faults)
        self.alerter.update(level, now, direction=threat.direction)  # side motors, where fitted
        self.threat = threat
        self.steps += 1
        if result is not None:
            self.stats.frames += 1
            if result.detect_ms is not None:
                self.stats.detect_ms.append(result.detect_ms)
            self.stats.total_ms.append((time.perf_counter() - t0) * 1e3)
        if level != self.level:
            self.level = level
            if level == AlertLevel.FAULT:
                source = "fault"
            elif threat.source != "none":
                source = threat.source
            else:  # back to CLEAR: credit the source whose alert ended
                source = self.events[-1].source if self.events else "fused"
            event = AlertEvent(
                t_ns=now,
                level=level,
                source=source,
                distance_m=threat.distance_m,
                ttc_s=threat.ttc_s,
                faults=threat.faults,
                label=threat.label,
                bearing_deg=threat.bearing_deg,
                direction=threat.direction,
            )
            self.events.append(event)
            log.info("alert %s %s%s", level.name, event.what(),
                     f" faults={','.join(threat.faults)}" if threat.faults and event.source != "fault" else "")
            if self.on_event is not None:
                self.on_event(event, threat)
        return threat

    def view(self) -> View:
        """Safe to call from any thread; see `View`."""
        cam = self.estimator.camera
        return View(
            frame=cam.frame if cam is not None else None,
            camera=cam,
            threat=self.threat,
            level=self.level,
            ranges=self.last_ranges,
            steps=self.steps,
            frames=self.stats.frames,
            looming=self.looming.last_result if self.looming is not None else None,
        )


def run_forever(pipeline: Pipeline, stop: threading.Event, *, period_s: float = LOOP_PERIOD_S,
                on_step: Callable[[Threat], None] | None = None,
                now: Callable[[], float] = time.monotonic) -> None:
    """The device's thin loop around step(): a pass starts every `period_s`
    (50 a second), on a schedule rather than a fixed sleep after each pass,
    so a pass's own cost does not slow the rate, alert patterns keep their
    timing and a new range reading is acted on within ~20 ms. A pass that
    overruns is followed after MIN_REST_S, not by a burst of catch-up passes,
    and the schedule goes on from there."""
    due = now()
    while not stop.is_set():
        threat = pipeline.step()
        if on_step is not None:
            on_step(threat)
        due += period_s
        t = now()
        if due - t < MIN_REST_S:  # overran: a short rest (the other threads' turn), then on from here
            due = t + MIN_REST_S
        stop.wait(due - t)
