"""The loop itself: ultrasonic never waits for the detector, stale and stalled
cameras become faults, the alert reaches the (mock) pins."""

from __future__ import annotations

import itertools
import statistics
import threading
import time

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from device.camera_path import DetectStage, LoomingStage
from device.camera_path.runners import IDLE_S
from device.core.clock import ReplayClock
from device.core.config import Config
from device.core.faults import Fault, Kind, Part, texts
from device.core.types import AlertLevel, Detections, Range
from device.decision.looming import looming_params
from device.output.alerts import Alerter
from device.perception.looming import LoomingEstimator
from device.pipeline import LOOP_PERIOD_S, MIN_REST_S, Pipeline, run_forever
from device.sensing.ultrasonic import RecordedRanges
from fakes import BlockedDetector, NoDetections, SlotFrames, inline_camera, ns, threaded_camera

CFG = Config()
SENSOR = CFG.ranging.sensors[0].name


def alerter() -> tuple[Alerter, MockFactory]:
    factory = MockFactory(pin_class=MockPWMPin)
    return Alerter(CFG.outputs, pin_factory=factory), factory


def danger_ranges(t0: float) -> list[Range]:
    return [Range(ns(t0 + i * 0.06), SENSOR, 0.5) for i in range(3)]


def test_ultrasonic_danger_does_not_wait_for_the_detector() -> None:
    clock = ReplayClock(0)
    frames = SlotFrames()
    det = BlockedDetector()
    camera = threaded_camera(frames, DetectStage(det, CFG.camera), clock)
    alert, factory = alerter()
    try:
        pipe = Pipeline(CFG, clock, RecordedRanges(danger_ranges(0.0)), alert, camera)
        frames.put(0, 0)
        assert det.entered.wait(5), "the detector thread never started"
        clock.set(ns(0.13))
        threat = pipe.step()  # the detector is still blocked in inference
        assert threat.level == AlertLevel.DANGER and threat.source == "ultrasonic"
        assert factory.pin(CFG.outputs.haptic_pin).state == 1.0
        assert factory.pin(CFG.outputs.buzzer_pin).state == 1
    finally:
        det.release.set()
        camera.close()
        alert.close()


def test_camera_stall_becomes_fault_within_half_a_second_and_clears() -> None:
    clock = ReplayClock(0)
    frames = SlotFrames()
    camera = inline_camera(frames, DetectStage(NoDetections(), CFG.camera), clock)
    alert, _ = alerter()
    pipe = Pipeline(CFG, clock, RecordedRanges([]), alert, camera)
    levels = []
    t = 0.0
    for i in range(60):  # 1.2 s at 50 Hz; frames stop after 0.3 s
        t = i * 0.02
        clock.set(ns(t))
        if t <= 0.3 and i % 5 == 0:
            frames.put(ns(t), i)
        levels.append((t, pipe.step()))
    fault_at = next(t for t, th in levels if th.faults)
    assert 0.3 < fault_at <= 0.3 + 0.5 + 0.02
    assert pipe.events[-1].level == AlertLevel.FAULT and pipe.events[-1].source == "fault"
    # Frames come back: the fault clears by itself.
    clock.set(ns(t + 0.02))
    frames.put(ns(t + 0.02), 999)
    assert pipe.step().faults == ()
    assert pipe.events[-1].level == AlertLevel.CLEAR
    alert.close()


def test_frozen_image_becomes_fault_within_half_a_second_and_clears() -> None:
    clock = ReplayClock(0)
    frames = SlotFrames()
    camera = inline_camera(frames, DetectStage(NoDetections(), CFG.camera), clock)
    alert, _ = alerter()
    pipe = Pipeline(CFG, clock, RecordedRanges([]), alert, camera)
    fault_at = None
    for i in range(60):  # frames keep coming at 10 fps, but identical from 0.3 s on
        t = i * 0.02
        clock.set(ns(t))
        if i % 5 == 0:
            frames.put(ns(t), i, frozen=t >= 0.3)
        threat = pipe.step()
        if threat.faults and fault_at is None:
            fault_at = t
            assert threat.faults[0].kind is Kind.FROZEN and "frozen" in str(threat.faults[0])
    assert fault_at is not None and fault_at <= 0.3 + 0.5 + 0.1
    clock.set(ns(1.22))
    frames.put(ns(1.22), 100)
    assert pipe.step().faults == ()
    alert.close()


