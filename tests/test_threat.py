"""Geometry, tracking and the threat policy: pure, on a synthetic timeline."""

from __future__ import annotations

import math

import numpy as np
import pytest

from device.clock import NS_PER_S
from device.config import AlertsConfig, Config
from device.geometry import CameraGeometry
from device.threat import (
    Candidate,
    CameraResult,
    LevelHold,
    SensorTrack,
    ThreatEstimator,
    camera_tracks,
    fuse,
    level_for,
)
from device.tracking import IouTracker, ttc_from_scale_rate
from device.types import AlertLevel, Detections, Range

S = NS_PER_S
CFG = Config()
SENSOR = CFG.ranging.sensors[0]


def ns(t: float) -> int:
    return round(t * S)


# ---------------------------------------------------------------- geometry


def test_pinhole_distance_and_bearing() -> None:
    g = CameraGeometry(640, 480, 66.0)
    f = 320 / math.tan(math.radians(33))
    assert g.focal_px == pytest.approx(f)
    # A 1.7 m person 100 px tall is 1.7 * f / 100 m away.
    assert g.distance_m((300, 100, 340, 200), "person") == pytest.approx(1.7 * f / 100)
    assert g.bearing_deg(320) == pytest.approx(0.0)
    # The image is mirrored w.r.t. the runner: image left = runner's right (+).
    assert g.bearing_deg(0) == pytest.approx(33.0)
    assert g.bearing_deg(640) == pytest.approx(-33.0)


# ---------------------------------------------------------------- tracking


def dets(*boxes: tuple[float, float, float, float], cls: int = 0) -> Detections:
    n = len(boxes)
    return Detections(
        xyxy=np.array(boxes, np.float32).reshape(n, 4),
        confidence=np.full(n, 0.9, np.float32),
        class_id=np.full(n, cls, np.int32),
    )


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
    seen = tr.update(ns(0.1), dets((0, 0, 50, 100), cls=16))  # a dog where the person was
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


def test_hold_raises_at_once_and_steps_down_late() -> None:
    hold = LevelHold(0.6)
    assert hold.update(0, AlertLevel.WARN) == AlertLevel.WARN
    assert hold.update(ns(0.1), AlertLevel.DANGER) == AlertLevel.DANGER
    assert hold.update(ns(0.2), AlertLevel.CLEAR) == AlertLevel.DANGER
    assert hold.update(ns(0.69), AlertLevel.CLEAR) == AlertLevel.DANGER
    assert hold.update(ns(0.71), AlertLevel.CLEAR) == AlertLevel.CLEAR


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
    g = CameraGeometry(640, 480, 66.0)
    tr = IouTracker()
    box = (280.0, 0.0, 360.0, 480.0)  # a person filling the frame: < 2 m away
    tracks = tr.update(0, dets(box))
    est.set_camera(CameraResult(0, 0, camera_tracks(tracks, g)))
    assert est.assess(ns(0.01)).level == AlertLevel.CLEAR  # one frame is not enough
    tracks = tr.update(ns(0.1), dets(box))
    est.set_camera(CameraResult(ns(0.1), 1, camera_tracks(tracks, g)))
    # Seen twice: a candidate now, but a level sounds only once its evidence
    # has lasted alerts.persist_s.
    assert est.assess(ns(0.11)).level == AlertLevel.CLEAR
    tracks = tr.update(ns(0.2), dets(box))
    est.set_camera(CameraResult(ns(0.2), 2, camera_tracks(tracks, g)))
    assert est.assess(ns(0.21)).level == AlertLevel.WARN
    est2 = ThreatEstimator(CFG)
    est2.set_camera(CameraResult(ns(0.1), 1, camera_tracks(tracks, g)))
    assert est2.assess(ns(0.1) + ns(CFG.camera.max_age_s) + 1).level == AlertLevel.CLEAR


def test_estimator_reports_sensor_faults() -> None:
    est = ThreatEstimator(CFG)
    est.add_ranges([Range(0, SENSOR.name, None, fault="no-echo-signal")])
    threat = est.assess(ns(0.01), ("camera: stopped",))
    assert threat.faults == ("camera: stopped", f"{SENSOR.name}: no-echo-signal")


def test_alerts_config_rejects_unordered_thresholds() -> None:
    with pytest.raises(ValueError):
        AlertsConfig(warn_ttc_s=5.0)
