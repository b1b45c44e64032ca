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
from typing import Any, Callable

from device.core.clock import NS_PER_S
from device.core.config import Config, UltrasonicSensorConfig
from device.app.compose import compose_replay
from device.core.faults import texts
from device.core.ports import Detector
from device.pipeline import Pipeline
from device.record.format import Recording
from device.core.types import AlertEvent

TICK_S = 0.02
TICK_NS = round(TICK_S * NS_PER_S)


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
    recording = Recording.open(directory)
    cfg = replay_config(config, recording)
    parts = compose_replay(recording, cfg, detector)
    clock, pipeline = parts.clock, parts.pipeline
    start = recording.start_ns
    end = start + round(recording.duration_s * NS_PER_S)
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
        parts.close()
    return ReplayResult(
        frames=pipeline.stats.frames,
        duration_s=recording.duration_s,
        start_ns=start,
        events=tuple(pipeline.events),
        stats=pipeline.stats.summary(),
        static_faults=texts(parts.static_faults),
    )
