"""The flow stage's algorithm (device.perception.flow) on synthetic frames: a
textured patch growing as an object closing at a known speed would, on a
textured background, so the time to collision and the carried box are known."""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np
import pytest

from device.core.camera import CameraResult, CameraTrack, GroundState
from device.core.types import Frame
from device.perception.flow import FlowEstimator, FlowParams, FlowResult, FlowTrack, scale_step

FPS = 15.0
W, H = 320, 240
NS = 1_000_000_000


def _texture(seed: int, size: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (size, size), dtype=np.uint8)
    return cv2.GaussianBlur(img, (0, 0), 1.5)


PATCH = _texture(1, 32)
BACKGROUND = cv2.resize(_texture(2, 200), (W, H), interpolation=cv2.INTER_LINEAR)


def _frame(i: int, size: float, centre: tuple[float, float] = (W / 2, H / 2)) -> tuple[Frame, tuple[float, ...]]:
    """Frame i with the patch `size` px square about `centre` (sub-pixel exact)."""
    k = size / PATCH.shape[0]
    x1, y1 = centre[0] - size / 2, centre[1] - size / 2
    m = np.float32([[k, 0, x1], [0, k, y1]])
    patch = cv2.warpAffine(PATCH, m, (W, H), flags=cv2.INTER_LINEAR)
    inside = cv2.warpAffine(np.full(PATCH.shape, 255, np.uint8), m, (W, H)) > 127
    img = np.where(inside, patch, BACKGROUND)
    return Frame(t_ns=round(i * NS / FPS), seq=i, image=img), (x1, y1, x1 + size, y1 + size)


# A track's ground filter at its birth: position known, velocity not (motion.INITIAL_SPEED_SD_MPS).
NEW_GROUND = GroundState(0.0, 10.0, 0.0, 0.0, 4.0, 4.0, 1)


def _track(box: tuple[float, ...], track_id: int = 7, ground: GroundState | None = NEW_GROUND,
           distance: float = 10.0, bearing: float = 0.0, hits: int = 3) -> CameraTrack:
    return CameraTrack(track_id=track_id, label="person", box=box, confidence=0.9, hits=hits,  # type: ignore[arg-type]
                       distance_m=distance, bearing_deg=bearing, ttc_s=None, ground=ground)


def _approach(ttc0_s: float, frames: int, size0: float = 40.0, detect_every: int = 1000,
              centre=lambda i: (W / 2, H / 2)):
    """An object whose time to collision at frame 0 is ttc0_s (size ~ 1 / (ttc0 - t)).
    Detections at frame 0 and every `detect_every` frames after."""
    est = FlowEstimator(FlowParams())
    out = []
    camera = None
    for i in range(frames):
        t = i / FPS
        size = size0 * ttc0_s / (ttc0_s - t)
        frame, box = _frame(i, size, centre(i))
        if i % detect_every == 0:
            camera = CameraResult(t_ns=frame.t_ns, seq=i, tracks=(_track(box),))
        out.append((t, box, est.process(frame, camera)))
    return out


@pytest.mark.parametrize("ttc0", [2.0, 3.0, 4.0])
def test_time_to_collision_of_an_expanding_texture(ttc0: float) -> None:
    # Detected once, at frame 0: every later estimate is the flow's alone.
    results = _approach(ttc0, 16)
    checked = 0
    for t, _, res in results[6:]:
        tr = res.track(7)
        assert tr is not None and tr.ttc_s is not None
        truth = ttc0 - t
        assert abs(tr.ttc_s - truth) <= 0.2 * truth, (t, tr.ttc_s, truth)
        checked += 1
    assert checked == 10


def test_a_still_texture_is_not_closing() -> None:
    for _, _, res in _approach(1e6, 12)[5:]:
        tr = res.track(7)
        assert tr is not None and tr.points >= 5
        assert tr.ttc_s is None or tr.ttc_s > 20


