"""Replay a recording through the device's own pipeline, deterministically.

The replay clock is stepped every `TICK_S` of recording time (the device's
loop period) and every frame and range reading becomes visible exactly at
its recorded time. Detection runs inline, so the same recording gives the
same events on any machine, as fast as the CPU allows, or paced to the
wall clock with `realtime=True`.

Bad input costs only what it must (see device/record/sources.py): a frame
that cannot be decoded is skipped as a camera fault, a sensor log that ends
is a sensor gone silent, and the recording's own warnings are kept in the
result. A long stretch with no input at all (a far-off timestamp) is
skipped instead of stepped through, see `IDLE_SKIP_S`.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device.app.compose import compose_replay
from device.camera_path import DetectorPace, PacedRunner
from device.core.clock import NS_PER_S
from device.core.config import Config, UltrasonicSensorConfig
from device.core.faults import texts
from device.core.ports import Detector
from device.core.types import AlertEvent
from device.perception import boards as board_profiles
from device.pipeline import Pipeline
from device.record.format import Recording
from device.record.sources import silence_ends

TICK_S = 0.02
TICK_NS = round(TICK_S * NS_PER_S)

# With no frame or reading due for longer than IDLE_SKIP_S, and none for
# SETTLE_S before, replay jumps to the last tick before the next input. The
# ticks it passes over would change nothing: every time-based rule (stale
# ranges <= 2 s, camera max age <= 5 s, hold <= 10 s, persist <= 2 s: the
# config's bounds) has settled SETTLE_S after the last input, and the jump
# lands on the same 20 ms grid, so the events are those of stepping through.
IDLE_SKIP_S = 60.0
SETTLE_S = 30.0


def parse_detector_ms(spec: str) -> DetectorPace:
    """`MS` or `MS,LATENCY_MS` (the --detector-ms option)."""
    parts = spec.split(",")
    try:
        if len(parts) not in (1, 2):
            raise ValueError
        values = [float(p) for p in parts]
        return DetectorPace(values[0], values[1] if len(values) == 2 else None)
    except ValueError as err:
        detail = f": {err}" if str(err) and "could not convert" not in str(err) else ""
        raise board_profiles.BoardError(f"--detector-ms wants MS or MS,LATENCY_MS, got {spec!r}{detail}") from None


def pace_for(board: str | None, config: Config, detector_ms: str | None = None) -> DetectorPace | None:
    """The detector pace to replay at: --detector-ms if given, else the
    board's profile for the configured model and input size; None (detect
    inline, every frame) for no board or `inline`."""
    if detector_ms is not None:
        return parse_detector_ms(detector_ms)
    if board is None or board == board_profiles.INLINE:
        return None
    profiles = board_profiles.load()
    b = profiles.get(board)
    model = config.detector.model
    if model.endswith(".onnx"):  # a path: the profile is for the model the file is named after
        model = Path(model).stem
    return DetectorPace(board_profiles.config_detect_ms(b, config, profiles.detect_overhead, model))


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
    geometry = {"width": meta.camera.width, "height": meta.camera.height, "hfov_deg": meta.camera.hfov_deg}
    # The mount as it was when recorded (a recording that does not say keeps the config's).
    if meta.camera.mount_height_m is not None:
        geometry["mount_height_m"] = meta.camera.mount_height_m
    if meta.camera.pitch_deg is not None:
        geometry["pitch_deg"] = meta.camera.pitch_deg
    camera = config.camera.model_copy(update=geometry)
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
    warnings: tuple[str, ...] = ()  # the recording's (as `recording info` gives them) and the replay's
    bad_frames: int = 0
    # With a detector pace: {"detector_ms", "latency_ms", "detected", "dropped"}.
    pace: dict[str, float] | None = None

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
                    "label": e.label,
                    "bearing_deg": None if e.bearing_deg is None else round(e.bearing_deg, 1),
                    "direction": e.direction,
                    "what": e.what(),
                    **({"faults": list(e.faults)} if e.faults else {}),
                }
                for e in self.events
            ],
            "stats": self.stats,
            **({"warnings": list(self.warnings)} if self.warnings else {}),
            **({"bad_frames": self.bad_frames} if self.bad_frames else {}),
            **({"pace": self.pace} if self.pace is not None else {}),
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
    pace: DetectorPace | None = None,
) -> ReplayResult:
    """Run the pipeline over a recording. `progress(done_s, total_s)` is
    called now and then for long replays. `on_start(pipeline)` is called
    once before the first pass (to attach a viewer such as the preview),
    `on_step(pipeline)` after every pass. With `pace`, the detector is
    modelled at that speed (`PacedRunner`) instead of detecting every frame
    inline."""
    recording = Recording.open(directory)
    cfg = replay_config(config, recording)
    parts = compose_replay(recording, cfg, detector, pace)
    clock, pipeline = parts.clock, parts.pipeline
    start = recording.start_ns
    end = start + round(recording.duration_s * NS_PER_S)
    silences = silence_ends(recording)  # compose_replay feeds these to the pipeline
    # Every time an input arrives, for skipping idle stretches.
    inputs = sorted({*recording.frame_times, *(r.t_ns for r in recording.ranges), *(r.t_ns for r in silences)})
    idle_ns, settle_ns = round(IDLE_SKIP_S * NS_PER_S), round(SETTLE_S * NS_PER_S)
    skipped_ns = 0
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
                lag = (t - start - skipped_ns) / NS_PER_S - (time.monotonic() - wall0)
                if lag > 0:
                    time.sleep(lag)
            if progress is not None and time.monotonic() - last_report >= 2.0:
                last_report = time.monotonic()
                progress((t - start) / NS_PER_S, recording.duration_s)
            if t >= end:
                break
            nxt = t + TICK_NS
            i = bisect.bisect_right(inputs, t)
            if i < len(inputs) and inputs[i] - t > idle_ns and (i == 0 or t - inputs[i - 1] >= settle_ns):
                jump = t + (inputs[i] - t - 1) // TICK_NS * TICK_NS  # the last grid tick before it
                skipped_ns += jump - t
                nxt = max(nxt, jump)
            t = min(nxt, end)
    finally:
        parts.close()
    notes = list(recording.warnings)
    runner = parts.camera.runner if parts.camera is not None else None
    bad = runner.frames.bad if runner is not None else []  # type: ignore[attr-defined]
    if bad:
        notes.append(f"{len(bad)} frame(s) could not be decoded and were skipped (a camera fault while "
                     f"they lasted): {', '.join(str(b.index) for b in bad[:10])}{' ...' if len(bad) > 10 else ''}")
    notes += [f"sensor {r.sensor}: its log ends before the recording does; replayed as silent (a fault) "
              f"from {(r.t_ns - start) / NS_PER_S:.2f} s" for r in silences]
    return ReplayResult(
        frames=pipeline.stats.frames,
        duration_s=recording.duration_s,
        start_ns=start,
        events=tuple(pipeline.events),
        stats=pipeline.stats.summary(),
        static_faults=texts(parts.static_faults),
        warnings=tuple(notes),
        bad_frames=len(bad),
        pace=None if not isinstance(runner, PacedRunner) else {
            "detector_ms": runner.pace.busy_ms,
            "latency_ms": runner.pace.latency_ns / 1e6,
            "detected": runner.detected,
            "dropped": runner.dropped,
        },
    )
