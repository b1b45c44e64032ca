"""Geometry, tracking and the threat policy: pure, on a synthetic timeline."""

from __future__ import annotations

import math

import numpy as np
import pytest

from device.camera_path.distance import CameraDistances
from device.core.camera import CameraResult, CameraTrack
from device.core.clock import NS_PER_S
from device.core.config import AlertsConfig, Config
from device.core.faults import Fault, Kind, Part, texts
from device.core.types import AlertLevel, Frame, Range
from device.decision.threat import (
    Candidate,
    SensorTrack,
    ThreatEstimator,
    fuse,
    level_for,
)
from device.perception.geometry import CameraGeometry
from device.perception.tracking import IouTracker, Track, ttc_from_scale_rate
from fakes import dets, ns


def camera_tracks(tracks: list[Track], g: CameraGeometry) -> tuple[CameraTrack, ...]:
    """The tracks as the camera path decides them (a fresh ground check: never trusted yet)."""
    return CameraDistances(CFG.camera).tracks(tracks, g)

S = NS_PER_S
CFG = Config()
SENSOR = CFG.ranging.sensors[0]


# ---------------------------------------------------------------- geometry


def test_pinhole_distance_and_bearing() -> None:
    g = CameraGeometry(640, 480, 66.0, 1.1, 0.0)
    f = 320 / math.tan(math.radians(33))
    assert g.focal_px == pytest.approx(f)
    # A 1.7 m person 100 px tall is 1.7 * f / 100 m away.
    assert g.distance_m((300, 100, 340, 200), "person") == pytest.approx(1.7 * f / 100)
    assert g.bearing_deg(320) == pytest.approx(0.0)
    # The image is mirrored w.r.t. the runner: image left = runner's right (+).
    assert g.bearing_deg(0) == pytest.approx(33.0)
    assert g.bearing_deg(640) == pytest.approx(-33.0)


def test_a_box_the_bottom_edge_cuts_is_nearer_than_the_ground_there() -> None:
    g = CameraGeometry(640, 360, 66.0, 1.1, 0.0)
    f = g.focal_px
    bottom = 1.1 / (180 / f)  # the ground at the bottom row: 1.1 m / tan(angle below the axis)
    assert g.bottom_ground_m() == pytest.approx(bottom)
    # A person cut off at the knees: 200 px of box would read 1.7 f / 200 = 4.2 m on its own.
    cut = (300.0, 160.0, 360.0, 360.0)
    assert g.height_distance_m(cut, "person") > bottom and g.cut_at_bottom(cut)
    (tr,) = camera_tracks(IouTracker().update(0, dets(cut)), g)
    assert tr.bottom_ground_m == pytest.approx(bottom)
    whole = (300.0, 100.0, 340.0, 300.0)
    (tr2,) = camera_tracks(IouTracker().update(0, dets(whole)), g)
    assert tr2.bottom_ground_m is None
    # The estimator bounds the distance by it once the ground plane is trusted (not before:
    # a camera mounted higher than configured cuts off far feet too).
    distances = CameraDistances(CFG.camera)
    assert distances.decide((tr,))[0].distance_m > bottom
    distances.ground_checks = 20
    assert distances.decide((tr,))[0].distance_m == pytest.approx(bottom)
    # Spanning the frame top to bottom, or covering half of it, is the near field; a tall thin box far off is not.
    assert g.fills_frame((280.0, 0.0, 380.0, 360.0)) and g.fills_frame((0.0, 100.0, 640.0, 300.0))
    assert not g.fills_frame(cut) and not g.fills_frame((300.0, 0.0, 340.0, 300.0))
    # YOLOX-Nano's box of a person 1.2 m away stops 3 px short of the bottom: still cut.
    assert g.fills_frame((308.0, 1.0, 539.0, 357.0)) and g.cut_at_bottom((308.0, 1.0, 539.0, 357.0))
    # Tilted down, the camera sees nearer ground at its bottom edge.
    assert CameraGeometry(640, 360, 66.0, 1.1, 10.0).bottom_ground_m() < bottom