def test_a_receding_texture_is_not_closing() -> None:
    est = FlowEstimator()
    camera = None
    for i in range(12):
        frame, box = _frame(i, 80.0 * 2.0 / (2.0 + i / FPS))
        camera = camera or CameraResult(t_ns=frame.t_ns, seq=i, tracks=(_track(box),))
        res = est.process(frame, camera)
    tr = res.track(7)
    assert tr is not None and tr.ttc_s is None and tr.scale < 0.8


def test_the_box_is_carried_between_detections() -> None:
    # Growing and moving right 2 px a frame, detected only at frame 0: the
    # carried box follows the true one, and its scale is the growth since.
    results = _approach(3.0, 15, centre=lambda i: (120 + 2 * i, H / 2))
    _, truth, res = results[-1]
    tr = res.track(7)
    assert tr is not None
    assert np.allclose(tr.box, truth, atol=3.0), (tr.box, truth)
    _, first, _ = results[0]
    true_scale = (truth[2] - truth[0]) / (first[2] - first[0])
    assert tr.scale == pytest.approx(true_scale, rel=0.05)


def test_a_late_detection_is_brought_up_to_now() -> None:
    # The detector's result for frame 4 arrives at frame 8 (its latency):
    # its box is moved on by the flow since frame 4, not taken as now.
    est = FlowEstimator()
    boxes = []
    camera = None
    for i in range(10):
        frame, box = _frame(i, 40 + 3 * i, (100 + 4 * i, H / 2))
        boxes.append((frame.t_ns, box))
        if i == 0:
            camera = CameraResult(t_ns=frame.t_ns, seq=0, tracks=(_track(box),))
        if i == 8:
            t4, box4 = boxes[4]
            camera = CameraResult(t_ns=t4, seq=4, tracks=(_track(box4),))
        res = est.process(frame, camera)
        if i == 8:
            tr = res.track(7)
            assert tr is not None and tr.detection_t_ns == t4
            assert np.allclose(tr.box, box, atol=3.0), (tr.box, box)


def test_tracks_follow_the_camera_result() -> None:
    est = FlowEstimator()
    f0, box = _frame(0, 40)
    res = est.process(f0, CameraResult(t_ns=0, seq=0, tracks=(_track(box, 1), _track(box, 2))))
    assert [t.track_id for t in res.tracks] == [1, 2]
    f1, box = _frame(1, 40)
    res = est.process(f1, CameraResult(t_ns=f1.t_ns, seq=1, tracks=(_track(box, 2),)))
    assert [t.track_id for t in res.tracks] == [2]
    f2, _ = _frame(2, 40)
    assert est.process(f2, None).tracks[0].track_id == 2  # no newer result: kept


def test_scale_step_is_rotation_free() -> None:
    rng = np.random.default_rng(0)
    p0 = rng.uniform(0, 50, (20, 2)).astype(np.float32)
    a = np.radians(5)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    p1 = (p0 @ rot.T) * 1.05 + np.array([3.0, -2.0])
    step = scale_step(p0, p1, 5)
    assert step == pytest.approx(np.log(1.05), abs=1e-6)
    assert scale_step(p0[:3], p1[:3], 5) is None


# -- in the camera path and the threat ----------------------------------------------

class SpyStage:
    """A side stage that notes when each camera result reached it."""

    slot = "flow"
    thread_name = "spy"
    part = None
    crash_prefix = ""

    def __init__(self, clock) -> None:
        self.clock = clock
        self.camera: CameraResult | None = None
        self.seen: list[tuple[int, int]] = []  # (clock time it came, its frame time)
        self.processed: list[tuple[int, int | None]] = []  # (frame seq, camera seq it had)

    def see_camera(self, result: CameraResult) -> None:
        self.camera = result
        self.seen.append((self.clock.now_ns(), result.t_ns))

    def process(self, frame: Frame):
        self.processed.append((frame.seq, self.camera.seq if self.camera is not None else None))
        return None