def test_detector_crash_is_a_fault_not_silence() -> None:
    class Crashing:
        def detect(self, image: np.ndarray) -> Detections:
            raise RuntimeError("onnxruntime exploded")

        def close(self) -> None:
            pass

    clock = ReplayClock(0)
    frames = SlotFrames()
    camera = threaded_camera(frames, DetectStage(Crashing(), CFG.camera), clock)
    alert, _ = alerter()
    try:
        pipe = Pipeline(CFG, clock, RecordedRanges([]), alert, camera)
        frames.put(0, 0)
        detect = camera.runner._threads[1]
        detect.join(5)
        assert not detect.is_alive()
        threat = pipe.step()
        assert any("onnxruntime exploded" in f for f in texts(threat.faults))
        assert pipe.events[-1].level == AlertLevel.FAULT
    finally:
        camera.close()
        alert.close()


def test_static_fault_and_stale_range_is_ignored() -> None:
    clock = ReplayClock(0)
    alert, factory = alerter()
    pipe = Pipeline(CFG, clock, RecordedRanges(danger_ranges(0.0)), alert, None,
                    static_faults=(Fault(Part.MODEL, Kind.UNAVAILABLE, "missing"),))
    clock.set(ns(0.12))
    assert pipe.step().level == AlertLevel.DANGER  # danger plays over a fault
    clock.set(ns(0.12) + ns(CFG.ranging.max_age_s) + ns(CFG.alerts.hold_s) + 1)
    threat = pipe.step()
    assert threat.level == AlertLevel.CLEAR
    assert [e.level for e in pipe.events] == [AlertLevel.DANGER, AlertLevel.FAULT]
    assert threat.faults == (Fault(Part.MODEL, Kind.UNAVAILABLE, "missing"),)  # typed to the pins
    assert texts(threat.faults) == ("model: missing",)  # the human text, derived from the typed fault
    alert.close()


@pytest.mark.parametrize("n", [1, 3])
def test_events_record_each_change_once(n: int) -> None:
    clock = ReplayClock(0)
    alert, _ = alerter()
    pipe = Pipeline(CFG, clock, RecordedRanges(danger_ranges(0.0)), alert, None)
    for i in range(100 * n):
        clock.set(ns(i * 0.02))
        pipe.step()
    assert [e.level for e in pipe.events] == [AlertLevel.DANGER, AlertLevel.CLEAR]
    assert pipe.events[1].source == "ultrasonic"
    alert.close()


class _TimedPasses:
    """run_forever's company on a made-up clock: each step() costs the next
    of `costs` seconds, the stop event's wait() passes the time it is asked
    for, and the loop stops after the last cost."""

    def __init__(self, costs: list[float]) -> None:
        self.t, self.costs, self.starts = 100.0, list(costs), []

    def now(self) -> float:
        return self.t

    def step(self):
        self.starts.append(self.t)
        self.t += self.costs.pop(0)

    def is_set(self) -> bool:
        return not self.costs

    def wait(self, timeout: float) -> bool:
        assert timeout >= 0
        self.t += timeout
        return False


def test_the_loop_keeps_its_50_hz_whatever_a_pass_costs_and_never_bursts_to_catch_up() -> None:
    fake = _TimedPasses([0.001, 0.015, 0.018, 0.005, 0.05, 0.001, 0.001, 0.001])
    run_forever(fake, fake, now=fake.now)  # type: ignore[arg-type]
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(fake.starts)]
    # cheap or dear, a pass starts every 20 ms (a fixed sleep after each would give 21-38 ms) ...
    assert gaps[:4] == [LOOP_PERIOD_S] * 4
    # ... one that overruns is followed after a short rest, and the schedule goes on from there
    assert gaps[4] == round(0.05 + MIN_REST_S, 6)
    assert gaps[5:] == [LOOP_PERIOD_S] * 2


