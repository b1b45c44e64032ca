"""The composition root: the one place where the parts are chosen, built
from the config and wired together.

The live device (`compose_device`), a replay (`compose_replay`), the bench
load and `check ranging` (`compose_ranging`) and the preview
(`start_preview`) are all built here, so a Pi, a laptop with simulated pins
and a replay differ only in what is passed in (pin factory, frame source,
range source, clock). Nothing here runs the loop: `device.app.live` keeps
the lifecycle, `device.app.replay` steps a replay clock.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from device.app.pace_watch import PaceWatch
from device.core.clock import NS_PER_S, Clock, MonotonicClock, ReplayClock
from device.core.coco import class_id
from device.core.config import Config
from device.core.faults import Fault, Kind, Part
from device.core.ports import Detector, FrameSource, RangeSource
from device.core.priority import build_in_background
from device.core.types import AlertEvent, Threat
from device.model_store import store as models
from device.output.alerts import Alerter, AlertError
from device.perception.detector import ModelError, YoloxDetector
from device.pipeline import (
    CameraFeed,
    CameraStage,
    DetectorPace,
    FramesOnlyStage,
    InlineCamera,
    PacedCamera,
    Pipeline,
    ThreadedCamera,
    ThreadedLooming,
    inline_with_looming,
    paced_looming,
    threaded_with_looming,
)
from device.record.format import Recording
from device.record.sources import RecordedFrames, silence_ends
from device.sensing.camera import CameraError, OpenCVSource, Picamera2Source
from device.sensing.ultrasonic import NO_ECHO_S, RangingError, RecordedRanges, UltrasonicRanger

log = logging.getLogger(__name__)

# The simulated sensors answer "nothing in range", as an HC-SR04 does in an
# open park: a laptop run sees no obstacle it did not record.
SIMULATED_NO_ECHO_S = NO_ECHO_S
CAMERA_RETRY_S = 5.0  # a camera that is not there is looked for again this often


# ---------------------------------------------------------------- parts


def build_detector(config: Config) -> tuple[Detector | None, tuple[Fault, ...]]:
    """The configured detector, or None and a fault saying why not.

    A missing or corrupt model must not stop the device: it carries on
    with the ultrasonic sensors and looming (class-free, on the camera's
    frames), with the fault pattern telling the runner so whenever nothing
    is closing in.
    """
    d = config.detector
    try:
        path = models.resolve(d.model)
        # Built in a lowered thread: onnxruntime's pool threads, made now,
        # start there too and never outbid the loop (device.core.priority).
        det = build_in_background(lambda: YoloxDetector(
            path,
            input_size=d.input_geometry,
            fill=d.fill,
            score_threshold=d.score_threshold,
            nms_iou=d.nms_iou,
            class_ids=[class_id(c) for c in d.classes],
            threads=d.threads,
        ), name="rearguard-detector-build")
    except ModelError as err:
        log.error("detector unavailable: %s", err)
        return None, (Fault(Part.MODEL, Kind.UNAVAILABLE, str(err)),)
    try:
        det.warm_up()  # a model that loads but gives NaN is as broken as one that does not load
    except ModelError as err:
        det.close()
        log.error("detector unavailable: %s", err)
        return None, (Fault(Part.MODEL, Kind.FAILED, str(err)),)
    if d.lookahead_every:  # a stage around the detector: the magnified look where the path goes
        from device.perception.lookahead import LookaheadDetector

        return LookaheadDetector(det, config.camera, every=d.lookahead_every, width_frac=d.lookahead_width,
                                 aspect=det.input_width / det.input_height, nms_iou=d.nms_iou), ()
    return det, ()


def wants_mock_pins() -> bool:
    return os.environ.get("GPIOZERO_PIN_FACTORY", "").strip().lower() == "mock"


def make_pin_factory(kind: str | None, config: Config):  # -> gpiozero Factory | None
    """`mock`: gpiozero's MockFactory with every configured ultrasonic sensor
    simulated as answering "nothing in range"; None: gpiozero's own choice
    (GPIOZERO_PIN_FACTORY, else lgpio on a Pi)."""
    if kind is None and wants_mock_pins():
        kind = "mock"
    if kind != "mock":
        return None
    from device.sensing.simulated import simulated_factory

    # answered at once with time-stamped edges: no flapping on a loaded machine
    return simulated_factory([(s.trigger_pin, s.echo_pin) for s in config.ranging.sensors], SIMULATED_NO_ECHO_S)


def camera_stage(detector: Detector, config: Config) -> CameraStage:
    """Detector, tracker and the one camera geometry from `[camera]`."""
    return CameraStage(detector, config.camera)


def open_camera(source: str, cfg: Config, clock: Clock) -> FrameSource:
    """`pi` (the Pi camera), `webcam` or N (a webcam) or a video file."""
    cam = cfg.camera
    if source == "pi":
        return Picamera2Source(clock, width=cam.width, height=cam.height, fps=cam.fps, rotate_180=cam.rotate_180)
    spec: int | str = 0 if source == "webcam" else int(source) if source.isdigit() else source
    return OpenCVSource(spec, clock, width=cam.width, height=cam.height, fps=cam.fps, rotate_180=cam.rotate_180)


def is_file_source(source: str) -> bool:
    return source not in ("pi", "webcam") and not source.isdigit()


def build_recorder(cfg: Config, record_dir: str, frames: FrameSource | None, source: str):  # -> RecorderThread
    """The recorder for `rearguard run`: the ring of segments and the incident
    clips, behind a thread of their own so the loop and the detector only
    enqueue (device/record/worker.py); raises RecordingError."""
    from device.record.incidents import DeviceRecording, IncidentClips
    from device.record.segments import SegmentedRecorder
    from device.record.worker import RecorderThread

    rec = cfg.recording
    segments = SegmentedRecorder(
        record_dir,
        width=frames.width if frames else cfg.camera.width,
        height=frames.height if frames else cfg.camera.height,
        fps=(getattr(frames, "fps", None) or cfg.camera.fps),
        hfov_deg=cfg.camera.hfov_deg,
        sensors=cfg.ranging.sensors,
        source=f"rearguard run --source {source}",
        segment_s=rec.segment_s,
        budget_mb=rec.budget_mb,
        min_free_mb=rec.min_free_mb,
    )
    clips = IncidentClips(segments, before_s=rec.incident_before_s, after_s=rec.incident_after_s,
                          budget_mb=rec.incident_budget_mb) if rec.incidents else None
    return RecorderThread(DeviceRecording(segments, clips))


def start_preview(address: tuple[str, int] | None, err: TextIO = sys.stderr) -> Any:
    """The preview server on `address` (None: no preview), announced on `err`;
    raises PreviewError. It serves whatever `show(pipeline)` gives it."""
    if address is None:
        return None
    from device.view.preview import PreviewServer

    server = PreviewServer(*address)
    print(f"preview: {server.url} (read-only)", file=err, flush=True)
    return server


# ---------------------------------------------------------------- check ranging and bench


@dataclass
class Ranging:
    """The device's ultrasonic ranging and outputs, without camera or loop:
    `rearguard check ranging` and the bench's background load."""

    clock: MonotonicClock
    factory: Any  # gpiozero pin factory, None for gpiozero's own choice
    ranger: UltrasonicRanger
    alerter: Alerter | None = None

    def close(self) -> None:
        self.ranger.close()
        if self.alerter is not None:
            self.alerter.close()