def test_paced_flow_gets_a_camera_result_only_when_the_loop_would() -> None:
    from device.camera_path import DetectorPace, DetectStage, PacedRunner
    from device.core.clock import ReplayClock
    from device.core.config import Config
    from fakes import FixedDetector, ListFrames
    from test_paced_camera import ListFrames as TimedFrames
    from test_paced_camera import arrivals

    frames = arrivals(20, 1000 / FPS)
    clock = ReplayClock(0)
    spy = SpyStage(clock)
    pace = DetectorPace(busy_ms=200.0, latency_ms=250.0)
    runner = PacedRunner(TimedFrames(frames), DetectStage(FixedDetector(), Config().camera), pace, clock,
                         [spy], ListFrames(list(frames)))
    t = 0
    while t <= frames[-1].t_ns + 500 * 1_000_000:
        clock.set(t)
        runner.poll()
        t += 20 * 1_000_000
    assert len(spy.seen) >= 3
    for came, frame_t in spy.seen:
        assert came >= frame_t + 250 * 1_000_000


def test_inline_flow_follows_the_very_frame_detected() -> None:
    from device.camera_path import DetectStage, InlineRunner
    from device.core.config import Config
    from fakes import FixedDetector, ListFrames

    frames = [Frame(t_ns=round(i * NS / FPS), seq=i, image=np.zeros((48, 64, 3), np.uint8)) for i in range(4)]
    spy = SpyStage(None)
    spy.clock = type("C", (), {"now_ns": staticmethod(lambda: 0)})()
    runner = InlineRunner(ListFrames(frames), DetectStage(FixedDetector(), Config().camera), [spy])
    for _ in frames:
        runner.poll()
    assert spy.processed == [(0, 0), (1, 1), (2, 2), (3, 3)]


def test_the_threat_takes_a_camera_rate_ttc_once_it_has_held() -> None:
    from device.core.config import Config
    from device.decision.threat import ThreatEstimator
    from device.perception.flow import FlowResult, FlowTrack

    est = ThreatEstimator(Config())
    box = (150.0, 100.0, 170.0, 160.0)
    est.set_camera(CameraResult(t_ns=0, seq=0, tracks=(_track(box),)))
    cand = est.candidates(0)[0]
    assert cand.ttc_s is None and cand.distance_m == pytest.approx(10.0)

    def flow(t_s: float, ttc: float, scale: float) -> None:
        t = round(t_s * NS)
        est.set_flow(FlowResult(t, 0, (FlowTrack(7, box, scale, ttc, 20, 0, trail_id=1),)))

    flow(0.066, 2.0, 1.1)
    cand = est.candidates(round(0.066 * NS))[0]
    assert cand.ttc_s is None  # one word is not yet a streak
    assert cand.distance_m == pytest.approx(10.0 / 1.1)  # nearer by the growth since the detection
    flow(0.133, 1.9, 1.2)
    flow(0.2, 1.8, 1.3)
    assert est.candidates(round(0.2 * NS))[0].ttc_s == pytest.approx(1.8)
    # An implausible closing speed (distance / ttc) is not taken (the box's is bounded, the flow's dropped).
    flow(0.266, 0.1, 1.3)
    assert est.candidates(round(0.266 * NS))[0].ttc_s is None
    # A stale flow result is not acted on.
    flow(0.3, 1.7, 1.3)
    late = round((0.3 + Config().camera.max_age_s + 0.01) * NS)
    est.set_camera(CameraResult(t_ns=late, seq=1, tracks=(_track(box),)))
    assert est.candidates(late)[0].ttc_s is None


def _flow_ttc_for(ground: GroundState | None, ttc: float = 1.9) -> float | None:
    """The time to collision the threat takes from a flow that has said `ttc`
    for 0.2 s about a track 10 m off whose ground filter says `ground`."""
    from device.core.config import Config
    from device.decision.threat import ThreatEstimator
    from device.perception.flow import FlowResult, FlowTrack

    est = ThreatEstimator(Config())
    box = (150.0, 100.0, 170.0, 160.0)
    est.set_camera(CameraResult(t_ns=0, seq=0, tracks=(_track(box, ground=ground),)))
    for t_s in (0.066, 0.133, 0.2):
        est.set_flow(FlowResult(round(t_s * NS), 0, (FlowTrack(7, box, 1.0, ttc, 20, 0, trail_id=1),)))
    return est.candidates(round(0.2 * NS))[0].ttc_s