def test_a_frame_filling_object_across_the_runners_line_is_danger() -> None:
    g = CameraGeometry(640, 360, 66.0, 1.1, 0.0)
    tr = IouTracker()
    # A person spanning the frame's height reads 1.7 f / 360 = 2.3 m at most: there the
    # 1 m corridor is 212 px each side of the centre column.
    across, entering, beside = (250.0, 0.0, 420.0, 360.0), (0.0, 0.0, 150.0, 360.0), (0.0, 0.0, 80.0, 360.0)
    for box, near_side, danger in ((across, 0.0, True), (entering, 150.0, True), (beside, 80.0, False)):
        tr = IouTracker()
        for i in range(3):
            tracks = tr.update(ns(i / 15), dets(box))
        (ct,) = camera_tracks(tracks, g)
        assert ct.near_bearing_deg == pytest.approx(g.bearing_deg(near_side) if near_side else 0.0)
        est = ThreatEstimator(CFG)
        est.set_camera(CameraResult(ns(0.1), 2, (ct,)))
        (c,) = est.candidates(ns(0.11))
        assert c.near is danger and (level_for(c, CFG.alerts) == AlertLevel.DANGER) is danger, box
    (small,) = camera_tracks(IouTracker().update(0, dets((300.0, 100.0, 340.0, 300.0))), g)
    assert small.near_bearing_deg is None
    # Out of the path is out, near or not.
    assert level_for(Candidate("camera", "person", 5.0, 40.0, None, False, near=True), CFG.alerts) == AlertLevel.CLEAR


def test_a_big_thing_filling_the_frame_beyond_the_caution_distance_is_not_the_near_field() -> None:
    """A bus spanning the frame's height reads 3.0 f / 360 = 4.1 m at most: big,
    not near (the photo suite's tram stop drew a false DANGER); a person
    spanning it (2.3 m at most) is."""
    g = CameraGeometry(640, 360, 66.0, 1.1, 0.0)
    box = (250.0, 0.0, 420.0, 360.0)
    for label, cls, near in (("bus", 5, False), ("person", 0, True)):
        tr = IouTracker()
        for i in range(3):
            tracks = tr.update(ns(i / 15), dets(box, cls=cls))
        (ct,) = camera_tracks(tracks, g)
        assert ct.label == label and ct.near_bearing_deg == 0.0
        assert (ct.distance_m > CFG.alerts.caution_distance_m) is not near
        est = ThreatEstimator(CFG)
        est.set_camera(CameraResult(ns(0.1), 2, (ct,)))
        (c,) = est.candidates(ns(0.11))
        assert c.near is near, label


def test_a_tall_thing_filling_the_frame_is_the_near_field_once_it_is_seen_closing() -> None:
    """A bus or truck filling the frame close in front never reads nearer than
    3.0 f / 360 = 4.1 m by its clipped height; cut by the frame's bottom edge it
    stands nearer than the ground there (3.0 m), and it is the near field (DANGER,
    confirmed at its third frame) as soon as looming over the same surface, or
    its own box, says it closes within the CAUTION time, or at once when the
    ground plane is trusted (the camera path then bounds it by that ground). A
    picture of one that looms slowly (the photo suite's tram stop: 5-8 s, its
    ground never trusted) is not; nor is a looming surface beside the box, nor
    a box whose bottom the frame shows."""
    from device.perception.looming import LoomingResult

    g = CameraGeometry(640, 360, 66.0, 1.1, 0.0)
    filling, above_bottom = (0.0, 4.0, 640.0, 360.0), (0.0, 4.0, 640.0, 300.0)
    inside, beside = (260.0, 60.0, 380.0, 200.0), (560.0, 60.0, 640.0, 200.0)
    for label, cls in (("bus", 5), ("truck", 7)):
        for box, loom_box, loom_ttc, near in (
            (filling, None, None, False),  # no closing evidence: the tram stop
            (filling, inside, 1.5, True),
            (filling, inside, 3.9, True),
            (filling, inside, 6.0, False),  # looming slowly: far, or a picture
            ((0.0, 4.0, 500.0, 360.0), beside, 1.5, False),  # something beside it looms
            (above_bottom, inside, 1.5, False),  # its foot in view: not nearer than the ground there
        ):
            tr = IouTracker()
            for i in range(3):
                tracks = tr.update(ns(i / 15), dets(box, cls=cls))
            (ct,) = camera_tracks(tracks, g)
            assert ct.label == label and ct.near_bearing_deg == 0.0
            assert ct.distance_m > CFG.alerts.caution_distance_m
            est = ThreatEstimator(CFG)
            est.set_camera(CameraResult(ns(0.13), 2, (ct,)))
            if loom_box is not None:
                for i in range(CFG.looming.min_frames):
                    est.set_looming(LoomingResult(ns(0.13 - 0.01 * i), 2, loom_ttc, 3.0, 0.0, 2.0, loom_box, 8))
            cam = next(c for c in est.candidates(ns(0.14)) if c.source == "camera")
            assert cam.near is near and cam.confirmed is near, (label, box, loom_box, loom_ttc)
            assert (level_for(cam, CFG.alerts) == AlertLevel.DANGER) is near
            # Once the ground plane is trusted, the camera path bounds a box the bottom
            # edge cuts by the ground there: no further than that is the near field.
            distances = CameraDistances(CFG.camera)
            distances.ground_checks = 20
            (bounded,) = distances.tracks(tracks, g)
            trusting = ThreatEstimator(CFG)
            trusting.set_camera(CameraResult(ns(0.13), 2, (bounded,)))
            (seen,) = trusting.candidates(ns(0.14))
            assert seen.near is (box[3] == 360.0), (label, box)
            # DANGER at once: the near field's three frames are its persistence
            # (looming's own candidate is only weighed where it alone is no DANGER).
            if loom_box is None or loom_ttc > CFG.alerts.caution_ttc_s:
                assert (est.assess(ns(0.14)).level == AlertLevel.DANGER) is near


