"""The detector's timing model in replay (PacedRunner): deterministic, and it
takes and drops the same frames as the threaded device does with a detector
that takes the same time."""

from __future__ import annotations

import queue
import threading

import numpy as np
import pytest

from device.camera_path import DetectorPace, DetectStage, PacedRunner
from device.core.clock import ReplayClock
from device.core.config import Config
from device.core.types import Detections, Frame
from device.perception import boards
from fakes import SlotFrames, threaded_camera

MS = 1_000_000


def frame(seq: int, t_ns: int) -> Frame:
    rng = np.random.default_rng(seq + 1)  # a real sensor's noise: every frame differs
    image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    image[0, 0, 0] = seq % 256  # the detector reads which frame it was given
    return Frame(seq, t_ns, image)


class ListFrames:
    """A TimedFrameSource over a list of frames (what RecordedFrames is for a recording)."""

    def __init__(self, frames: list[Frame]) -> None:
        self._frames = frames
        self._i = 0
        self.dropped = 0
        self.error: str | None = None

    def next_t_ns(self) -> int | None:
        return self._frames[self._i].t_ns if self._i < len(self._frames) else None

    def arrived_ns(self, t_ns: int) -> int | None:
        due = [f.t_ns for f in self._frames if f.t_ns <= t_ns]
        return due[-1] if due else None

    def latest_at(self, t_ns: int) -> Frame | None:
        newest = None
        while self._i < len(self._frames) and self._frames[self._i].t_ns <= t_ns:
            if newest is not None:
                self.dropped += 1
            newest = self._frames[self._i]
            self._i += 1
        return newest

    def close(self) -> None:
        self._i = len(self._frames)


class Recorder:
    """A detector that only notes which frames it saw."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def detect(self, image: np.ndarray) -> Detections:
        self.seen.append(int(image[0, 0, 0]))
        return Detections.empty()

    def close(self) -> None:
        pass


def arrivals(n: int, period_ms: float, jitter: list[float] | None = None) -> list[Frame]:
    jitter = jitter or [0.0]
    return [frame(i, round((i * period_ms + jitter[i % len(jitter)]) * MS)) for i in range(n)]


def run_paced(frames: list[Frame], pace: DetectorPace, tick_ms: float = 20.0, end_ms: float | None = None):
    clock = ReplayClock(0)
    cam = PacedRunner(ListFrames(frames), DetectStage(Recorder(), Config().camera), pace, clock)
    delivered: list[tuple[int, int]] = []  # (loop time, frame seq)
    t = 0
    end = round((end_ms if end_ms is not None else frames[-1].t_ns / MS + 1000) * MS)
    while t <= end:
        clock.set(t)
        r = cam.poll().get("camera")
        if r is not None:
            delivered.append((t, r.seq))
        t += round(tick_ms * MS)
    return cam, delivered


def test_same_input_and_pace_give_the_same_frames_and_times() -> None:
    frames = arrivals(60, 66.7, jitter=[0, 3, -2, 7, 1])
    a, da = run_paced(frames, DetectorPace(155.0))
    b, db = run_paced(frames, DetectorPace(155.0))
    assert a.taken == b.taken and da == db and a.dropped == b.dropped
    assert a.dropped > 0 and a.detected + a.dropped == len(frames)


def test_result_reaches_the_loop_when_the_inference_would_have_finished() -> None:
    frames = arrivals(10, 100.0)  # 10 fps
    cam, delivered = run_paced(frames, DetectorPace(130.0), tick_ms=10.0)
    # Frame 0 at 0 ms, ready at 130; frame 1 (100 ms) taken at 130, ready at 260;
    # frame 2 (200 ms) waiting at 260 -> ready 390; frame 3 (300) -> 520; frame 5 (500) at 520 ...
    assert cam.taken[:5] == [0, 1, 2, 3, 5]
    assert delivered[:5] == [(130 * MS, 0), (260 * MS, 1), (390 * MS, 2), (520 * MS, 3), (650 * MS, 5)]
    # The loop never sees a result before its inference is done, whatever its tick.
    _, coarse = run_paced(frames, DetectorPace(130.0), tick_ms=50.0)
    assert coarse[:3] == [(150 * MS, 0), (300 * MS, 1), (400 * MS, 2)]


def test_latency_longer_than_busy_time_delays_results_not_the_detector() -> None:
    frames = arrivals(10, 100.0)
    fast, d1 = run_paced(frames, DetectorPace(130.0), tick_ms=10.0)
    late, d2 = run_paced(frames, DetectorPace(130.0, 200.0), tick_ms=10.0)
    assert fast.taken == late.taken
    assert [t - 70 * MS for t, _ in d2] == [t for t, _ in d1]


def test_a_fast_detector_takes_every_frame_as_it_arrives() -> None:
    frames = arrivals(30, 66.7)
    cam, delivered = run_paced(frames, DetectorPace(10.0), tick_ms=20.0)
    assert cam.taken == list(range(30)) and cam.dropped == 0


def test_bad_pace_is_refused() -> None:
    for bad in (0.0, -5.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            DetectorPace(bad)
    with pytest.raises(ValueError):
        DetectorPace(100.0, 50.0)


# ------------------------------------------------ against the threaded device


class SteppedDetector:
    """A detector in a real thread whose inference ends only when the test
    says the modelled time has passed: the schedule is the test's, not the
    machine's, so there is no timing tolerance."""

    def __init__(self) -> None:
        self.started: queue.Queue[int] = queue.Queue()
        self.finish = threading.Semaphore(0)

    def detect(self, image: np.ndarray) -> Detections:
        self.started.put(int(image[0, 0, 0]))
        if not self.finish.acquire(timeout=30):
            raise RuntimeError("test never finished the inference")
        return Detections.empty()

    def close(self) -> None:
        self.finish.release()


