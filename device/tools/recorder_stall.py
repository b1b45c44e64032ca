"""How late the alert loop's ticks are while the recorder is stuck.

    python -m device.tools.recorder_stall [--direct] [--block-s 2] [--seconds 6]

Runs the device's loop (`run_forever`, real threads, the monotonic clock) with
a simulated ultrasonic sensor and a 15 fps camera through the detector
thread, recording into a temporary directory. After 1 s the recording sink
blocks once for --block-s seconds inside a frame write, holding its lock as
a segment rotation with a slow `shutil.rmtree` on an SD card would. With the
recorder thread (the default) the loop only enqueues; `--direct` wires the
sink straight into the loop and the detector thread, as before the recorder
had a thread of its own. Prints the tick lateness: the time between two
passes reaching the pins, minus the loop period.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Iterable
from itertools import pairwise

import numpy as np

from device.camera_path import CameraPath, DetectStage, ThreadedRunner
from device.core.clock import MonotonicClock
from device.core.config import Config
from device.core.types import AlertLevel, Detections, Frame, Range
from device.pipeline import Pipeline, run_forever
from device.record.segments import SegmentedRecorder
from device.record.worker import RecorderThread
from device.sensing.camera import LatestSlot

PERIOD_S = 0.02


class StallingSink:
    """A SegmentedRecorder whose first frame write after `at_s` blocks for `block_s`, under its lock."""

    def __init__(self, inner: SegmentedRecorder, at_s: float, block_s: float) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self._at = time.monotonic() + at_s
        self._block_s = block_s
        self.stalled = False

    @property
    def fault(self) -> str | None:
        return self.inner.fault

    def write_frame(self, frame: Frame) -> None:
        with self._lock:
            if not self.stalled and time.monotonic() >= self._at:
                self.stalled = True
                time.sleep(self._block_s)  # the slow delete this tool is about
            self.inner.write_frame(frame)

    def write_ranges(self, ranges: Iterable[Range]) -> None:
        with self._lock:
            self.inner.write_ranges(ranges)

    def close(self) -> None:
        self.inner.close()


class Camera15:
    """Frames at 15 fps from a thread, like a camera."""

    width, height = 640, 360

    def __init__(self, clock: MonotonicClock) -> None:
        self.slot: LatestSlot[Frame] = LatestSlot()
        self.error: str | None = None
        self._stop = threading.Event()
        self._clock = clock
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        rng = np.random.default_rng(0)
        base = rng.integers(0, 256, (self.height, self.width, 3), dtype=np.uint8)
        seq = 0
        while not self._stop.wait(1 / 15):
            image = base.copy()
            image[0, :8] = seq % 256  # frames differ, as a real sensor's do
            self.slot.put(Frame(seq, self._clock.now_ns(), image))
            seq += 1

    def latest(self) -> Frame | None:
        return self.slot.take()

    def wait(self, timeout: float) -> bool:
        return self.slot.wait(timeout)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.slot.close()


class Sensor:
    """A reading on every poll, so every pass hands ranges to the recorder."""

    def __init__(self, name: str) -> None:
        self.name = name

    def poll(self, now_ns: int) -> list[Range]:
        return [Range(now_ns, self.name, 3.0)]

    def close(self) -> None:
        pass


class NoDetections:
    def detect(self, image: np.ndarray) -> Detections:
        return Detections.empty()

    def close(self) -> None:
        pass


class TimedAlerts:
    """Notes when each pass reaches the pins."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def update(self, level: AlertLevel, now_ns: int, direction: str | None = None) -> None:
        self.times.append(time.monotonic())


def measure(direct: bool, block_s: float, seconds: float) -> dict[str, float]:
    cfg = Config()
    clock = MonotonicClock()
    with tempfile.TemporaryDirectory() as d:
        segments = SegmentedRecorder(d, width=640, height=360, fps=15, hfov_deg=66.0, sensors=cfg.ranging.sensors,
                                     source="recorder_stall", segment_s=60, budget_mb=1000, min_free_mb=10)
        sink = StallingSink(segments, 1.0, block_s)
        recorder = sink if direct else RecorderThread(sink)
        frames = Camera15(clock)
        camera = CameraPath(ThreadedRunner(frames, DetectStage(NoDetections(), cfg.camera), (), recorder), clock,
                            cfg.camera.max_age_s)
        camera.start()
        alerts = TimedAlerts()
        pipe = Pipeline(cfg, clock, Sensor(cfg.ranging.sensors[0].name), alerts, camera, recorder=recorder)
        stop = threading.Event()
        threading.Timer(seconds, stop.set).start()
        run_forever(pipe, stop, period_s=PERIOD_S)
        camera.close()
        recorder.close()
        dropped = recorder.stats().frames_dropped if isinstance(recorder, RecorderThread) else 0
    t = alerts.times
    late = [(b - a - PERIOD_S) * 1e3 for a, b in pairwise(t)]
    return {
        "passes": len(t),
        "median_ms": statistics.median(late),
        "p99_ms": statistics.quantiles(late, n=100)[98],
        "max_ms": max(late),
        "late_100ms": sum(1 for x in late if x > 100),
        "frames_dropped": dropped,
        "frames": pipe.stats.frames,
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m device.tools.recorder_stall", description=__doc__.split("\n\n")[0])
    p.add_argument("--direct", action="store_true", help="the sink in the loop, no recorder thread (the old wiring)")
    p.add_argument("--block-s", type=float, default=2.0, help="how long the sink blocks once (default 2)")
    p.add_argument("--seconds", type=float, default=6.0, help="how long to run (default 6)")
    args = p.parse_args(argv)
    r = measure(args.direct, args.block_s, args.seconds)
    wiring = "direct (sink in the loop)" if args.direct else "recorder thread"
    print(f"{wiring}: sink blocks {args.block_s:g} s once; {r['passes']} passes in {r['seconds']:g} s, "
          f"{r['frames']} camera results")
    print(f"  tick lateness ms: median {r['median_ms']:.2f}, p99 {r['p99_ms']:.2f}, max {r['max_ms']:.1f}; "
          f"ticks over 100 ms late: {r['late_100ms']}; frames dropped by the recorder: {r['frames_dropped']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