def test_the_near_field_outlasts_the_detector_losing_what_fills_the_frame() -> None:
    """YOLOX often finds nothing in a frame one object fills: a near-field
    object the detector loses stands as DANGER for NEAR_HOLD_S after its last
    detection, then goes; one seen leaving the near field is not held."""
    from device.decision.threat import NEAR_HOLD_S

    g = CameraGeometry(640, 360, 66.0, 1.1, 0.0)
    # Seen last as it filled the frame, or seen stepping back out of the near field (the same track).
    across, stepped_back = (250.0, 0.0, 420.0, 360.0), (300.0, 60.0, 420.0, 300.0)
    for last_box, held in ((across, True), (stepped_back, False)):
        tr, est = IouTracker(), ThreatEstimator(CFG)
        for i in range(4):
            t = i / 15
            box = across if i < 3 else last_box
            est.set_camera(CameraResult(ns(t), i, camera_tracks(tr.update(ns(t), dets(box)), g)))
            if i:
                assert [c.near for c in est.candidates(ns(t))] == [box is across]
        t_last = 3 / 15  # the last frame anything was found in
        assert (est.assess(ns(3 / 15)).level == AlertLevel.DANGER) is held
        # Frames on, at 15 a second, with nothing found in them.
        for i in range(4, 40):
            t = i / 15
            est.set_camera(CameraResult(ns(t), i, camera_tracks(tr.update(ns(t), dets()), g)))
            near = [c for c in est.candidates(ns(t)) if c.near]
            assert bool(near) is (held and t - t_last <= NEAR_HOLD_S), t
            if near:
                assert near[0].confirmed and level_for(near[0], CFG.alerts) == AlertLevel.DANGER
    # Not lost while something is found where it was (here the same box under another class
    # the tracker does not take for it, a bench, not the near field at this size): that box
    # speaks for it. (A dog would continue the person's track: CONFUSABLE in tracking.py.)
    tr, est = IouTracker(), ThreatEstimator(CFG)
    for i in range(8):
        t = i / 15
        found = dets(across) if i < 3 else dets((260.0, 80.0, 410.0, 300.0), cls=13)
        est.set_camera(CameraResult(ns(t), i, camera_tracks(tr.update(ns(t), found), g)))
        assert [c.near for c in est.candidates(ns(t))][:1] == ([True] if 0 < i < 3 else [] if i in (0, 3) else [False])


# ---------------------------------------------------------------- tracking


def approaching_box(t: float, d0: float, v: float, f: float = 480.0) -> tuple[float, float, float, float]:
    """Box of a 1.7 m person at distance d0 - v t, centred in a 640x480 image."""
    h = 1.7 * f / (d0 - v * t)
    return (300.0, 240 - h / 2, 340.0, 240 + h / 2)


def test_tracker_keeps_identity_and_measures_ttc() -> None:
    tr = IouTracker()
    d0, v = 10.0, 2.0
    for i in range(11):  # 1 s at 10 fps
        t = i / 10
        seen = tr.update(ns(t), dets(approaching_box(t, d0, v)))
        assert len(seen) == 1 and seen[0].track_id == 1
    track = seen[0]
    assert track.hits == 11
    ttc = ttc_from_scale_rate(track.scale_rate(ns(1.0)))
    # At t=1 the true TTC is (10-2)/2 = 4 s; a log-linear fit over the last
    # second is a slight underestimate (it sees the average growth rate).
    assert ttc == pytest.approx(4.0, rel=0.15)


def test_tracker_new_ids_for_other_class_and_far_boxes() -> None:
    tr = IouTracker()
    tr.update(0, dets((0, 0, 50, 100)))
    seen = tr.update(ns(0.1), dets((0, 0, 50, 100), cls=2))  # a car where the person was (a dog continues it)
    assert seen[0].track_id == 2
    seen = tr.update(ns(0.2), dets((400, 0, 450, 100)))
    assert seen[0].track_id == 3


def test_tracker_forgets_after_gap() -> None:
    tr = IouTracker(max_gap_s=0.5)
    tr.update(0, dets((0, 0, 50, 100)))
    seen = tr.update(ns(1.0), dets((0, 0, 50, 100)))
    assert seen[0].track_id == 2


