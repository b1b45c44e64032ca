"""The loop: frames and ranges in, one threat and the alert out.

`Pipeline.step()` does one pass with no sleeps and no threads of its own;
time comes from the injected clock. The device runs it about 50 times a
second from `run_forever`; a replay calls it on a replay clock. Both use
the same code, so a replay is the device's behaviour on recorded input.

The camera reaches the pipeline through one `CameraPath`
(`device.camera_path`): one `poll()` for the newest results of its stages,
one `faults(now)`. On the device its stages run in their own threads, so an
ultrasonic DANGER is acted on within one loop pass, never after the next
inference; in replay they run inline (or paced) so results are deterministic.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from device.camera_path import NOTHING, CameraPath
from device.core.camera import CameraResult
from device.core.clock import Clock
from device.core.config import Config
from device.core.faults import Fault, texts
from device.core.ports import AlertSink, RangeSource, RecordSink
from device.core.types import AlertEvent, AlertLevel, Frame, Range, Threat
from device.decision.threat import ThreatEstimator
from device.output.alerts import effective_level
from device.perception.looming import LoomingResult

log = logging.getLogger(__name__)

# The live loop: 50 passes a second, so a pattern edge lands at most 20 ms
# late; after a pass that overran its slot, this much rest before the next.
LOOP_PERIOD_S = 0.02
MIN_REST_S = 0.002

STATS_WINDOW = 10_000  # frames whose times are kept: a live run must not grow for hours


class TimingWindow:
    """The newest STATS_WINDOW times in ms, in an array allocated and filled
    once, at the start: appending allocates nothing. (A deque of Python
    floats took ~32 bytes a frame until it was full, ~45 minutes into a
    run at 3.6 frames a second: a bounded history that still showed as
    creep in a 30-minute soak, and small objects that lived for minutes
    among the loop's short-lived ones, pinning the allocator's pools.)"""

    def __init__(self, size: int = STATS_WINDOW) -> None:
        self._values = np.full(size, np.nan)  # written now: resident from the start
        self._count = 0  # appended so far; the newest is at (count - 1) % size

    def append(self, ms: float) -> None:
        self._values[self._count % len(self._values)] = ms
        self._count += 1

    def __len__(self) -> int:
        return min(self._count, len(self._values))

    def median(self) -> float | None:
        return float(np.median(self._values[:len(self)])) if self._count else None


@dataclass
class StageStats:
    """Per-stage wall times in ms over the newest STATS_WINDOW frames, for
    `replay --json` and the status line."""

    detect_ms: TimingWindow = field(default_factory=TimingWindow)
    looming_ms: TimingWindow = field(default_factory=TimingWindow)
    total_ms: TimingWindow = field(default_factory=TimingWindow)
    frames: int = 0

    def summary(self) -> dict[str, float | None]:
        def med(xs: TimingWindow) -> float | None:
            m = xs.median()
            return None if m is None else round(m, 3)

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
    camera: CameraResult | None  # the newest the decision took: its distances are the decided ones
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
        camera: CameraPath | None = None,
        *,
        static_faults: tuple[Fault, ...] = (),
        recorder: RecordSink | None = None,
        on_event: Callable[[AlertEvent, Threat], None] | None = None,
        extra_faults: Callable[[], tuple[Fault, ...]] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.ranges = ranges
        self.alerter = alerter
        self.camera = camera  # its stages' results (detector, looming) and its faults
        # Faults known at start that do not clear by themselves (no model).
        self.static_faults = static_faults
        self.recorder = recorder
        self.on_event = on_event
        # Faults from parts outside the loop that come and go (the recorder, the pace).
        self.extra_faults = extra_faults
        self.estimator = ThreatEstimator(config)
        self.stats = StageStats()
        self.events: list[AlertEvent] = []
        self.event_count = 0  # every change, also those no longer in `events`
        # A live run keeps only the newest this many (None: all, as a replay must).
        self.keep_events: int | None = None
        self.threat: Threat | None = None
        self.steps = 0
        self.last_ranges: Mapping[str, Range] = {}
        # What the runner feels, computed once per pass for the pins and
        # every view; nothing at start.
        self.level = AlertLevel.CLEAR

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
        seen = self.camera.poll() if self.camera is not None else NOTHING
        result = seen.camera
        if result is not None:
            self.estimator.set_camera(result)
        if seen.flow is not None:
            self.estimator.set_flow(seen.flow)
        if seen.looming is not None:
            self.estimator.set_looming(seen.looming)
            if seen.looming.process_ms is not None:
                self.stats.looming_ms.append(seen.looming.process_ms)
        faults = self.static_faults + (self.camera.faults(now) if self.camera is not None else ())
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
                faults=texts(threat.faults),
                label=threat.label,
                bearing_deg=threat.bearing_deg,
                direction=threat.direction,
            )
            self.events.append(event)
            self.event_count += 1
            if self.keep_events is not None and len(self.events) > 2 * self.keep_events:
                del self.events[:-self.keep_events]
            log.info("alert %s %s%s", level.name, event.what(),
                     f" faults={','.join(event.faults)}" if event.faults and event.source != "fault" else "")
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
            looming=self.camera.last_looming if self.camera is not None else None,
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