def test_the_flow_cannot_make_closing_what_the_distance_history_says_is_not() -> None:
    # vtest (a static camera): a walker 10 m off, his ground filter settled on
    # 0.5 +- 0.35 m/s closing, a flow TTC of 1.9 s (5.3 m/s): the flow's points
    # spread with his legs or a second person in the box. Not taken.
    assert _flow_ttc_for(GroundState(0.0, 10.0, 0.0, -0.5, 0.35, 0.35, 40, True)) is None
    # Market Street: a cyclist riding away ahead (receding 0.3 +- 0.5 m/s).
    assert _flow_ttc_for(GroundState(0.0, 10.0, 0.0, 0.3, 0.5, 0.5, 13, True)) is None
    # A closer the history knows (5 +- 0.8 m/s): the flow's 1.9 s is within
    # three of its deviations, and speaks (the head-on rows at a Pi Zero's pace).
    assert _flow_ttc_for(GroundState(0.0, 10.0, 0.0, -5.0, 0.8, 0.8, 4, True)) == pytest.approx(1.9)
    # A new track (velocity unknown, 4 m/s sd): the flow's first word counts.
    assert _flow_ttc_for(NEW_GROUND) == pytest.approx(1.9)
    # No distance history at all (a box the frame's side cuts): no say.
    assert _flow_ttc_for(None) is None


def test_a_renamed_track_keeps_its_lateral_history() -> None:
    # At a Pi Zero's pace the tracker renames a passer whose box jumped; the flow
    # followed it through. The new id's first detection caught the sway at one
    # extreme (0.8 m); the old id's offsets (1.5-2.5 m) go on with it, so the
    # corridor test still sees a pass, not a head-on.
    from device.core.config import Config
    from device.decision.threat import ThreatEstimator
    from device.perception.flow import FlowResult, FlowTrack

    def run(trail: int) -> bool:
        est = ThreatEstimator(Config())
        box = (150.0, 100.0, 170.0, 160.0)
        for i, lateral in enumerate((2.0, 2.5, 1.5, 2.2)):
            t = round(i * 0.1 * NS)
            est.set_camera(CameraResult(t_ns=t, seq=i, tracks=(_track(box, 1, distance=10.0,
                                                                     bearing=math.degrees(math.asin(lateral / 10.0))),)))
            est.set_flow(FlowResult(t, i, (FlowTrack(1, box, 1.0, None, 20, t, trail_id=5),)))
        t = round(0.4 * NS)
        est.set_camera(CameraResult(t_ns=t, seq=4, tracks=(_track(box, 2, distance=10.0, hits=1,
                                                                   bearing=math.degrees(math.asin(0.08))),)))
        est.set_flow(FlowResult(t, 4, (FlowTrack(2, box, 1.0, None, 20, t, trail_id=trail),)))
        for t_s in (0.466, 0.533, 0.6):  # the flow's streak on the new id: it counts with one hit
            est.set_flow(FlowResult(round(t_s * NS), 5, (FlowTrack(2, box, 1.0, 1.5, 20, t, trail_id=trail),)))
        (cand,) = est.candidates(round(0.6 * NS))
        return cand.in_path

    assert not run(trail=5)
    assert run(trail=6)  # another object's trail: its own offsets only, and the one it has is inside


def test_flow_is_a_stage_only_when_on_and_with_a_detector() -> None:
    from device.app.compose import camera_stages
    from device.camera_path import FlowStage
    from device.core.config import from_dict
    from fakes import FixedDetector

    off = from_dict({})
    on = from_dict({"flow": {"enabled": True}})
    assert not any(isinstance(s, FlowStage) for s in camera_stages(FixedDetector(), off)[1])
    assert any(isinstance(s, FlowStage) for s in camera_stages(FixedDetector(), on)[1])
    assert not any(isinstance(s, FlowStage) for s in camera_stages(None, on)[1])  # no tracks to follow