def test_ttc_none_when_not_growing() -> None:
    assert ttc_from_scale_rate(None) is None
    assert ttc_from_scale_rate(0.0) is None
    assert ttc_from_scale_rate(-0.2) is None
    assert ttc_from_scale_rate(0.5) == 2.0


# ---------------------------------------------------------------- policy


def cand(d: float, ttc: float | None = None, in_path: bool = True) -> Candidate:
    return Candidate("camera", "person", d, 0.0, ttc, in_path)


@pytest.mark.parametrize(
    ("d", "ttc", "level"),
    [
        (10.0, None, AlertLevel.CLEAR),
        (10.0, 3.9, AlertLevel.CAUTION),
        (2.9, None, AlertLevel.CAUTION),
        (10.0, 2.4, AlertLevel.WARN),
        (1.9, None, AlertLevel.WARN),
        (10.0, 1.1, AlertLevel.DANGER),
        (0.7, None, AlertLevel.DANGER),
    ],
)
def test_level_thresholds(d: float, ttc: float | None, level: AlertLevel) -> None:
    assert level_for(cand(d, ttc), CFG.alerts) == level


def test_out_of_path_never_alerts() -> None:
    assert level_for(cand(0.5, 0.5, in_path=False), CFG.alerts) == AlertLevel.CLEAR


def feed(track: SensorTrack, readings: list[tuple[float, float | None]]) -> None:
    for t, m in readings:
        track.add(Range(ns(t), SENSOR.name, m))


def test_single_spike_is_not_an_obstacle() -> None:
    tr = SensorTrack(SENSOR)
    feed(tr, [(0.0, None), (0.06, 0.3), (0.12, None)])
    assert tr.candidate(ns(0.13), ns(0.15), 0.3) is None


def test_confirmed_reading_and_closing_ttc() -> None:
    tr = SensorTrack(SENSOR)
    # Closing at 1 m/s from 3 m, a ping every 60 ms.
    feed(tr, [(i * 0.06, 3.0 - i * 0.06) for i in range(8)])
    c = tr.candidate(ns(0.43), ns(0.15), 0.3)
    assert c is not None
    assert c.distance_m == pytest.approx(3.0 - 7 * 0.06)
    assert c.ttc_s == pytest.approx(c.distance_m / 1.0, rel=0.01)


def test_stale_reading_is_ignored() -> None:
    tr = SensorTrack(SENSOR)
    feed(tr, [(0.0, 1.0), (0.06, 1.0)])
    assert tr.candidate(ns(0.2), ns(0.15), 0.3) is not None
    assert tr.candidate(ns(0.22), ns(0.15), 0.3) is None


def test_no_echo_does_not_erase_a_fresh_reading() -> None:
    tr = SensorTrack(SENSOR)
    feed(tr, [(0.0, 0.5), (0.06, 0.5), (0.12, None)])
    c = tr.candidate(ns(0.13), ns(0.15), 0.3)
    assert c is not None and c.distance_m == 0.5


def test_fault_reading_suppresses_the_sensor() -> None:
    tr = SensorTrack(SENSOR)
    feed(tr, [(0.0, 0.5), (0.06, 0.5)])
    tr.add(Range(ns(0.1), SENSOR.name, None, fault="no-echo-signal"))
    assert tr.candidate(ns(0.11), ns(0.15), 0.3) is None
    assert tr.fault == "no-echo-signal"


def test_fusion_takes_sensor_distance_and_camera_label() -> None:
    cam = Candidate("camera", "dog", 2.0, 2.0, None, True)
    us = Candidate("ultrasonic", SENSOR.name, 1.4, 0.0, 1.0, True)
    out = fuse([cam], [(SENSOR, us)])
    assert len(out) == 1
    assert (out[0].source, out[0].label, out[0].distance_m, out[0].ttc_s) == ("fused", "dog", 1.4, 1.0)


def test_fusion_needs_distances_that_agree() -> None:
    far_person = Candidate("camera", "person", 10.0, 0.0, None, False)
    hand = Candidate("ultrasonic", SENSOR.name, 0.1, 0.0, None, True)
    out = fuse([far_person], [(SENSOR, hand)])
    assert sorted(c.source for c in out) == ["camera", "ultrasonic"]
    # A clipped box is nearer than its height says: a nearer sensor reading fuses.
    close = Candidate("camera", "person", 2.2, 0.0, None, False, clipped=True)
    out = fuse([close], [(SENSOR, hand)])
    assert [(c.source, c.in_path, c.distance_m) for c in out] == [("fused", True, 0.1)]


def test_fused_candidate_is_in_path() -> None:
    cam = Candidate("camera", "bench", 1.2, 5.0, None, False)
    us = Candidate("ultrasonic", SENSOR.name, 1.1, 0.0, None, True)
    (out,) = fuse([cam], [(SENSOR, us)])
    assert out.in_path and level_for(out, CFG.alerts) == AlertLevel.WARN


