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
from dataclasses import dataclass, field
from typing import Any, TextIO

from device.app.pace_watch import PaceWatch
from device.camera_path import (
    CameraPath,
    DetectorPace,
    DetectStage,
    FlowStage,
    FramesOnlyStage,
    InlineRunner,
    LoomingStage,
    MainStage,
    PacedRunner,
    Stage,
    ThreadedRunner,
)
from device.core.clock import Clock, MonotonicClock, ReplayClock
from device.core.coco import class_id
from device.core.config import Config
from device.core.faults import Fault, Kind, Part
from device.core.ports import Detector, FrameSource, RangeSource
from device.core.priority import build_in_background
from device.core.types import AlertEvent, Threat
from device.model_store import store as models
from device.output.alerts import Alerter, AlertError
from device.perception.backends import Choice, FallbackDetector, choose_backend, open_backend, probe
from device.perception.detector import ModelError, YoloxDetector
from device.perception.flow import FlowEstimator, FlowParams
from device.pipeline import Pipeline
from device.record.format import Recording
from device.record.sources import RecordedFrames, silence_ends
from device.sensing.camera import CameraError, OpenCVSource, Picamera2Source
from device.sensing.fuel_gauge import GaugeError, Max1704x, open_max1704x
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
                                 aspect=det.input_width / det.input_height, nms_iou=d.nms_iou,
                                 instead=d.lookahead_mode == "instead"), ()
    return det, ()


@dataclass
class LiveDetector:
    """The device's detector as `detector.backend` and the machine decide:
    `source` (and `reopen`) when the AI Camera owns the camera."""

    detector: Detector | None
    faults: tuple[Fault, ...]
    source: FrameSource | None = None
    reopen: Any = None  # () -> FrameSource, for the camera path's frames thread


def build_live_detector(cfg: Config, source: str, clock: Clock) -> LiveDetector:
    """The CPU model, or the accelerator `detector.backend` picks (auto: one
    that is present), wrapped so one that fails later hands over to the CPU
    model (`FallbackDetector`). Only the live device: replay and evaluate
    run the CPU model (a recording holds frames, not the AI Camera's output)."""
    d = cfg.detector
    choice = choose_backend(d.backend, probe(imx500_model=d.accelerator_model, hailo_model=d.accelerator_model))
    faults: list[Fault] = []
    if choice.fell_back:
        faults.append(Fault(Part.ACCELERATOR, Kind.UNAVAILABLE, choice.reason))
    if choice.backend == "imx500" and source != "pi":
        # The AI Camera detects only on its own frames, not on a webcam's or a file's.
        log.info("detector backend: cpu (the AI Camera cannot detect on --source %s)", source)
        choice = Choice("cpu", f"--source {source}: the AI Camera detects only on its own frames")
    model_faults: list[Fault] = []

    def make_cpu() -> Detector:
        det, why = build_detector(cfg)  # incl. its warm-up; also when an accelerator hands over
        if det is None:
            model_faults[:] = why
            raise ModelError(why[0].detail)
        return det

    try:
        opened = open_backend(choice, cfg, make_cpu, clock)
    except ModelError:
        return LiveDetector(None, tuple(faults + model_faults))
    return LiveDetector(opened.detector, tuple(faults) + opened.faults, opened.source, opened.reopen)


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


def camera_stage(detector: Detector, config: Config) -> DetectStage:
    """Detector, tracker and the one camera geometry from `[camera]`."""
    return DetectStage(detector, config.camera)


def camera_stages(detector: Detector | None, config: Config) -> tuple[MainStage, tuple[Stage, ...]]:
    """What the camera path runs on its frames: the detector (or, with no
    model, frames-only: the frames still watched, recorded and shown), then
    looming and flow (which follows the detector's tracks) when they are on. The same for the device and every replay."""
    main: MainStage = FramesOnlyStage() if detector is None else camera_stage(detector, config)
    sides: list[Stage] = []
    if config.looming.enabled:
        from device.decision.looming import looming_params
        from device.perception.looming import LoomingEstimator

        sides.append(LoomingStage(LoomingEstimator(looming_params(config))))
    if config.flow.enabled and detector is not None:
        sides.append(FlowStage(FlowEstimator(flow_params(config))))
    return main, tuple(sides)