def compose_ranging(cfg: Config, *, mock_pins: bool, outputs: bool = False) -> Ranging:
    """Raises RangingError (and AlertError with `outputs`)."""
    clock = MonotonicClock()
    factory = make_pin_factory("mock" if mock_pins else None, cfg)
    ranger = UltrasonicRanger.from_config(cfg.ranging, clock, pin_factory=factory)
    alerter = None
    if outputs:
        try:
            alerter = Alerter(cfg.outputs, pin_factory=factory)
        except AlertError:
            ranger.close()  # its pinging threads must not outlive the error
            raise
    return Ranging(clock, factory, ranger, alerter)


# ---------------------------------------------------------------- replay


@dataclass
class ReplayParts:
    clock: ReplayClock
    pipeline: Pipeline
    alerter: Alerter
    camera: CameraFeed | None
    static_faults: tuple[Fault, ...]

    def close(self) -> None:
        self.alerter.close()
        if self.camera is not None:
            self.camera.close()


def compose_replay(recording: Recording, config: Config, detector: Detector | None = None,
                   pace: DetectorPace | None = None) -> ReplayParts:
    """The device's pipeline over a recording (`device.record.format.Recording`):
    a replay clock at its start, its frames detected inline, its ranges,
    and the alert patterns really driven, on simulated pins. `config` is
    already the replay's (`device.app.replay.replay_config`). With `pace`
    the detector is modelled at that speed (`PacedCamera`) instead.

    With no detector (the model missing or broken: a static fault) the
    frames are still read, every one, and looming runs on them, as on the
    device; there is no detector to pace, so `pace` changes nothing."""
    from device.sensing.simulated import mock_factory

    static_faults: tuple[Fault, ...] = ()
    if detector is None:
        detector, static_faults = build_detector(config)
    clock = ReplayClock(recording.start_ns)
    camera: CameraFeed | None = None
    looming = None
    if detector is None:
        frames, looming = inline_with_looming(RecordedFrames(recording, clock), config)
        camera = InlineCamera(frames, FramesOnlyStage())
    else:
        stage = camera_stage(detector, config)
        if pace is None:
            # Looming sees the very frames the inline detector takes, in order.
            frames, looming = inline_with_looming(RecordedFrames(recording, clock), config)
            camera = InlineCamera(frames, stage)
        else:
            # The paced detector skips frames; looming, at camera rate on the
            # device, reads every frame of its own copy of the recording.
            camera = PacedCamera(RecordedFrames(recording, clock), stage, pace, clock)
            looming = paced_looming(RecordedFrames(recording, clock), config)
    alerter = Alerter(config.outputs, pin_factory=mock_factory())
    ranges = RecordedRanges([*recording.ranges, *silence_ends(recording)])  # a log that ends is a sensor gone silent
    pipeline = Pipeline(config, clock, ranges, alerter, camera, static_faults=static_faults, looming=looming)
    return ReplayParts(clock, pipeline, alerter, camera, static_faults)