def test_fusion_keeps_object_outside_beam_apart() -> None:
    cam = Candidate("camera", "person", 2.0, 30.0, None, True)
    us = Candidate("ultrasonic", SENSOR.name, 1.4, 0.0, None, True)
    assert sorted(c.source for c in fuse([cam], [(SENSOR, us)])) == ["camera", "ultrasonic"]


def test_estimator_ultrasonic_approach_warn_then_danger() -> None:
    est = ThreatEstimator(CFG)
    levels = []
    # Walking back at 1.5 m/s towards a wall from 4 m, pinged every 60 ms.
    for i in range(45):
        t = i * 0.06
        est.add_ranges([Range(ns(t), SENSOR.name, max(4.0 - 1.5 * t, 0.05))])
        levels.append(est.assess(ns(t)).level)
    firsts = [levels.index(lv) for lv in (AlertLevel.WARN, AlertLevel.DANGER)]
    assert firsts[0] < firsts[1]
    # WARN must come >= 2 s before contact (contact at t = 4/1.5 = 2.67 s).
    assert 4.0 / 1.5 - firsts[0] * 0.06 >= 2.0 - 1e-9
    assert levels[-1] == AlertLevel.DANGER


def test_estimator_ignores_stale_camera_and_single_hit_tracks() -> None:
    est = ThreatEstimator(CFG)
    g = CameraGeometry(640, 480, 66.0, 1.1, 0.0)
    tr = IouTracker()
    box = (280.0, 0.0, 360.0, 480.0)  # a person filling the frame: < 2 m away
    tracks = tr.update(0, dets(box))
    est.set_camera(CameraResult(0, 0, camera_tracks(tracks, g), interval_ns=tr.interval_ns()))
    assert est.assess(ns(0.01)).level == AlertLevel.CLEAR  # one frame is not enough
    tracks = tr.update(ns(0.1), dets(box))
    est.set_camera(CameraResult(ns(0.1), 1, camera_tracks(tracks, g), interval_ns=tr.interval_ns()))
    # Seen twice: a candidate now, but a level sounds only once its evidence
    # has lasted alerts.persist_s.
    assert est.assess(ns(0.11)).level == AlertLevel.CLEAR
    tracks = tr.update(ns(0.2), dets(box))
    est.set_camera(CameraResult(ns(0.2), 2, camera_tracks(tracks, g), interval_ns=tr.interval_ns()))
    assert est.assess(ns(0.21)).level == AlertLevel.DANGER  # the near field: it fills the frame
    est2 = ThreatEstimator(CFG)
    est2.set_camera(CameraResult(ns(0.1), 1, camera_tracks(tracks, g)))
    assert est2.assess(ns(0.1) + ns(CFG.camera.max_age_s) + 1).level == AlertLevel.CLEAR


def test_estimator_reports_sensor_faults() -> None:
    est = ThreatEstimator(CFG)
    est.add_ranges([Range(0, SENSOR.name, None, fault="no-echo-signal")])
    threat = est.assess(ns(0.01), (Fault(Part.CAMERA, Kind.FAILED, "stopped"),))
    assert texts(threat.faults) == ("camera: stopped", f"{SENSOR.name}: no-echo-signal")
    assert est.sensor_faults() == (Fault(Part.SENSOR, Kind.FAILED, "no-echo-signal", name=SENSOR.name),)


def test_sensor_faults_keep_their_kind() -> None:
    from device.sensing.ultrasonic import ECHO_NEVER_RISES, FROZEN_VALUE, SILENT

    est = ThreatEstimator(CFG)
    for name, kind in ((SILENT, Kind.STALLED), (FROZEN_VALUE, Kind.FROZEN), (ECHO_NEVER_RISES, Kind.FAILED)):
        est.add_ranges([Range(0, SENSOR.name, None, fault=name)])
        assert est.sensor_faults() == (Fault(Part.SENSOR, kind, name, name=SENSOR.name),)
        assert est.assess(ns(0.01)).faults == est.sensor_faults()  # typed in the threat too


def test_alerts_config_rejects_unordered_thresholds() -> None:
    with pytest.raises(ValueError):
        AlertsConfig(warn_ttc_s=5.0)


# ---------------------------------------------------------------- issue 4: distance, policy, direction

from device.core.config import from_dict  # noqa: E402
from device.decision.threat import AlertPolicy, direction_for  # noqa: E402
from device.output.alerts import Alerter, side_duties  # noqa: E402
from device.perception.geometry import fuse_distances, ground_distance_m  # noqa: E402


