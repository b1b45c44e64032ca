"""Camera tracks that know how things move: the ground filter
(device.perception.motion) and the time to corridor entry
(device.decision.crossing), on synthetic tracks and the exact clock."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from device.camera_path.stages import DetectStage
from device.core.camera import CameraResult, CameraTrack, GroundState
from device.core.clock import NS_PER_S
from device.core.config import Config
from device.core.types import AlertLevel, Detections, Frame
from device.decision.crossing import corridor_entry_s
from device.decision.threat import ThreatEstimator
from device.perception.motion import SETTLED_MIN_UPDATES, SETTLED_VX_SD_MPS, GroundTracks
from fakes import dets

HW = 1.0  # corridor half width (the default)
BODY = 0.25  # half the object's width
FPS = 10


def _follow(x0: float, z0: float, vx: float, vz: float, seconds: float) -> tuple[GroundState, float, float]:
    """Feed a constant-velocity object's exact range and bearing at FPS; the
    final filtered state and the true (x, z) at the last frame."""
    tracks = GroundTracks()
    n = round(seconds * FPS)
    state: GroundState | None = None
    x = z = 0.0
    for k in range(n + 1):
        t_ns = k * NS_PER_S // FPS
        t = t_ns / NS_PER_S
        x, z = x0 + vx * t, z0 + vz * t
        state = tracks.update(t_ns, [(7, "person", math.hypot(x, z), math.degrees(math.atan2(x, z)))])[7]
    assert state is not None
    return state, x, z


def test_the_filter_finds_a_crossers_velocity_and_settles() -> None:
    g, x, z = _follow(-4.0, 9.0, 1.5, -2.5, 1.0)
    assert g.settled and g.updates == 11
    assert g.x_m == pytest.approx(x, abs=0.1) and g.z_m == pytest.approx(z, abs=0.2)
    assert g.vx_mps == pytest.approx(1.5, abs=0.15) and g.vz_mps == pytest.approx(-2.5, abs=0.3)


def test_a_renamed_track_keeps_its_motion_and_a_stranger_does_not_take_it() -> None:
    tracks = GroundTracks()
    for k in range(8):  # a crosser at 1.5 m/s, 3.5 detections a second
        t = k / 3.5
        x, z = -5.0 + 1.5 * t, 9.0 - 2.5 * t
        tid = 1 if k < 5 else 2  # the tracker renames it at the 6th detection
        g = tracks.update(round(t * NS_PER_S), [(tid, "person", math.hypot(x, z), math.degrees(math.atan2(x, z)))])[tid]
    assert g.updates == 8 and g.vx_mps == pytest.approx(1.5, abs=0.3)
    # A dog, or a person 3 m off where the filter expects it, starts afresh.
    t_ns = round(8 / 3.5 * NS_PER_S)
    x, z = -5.0 + 1.5 * 8 / 3.5, 9.0 - 2.5 * 8 / 3.5
    far = tracks.update(t_ns, [(3, "dog", math.hypot(x, z), math.degrees(math.atan2(x, z))),
                               (4, "person", math.hypot(x + 3, z), math.degrees(math.atan2(x + 3, z)))])
    assert far[3].updates == 1 and far[4].updates == 1


def test_a_track_that_flips_name_keeps_each_names_motion_apart() -> None:
    # A truck closing at 3 m/s, read as a car on alternate detections: the
    # car-sized distance is half the truck-sized one. Each name's own series
    # is a steady 3 m/s; one filter fed both would read metres of motion in
    # a fifteenth of a second.
    tracks = GroundTracks()
    ids = set()
    for k in range(24):
        t_ns = k * NS_PER_S // 15
        truck_z = 14.0 - 3.0 * t_ns / NS_PER_S
        label, d = ("truck", truck_z) if k % 2 else ("car", truck_z / 2)
        g = tracks.update(t_ns, [(1, label, d, 0.0)])[1]
        ids.add(g.object_id)
        assert -3.3 < g.vz_mps <= 0.0  # never faster than the faster name's own series
        if k >= 16:
            assert g.vz_mps == pytest.approx(-3.0 if label == "truck" else -1.5, abs=0.4)
    assert len(ids) == 1 and ids != {0}  # one object under both names


def test_a_young_track_is_not_settled() -> None:
    tracks = GroundTracks()
    for k in range(SETTLED_MIN_UPDATES - 1):
        g = tracks.update(k * NS_PER_S // FPS, [(1, "person", 6.0, 10.0)])[1]
    assert not g.settled


def test_a_crosser_entering_in_1_5_s_is_a_candidate() -> None:
    # Followed for 1.5 s; its body enters when |x| - 0.25 <= 1.0: from x = -3.5 at 1.5 m/s,
    # 1.5 s from the last frame;
    # the runner reaches its line (z ~6 m at 2.5 m/s) 2.4 s from then, and it is still inside.
    g, x, z = _follow(-3.5 - 1.5 * 1.5, 6.0 + 2.5 * 1.5, 1.5, -2.5, 1.5)
    assert (x, z) == pytest.approx((-3.5, 6.0))
    t = corridor_entry_s(g, BODY, HW, 0.3)
    assert t == pytest.approx(1.5, abs=0.15)
    # The exact state gives the exact answer.
    exact = GroundState(-3.5, 6.0, 1.5, -2.5, 0.1, 0.1, 10, True)
    assert corridor_entry_s(exact, BODY, HW, 0.3) == pytest.approx(1.5)


def test_a_side_pass_at_1_2_m_is_never_a_crossing() -> None:
    for seconds in (0.5, 1.0, 1.5, 2.0):
        g, _, _ = _follow(1.2, 12.0, 0.0, -5.0, seconds)
        assert corridor_entry_s(g, BODY, HW, 0.3) is None


def test_a_crosser_that_clears_before_the_runner_arrives_is_none() -> None:
    # 12 m ahead at 2.5 m/s closing: the runner is there in 4.8 s; crossing at 3 m/s
    # from 3.5 m out it has left the corridor (4.75 m of travel) after 1.6 s. (Seen
    # for 1.5 s: at 12 m the runner's sway leaves a shorter look unsettled.)
    g, _, _ = _follow(-3.5 - 4.5, 12.0 + 3.75, 3.0, -2.5, 1.5)
    assert g.settled and corridor_entry_s(g, BODY, HW, 0.3) is None
    # ... and one that enters after the runner has passed its line is none either.
    late = GroundState(-5.0, 2.0, 1.0, -2.5, 0.1, 0.1, 10, True)
    assert corridor_entry_s(late, BODY, HW, 0.3) is None
    # Moving away from the line, or the runner not closing: none.
    assert corridor_entry_s(GroundState(-3.0, 6.0, -1.0, -2.5, 0.1, 0.1, 10, True), BODY, HW, 0.3) is None
    assert corridor_entry_s(GroundState(-3.0, 6.0, 1.5, 0.0, 0.1, 0.1, 10, True), BODY, HW, 0.3) is None


def _track(g: GroundState) -> CameraTrack:
    d = math.hypot(g.x_m, g.z_m)
    return CameraTrack(3, "person", (100.0, 100.0, 140.0, 200.0), 0.9, 5, d, math.degrees(math.atan2(g.x_m, g.z_m)),
                       None, ground=g, half_width_m=BODY)


def test_the_estimator_warns_of_a_settled_crosser_only_with_the_flag() -> None:
    crosser = GroundState(-3.5, 6.0, 1.5, -2.5, 0.2, 0.2, 10, True)
    result = CameraResult(t_ns=0, seq=0, tracks=(_track(crosser),))
    off = ThreatEstimator(Config.model_validate({"alerts": {"crossing": False}}))
    off.set_camera(result)
    assert [c.in_path for c in off.candidates(0)] == [False]
    on = ThreatEstimator(Config.model_validate({"alerts": {"crossing": True}}))
    on.set_camera(result)
    (c,) = on.candidates(0)
    assert c.in_path and c.ttc_s == pytest.approx(1.5)
    # Entering within warn_ttc_s (2.5 s): WARN once the evidence has persisted.
    assert on.assess(0).level == AlertLevel.CLEAR
    assert on.assess(NS_PER_S // 5).level == AlertLevel.WARN
    # On by default (docs/evaluation.md: the real footage and the hazards, measured).
    assert Config().alerts.crossing
    # An unsettled estimate raises nothing.
    shaky = ThreatEstimator(Config.model_validate({"alerts": {"crossing": True}}))
    shaky.set_camera(CameraResult(0, 0, (_track(GroundState(-3.5, 6.0, 1.5, -2.5, 0.9, 0.9, 3, False)),)))
    assert [c.in_path for c in shaky.candidates(0)] == [False]


def test_a_sideways_wobble_within_its_uncertainty_is_no_crossing() -> None:
    # Measured on a walker passing 1.1 m out: 0.5 m/s towards the line with a sd of 0.25.
    wobble = GroundState(-1.3, 5.0, 0.52, -5.0, 0.25, 0.7, 12, True)
    assert corridor_entry_s(wobble, 0.33, HW, 0.3) is None
    # A walker's speed, known well, is a crossing 0.2 s from the corridor ...
    sure = GroundState(-1.6, 5.0, 1.4, -5.0, 0.1, 0.7, 12, True)
    assert corridor_entry_s(sure, 0.33, HW, 0.3) == pytest.approx(0.27 / 1.4)
    # ... but with its body at the edge already it is no crossing: a side pass looks the same.
    assert corridor_entry_s(GroundState(-1.3, 5.0, 1.4, -5.0, 0.1, 0.7, 12, True), 0.33, HW, 0.3) is None


def test_a_man_standing_beside_the_track_is_no_crossing_though_his_estimate_drifts_in() -> None:
    # Measured on the Market Street cut-ins at the Pi 4's pace: 0.82 +- 0.26 m/s towards
    # the line, 2.5 m out and 8 m ahead, while the camera closed at 3 m/s. Clear of its
    # uncertainty, but slower than anyone walking across.
    still = GroundState(-2.49, 8.1, 0.82, -3.2, 0.26, 0.6, 14, True)
    assert corridor_entry_s(still, 0.33, HW, 0.3) is None
    # Someone walking across at 1.4 m/s from there is a crossing (enters in 0.83 s).
    walker = GroundState(-2.49, 8.1, 1.4, -3.2, 0.26, 0.6, 14, True)
    assert corridor_entry_s(walker, 0.33, HW, 0.3) == pytest.approx((2.49 - 0.33 - HW) / 1.4)


class _Boxes:
    """A detector that sees the next box of a list in each image (a person)."""

    def __init__(self, boxes: list[tuple[float, float, float, float]]) -> None:
        self.boxes = iter(boxes)

    def detect(self, image: np.ndarray) -> Detections:
        return dets(next(self.boxes))

    def close(self) -> None:
        pass


def test_a_box_the_frames_side_cuts_gives_the_filter_no_measurement() -> None:
    """Its centre is pinned at the edge while its object moves on beyond it:
    a man stood beside the track as the camera passes him reads as walking
    into the path (the Market Street footage's false crossings)."""
    cfg = Config()
    img = np.zeros((cfg.camera.height, cfg.camera.width, 3), np.uint8)
    w = cfg.camera.width
    # The same person: its box's right side at the frame's edge, then 40 px in from it.
    for right, measured in ((w - 1.0, False), (w - 40.0, True)):
        stage = DetectStage(_Boxes([(right - 60 + 2 * k, 100, right, 300) for k in range(6)]), cfg.camera)
        for k in range(6):
            tr = stage.process(Frame(seq=k, t_ns=k * NS_PER_S // 15, image=img)).tracks[0]
        assert (tr.ground is not None) is measured, right
    assert measured and tr.ground is not None and tr.ground.updates == 6


def _zero_pace(x0: float, z0: float, vx: float, vz: float, detections: int) -> tuple[GroundState, float, float]:
    """Feed an object's exact range and bearing at a Pi Zero 2 W's modelled
    pace: a detection every 8 frames at 15 fps (0.53 s), every third the
    look-ahead crop, which does not see an object off the axis. The final
    state and the true (x, z) then."""
    tracks = GroundTracks()
    g: GroundState | None = None
    x = z = 0.0
    for k in (k for k in range(1, 99) if k % 3):
        t_ns = k * 8 * NS_PER_S // 15
        t = t_ns / NS_PER_S
        x, z = x0 + vx * t, z0 + vz * t
        g = tracks.update(t_ns, [(7, "person", math.hypot(x, z), math.degrees(math.atan2(x, z)))])[7]
        if g.updates == detections:
            break
    assert g is not None
    return g, x, z


def test_a_crosser_at_a_pi_zeros_pace_is_a_crossing_before_its_sideways_speed_settles() -> None:
    # The hazards suite's cross-walker: from 8.2 m left, 15.7 m ahead, at 1.4 m/s, the
    # runner at 2.5 m/s. Five detections in, 6.4 m ahead, its body enters the corridor in
    # 1.2 s and it is still inside when the runner gets there. The filter has it right,
    # and its sideways speed stands 2 sd clear of its uncertainty ...
    g, x, z = _zero_pace(-8.2, 15.7, 1.4, -2.5, 5)
    assert (g.x_m, g.z_m) == pytest.approx((x, z), abs=0.15) and g.vx_mps == pytest.approx(1.4, abs=0.05)
    assert corridor_entry_s(g, BODY, HW, 0.3) == pytest.approx((abs(x) - BODY - HW) / 1.4, abs=0.1)
    # ... but not under SETTLED_VX_SD_MPS: the acceleration noise of the 0.53 and 1.07 s
    # between measurements keeps it above that until the walker is 5 m away.
    assert not g.settled and g.vx_sd_mps > SETTLED_VX_SD_MPS
    est = ThreatEstimator(Config())
    est.set_camera(CameraResult(t_ns=0, seq=0, tracks=(_track(g),)))
    (c,) = est.candidates(0)
    assert c.in_path and c.ttc_s == pytest.approx(corridor_entry_s(g, BODY, HW, 0.3))


def test_a_side_pass_at_a_pi_zeros_pace_is_never_a_crossing() -> None:
    for n in range(SETTLED_MIN_UPDATES, 9):
        g, _, _ = _zero_pace(-1.5, 20.0, 0.0, -2.5, n)
        est = ThreatEstimator(Config())
        est.set_camera(CameraResult(t_ns=0, seq=0, tracks=(_track(g),)))
        assert [c.in_path for c in est.candidates(0)] == [False]


def test_a_renamed_crosser_is_a_candidate_at_its_new_ids_first_hit() -> None:
    # At a Pi Zero's pace a walker crossing 10 m ahead moves further than its box's width
    # between two detections, and the tracker gives it a new id; its ground filter, carried
    # over, has measured it four times: it has been seen, and it is crossing.
    crosser = GroundState(-4.5, 9.0, 1.4, -2.5, 0.3, 1.0, 4, True)
    renamed = replace(_track(crosser), hits=1)
    est = ThreatEstimator(Config())
    est.set_camera(CameraResult(t_ns=0, seq=0, tracks=(renamed,)))
    (c,) = est.candidates(0)
    assert c.in_path and c.ttc_s == pytest.approx((4.5 - BODY - HW) / 1.4)
    # One detection of something new (its filter measured once) is still nothing.
    new = replace(_track(replace(crosser, updates=1)), hits=1)
    est.set_camera(CameraResult(t_ns=0, seq=1, tracks=(new,)))
    assert est.candidates(0) == []
