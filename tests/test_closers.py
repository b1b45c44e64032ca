"""Fast closers (issue 19): a far box the runner's sway moves keeps its track,
a slow detector still fits a time to collision, an implausibly short one is
bounded rather than dropped, the corridor test sees through the sway, and
a flow-carried box gives the track's distance and bearing now."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from device.camera_path.distance import SCALE_WINDOW_NS, measured_tracks, scale_window_ns
from device.core.camera import CameraResult, CameraTrack
from device.core.config import Config
from device.core.types import AlertLevel, Frame
from device.decision.threat import ThreatEstimator
from device.perception.flow import FlowResult, FlowTrack
from device.perception.geometry import CameraGeometry
from device.perception.tracking import IouTracker, iou_matrix
from fakes import dets, ns

W, H = 640, 360
F = 480.0  # focal length, px


def person_at(d: float, shift_px: float = 0.0) -> tuple[float, float, float, float]:
    """Box of a 1.7 m, 0.5 m wide person at distance d, straight ahead, moved
    sideways by shift_px (the camera's sway)."""
    h, w = F * 1.7 / d, F * 0.5 / d
    cx, bottom = W / 2 + shift_px, H / 2 + F * 1.1 / d
    return (cx - w / 2, bottom - h, cx + w / 2, bottom)


@pytest.mark.parametrize("fps", [15.0, 7.5])
def test_a_far_box_the_sway_moves_past_its_width_keeps_its_track(fps: float) -> None:
    # A cyclist closing at 8 m/s from 22 m; the runner's sway turns the camera
    # 3 degrees each way at 1.4 Hz (25 px here), moving the box between two
    # detections by more than its width (11-17 px): they do not overlap.
    tr = IouTracker()
    ids, boxes = set(), []
    n = int(0.8 * fps)
    for i in range(n):
        t = i / fps
        boxes.append(person_at(22.0 - 8.0 * t, F * math.tan(math.radians(3.0 * math.sin(2 * math.pi * t / 0.7)))))
        (track,) = tr.update(ns(t), dets(boxes[-1]))
        ids.add(track.track_id)
    assert min(iou_matrix(np.array([a]), np.array([b]))[0, 0] for a, b in zip(boxes, boxes[1:], strict=False)) < tr.min_iou
    assert ids == {1} and track.hits == n
    # Its size history is whole, so the growth gives the time to collision (truth: (22 - 8 t) / 8).
    t_end = (n - 1) / fps
    assert track.ttc_s(ns(1.0), W, H) == pytest.approx((22.0 - 8.0 * t_end) / 8.0, rel=0.05)


def test_the_centre_match_takes_no_box_of_another_size_or_place() -> None:
    tr = IouTracker()
    tr.update(0, dets(person_at(20.0)))  # h 40.8 px
    # Two box heights to the side: another object.
    assert tr.update(ns(0.1), dets(person_at(20.0, 90.0)))[0].track_id == 2
    # Near where the first was (no overlap), but 1.6 times its size: not the same object either.
    big = person_at(20.0 / 1.6, 25.0)
    assert iou_matrix(np.array([person_at(20.0)]), np.array([big]))[0, 0] == 0.0
    assert tr.update(ns(0.2), dets(big))[0].track_id == 3


def test_a_slow_detector_still_fits_a_time_to_collision() -> None:
    # A Pi Zero's pace: a box every 0.545 s. Three boxes span 1.09 s, more than
    # the 1.0 s window, so the box growth never gave a time to collision.
    interval = 0.545
    tr = IouTracker()
    for i in range(3):
        t = i * interval
        (track,) = tr.update(ns(t), dets(person_at(24.0 - 8.0 * t)))
    g = CameraGeometry(W, H, 2 * math.degrees(math.atan(W / 2 / F)), 1.1, 0.0)
    assert tr.interval_ns() == ns(interval)
    (short,) = measured_tracks([track], g, SCALE_WINDOW_NS)
    assert short.ttc_s is None
    (paced,) = measured_tracks([track], g, scale_window_ns(tr.interval_ns()))
    assert paced.ttc_s == pytest.approx((24.0 - 8.0 * 2 * interval) / 8.0, rel=0.02)
    # At a fast detector's pace the window is the 1.0 s it was.
    assert scale_window_ns(ns(1 / 15)) == SCALE_WINDOW_NS


def _track(ttc: float | None, distance: float = 20.0, bearing: float = 0.0, box=(300.0, 100.0, 340.0, 220.0),
           track_id: int = 7) -> CameraTrack:
    return CameraTrack(track_id=track_id, label="person", box=box, confidence=0.9, hits=5,
                       distance_m=distance, bearing_deg=bearing, ttc_s=ttc, ttc_measure="height")


def test_an_implausibly_short_ttc_is_bounded_and_carries_the_streak() -> None:
    cfg = Config()
    est = ThreatEstimator(cfg)
    bound = 20.0 / cfg.alerts.max_closing_mps  # 1.67 s at 12 m/s
    # 1.0 s (20 m/s: implausible) on two results in a row.
    est.set_camera(CameraResult(0, 0, (_track(1.0),)))
    assert est.candidates(0)[0].ttc_s is None  # one result is no streak
    est.set_camera(CameraResult(ns(0.133), 1, (_track(1.0),)))
    # The implausible results are closing all the same: the streak has held, and
    # its time to collision counts at the fastest plausible closing.
    assert est.candidates(ns(0.133))[0].ttc_s == pytest.approx(bound)
    est.set_camera(CameraResult(ns(0.266), 2, (_track(2.0),)))
    assert est.candidates(ns(0.266))[0].ttc_s == pytest.approx(2.0)


def test_one_result_the_track_is_missing_from_does_not_restart_its_streak() -> None:
    """hazards cyclist-10mps inline: one track from 30 m (the camera's motion
    in matching), closing in every result but one at 3.33 s where the
    detector missed it. The streak restarted there, and the WARN came 0.4 s
    later. Two results missing in a row do restart it."""
    step = ns(1 / 15)

    def run(missing: set[int]) -> list[float | None]:
        est = ThreatEstimator(Config())
        out = []
        for i in range(5):
            tracks = () if i in missing else (_track(2.2),)
            est.set_camera(CameraResult(i * step, i, tracks, interval_ns=step))
            out.append(next((c.ttc_s for c in est.candidates(i * step) if c.source == "camera"), None))
        return out
    # Closing at 0, 1; missed at 2; closing at 3: held (0 -> 3 is 0.2 s), as without the miss.
    assert run({2})[3] == pytest.approx(2.2) and run(set())[3] == pytest.approx(2.2)
    # Missed at 1 and 2: the streak starts over at 3, and holds only at 5.
    assert run({1, 2})[3] is None and run({1, 2})[4] is None


def _swaying(est: ThreatEstimator, lateral_m: float, fps: float, seconds: float = 2.0, period_s: float = 0.7,
             sway_deg: float = 3.0) -> tuple[list[bool], list[bool]]:
    """A track 20 m away, lateral_m to the side, seen by a camera the runner's
    sway turns sway_deg each way once a period_s (3 degrees at 1.4 Hz): (the
    corridor test each result, what one frame's bearing alone would have said)."""
    d, b0 = 20.0, math.degrees(math.atan2(lateral_m, 20.0))
    half = est.cfg.corridor_half_width_m
    tests, single = [], []
    for i in range(int(seconds * fps)):
        t = i / fps
        b = b0 + sway_deg * math.sin(2 * math.pi * t / period_s)
        est.set_camera(CameraResult(ns(t), i, (_track(None, d, b),)))
        tests.append(est.candidates(ns(t))[0].in_path)
        single.append(abs(d * math.sin(math.radians(b))) <= half)
    return tests, single


@pytest.mark.parametrize("fps", [15.0, 7.5])
def test_the_corridor_test_sees_through_the_sway(fps: float) -> None:
    passing, single = _swaying(ThreatEstimator(Config()), 1.5, fps)
    assert any(single)  # one frame's bearing alone puts the passer in the corridor now and then
    assert not any(passing)
    head_on, single = _swaying(ThreatEstimator(Config()), 0.0, fps)
    assert not all(single)  # ... and the head-on cyclist out of it
    assert all(head_on)


@pytest.mark.parametrize("fps", [15.0, 7.5])
def test_the_corridor_test_sees_through_a_slow_cadence_s_sway(fps: float) -> None:
    """A stride takes 0.67-0.8 s (2.5-3 steps a second): a median over 0.6 s
    saw less than one of a slow stride's sway and leaned to the phase it
    caught; twice the sway (running backwards) put a passer 1.7 m out inside
    the corridor (hazards pass-cyclist-1.7m-rough, a false WARN once its time
    to collision came 0.07 s sooner)."""
    passing, _ = _swaying(ThreatEstimator(Config()), 1.7, fps, period_s=0.8, sway_deg=4.5)
    assert not any(passing)
    head_on, _ = _swaying(ThreatEstimator(Config()), 0.0, fps, period_s=0.8, sway_deg=4.5)
    assert all(head_on[len(head_on) // 2:])  # once the window has a stride's samples


def test_a_flow_carried_box_gives_the_distance_and_bearing_now() -> None:
    cfg = Config()
    est = ThreatEstimator(cfg)
    w, h = cfg.camera.width, cfg.camera.height
    g = CameraGeometry.for_camera(cfg.camera, w, h)
    box = (w / 2 - 10, 100.0, w / 2 + 10, 160.0)  # straight ahead at the detection's frame
    frame = Frame(t_ns=0, seq=0, image=np.zeros((h, w, 3), np.uint8))
    est.set_camera(CameraResult(0, 0, (_track(None, 10.0, 0.0, box),), frame=frame))
    # Half a second on (a Pi Zero's latency) the flow has carried the box 60 px
    # sideways and grown it by 1.25.
    carried = (box[0] - 60 - 2.5, 100.0 - 7.5, box[2] - 60 + 2.5, 160.0 + 7.5)
    est.set_flow(FlowResult(ns(0.5), 7, (FlowTrack(7, carried, 1.25, None, 20, 0, trail_id=1),)))
    cand = est.candidates(ns(0.5))[0]
    assert cand.distance_m == pytest.approx(10.0 / 1.25)
    assert cand.bearing_deg == pytest.approx(g.bearing_deg((carried[0] + carried[2]) / 2))
    assert abs(cand.bearing_deg) > 5.0
    # A flow that has not followed this detection (an older one's box) is not taken.
    est.set_camera(CameraResult(ns(0.6), 8, (_track(None, 9.0, 0.0, box),), frame=frame))
    cand = est.candidates(ns(0.6))[0]
    assert (cand.distance_m, cand.bearing_deg) == (9.0, 0.0)


def _closing(est: ThreatEstimator, ttcs: list[float | None], step_s: float, measure: str | None = None) -> None:
    """Camera results every step_s, one track with these box TTCs (None:
    the box gave no fit when measure is None, else said "not closing")."""
    for i, ttc in enumerate(ttcs):
        tr = replace(_track(ttc), ttc_measure="height" if ttc is not None else measure)
        est.set_camera(CameraResult(ns(i * step_s), i, (tr,), interval_ns=ns(step_s)))


def test_a_camera_ttc_is_aged_by_its_result_s_age() -> None:
    """At a Pi 4's pace a result reaches the loop a third of a second after
    its frame and stands until the next: its time to collision is from that
    frame, and contact is that much nearer when the loop judges it."""
    est = ThreatEstimator(Config())
    _closing(est, [2.8, 2.8], 0.3)
    (cand,) = est.candidates(ns(0.3))
    assert cand.ttc_s == pytest.approx(2.8)
    (cand,) = est.candidates(ns(0.3 + 0.4))  # 0.4 s after the frame: 2.4 s to go, under the WARN time
    assert cand.ttc_s == pytest.approx(2.4)
    est.assess(ns(0.7))  # WARN's evidence from here (2.4 s); it sounds once it has lasted persist_s
    assert est.assess(ns(0.8)).level == AlertLevel.WARN  # unaged, 2.8 s: CAUTION


def test_a_box_that_gives_no_fit_keeps_its_streak_on_its_last_fit() -> None:
    """hazards jogger-8mps-rough inline: a sprinter's box changed shape faster
    than it grew (no fit) in 3 of 10 results from 22 to 15 m; each restarted
    the closing streak and dropped the time to collision until it held again.
    The last fit, aged, stands for one such result; a box that says "not
    closing" still ends the streak, and so do two silent results in a row."""
    step = 1 / 15
    est = ThreatEstimator(Config())
    _closing(est, [2.6, 2.6, 2.6, None], step)
    assert est.candidates(ns(3 * step))[0].ttc_s == pytest.approx(2.6 - step)
    est = ThreatEstimator(Config())
    _closing(est, [2.6, 2.6, 2.6, None], step, measure="height")  # a fit: not closing
    assert est.candidates(ns(3 * step))[0].ttc_s is None
    est = ThreatEstimator(Config())
    _closing(est, [2.6, 2.6, 2.6, None, None], step)
    assert est.candidates(ns(4 * step))[0].ttc_s is None


def test_a_fit_that_says_sooner_than_the_streak_s_fits_agree_on_is_not_taken_alone() -> None:
    """hazards jogger-5mps at the Pi 4's pace: a young track's fit said 3.85 s,
    the next one 2.63 s (truth 5.0): aged by its result's age that was a false
    WARN. The newest fit's contact time counts, or the median of the streak's
    newest fits' where that is later; a steady approach's fits agree, so it
    loses nothing there."""
    step = 0.27
    est = ThreatEstimator(Config())
    _closing(est, [3.85, 2.63], step)
    contacts = [3.85, step + 2.63]
    assert est.candidates(ns(step))[0].ttc_s == pytest.approx(sum(contacts) / 2 - step)
    est = ThreatEstimator(Config())
    _closing(est, [3.0, 3.0 - step, 3.0 - 2 * step], step)  # a steady approach: contact at 3.0 s
    assert est.candidates(ns(2 * step))[0].ttc_s == pytest.approx(3.0 - 2 * step)