def test_ground_plane_distance_from_the_bottom_edge() -> None:
    g = CameraGeometry(640, 360, 66.0, mount_height_m=1.1, pitch_deg=0.0)
    f = g.focal_px
    # Feet 5 m away on flat ground are f * 1.1 / 5 px below the centre row.
    box = (300.0, 0.0 + 10, 340.0, 180 + f * 1.1 / 5)
    assert g.ground_distance_m(box, "person") == pytest.approx(5.0, rel=1e-6)
    # Tilting the camera down by 3 degrees moves the same feet up in the image.
    tilted = CameraGeometry(640, 360, 66.0, mount_height_m=1.1, pitch_deg=3.0)
    y = 180 + f * math.tan(math.atan(1.1 / 5) - math.radians(3.0))
    assert tilted.ground_distance_m((300.0, 10.0, 340.0, y), "person") == pytest.approx(5.0, rel=1e-6)
    # No ground estimate: above the horizon, bottom cut off, or a class that floats.
    assert g.ground_distance_m((300.0, 10.0, 340.0, 170.0), "person") is None
    assert g.ground_distance_m((300.0, 10.0, 340.0, 360.0), "person") is None
    assert g.ground_distance_m(box, "stop sign") is None
    assert ground_distance_m(0.5, 1.1, 0.0) is None  # too near the horizon to mean anything


def test_fused_distance_weights_ground_near_and_height_far() -> None:
    # Near, the ground estimate is the sharper one and pulls the result to it.
    near = fuse_distances(2.4, 2.0, 1.1)
    assert 2.0 < near < 2.2
    # Far, a degree of pitch is metres: the box height dominates.
    far = fuse_distances(12.0, 14.0, 1.1)
    assert 12.0 < far < 12.6
    # Disagreeing wildly (feet hidden, a raised camera): box height alone.
    assert fuse_distances(8.0, 2.5, 1.1) == 8.0
    assert fuse_distances(3.0, None, 1.1) == 3.0


class Cam:
    """The detect stage's tracker and decided distances, fed boxes by the test."""

    def __init__(self) -> None:
        self.tracker = IouTracker()
        self.distances = CameraDistances(CFG.camera)

    @property
    def tracks(self) -> list[Track]:
        return self.tracker.tracks


def feed_camera(est: ThreatEstimator, cam: Cam, g: CameraGeometry, t: float, *boxes) -> None:
    tracks = cam.tracker.update(ns(t), dets(*boxes))
    est.set_camera(CameraResult(ns(t), round(t * 15), cam.distances.tracks(tracks, g),
                                interval_ns=cam.tracker.interval_ns()))


def test_ground_plane_trusted_only_while_it_agrees_on_average() -> None:
    g = CameraGeometry(640, 360, 66.0, 1.1, 0.0)
    f = g.focal_px

    def box(d: float, mount: float) -> tuple[float, float, float, float]:
        bottom = 180 + f * mount / d
        return (300.0, bottom - f * 1.7 / d, 340.0, bottom)

    ok, raised = ThreatEstimator(CFG), ThreatEstimator(CFG)
    t_ok, t_raised = Cam(), Cam()
    for i in range(15):
        feed_camera(ok, t_ok, g, i / 15, box(8.0, 1.1))
        # The same person seen by a camera 3 m up: feet far lower in the image.
        feed_camera(raised, t_raised, g, i / 15, box(8.0, 3.0))
    assert t_ok.distances.ground_trusted
    assert not t_raised.distances.ground_trusted
    (c,) = raised.candidates(ns(1.0))
    assert c.distance_m == pytest.approx(8.0, rel=0.01)  # box height only


def test_an_object_seen_in_one_frame_never_alerts() -> None:
    g = CameraGeometry(640, 480, 66.0, 1.1, 0.0)
    close = (280.0, 0.0, 360.0, 480.0)  # fills the frame: well inside 2 m
    est, tr = ThreatEstimator(CFG), Cam()
    levels = []
    feed_camera(est, tr, g, 0.0, close)
    for t in np.arange(0.0, 1.0, 0.02):
        if t >= 1 / 15:
            est.set_camera(CameraResult(ns(t), 1, ()))  # gone from the next frame on
        levels.append(est.assess(ns(t)).level)
    assert max(levels) == AlertLevel.CLEAR
    # Seen in two frames 67 ms apart (15 fps) and then gone: still shorter than persist_s.
    est, tr = ThreatEstimator(CFG), Cam()
    feed_camera(est, tr, g, 0.0, close)
    levels = []
    for t in np.arange(0.0, 1.0, 0.02):
        if 1 / 15 <= t < 2 / 15 and tr.tracks[0].hits == 1:
            feed_camera(est, tr, g, 1 / 15, close)
        elif t >= 2 / 15:
            est.set_camera(CameraResult(ns(t), 2, ()))
        levels.append(est.assess(ns(t)).level)
    assert max(levels) == AlertLevel.CLEAR
    # Seen for longer: it alerts, and goes on alerting.
    est, tr = ThreatEstimator(CFG), Cam()
    levels = []
    for i in range(6):
        feed_camera(est, tr, g, i / 15, close)
        levels.append(est.assess(ns(i / 15 + 0.01)).level)
    assert levels[:2] == [AlertLevel.CLEAR, AlertLevel.CLEAR] and levels[-1] == AlertLevel.DANGER
    # Filling the frame in the corridor, it is DANGER at its third frame: three frames are
    # confirmation enough (persist_s, counted from the second, would wait for a fourth).
    assert levels[2] == AlertLevel.DANGER