# ---------------------------------------------------------------- the live device


class CameraKeeper:
    """The live camera: opened at start and, when it is not there (a slow
    driver, a loose ribbon), looked for again every CAMERA_RETRY_S while
    the ultrasonic path keeps working. A new feed is handed to the pipeline
    through `Pipeline.set_camera`.

    With no detector (the model missing or broken) the frames still go to
    looming, to the recorder and to the preview, and are still watched for
    a stall or a frozen image: a feed of `FramesOnlyStage` results, not
    metered for the detector's pace (there is none)."""

    def __init__(self, cfg: Config, source: str, clock: Clock, detector: Detector | None, recorder: Any) -> None:
        self.cfg, self.source, self.clock = cfg, source, clock
        self.detector, self.recorder = detector, recorder
        self.wrap: Callable[[CameraFeed | None], CameraFeed | None] = lambda feed: feed  # the pace meter, once wired
        self.fault: Fault | None = None  # the camera could not be opened (cleared when a retry succeeds)
        self.looming: ThreadedLooming | None = None  # looming on the newest feed's own branch of frames
        self.frames: FrameSource | None = None
        try:
            self.frames = open_camera(source, cfg, clock)
        except CameraError as e:
            self.fault = Fault(Part.CAMERA, Kind.UNAVAILABLE, str(e))
        self._next_retry = clock.now_ns() + round(CAMERA_RETRY_S * NS_PER_S)

    def feed(self, frames: FrameSource | None) -> CameraFeed | None:
        if frames is None:
            return None
        frames, self.looming = threaded_with_looming(frames, self.cfg)
        if self.detector is None:  # looming alone, and the frames watched, recorded and shown
            return ThreadedCamera(frames, FramesOnlyStage(), self.recorder, name="rearguard-camera-watch")
        return self.wrap(ThreadedCamera(frames, camera_stage(self.detector, self.cfg), self.recorder))

    def faults(self) -> tuple[Fault, ...]:
        return (self.fault,) if self.fault is not None else ()

    def retry(self, pipeline: Pipeline, now_ns: int) -> None:
        """Called from the loop: try the camera again when one is due."""
        if self.fault is None or is_file_source(self.source) or now_ns < self._next_retry:
            return
        self._next_retry = now_ns + round(CAMERA_RETRY_S * NS_PER_S)
        try:
            frames = open_camera(self.source, self.cfg, self.clock)
        except CameraError as e:
            log.debug("camera retry failed: %s", e)
            return
        old = pipeline.set_camera(self.feed(frames))
        if old is not None:
            old.close()
        old_looming = pipeline.set_looming(self.looming)
        if old_looming is not None:
            old_looming.close()
        self.fault = None
        log.warning("camera is back")