def run_threaded(frames: list[Frame], busy_ms: float) -> tuple[list[int], int]:
    """Feed frames to the threaded camera path at their times and end each
    inference busy_ms after it began, in simulated time."""
    src = SlotFrames()
    det = SteppedDetector()
    cam = threaded_camera(src, DetectStage(det, Config().camera), ReplayClock(0))
    inbox = cam.runner._inbox[0]  # noqa: SLF001 (the detector's one-slot mailbox, behind the frames thread)
    tick = threading.Event()

    def handed_on(f: Frame) -> None:  # bounded wait: the frames thread has put f in the mailbox
        for _ in range(3000):
            if inbox._value is f:  # noqa: SLF001
                return
            tick.wait(0.01)
        raise AssertionError("the frames thread never handed the frame on")

    busy_ns = round(busy_ms * MS)
    taken: list[int] = []
    done_at: int | None = None  # when the running inference ends (None: idle)
    try:
        i = 0
        while i < len(frames) or done_at is not None:
            if done_at is not None and (i >= len(frames) or done_at < frames[i].t_ns):
                now, done_at = done_at, None
                waiting = inbox._full  # noqa: SLF001 (a frame is in the mailbox)
                det.finish.release()
                if waiting:  # the worker takes it straight away
                    taken.append(det.started.get(timeout=30))
                    done_at = now + busy_ns
                continue
            f = frames[i]
            i += 1
            src.slot.put(f)
            if done_at is None:  # idle: the worker wakes for this frame
                taken.append(det.started.get(timeout=30))
                done_at = f.t_ns + busy_ns
            else:
                handed_on(f)
    finally:
        cam.close()
    return taken, inbox.dropped


@pytest.mark.parametrize("period_ms,busy_ms,jitter", [
    (66.7, 155.1, [0.0]),  # 15 fps camera, pi4 profile
    (66.7, 418.0, [0.0, 9.0, -4.0]),  # zero2w profile, irregular frame times
    (100.0, 130.0, [0.0]),  # 10 fps (vtest)
    (66.7, 40.0, [0.0, 30.0]),  # faster than the camera: nothing dropped
])
def test_paced_camera_drops_the_frames_the_threaded_device_drops(period_ms, busy_ms, jitter) -> None:
    frames = arrivals(40, period_ms, jitter)
    threaded, threaded_dropped = run_threaded(frames, busy_ms)
    paced, _ = run_paced(frames, DetectorPace(busy_ms))
    assert paced.taken == threaded
    assert paced.dropped == threaded_dropped
    assert paced.detected + paced.dropped == len(frames)


# ------------------------------------------------------------------ profiles


def test_board_profiles_parse_and_give_a_pace_for_each_shipped_model() -> None:
    from device.app.replay import pace_for

    profiles = boards.load()
    assert set(profiles.boards) == {"pi5", "pi4", "zero2w"}
    for b in profiles.boards.values():
        assert b.status in ("estimate", "measured") and b.source
        for model in ("yolox_nano", "yolox_nano_dynamic"):
            assert {416, 320, 256, (416, 256), (320, 192)} <= set(b.inference_ms[model])
    cfg = Config()
    pi4 = pace_for("pi4", cfg)
    assert pi4 is not None and pi4.busy_ms == round(260 * (1 + profiles.detect_overhead), 1)
    wide = cfg.model_copy(update={"detector": cfg.detector.model_copy(update={"input_width": 416, "input_height": 256})})
    assert pace_for("pi4", wide).busy_ms == round(182 * (1 + profiles.detect_overhead), 1)  # type: ignore[union-attr]
    crop = wide.model_copy(update={"detector": wide.detector.model_copy(update={"lookahead_every": 2})})
    assert pace_for("pi4", crop).busy_ms == round(182 * 1.1 * 1.5, 1)  # type: ignore[union-attr]
    instead = crop.model_copy(update={"detector": crop.detector.model_copy(update={"lookahead_mode": "instead"})})
    assert pace_for("pi4", instead).busy_ms == round(182 * 1.1, 1)  # type: ignore[union-attr]  # the crop replaces
    assert pace_for("inline", cfg) is None and pace_for(None, cfg) is None
    assert pace_for("pi4", cfg, "80,120") == DetectorPace(80.0, 120.0)
    with pytest.raises(boards.BoardError, match="unknown board 'pi9'"):
        pace_for("pi9", cfg)
    with pytest.raises(boards.BoardError, match="no figure for yolox_nano at 288"):
        pace_for("zero2w", cfg.model_copy(update={"detector": cfg.detector.model_copy(update={"input_size": 288})}))
    assert profiles.for_device_tree("Raspberry Pi 4 Model B Rev 1.4\x00").name == "pi4"  # type: ignore[union-attr]
    assert profiles.for_device_tree("Raspberry Pi Zero 2 W Rev 1.0").name == "zero2w"  # type: ignore[union-attr]
    assert profiles.for_device_tree("Raspberry Pi 3 Model B") is None