def test_policy_persistence_escalation_and_hold() -> None:
    p = AlertPolicy(persist_s=0.1, hold_s=0.6)
    assert p.update(0, AlertLevel.WARN) == AlertLevel.CLEAR
    assert p.update(ns(0.06), AlertLevel.WARN) == AlertLevel.CLEAR
    assert p.update(ns(0.1), AlertLevel.WARN) == AlertLevel.WARN
    # An alarm that is on escalates at once ...
    assert p.update(ns(0.12), AlertLevel.DANGER) == AlertLevel.DANGER
    # ... and steps down only after hold_s.
    assert p.update(ns(0.2), AlertLevel.CLEAR) == AlertLevel.DANGER
    assert p.update(ns(0.81), AlertLevel.CLEAR) == AlertLevel.CLEAR
    # A broken streak starts the persistence again.
    assert p.update(ns(1.0), AlertLevel.WARN) == AlertLevel.CLEAR
    assert p.update(ns(1.05), AlertLevel.CLEAR) == AlertLevel.CLEAR
    assert p.update(ns(1.1), AlertLevel.WARN) == AlertLevel.CLEAR
    # Confirmed evidence (two agreeing pings) needs no more waiting.
    q = AlertPolicy(persist_s=0.1, hold_s=0.6)
    assert q.update(0, AlertLevel.DANGER, confirmed=True) == AlertLevel.DANGER


def test_hysteresis_keeps_a_level_near_its_threshold() -> None:
    a = CFG.alerts  # warn at TTC 2.5 s, hysteresis 15 %
    wobble = cand(10.0, 2.7)
    assert level_for(wobble, a) == AlertLevel.CAUTION
    assert level_for(wobble, a, AlertLevel.WARN) == AlertLevel.WARN
    assert level_for(cand(10.0, 2.9), a, AlertLevel.WARN) == AlertLevel.CAUTION
    assert level_for(cand(2.2, None), a, AlertLevel.WARN) == AlertLevel.WARN  # 2 m x 1.15


def test_camera_approach_at_3mps_warns_2s_ahead_and_says_where() -> None:
    """A person 0.6 m to the runner's right, approached at 3 m/s from 14 m
    (boxes as the pinhole camera would see them, 15 fps)."""
    g = CameraGeometry(640, 360, 66.0, 1.1, 0.0)
    f = g.focal_px
    est, tr = ThreatEstimator(CFG), Cam()
    first_warn = None
    threat = None
    for i in range(int(4.6 * 15)):
        t = i / 15
        d = 14.0 - 3.0 * t
        h, w, x = f * 1.7 / d, f * 0.5 / d, 320 - f * 0.6 / d  # runner's right = image left
        bottom = 180 + f * 1.1 / d
        feed_camera(est, tr, g, t, (x - w / 2, max(bottom - h, 0.0), x + w / 2, min(bottom, 360.0)))
        threat = est.assess(ns(t) + 1)
        if first_warn is None and threat.level >= AlertLevel.WARN:
            first_warn = t
            assert threat.closing_mps == pytest.approx(3.0, rel=0.3)
    assert first_warn is not None and 14.0 / 3.0 - first_warn >= 2.0
    assert threat is not None and threat.direction == "right"


def test_direction_for_bearing() -> None:
    assert direction_for(None, 10) is None
    assert direction_for(-4.0, 10) == "centre"
    assert direction_for(-12.0, 10) == "left"
    assert direction_for(25.0, 10) == "right"