def _approach_renamed_at_8(tracks_at_8: Callable[[tuple[float, float, float, float]], tuple[CameraTrack, ...]],
                           ttc0: float = 2.5) -> tuple[FlowTrack | None, FlowResult]:
    """Twelve frames of a texture closing at ttc0, detected as track 7 at
    frame 0 and as `tracks_at_8(box)` at frame 8: track 7 at frame 7, and the last result."""
    est = FlowEstimator()
    camera = None
    before = None
    for i in range(12):
        frame, box = _frame(i, 40 * ttc0 / (ttc0 - i / FPS))
        if i == 0:
            camera = CameraResult(t_ns=frame.t_ns, seq=i, tracks=(_track(box, 7),))
        if i == 8:
            camera = CameraResult(t_ns=frame.t_ns, seq=i, tracks=tracks_at_8(box))
        res = est.process(frame, camera)
        if i == 7:
            before = res.track(7)
    return before, res


def test_a_renamed_track_keeps_its_trail_and_a_new_object_does_not() -> None:
    # The tracker renames the object (7 -> 9) at frame 8, after a box jump;
    # the flow carries its box there, so its scale history goes on. An
    # object elsewhere (11) starts a trail of its own.
    ttc0 = 2.5
    before, res = _approach_renamed_at_8(lambda box: (_track(box, 9), _track((10.0, 10.0, 30.0, 50.0), 11)), ttc0)
    assert before is not None
    renamed, other = res.track(9), res.track(11)
    assert renamed is not None and other is not None and res.track(7) is None
    assert renamed.trail_id == before.trail_id and other.trail_id != before.trail_id
    assert renamed.ttc_s is not None and abs(renamed.ttc_s - (ttc0 - 11 / FPS)) <= 0.2 * (ttc0 - 11 / FPS)
    assert renamed.followed_s == pytest.approx(11 / FPS) and other.followed_s == pytest.approx(3 / FPS)


@pytest.mark.parametrize("k, same", [(1.0, True), (1 / 1.3, True), (1.6, True), (1 / 1.6, False)])
def test_a_detection_the_carried_box_does_not_fit_starts_the_trail_over(k: float, same: bool) -> None:
    # The detection at frame 8 is k times the height the flow carried the
    # object to. Shorter by more than MAX_SIZE_MISS (1.4), the flow claimed
    # growth the box does not have (a far person's box given to a nearer
    # one's id): the trail starts over, a new trail id and no time to
    # collision until its own span is seen. Otherwise (a taller box: the flow
    # lagged a real approach) its scale history goes on.
    def shrunk(box: tuple[float, float, float, float]) -> tuple[CameraTrack, ...]:
        cx, cy, h = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, (box[3] - box[1]) * k
        return (_track((cx - h / 2, cy - h / 2, cx + h / 2, cy + h / 2), 7),)

    before, res = _approach_renamed_at_8(shrunk)
    after = res.track(7)
    assert before is not None and after is not None and before.ttc_s is not None
    assert (after.trail_id == before.trail_id) is same
    assert (after.ttc_s is not None) is same


def test_threaded_flow_is_handed_the_detect_threads_results() -> None:
    import threading

    from device.camera_path import DetectStage
    from device.core.clock import ReplayClock
    from device.core.config import Config
    from fakes import FixedDetector, SlotFrames, dets, threaded_camera

    frames = SlotFrames()
    clock = ReplayClock(0)
    spy = SpyStage(clock)
    got = threading.Event()
    see = spy.see_camera

    def noted(result: CameraResult) -> None:
        see(result)
        got.set()

    spy.see_camera = noted  # type: ignore[method-assign]
    path = threaded_camera(frames, DetectStage(FixedDetector(dets((10, 10, 30, 40))), Config().camera), clock,
                           sides=[spy])
    try:
        frames.put(0, 0)
        assert got.wait(10), "the detect thread never handed its result on"
        assert spy.camera is not None and spy.camera.seq == 0 and len(spy.camera.tracks) == 1
    finally:
        path.close()