def flow_params(config: Config) -> FlowParams:
    f = config.flow
    return FlowParams(width=f.width, max_points=f.max_points, span_s=f.span_s, max_tracks=f.max_tracks)


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
        mount_height_m=cfg.camera.mount_height_m,
        pitch_deg=cfg.camera.pitch_deg,
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
    camera: CameraPath | None
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
    the detector is modelled at that speed (`PacedRunner`) instead.

    With no detector (the model missing or broken: a static fault) the
    frames are still read, every one, and looming runs on them, as on the
    device; there is no detector to pace, so `pace` changes nothing."""
    from device.sensing.simulated import mock_factory

    static_faults: tuple[Fault, ...] = ()
    if detector is None:
        detector, static_faults = build_detector(config)
    clock = ReplayClock(recording.start_ns)
    main, sides = camera_stages(detector, config)
    runner: InlineRunner | PacedRunner
    if detector is None or pace is None:
        # Looming sees the very frames the main stage takes, in order.
        runner = InlineRunner(RecordedFrames(recording, clock), main, sides)
    else:
        # The paced detector skips frames; looming, at camera rate on the
        # device, reads every frame of its own copy of the recording.
        runner = PacedRunner(RecordedFrames(recording, clock), main, pace, clock, sides,
                             RecordedFrames(recording, clock) if sides else None)
    camera = CameraPath(runner, clock, config.camera.max_age_s)
    alerter = Alerter(config.outputs, pin_factory=mock_factory())
    ranges = RecordedRanges([*recording.ranges, *silence_ends(recording)])  # a log that ends is a sensor gone silent
    pipeline = Pipeline(config, clock, ranges, alerter, camera, static_faults=static_faults)
    return ReplayParts(clock, pipeline, alerter, camera, static_faults)


# ---------------------------------------------------------------- the live device


def live_camera(cfg: Config, source: str, clock: Clock, detector: Detector | None, recorder: Any,
                meter: Any = None, *, own: LiveDetector | None = None) -> CameraPath:
    """The live camera path: opened now (the self-test and the recorder
    need its frames before the loop starts) and, when it is not there (a
    slow driver, a loose ribbon) or dies mid-run, looked for again every
    CAMERA_RETRY_S by its own frames thread while the ultrasonic path keeps
    working. A video file is opened once.

    With no detector (the model missing or broken) the frames still go to
    looming, to the recorder and to the preview, and are still watched for
    a stall or a frozen image; there is no detector's pace to meter.

    `own`: the AI Camera, opened with its network, is the frame source, and
    its `reopen` is how the frames thread looks for it again."""
    frames: FrameSource | None = None
    unavailable = None
    opener: Any = None if is_file_source(source) else (lambda: open_camera(source, cfg, clock))
    if own is not None and own.source is not None:
        frames, opener = own.source, own.reopen
    else:
        try:
            frames = open_camera(source, cfg, clock)
        except CameraError as e:
            unavailable = str(e)
    main, sides = camera_stages(detector, cfg)
    runner = ThreadedRunner(frames, main, sides, recorder, opener=opener, retry_s=CAMERA_RETRY_S,
                            unavailable=unavailable)
    return CameraPath(runner, clock, cfg.camera.max_age_s, meter=meter if detector is not None else None)


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
    camera: CameraPath
    recorder: Any
    source: str
    static_faults: list[Fault] = field(default_factory=list)
    pace: PaceWatch | None = None  # detections per second, result age, the Pi's health
    guard: Any = None  # StallGuard, once assembled
    pipeline: Pipeline | None = None

    @property
    def frames(self) -> FrameSource | None:
        """The camera's frames as opened at start (for the self-test)."""
        return self.camera.runner.frames  # type: ignore[attr-defined]

    def drop_detector(self, faults: tuple[Fault, ...]) -> None:
        """A model that cannot run one inference is not used at all: the
        camera path goes on with frames-only (same frames, same threads)."""
        assert self.pipeline is None, "before assemble()"
        self.static_faults += list(faults)
        if self.detector is not None:
            self.detector.close()
        self.detector = None
        runner = self.camera.runner
        assert isinstance(runner, ThreadedRunner)
        main, sides = camera_stages(None, self.cfg)
        self.camera = CameraPath(runner.with_stages(main, sides), self.clock, self.cfg.camera.max_age_s)

    def start_faults(self) -> tuple[Fault, ...]:
        return tuple(self.static_faults) + self.camera.unavailable()

    def assemble(self, on_event: Any = None) -> Pipeline:
        """The stall guard between the loop and the outputs, the camera path
        (its threads start now) and the pipeline."""
        from device.output.stall_guard import StallGuard

        recorder, pace, detector = self.recorder, self.pace, self.detector

        def extra_faults() -> tuple[Fault, ...]:
            return ((pace.faults() if pace is not None else ())
                    + (recorder.faults() if recorder is not None else ())
                    # an accelerator that failed while running (the CPU model took over)
                    + (detector.faults if isinstance(detector, FallbackDetector) else ()))

        def events(event: AlertEvent, threat: Threat) -> None:
            if recorder is not None:
                recorder.note_event(event)  # incident clips (an enqueue)
            if on_event is not None:
                on_event(event, threat)

        self.guard = StallGuard(self.alerter, self.clock)
        self.camera.start()
        self.pipeline = Pipeline(self.cfg, self.clock, self.ranges, self.guard, self.camera,
                                 static_faults=tuple(self.static_faults), recorder=recorder, on_event=events,
                                 extra_faults=extra_faults)
        return self.pipeline

    def close(self) -> None:
        if self.pace is not None:
            self.pace.close()
        if self.guard is not None:
            self.guard.close()
        self.camera.close()  # its threads and its frame source
        for part in (self.ranges, self.alerter, self.recorder):
            if part is not None:
                part.close()
        if self.detector is not None:
            self.detector.close()


def open_gauge(cfg: Config) -> Max1704x | None:
    """The UPS HAT's fuel gauge if one is configured; one that cannot be
    opened is logged and left out (the battery is information, not protection)."""
    if cfg.power.fuel_gauge == "none":
        return None
    try:
        return open_max1704x(cfg.power.i2c_bus, cfg.power.i2c_address)
    except GaugeError as e:
        log.error("running without the battery gauge: %s", e)
        return None


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
    live = build_live_detector(cfg, source, clock)
    detector = live.detector
    static += live.faults
    pace = PaceWatch(cfg, clock, gauge=open_gauge(cfg))
    camera = live_camera(cfg, source, clock, detector, None, meter=pace, own=live)
    device = Device(cfg, clock, factory, alerter, ranges, detector, camera, None, source, static, pace)
    record_dir = record or cfg.recording.directory or None
    if record_dir:
        try:
            device.recorder = build_recorder(cfg, record_dir, device.frames, source)
        except RecordingError as e:
            if record:  # asked for on the command line
                device.close()
                raise RecordingRefused(str(e)) from e
            static.append(Fault(Part.RECORDING, Kind.UNAVAILABLE, str(e)))
        else:
            device.camera.runner.recorder = device.recorder  # type: ignore[attr-defined]
    return device