class _ClosedUnder(SlotFrames):
    """A source whose slot was closed under its reader (a camera that died):
    wait() answers at once and latest() holds nothing. Notes when it is asked."""

    def __init__(self) -> None:
        super().__init__()
        self.slot.close()
        self.asked: list[float] = []
        self.thrice = threading.Event()

    def latest(self):
        self.asked.append(time.monotonic())
        if len(self.asked) >= 3:
            self.thrice.set()
        return super().latest()


@pytest.mark.parametrize("stages", ["detector", "detector and looming"])
def test_a_worker_whose_source_died_rests_instead_of_spinning(stages: str) -> None:
    # A spinning worker asks again within microseconds, taking a core from
    # the loop until it is closed; a resting one waits IDLE_S between asks.
    # Only a lower bound is checked: a loaded machine can only make it longer.
    src = _ClosedUnder()
    sides = [LoomingStage(LoomingEstimator(looming_params(CFG)))] if "looming" in stages else []
    closer = threaded_camera(src, DetectStage(NoDetections(), CFG.camera), ReplayClock(0), sides=sides)
    try:
        assert src.thrice.wait(10), "the worker stopped asking"
        assert src.asked[2] - src.asked[0] >= 2 * IDLE_S * 0.9
    finally:
        closer.close()


def test_the_per_frame_timings_take_their_memory_once_at_the_start() -> None:
    """A bounded history that is still filling shows as creep in a soak:
    the timing windows are allocated whole when made, and appending to them
    keeps no new object (tracemalloc counts numpy's buffers too)."""
    import tracemalloc

    from device.pipeline import STATS_WINDOW, StageStats

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        stats = StageStats()
        made = tracemalloc.get_traced_memory()[0]
        for i in range(STATS_WINDOW // 2):
            stats.detect_ms.append(i * 1.5)
            stats.looming_ms.append(i * 1.5)
            stats.total_ms.append(i * 1.5)
        grew = tracemalloc.get_traced_memory()[0] - made
    finally:
        tracemalloc.stop()
    assert made - before >= 3 * 8 * STATS_WINDOW  # three windows of float64, whole
    assert grew < 4096  # a deque of floats: 3 * 5000 * 32 bytes
    assert len(stats.total_ms) == STATS_WINDOW // 2
    assert stats.summary()["total_ms"] == round(statistics.median(i * 1.5 for i in range(STATS_WINDOW // 2)), 3)


def test_the_per_frame_timings_and_the_live_event_list_are_bounded() -> None:
    """A two-hour run on a 512 MB board must stay flat (issue 23): the timing
    lists keep a window of the newest frames, and a live pipeline the newest
    alert changes (with the count of all of them)."""
    from device.pipeline import STATS_WINDOW, StageStats

    stats = StageStats()
    for i in range(3 * STATS_WINDOW):
        stats.detect_ms.append(float(i))
        stats.looming_ms.append(float(i))
        stats.total_ms.append(float(i))
    assert max(len(stats.detect_ms), len(stats.looming_ms), len(stats.total_ms)) <= STATS_WINDOW
    assert stats.summary()["total_ms"] == statistics.median(range(2 * STATS_WINDOW, 3 * STATS_WINDOW))

    clock = ReplayClock(0)
    alert, _ = alerter()
    ranges = [Range(ns(k * 0.5 + i * 0.06), SENSOR, 0.5) for k in range(0, 400, 2) for i in range(3)]
    pipe = Pipeline(CFG, clock, RecordedRanges(ranges), alert, None)
    pipe.keep_events = 10
    for i in range(100 * 100):
        clock.set(ns(i * 0.02))
        pipe.step()
    assert pipe.event_count >= 100
    assert len(pipe.events) <= 20
    assert pipe.events[-1].level == AlertLevel.CLEAR
    alert.close()
