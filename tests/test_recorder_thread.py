"""The recorder off the alert loop: the loop and the detector thread only
enqueue; a sink that blocks (a slow SD card deleting a segment) or raises
costs footage, never a loop pass or the camera."""

from __future__ import annotations

import threading
from collections.abc import Iterable

import numpy as np

from device.camera_path import DetectStage
from device.core.clock import NS_PER_S, ReplayClock
from device.core.config import Config
from device.core.faults import Kind, Part
from device.core.types import AlertEvent, AlertLevel, Frame, Range
from device.pipeline import Pipeline
from device.record.worker import STUCK_S, RecorderThread, summary
from device.sensing.ultrasonic import RecordedRanges
from fakes import NoDetections, SlotFrames, inline_camera

CFG = Config()
SENSOR = CFG.ranging.sensors[0].name


def frame(i: int) -> Frame:
    return Frame(i, i * NS_PER_S // 15, np.full((48, 64, 3), i % 256, np.uint8))


class BlockingSink:
    """Its first write blocks until released (10 s at most, so a broken
    build fails instead of hanging); notes which thread wrote."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.threads: set[str] = set()
        self.frames: list[int] = []
        self.ranges: list[Range] = []
        self.events: list[AlertEvent] = []
        self.fault: str | None = None
        self.closed = False

    def _block(self) -> None:
        self.threads.add(threading.current_thread().name)
        if not self.entered.is_set():
            self.entered.set()
            self.release.wait(10.0)

    def write_frame(self, frame: Frame) -> None:
        self._block()
        self.frames.append(frame.seq)

    def write_ranges(self, ranges: Iterable[Range]) -> None:
        self._block()
        self.ranges += list(ranges)

    def on_event(self, event: AlertEvent) -> None:
        self.events.append(event)

    def close(self) -> None:
        self.closed = True


class Alerts:
    def __init__(self) -> None:
        self.updates: list[tuple[AlertLevel, int]] = []

    def update(self, level: AlertLevel, now_ns: int, direction: str | None = None) -> None:
        self.updates.append((level, now_ns))


def test_a_blocked_recorder_delays_no_loop_pass() -> None:
    # 2 s of loop at 50 Hz on an exact clock, a frame every 4th pass, a
    # reading every 3rd: every pass runs, at its own time, while the sink is
    # still blocked in its first write. Before, write_ranges ran in step()
    # and write_frame in the camera's poll: the first pass would have waited
    # the sink's 2 s, on the loop's own thread.
    sink = BlockingSink()
    rec = RecorderThread(sink, max_frames=4)
    clock = ReplayClock(0)
    frames = SlotFrames()
    ranges = [Range(i * 60_000_000, SENSOR, 3.0) for i in range(34)]
    alerts = Alerts()
    pipe = Pipeline(CFG, clock, RecordedRanges(ranges), alerts, inline_camera(frames, DetectStage(NoDetections(), CFG.camera), clock, rec),
                    recorder=rec)
    try:
        for i in range(100):
            clock.set(i * 20_000_000)
            if i % 4 == 0:
                frames.slot.put(frame(i // 4))
            pipe.step()
            if i == 0:
                assert sink.entered.wait(2.0), "the recorder thread never started"
        assert not sink.release.is_set() and len(sink.frames) + len(sink.ranges) == 0  # still in its first write
        assert pipe.steps == 100
        assert [t for _, t in alerts.updates] == [i * 20_000_000 for i in range(100)]  # every tick, on time
        assert sink.threads == {"rearguard-record"}
        stats = rec.stats()
        # The sink is stuck in the first pass's readings: four frames queued,
        # the other 21 dropped and counted.
        assert stats.frames_dropped == 25 - 4
        assert summary(stats) == "recording fell behind: dropped 21 frames"
    finally:
        sink.release.set()
        rec.close()
    assert sink.closed
    assert sink.frames == [0, 1, 2, 3]  # what was queued is written, in order
    assert [r.t_ns for r in sink.ranges] == [r.t_ns for r in ranges]  # readings fit their own bound: none lost


def test_a_stuck_writer_becomes_a_fault_named_for_it() -> None:
    now = [0.0]
    sink = BlockingSink()
    rec = RecorderThread(sink, max_frames=2, monotonic=lambda: now[0])
    try:
        rec.write_frame(frame(0))
        assert sink.entered.wait(2.0)
        rec.write_frame(frame(1))
        assert rec.fault is None  # busy, not yet stuck
        now[0] = STUCK_S + 1
        assert rec.fault == f"recording: writer stuck for {STUCK_S + 1:.0f} s (0 frames dropped)"
        [fault] = rec.faults()  # typed where it arises: stuck is stalled, not failed
        assert (fault.part, fault.kind) == (Part.RECORDING, Kind.STALLED) and str(fault) == rec.fault
    finally:
        sink.release.set()
        rec.close()
    assert rec.fault is None


def test_an_exception_in_the_sink_is_a_recording_fault_and_the_thread_goes_on() -> None:
    class Raising(BlockingSink):
        def write_frame(self, frame: Frame) -> None:
            if frame.seq == 1:
                raise KeyError("boom")
            if frame.seq == 2:
                self._block()  # holds the thread so the fault can be read
            self.frames.append(frame.seq)

    sink = Raising()
    rec = RecorderThread(sink)
    rec.write_frame(frame(0))
    rec.write_frame(frame(1))
    rec.write_frame(frame(2))
    try:
        assert sink.entered.wait(2.0)
        assert rec.fault == "recording: KeyError: 'boom'"
    finally:
        sink.release.set()
    rec.note_event(AlertEvent(0, AlertLevel.WARN, "camera", 3.0, 1.5))
    rec.close()
    assert sink.frames == [0, 2]
    assert [e.level for e in sink.events] == [AlertLevel.WARN]
    assert rec.fault is None  # cleared by the next good write


def test_enqueue_after_close_is_ignored() -> None:
    sink = BlockingSink()
    sink.release.set()
    rec = RecorderThread(sink)
    rec.close()
    rec.write_frame(frame(0))
    rec.write_ranges([Range(0, SENSOR, 1.0)])
    assert sink.frames == [] and sink.closed
