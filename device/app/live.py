"""The device as it runs live: assemble the parts, greet, self-test, loop,
and shut down cleanly. `rearguard run` is a thin wrapper around `run_device`.

Start-up order matters to the runner: the outputs come first (without them
nothing can be said), then every other part; a part that fails becomes a
fault and the device carries on with what works. systemd hears READY only
after the self-test, and WATCHDOG from the loop itself, so a stalled loop
gets the service restarted; until then the stall guard plays FAULT.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, TextIO

from device import __version__
from device.output.alerts import AlertError, Alerter, effective_level
from device.app.compose import build_detector, make_pin_factory
from device.sensing.camera import CameraError, FrameSource, OpenCVSource, Picamera2Source
from device.core.clock import NS_PER_S, MonotonicClock
from device.core.config import Config
from device.app.systemd_notify import Notifier, WatchdogPinger
from device.pipeline import CameraStage, Pipeline, ThreadedCamera, run_forever
from device.sensing.ultrasonic import RangingError, RangeSource, RecordedRanges, UltrasonicRanger
from device.record.segments import SegmentedRecorder
from device.record.format import RecordingError
from device.app.selftest import greet, self_test
from device.output.stall_guard import StallGuard
from device.core.types import AlertEvent, Threat

log = logging.getLogger(__name__)

CAMERA_RETRY_S = 5.0


@dataclass(frozen=True)
class RunOptions:
    source: str = "pi"
    record: str | None = None
    mock_pins: bool = False
    duration: float | None = None
    preview: tuple[str, int] | None = None
    self_test: bool = True


def open_camera(source: str, cfg: Config, clock: MonotonicClock) -> FrameSource:
    cam = cfg.camera
    if source == "pi":
        return Picamera2Source(clock, width=cam.width, height=cam.height, fps=cam.fps, rotate_180=cam.rotate_180)
    spec: int | str = 0 if source == "webcam" else int(source) if source.isdigit() else source
    return OpenCVSource(spec, clock, width=cam.width, height=cam.height, fps=cam.fps, rotate_180=cam.rotate_180)


def is_file_source(source: str) -> bool:
    return source not in ("pi", "webcam") and not source.isdigit()


def run_device(cfg: Config, opts: RunOptions, *, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    from device.cli.main import StatusLine  # the terminal view lives with the CLI

    clock = MonotonicClock()
    notifier = Notifier()
    factory = make_pin_factory("mock" if opts.mock_pins else None, cfg)
    static: list[str] = []
    try:
        alerter = Alerter(cfg.outputs, pin_factory=factory)
    except AlertError as e:
        # Without outputs the device cannot tell the runner anything: stop loud
        # (systemd restarts it, and the journal says why).
        print(f"rearguard: {e}", file=err)
        return 1
    ranges: RangeSource
    try:
        ranges = UltrasonicRanger.from_config(cfg.ranging, clock, pin_factory=factory)
    except RangingError as e:
        static.append(f"ranging: {e}")
        ranges = RecordedRanges([])
    detector, model_faults = build_detector(cfg)
    static += model_faults
    frames: FrameSource | None = None
    camera_fault: list[str] = []  # one slot, cleared when a retry succeeds
    try:
        frames = open_camera(opts.source, cfg, clock)
    except CameraError as e:
        camera_fault.append(f"camera: {e}")

    if opts.self_test:
        greet(alerter, clock, time.sleep)
        report = self_test(
            clock=clock, sleep=time.sleep, frames=frames, detector=detector, ranges=ranges,
            sensor_names=tuple(s.name for s in cfg.ranging.sensors),
        )
        if detector is not None and any(f.startswith("model:") for f in report.faults):
            # A model that cannot run one inference is not used at all.
            static += [f for f in report.faults if f.startswith("model:")]
            detector.close()
            detector = None
        # Camera and sensor failures need no special case: the loop's own
        # checks report them for as long as they last, and clear them after.

    recorder = None
    record_dir = opts.record or cfg.recording.directory or None
    if record_dir:
        rec = cfg.recording
        try:
            recorder = SegmentedRecorder(
                record_dir,
                width=frames.width if frames else cfg.camera.width,
                height=frames.height if frames else cfg.camera.height,
                fps=(getattr(frames, "fps", None) or cfg.camera.fps),
                hfov_deg=cfg.camera.hfov_deg,
                sensors=cfg.ranging.sensors,
                source=f"rearguard run --source {opts.source}",
                segment_s=rec.segment_s,
                budget_mb=rec.budget_mb,
                min_free_mb=rec.min_free_mb,
            )
        except RecordingError as e:
            if opts.record:  # asked for on the command line: a usage error
                print(f"rearguard: {e}", file=err)
                alerter.close()
                return 1
            static.append(f"recording: {e}")

    def camera_feed(source: FrameSource | None) -> ThreadedCamera | None:
        if source is None:
            return None
        if detector is None:
            source.close()
            return None
        return ThreadedCamera(source, CameraStage(detector, cfg.camera.hfov_deg), recorder)

    camera = camera_feed(frames)
    guard = StallGuard(alerter, clock)

    def extra_faults() -> tuple[str, ...]:
        out_: tuple[str, ...] = tuple(camera_fault)
        if recorder is not None and recorder.fault:
            out_ += (recorder.fault,)
        return out_

    def on_event(event: AlertEvent, threat: Threat) -> None:
        notifier.status(f"{event.level.name}" + (f" faults: {'; '.join(event.faults)}" if event.faults else ""))

    pipeline = Pipeline(cfg, clock, ranges, guard, camera, static_faults=tuple(static), recorder=recorder,
                        on_event=on_event, extra_faults=extra_faults)

    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    status = StatusLine(out)
    pinger = WatchdogPinger(notifier)
    t_start = clock.now_ns()
    t_end = t_start + round(opts.duration * NS_PER_S) if opts.duration else None
    next_retry = [t_start + round(CAMERA_RETRY_S * NS_PER_S)]

    def on_step(threat: Threat) -> None:
        nonlocal camera
        now = clock.now_ns()
        pinger.beat(now)
        status.show(threat, effective_level(threat.level, threat.faults), pipeline.stats.frames, now / NS_PER_S)
        if t_end is not None and now >= t_end:
            stop.set()
        if is_file_source(opts.source) and camera is not None and camera.error == "end of video":
            stop.set()
        if camera_fault and detector is not None and now >= next_retry[0] and not is_file_source(opts.source):
            # The camera may come up late (a slow driver, a loose ribbon):
            # keep trying, ultrasonic keeps working meanwhile.
            next_retry[0] = now + round(CAMERA_RETRY_S * NS_PER_S)
            try:
                camera = camera_feed(open_camera(opts.source, cfg, clock))
                pipeline.camera = camera
                camera_fault.clear()
                log.warning("camera is back")
            except CameraError as e:
                log.debug("camera retry failed: %s", e)

    print(f"rearguard {__version__}: source {opts.source}, pins {'simulated' if factory else 'gpiozero default'}; "
          "Ctrl-C to stop", file=err)
    for f in static + camera_fault:
        print(f"fault: {f}", file=err)
    preview = None
    try:
        if opts.preview is not None:
            from device.view.preview import PreviewServer

            preview = PreviewServer(*opts.preview)
            print(f"preview: {preview.url} (read-only)", file=err, flush=True)
            preview.show(pipeline)
        guard.start()
        notifier.ready("running" + (f", faults: {'; '.join(static + camera_fault)}" if static or camera_fault else ""))
        run_forever(pipeline, stop, on_step=on_step)
    finally:
        notifier.stopping()
        if status.tty:
            print(file=out)
        guard.close()
        for part in (preview, camera, ranges, alerter, recorder):
            if part is not None:
                part.close()
        if detector is not None:
            detector.close()
        notifier.close()
    secs = (clock.now_ns() - t_start) / NS_PER_S
    print(f"stopped after {pipeline.stats.frames} frames; {len(pipeline.events)} alert changes", file=err)
    if secs > 0:
        med = pipeline.stats.summary()["detect_ms"]
        print(f"loop {pipeline.steps / secs:.1f} passes/s, camera {pipeline.stats.frames / secs:.1f} fps over "
              f"{secs:.1f} s; median detect {'-' if med is None else f'{med:.1f}'} ms", file=err)
    return 0