def test_a_bad_profile_is_a_clear_error() -> None:
    with pytest.raises(boards.BoardError, match="boards.x.yolox_nano.416"):
        boards.parse({"detect_overhead": 0.1, "boards": {"x": {
            "title": "X", "device_tree": "X", "status": "estimate", "source": "s",
            "yolox_nano": {"416": [200, 100]}}}})


def test_the_performance_docs_estimate_table_is_the_board_file() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "performance.md").read_text(encoding="utf-8")
    assert boards.estimate_table() in doc


# ------------------------------------------- issue 13: live versus replay


@pytest.mark.real_model
def test_an_irregular_slow_detector_gives_no_false_warn_on_vtest(tmp_path, shared, model_path) -> None:
    """Live on a loaded machine vtest once gave WARN at 8.01 m, TTC 1.78 s;
    the full series gives none. Reproduced with the timing model (140 ms +
    0-80 ms a frame, seed 3 gave WARN at 3.02 s, 7.98 m, TTC 2.03 s): a
    nearer person's box taking over a far person's track read as growth.
    The same pace gives the same events twice, and no WARN now."""
    from device.app.replay import replay
    from device.record.format import from_video

    rec = from_video(shared / "footage" / "vtest.avi", tmp_path / "vt", max_frames=60)
    cfg = Config()
    cfg = cfg.model_copy(update={"detector": cfg.detector.model_copy(update={"model": str(model_path)})})
    pace = DetectorPace(140.0, jitter_ms=80.0, seed=3)
    a = replay(rec, cfg, pace=pace)
    b = replay(rec, cfg, pace=pace)
    assert a.events == b.events and a.pace == b.pace
    assert a.pace["dropped"] > 0  # type: ignore[index]
    assert not [e for e in a.events if e.level.name in ("WARN", "DANGER")], a.events


def stalls(frames: list[Frame], busy_ms: float, end_ms: int) -> tuple[PacedRunner, list[tuple[int, str]]]:
    """(runner, [(loop ms, fault text)]) of the camera's STALLED faults, polled every 10 ms."""
    from device.camera_path import CameraPath
    from device.core.faults import Kind

    clock = ReplayClock(0)
    runner = PacedRunner(ListFrames(frames), DetectStage(Recorder(), Config().camera), DetectorPace(busy_ms), clock)
    path = CameraPath(runner, clock, max_age_s=0.5)
    out = []
    for t in range(0, end_ms, 10):
        clock.set(t * MS)
        path.poll()
        out += [(t, f.detail) for f in path.faults(t * MS) if f.kind is Kind.STALLED]
    return runner, out


def test_a_detector_slower_than_max_age_is_no_stalled_camera_and_a_stop_still_is() -> None:
    """The main stage takes a frame each time it comes free: at a Pi Zero's
    slow end (545 ms) every frame it took was older than camera.max_age_s
    (0.5 s) before it took the next, and the camera read 'no frame for 0.5 s'
    twice a second while it delivered 15. The camera's stall is timed on the
    frames it delivers, taken or not; a camera that stops is a fault
    max_age_s after its last frame, whatever the detector's pace."""
    frames = arrivals(45, 66.7)  # 3 s at 15 frames/s, then nothing
    last = frames[-1].t_ns
    for busy_ms in (545.0, 40.0):
        _, stalled = stalls(frames, busy_ms, 4_500)
        assert stalled, busy_ms
        first = stalled[0][0] * MS
        assert last + 500 * MS < first <= last + 510 * MS, (busy_ms, stalled[:2])  # never while frames came
        assert stalled[0][1].startswith("no frame for")
        assert [t for t, _ in stalled] == list(range(stalled[0][0], 4_500, 10))


def test_a_detector_that_stops_taking_frames_is_a_fault_after_its_own_pace() -> None:
    """Frames keep coming but the main stage takes none (a hung inference):
    a fault once the newest frame it took is older than max_age_s plus its
    pace between frames (capped at max_age_s; all of it before the pace is
    known)."""
    frames = arrivals(90, 66.7)  # 6 s at 15 frames/s
    runner, stalled = stalls(frames, 5_000.0, 4_000)  # one frame at 0, then busy for 5 s
    assert runner.taken == [0]
    assert stalled and stalled[0][0] == 1_010 and stalled[0][1].startswith("no frame detected for"), stalled[:2]
    # With its pace known (545 ms: taken at 0, 0.6, 1.2 ... s), frames 0.5 + 0.55 s old are its normal.
    _, normal = stalls(frames, 545.0, 5_900)
    assert normal == []
