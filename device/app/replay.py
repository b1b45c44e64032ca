"""Replay a recording through the device's own pipeline, deterministically.

The replay clock is stepped every `TICK_S` of recording time (the device's
loop period) and every frame and range reading becomes visible exactly at
its recorded time. Detection runs inline, so the same recording gives the
same events on any machine, as fast as the CPU allows, or paced to the
wall clock with `realtime=True`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from device.output.alerts import Alerter
from device.app.compose import build_detector
from device.core.clock import NS_PER_S, ReplayClock
from device.core.config import Config, UltrasonicSensorConfig
from device.perception.detector import Detector
from device.pipeline import CameraStage, InlineCamera, Pipeline
from device.sensing.ultrasonic import RecordedRanges
from device.record.format import Recording
from device.core.types import AlertEvent, Frame

TICK_S = 0.02
TICK_NS = round(TICK_S * NS_PER_S)


class RecordedFrames:
    """A FrameSource over a recording: the newest frame whose time has come."""

    def __init__(self, recording: Recording, clock: ReplayClock) -> None:
        self._frames: Iterator[Frame] = recording.frames()
        self._clock = clock
        self._next: Frame | None = next(self._frames, None)
        self.width = recording.meta.camera.width
        self.height = recording.meta.camera.height
        self.dropped = 0

    def latest(self) -> Frame | None:
        now = self._clock.now_ns()
        newest = None
        while self._next is not None and self._next.t_ns <= now:
            if newest is not None:
                self.dropped += 1
            newest = self._next
            self._next = next(self._frames, None)
        return newest

    def wait(self, timeout: float) -> bool:
        # Replay time only moves between steps: a frame is due now or not at all.
        return self._next is not None and self._next.t_ns <= self._clock.now_ns()

    @property
    def error(self) -> str | None:
        return None  # the end of a recording is the end of the replay, not a fault

    def close(self) -> None:
        self._next = None


def replay_config(config: Config, recording: Recording) -> Config:
    """The config with the recording's camera and sensors in place of the
    device's: geometry must match the footage, and pins mean nothing here."""
    meta = recording.meta
    sensors = tuple(
        UltrasonicSensorConfig.model_construct(
            name=s.name,
            trigger_pin=0,
            echo_pin=0,
            bearing_deg=s.bearing_deg,
            beam_deg=s.beam_deg,
            type="generic",
            max_distance_m=s.max_distance_m,
        )
        for s in meta.sensors
    )
    camera = config.camera.model_copy(
        update={"width": meta.camera.width, "height": meta.camera.height, "hfov_deg": meta.camera.hfov_deg}
    )
    ranging = config.ranging.model_copy(update={"sensors": sensors})
    return config.model_copy(update={"camera": camera, "ranging": ranging})


@dataclass(frozen=True)
class ReplayResult:
    frames: int
    duration_s: float
    start_ns: int
    events: tuple[AlertEvent, ...]
    stats: dict[str, float | None]
    static_faults: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        def num(x: float | None) -> float | None:
            return None if x is None else round(x, 3)

        return {
            "frames": self.frames,
            "duration_s": round(self.duration_s, 3),
            "events": [
                {
                    "t_s": round((e.t_ns - self.start_ns) / NS_PER_S, 3),
                    "level": e.level.name,
                    "source": e.source,
                    "distance_m": num(e.distance_m),
                    "ttc_s": num(e.ttc_s),
                    **({"faults": list(e.faults)} if e.faults else {}),
                }
                for e in self.events
            ],
            "stats": self.stats,
        }


def replay(
    directory: str | Path,
    config: Config,
    *,
    realtime: bool = False,
    detector: Detector | None = None,
    progress: Callable[[float, float], None] | None = None,
    on_start: Callable[[Pipeline], None] | None = None,
    on_step: Callable[[Pipeline], None] | None = None,
) -> ReplayResult:
    """Run the pipeline over a recording. `progress(done_s, total_s)` is
    called now and then for long replays. `on_start(pipeline)` is called
    once before the first pass (to attach a viewer such as the preview),
    `on_step(pipeline)` after every pass."""
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    recording = Recording.open(directory)
    cfg = replay_config(config, recording)
    static_faults: tuple[str, ...] = ()
    if detector is None:
        detector, static_faults = build_detector(cfg)
    start = recording.start_ns
    end = start + round(recording.duration_s * NS_PER_S)
    clock = ReplayClock(start)
    camera = None
    if detector is not None:
        camera = InlineCamera(RecordedFrames(recording, clock), CameraStage(detector, cfg.camera.hfov_deg))
    # Simulated pins: the alert patterns are really driven, on mock pins.
    alerter = Alerter(cfg.outputs, pin_factory=MockFactory(pin_class=MockPWMPin))
    pipeline = Pipeline(
        cfg,
        clock,
        RecordedRanges(recording.ranges),
        alerter,
        camera,
        static_faults=static_faults,
    )
    wall0 = time.monotonic()
    last_report = wall0
    try:
        if on_start is not None:
            on_start(pipeline)
        t = start
        while True:
            clock.set(t)
            pipeline.step()
            if on_step is not None:
                on_step(pipeline)
            if realtime:
                lag = (t - start) / NS_PER_S - (time.monotonic() - wall0)
                if lag > 0:
                    time.sleep(lag)
            if progress is not None and time.monotonic() - last_report >= 2.0:
                last_report = time.monotonic()
                progress((t - start) / NS_PER_S, recording.duration_s)
            if t >= end:
                break
            t = min(t + TICK_NS, end)
    finally:
        alerter.close()
        if camera is not None:
            camera.close()
    return ReplayResult(
        frames=pipeline.stats.frames,
        duration_s=recording.duration_s,
        start_ns=start,
        events=tuple(pipeline.events),
        stats=pipeline.stats.summary(),
        static_faults=static_faults,
    )