def test_side_motors_play_on_the_threats_side() -> None:
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    assert side_duties(1.0, "left") == (1.0, 0.0)
    assert side_duties(1.0, "right") == (0.0, 1.0)
    assert side_duties(1.0, "centre") == side_duties(1.0, None) == (1.0, 1.0)
    cfg = from_dict({"outputs": {"haptic_left_pin": 5, "haptic_right_pin": 6}})
    factory = MockFactory(pin_class=MockPWMPin)
    with Alerter(cfg.outputs, pin_factory=factory) as a:
        a.update(AlertLevel.DANGER, 0, direction="right")
        assert a.side_output == (0.0, 1.0)
        assert factory.pin(5).state == 0 and factory.pin(6).state == 1
        assert a.output[0] == 1.0  # the main motor plays every pattern, as before
        a.update(AlertLevel.DANGER, ns(0.02), direction="centre")
        assert factory.pin(5).state == 1 and factory.pin(6).state == 1
        a.update(AlertLevel.CLEAR, ns(0.04))
        assert a.side_output == (0.0, 0.0)
    # A single-motor config has no side outputs and still plays.
    with Alerter(CFG.outputs, pin_factory=MockFactory(pin_class=MockPWMPin)) as a:
        a.update(AlertLevel.WARN, 0, direction="left")
        assert a.side_output == (0.0, 0.0) and a.output[0] == 1.0


@pytest.mark.parametrize("rate_hz,min_lead_s", [(15.0, 2.0), (7.5, 2.0), (3.0, 1.5)])
def test_camera_warning_holds_at_low_detection_rates(rate_hz: float, min_lead_s: float) -> None:
    """The same 3 m/s approach with the detector at 15, 7.5 and 3 results a
    second, each result reaching the loop one detection interval after its
    frame (a busy detector), the loop judging every 20 ms as on the device:
    windows, streaks and persistence are in seconds, so the camera still
    warns early and the warning does not drop out between results."""
    g = CameraGeometry(640, 360, 66.0, 1.1, 0.0)
    f = g.focal_px
    est, tr = ThreatEstimator(CFG), Cam()
    period = 1 / rate_hz
    contact = 14.0 / 3.0
    first_warn = None
    levels = []
    k = 0
    for tick in range(int(contact / 0.02)):
        now = tick * 0.02
        while (k + 1) * period <= now:  # frame k's result is in
            t = k * period
            d = 14.0 - 3.0 * t
            h, w = f * 1.7 / d, f * 0.5 / d
            bottom = 180 + f * 1.1 / d
            feed_camera(est, tr, g, t, (320 - w / 2, max(bottom - h, 0.0), 320 + w / 2, min(bottom, 360.0)))
            k += 1
        threat = est.assess(ns(now))
        levels.append(threat.level)
        if first_warn is None and threat.level >= AlertLevel.WARN:
            first_warn = now
    assert first_warn is not None and contact - first_warn >= min_lead_s, (rate_hz, first_warn)
    # Once on, the warning stays on to contact: no gap between results.
    on = levels[round(first_warn / 0.02):]
    assert min(on) >= AlertLevel.WARN



def test_looming_on_a_classified_object_beside_the_corridor_is_no_threat() -> None:
    """Looming puts a surface at the runner's speed times its time to contact,
    true of a still one; something moving towards the runner is further off,
    and so further from the centre line, than that. A looming group on a
    person whose own distance puts that group beside the corridor is not a
    threat (a cyclist passing 1.7 m to the side read 1.5 m ahead and 0.3 m off
    the line: a false WARN); the same group on someone near enough for it to
    be in the corridor is, and so is a group across the centre column, or one
    on no classified track."""
    from device.perception.looming import LoomingResult

    g = CameraGeometry(640, 360, 66.0, 1.1, 0.0)
    half = CFG.alerts.corridor_half_width_m
    far_box, near_box = (380.0, 120.0, 440.0, 225.0), (340.0, 20.0, 470.0, 360.0)
    right, across = (400.0, 140.0, 420.0, 200.0), (300.0, 140.0, 420.0, 200.0)
    for box, loom_box, tracked, beside in (
        (far_box, right, True, True),
        (near_box, right, True, False),  # near: the same bearing is inside the corridor
        (far_box, across, True, False),  # spans the centre column
        (far_box, right, False, False),  # nothing classified there
    ):
        tr = IouTracker()
        for i in range(3):
            tracks = tr.update(ns(i / 15), dets(box))
        (ct,) = camera_tracks(tracks, g)
        inner = math.radians(min(abs(g.bearing_deg(loom_box[0])), abs(g.bearing_deg(loom_box[2]))))
        if box is far_box and loom_box is right:
            assert ct.distance_m * math.sin(inner) > half
        est = ThreatEstimator(CFG)
        est.set_camera(CameraResult(ns(0.13), 2, (ct,) if tracked else (), 
                                    frame=Frame(2, ns(0.13), np.zeros((360, 640, 3), np.uint8))))
        for i in range(CFG.looming.min_frames):
            est.set_looming(LoomingResult(ns(0.13 - 0.01 * i), 2, 1.5, 1.5, -7.0, 1.0, loom_box, 8))
        looming = [c for c in est.candidates(ns(0.14)) if c.source == "looming"]
        assert (looming == []) is beside, (box, loom_box, tracked)