@dataclass
class Device:
    """Everything `rearguard run` runs, in two steps: `compose_device` builds
    the parts (the self-test then checks them), `assemble` wires the loop."""

    cfg: Config
    clock: MonotonicClock
    factory: Any
    alerter: Alerter
    ranges: RangeSource
    detector: Detector | None
    camera: CameraKeeper
    recorder: Any
    static_faults: list[Fault] = field(default_factory=list)
    pace: Any = None  # PaceWatch: detections per second, result age, the Pi's health
    guard: Any = None  # StallGuard, once assembled
    pipeline: Pipeline | None = None

    def drop_detector(self, faults: tuple[Fault, ...]) -> None:
        """A model that cannot run one inference is not used at all."""
        assert self.pipeline is None, "before assemble()"
        self.static_faults += list(faults)
        if self.detector is not None:
            self.detector.close()
        self.detector = self.camera.detector = None

    def start_faults(self) -> tuple[Fault, ...]:
        return tuple(self.static_faults) + self.camera.faults()

    def assemble(self, on_event: Any = None) -> Pipeline:
        """The stall guard between the loop and the outputs, the camera feed
        (its detector thread starts now) and the pipeline."""
        from device.output.stall_guard import StallGuard

        camera, recorder, pace = self.camera, self.recorder, self.pace

        def extra_faults() -> tuple[Fault, ...]:
            out: tuple[Fault, ...] = camera.faults() + (pace.faults() if pace is not None else ())
            fault = recorder.fault if recorder is not None else None
            if fault:
                # The recorder words its fault in full ("recording: ...").
                out += (Fault(Part.RECORDING, Kind.FAILED, fault.removeprefix("recording: ")),)
            return out

        def events(event: AlertEvent, threat: Threat) -> None:
            if recorder is not None:
                recorder.note_event(event)  # incident clips (an enqueue)
            if on_event is not None:
                on_event(event, threat)

        self.guard = StallGuard(self.alerter, self.clock)
        feed = camera.feed(camera.frames)
        self.pipeline = Pipeline(self.cfg, self.clock, self.ranges, self.guard, feed,
                                 static_faults=tuple(self.static_faults), recorder=recorder, on_event=events,
                                 extra_faults=extra_faults, looming=camera.looming)
        return self.pipeline

    def close(self) -> None:
        if self.pace is not None:
            self.pace.close()
        if self.guard is not None:
            self.guard.close()
        looming = self.pipeline.looming if self.pipeline is not None else None
        if looming is not None:
            looming.close()  # its thread only: the camera feed closes the frames
        feed = self.pipeline.camera if self.pipeline is not None else None
        if feed is not None:
            feed.close()  # closes its frame source too
        elif self.camera.frames is not None:
            self.camera.frames.close()
        for part in (self.ranges, self.alerter, self.recorder):
            if part is not None:
                part.close()
        if self.detector is not None:
            self.detector.close()


class RecordingRefused(Exception):
    """--record was given and the recorder cannot start: a usage error."""


def compose_device(cfg: Config, *, source: str, mock_pins: bool, record: str | None) -> Device:
    """The live device's parts, from the config. Raises AlertError when the
    outputs cannot be driven (without them nothing can tell the runner
    anything) and RecordingRefused when `record` cannot be recorded to;
    every other part that fails becomes a fault and the device runs with
    what works."""
    from device.record.format import RecordingError

    clock = MonotonicClock()
    factory = make_pin_factory("mock" if mock_pins else None, cfg)
    static: list[Fault] = []
    alerter = Alerter(cfg.outputs, pin_factory=factory)  # first: the outputs say everything else
    ranges: RangeSource
    try:
        ranges = UltrasonicRanger.from_config(cfg.ranging, clock, pin_factory=factory)
    except RangingError as e:
        static.append(Fault(Part.RANGING, Kind.UNAVAILABLE, str(e)))
        ranges = RecordedRanges([])
    detector, model_faults = build_detector(cfg)
    static += model_faults
    camera = CameraKeeper(cfg, source, clock, detector, None)
    device = Device(cfg, clock, factory, alerter, ranges, detector, camera, None, static)
    device.pace = PaceWatch(cfg, clock)
    camera.wrap = device.pace.wrap
    record_dir = record or cfg.recording.directory or None
    if record_dir:
        try:
            device.recorder = camera.recorder = build_recorder(cfg, record_dir, camera.frames, source)
        except RecordingError as e:
            if record:  # asked for on the command line
                device.close()
                raise RecordingRefused(str(e)) from e
            static.append(Fault(Part.RECORDING, Kind.UNAVAILABLE, str(e)))
    return device
