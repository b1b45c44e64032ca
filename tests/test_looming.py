"""Looming on rendered planes: a wall's time to contact, and silence for the
ground, a wall beside the path and a runner standing still."""

from __future__ import annotations

import math

import numpy as np
import pytest

from device.app.compose import camera_stages
from device.camera_path import DetectStage, LoomingStage
from device.core.clock import NS_PER_S, ReplayClock
from device.core.config import ConfigError, from_dict
from device.core.types import AlertLevel, Detections, Frame
from device.decision.looming import LoomingTrack, looming_params
from device.decision.threat import ThreatEstimator
from device.perception.looming import LoomingEstimator, LoomingResult, corridor_polygon, nearest_surface
from device.pipeline import Pipeline
from fakes import BlockedDetector, SlotFrames, inline_camera, threaded_camera
from looming_scene import GROUND, Camera, post, render, side_wall, wall

FPS = 15
CAM = Camera(width=320, height=180)


def gait(t: float) -> dict[str, float]:
    """A runner's bob (3 cm peak to peak at 2.7 Hz), yaw and roll sway."""
    return dict(bob_m=0.015 * math.sin(2 * math.pi * 2.7 * t), yaw_deg=1.5 * math.sin(2 * math.pi * 1.35 * t),
                roll_deg=1.0 * math.sin(2 * math.pi * 1.35 * t + 1.0))


def run(planes, speed: float, seconds: float, stop_at_m: float | None = None):
    """(true time, camera z, result) per frame, the camera moving along z."""
    cfg = from_dict({})
    est = LoomingEstimator(looming_params(cfg))
    out = []
    for i in range(round(seconds * FPS)):
        t = i / FPS
        z = speed * t
        if stop_at_m is not None and stop_at_m - z < 0.3:
            break
        img = render(CAM, planes, z, **gait(t))
        out.append((t, z, est.update(round(t * NS_PER_S), i, img)))
    return out


def test_wall_gives_its_true_time_to_contact_within_15_percent():
    res = run([GROUND, wall(10.5)], 3.0, 3.5, stop_at_m=10.5)
    checked = 0
    for _, z, r in res:
        true = (10.5 - z) / 3.0
        if 1.0 <= true <= 3.0:
            assert r.ttc_s is not None, f"no time to contact at true {true:.2f} s"
            assert abs(r.ttc_s / true - 1) <= 0.15, f"ttc {r.ttc_s:.2f} s against true {true:.2f} s"
            checked += 1
    assert checked >= 25
    speeds = [r.speed_mps for _, z, r in res if r.speed_mps is not None and 10.5 - z > 4.0]
    assert abs(np.median(speeds) / 3.0 - 1) <= 0.1  # the runner's own speed, from the ground


def test_ground_alone_gives_no_threat():
    res = run([GROUND], 3.0, 4.0)
    assert all(r.ttc_s is None for _, _, r in res)
    assert np.median([r.speed_mps for _, _, r in res if r.speed_mps is not None]) == pytest.approx(3.0, rel=0.1)


def test_side_wall_beside_the_path_gives_none():
    res = run([GROUND, side_wall(1.8)], 3.0, 4.0)
    assert all(r.ttc_s is None for _, _, r in res)


def test_runner_standing_still_before_a_wall_gets_none():
    res = run([GROUND, wall(4.0)], 0.0, 4.0)
    assert all(r.ttc_s is None for _, _, r in res)
    assert all(abs(r.speed_mps) < 0.5 for _, _, r in res if r.speed_mps is not None)


class NoDetections:
    """A detector that sees nothing: posts and walls are no COCO class."""

    def detect(self, image: np.ndarray) -> Detections:
        return Detections.empty()


class ListFrames:
    def __init__(self, frames: list[Frame], clock: ReplayClock) -> None:
        self._frames, self._clock, self._i = frames, clock, 0

    def latest(self) -> Frame | None:
        newest = None
        while self._i < len(self._frames) and self._frames[self._i].t_ns <= self._clock.now_ns():
            newest = self._frames[self._i]
            self._i += 1
        return newest

    def wait(self, timeout: float) -> bool:
        return False

    error = None

    def close(self) -> None:
        pass


class NoRanges:
    def poll(self, now_ns: int) -> list:
        return []


class Sink:
    def update(self, level: AlertLevel, now_ns: int, direction: str | None = None) -> None:
        pass


def warn_lead(planes, speed: float, contact_m: float, config: dict | None = None) -> float | None:
    """Seconds before contact of the first WARN, through the device's own loop
    (inline detector feed tapped for looming, no ultrasonic echo)."""
    cfg = from_dict({"camera": {"width": CAM.width, "height": CAM.height}, **(config or {})})
    frames = []
    for i in range(int(contact_m / speed * FPS)):
        t = i / FPS
        if contact_m - speed * t < 0.3:
            break
        frames.append(Frame(i, round(t * NS_PER_S), render(CAM, planes, speed * t, **gait(t))))
    clock = ReplayClock(0)
    main, sides = camera_stages(NoDetections(), cfg)
    pipe = Pipeline(cfg, clock, NoRanges(), Sink(), inline_camera(ListFrames(frames, clock), main, clock, sides=sides))
    for k in range(0, frames[-1].t_ns + 1, NS_PER_S // 50):
        clock.set(k)
        pipe.step()
    warn = [e for e in pipe.events if e.level >= AlertLevel.WARN]
    if not warn:
        return None
    assert warn[0].source == "looming"
    return contact_m / speed - warn[0].t_ns / NS_PER_S


def test_wall_at_3_mps_warns_2_s_before_contact_with_no_class_and_no_echo():
    lead = warn_lead([GROUND, wall(9.0)], 3.0, 9.0)
    assert lead is not None and lead >= 2.0


def test_post_at_2_mps_warns_2_s_before_contact():
    lead = warn_lead([GROUND, post(7.0, width_m=0.14)], 2.0, 7.0)
    assert lead is not None and lead >= 2.0


def test_looming_off_in_config_gives_no_warning():
    assert warn_lead([GROUND, wall(9.0)], 3.0, 9.0, {"looming": {"enabled": False}}) is None


def result(t_s: float, ttc: float | None, distance: float | None = None) -> LoomingResult:
    return LoomingResult(t_ns=round(t_s * NS_PER_S), seq=0, ttc_s=ttc, distance_m=distance, bearing_deg=0.0,
                         speed_mps=3.0)


def test_looming_counts_only_after_min_frames_in_a_row_and_while_fresh():
    cfg = from_dict({"looming": {"min_frames": 3}})
    tr = LoomingTrack(cfg)
    tr.add(result(0.0, 2.0, 6.0))
    tr.add(result(0.07, 1.9, 5.8))
    assert tr.candidate(round(0.07 * NS_PER_S)) is None
    tr.add(result(0.13, None))
    tr.add(result(0.2, 1.8, 5.4))
    tr.add(result(0.27, 1.7, 5.2))
    assert tr.candidate(round(0.27 * NS_PER_S)) is None  # the streak was broken
    tr.add(result(0.33, 1.6, 5.0))
    c = tr.candidate(round(0.33 * NS_PER_S))
    assert c is not None and c.source == "looming" and c.ttc_s == 1.6 and c.in_path
    assert tr.candidate(round((0.33 + cfg.camera.max_age_s + 0.01) * NS_PER_S)) is None  # stale
    tr.add(result(0.4, 0.1, 5.0))  # 50 m/s: impossible, noise
    assert tr.candidate(round(0.4 * NS_PER_S)) is None


def test_threat_takes_looming_under_the_same_persistence():
    cfg = from_dict({"alerts": {"persist_s": 0.1}})
    est = ThreatEstimator(cfg)
    levels = []
    for i in range(8):
        t = i / FPS
        est.set_looming(result(t, 2.0 - t, 6.0 - 3 * t))
        levels.append(est.assess(round(t * NS_PER_S)).level)
    assert levels[:3] == [AlertLevel.CLEAR] * 3  # min_frames, then persist_s
    assert levels[-1] == AlertLevel.WARN
    assert est.assess(round(0.5 * NS_PER_S)).source == "looming"


@pytest.mark.parametrize("key,value", [("width", 10), ("min_frames", 0), ("span_s", -1), ("bogus", 1)])
def test_looming_config_is_strict(key, value):
    with pytest.raises(ConfigError, match=f"looming.{key}"):
        from_dict({"looming": {key: value}})


def test_corridor_polygon_narrows_to_the_horizon():
    poly = corridor_polygon(640, 360, 66.0, 1.1, 0.0, 1.0)
    (lnx, lny), (lfx, lfy), (rfx, rfy), (rnx, rny) = poly
    assert lny > lfy > 180 and rny > rfy > 180  # below the horizon, far is higher
    assert rnx - lnx > rfx - lfx > 0


def test_preview_draws_the_corridor_and_the_expanding_region_with_its_ttc():
    from device.core.types import Range
    from device.view.annotate import CORRIDOR_BGR, LOOMING_BGR, Overlay, draw

    cfg = from_dict({})
    poly = corridor_polygon(640, 360, 66.0, 1.1, 0.0, 1.0)
    lr = LoomingResult(t_ns=0, seq=0, ttc_s=1.8, distance_m=5.4, bearing_deg=0.0, speed_mps=3.0,
                       box=(280.0, 120.0, 360.0, 230.0), points=12, features=140, corridor=poly)
    ov = Overlay(level=AlertLevel.WARN, threat=None, tracks=(), sensors=cfg.ranging.sensors,
                 ranges={"centre": Range(0, "centre", None)}, hfov_deg=66.0, alerts=cfg.alerts, looming=lr)
    image = np.full((360, 640, 3), 90, np.uint8)
    out = draw(image, ov)

    def near(img, bgr):
        return (np.abs(img.astype(int) - np.array(bgr)).sum(axis=-1) <= 15)

    assert near(out[120:230, 276:281], LOOMING_BGR).any(axis=1).mean() > 0.9  # the region's left edge
    assert near(out[235:260, 270:420], LOOMING_BGR).any()  # its "looming ttc 1.8 s" label
    assert near(out[181:360], CORRIDOR_BGR).sum() > 100  # the corridor on the ground
    assert not near(out[:150], CORRIDOR_BGR).any()  # ... and not in the sky
    none = draw(image, Overlay(level=AlertLevel.CLEAR, threat=None, tracks=(), sensors=(), ranges={}, hfov_deg=66.0,
                               alerts=cfg.alerts, looming=LoomingResult(t_ns=0, seq=0, ttc_s=None, corridor=poly)))
    assert not near(none, LOOMING_BGR).any()  # nothing looms: no region drawn


def test_threaded_looming_sees_every_frame_beside_a_detector_that_never_reads():
    """On the device looming has its own branch of the frames: a detector
    busy with one inference (here: never reading) does not hold it back."""
    import threading

    class Spy(LoomingStage):
        def __init__(self, estimator: LoomingEstimator) -> None:
            super().__init__(estimator)
            self.took: list[int] = []

        def process(self, frame: Frame) -> LoomingResult:
            result = super().process(frame)
            self.took.append(frame.seq)
            return result

    cfg = from_dict({"camera": {"width": CAM.width, "height": CAM.height}})
    src = SlotFrames()
    det = BlockedDetector()
    loom = Spy(LoomingEstimator(looming_params(cfg)))
    clock = ReplayClock(0)
    path = threaded_camera(src, DetectStage(det, cfg.camera), clock, sides=[loom])
    done = threading.Event()
    seen: list[int] = []
    try:
        for i in range(12):
            t = i / FPS
            src.slot.put(Frame(i, round(t * NS_PER_S), render(CAM, [GROUND, wall(9.0)], 3.0 * t, **gait(t))))
            # Wait (bounded) for looming to have taken this frame before the next.
            for _ in range(500):
                if loom.took and loom.took[-1] == i:
                    seen.append(i)
                    break
                done.wait(0.01)
        assert seen == list(range(12))
        assert det.entered.is_set()  # the detector is stuck in its first inference throughout
        assert path.poll().looming is not None and path.faults(clock.now_ns()) == ()
    finally:
        det.release.set()
        path.close()
    assert src.closed


def test_looming_off_adds_no_stage():
    main, sides = camera_stages(None, from_dict({"looming": {"enabled": False}}))
    assert sides == ()


@pytest.mark.parametrize("size", [(640, 361), (641, 360), (1280, 721), (16, 9), (15, 8), (8, 4), (2, 1), (1, 1),
                                  (3, 1000), (1000, 3)])
def test_any_frame_size_is_tracked_without_an_error(size: tuple[int, int]) -> None:
    """640x361 and 16x9 or smaller gave a cv2.error in goodFeaturesToTrack
    (the small image and its seeding mask of different heights): live a
    permanent "looming: stopped" FAULT (issue 23). A size change mid-stream
    (a file whose frames change size) is taken in too."""
    w, h = size
    rng = np.random.default_rng(0)
    est = LoomingEstimator()
    for i in range(6):
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        assert est.update(round(i * NS_PER_S / 15), i, image).ttc_s is None
    image = rng.integers(0, 256, (h + 1, w, 3), dtype=np.uint8)  # same width, one row more
    est.update(round(6 * NS_PER_S / 15), 6, image)


def test_the_nearest_group_is_one_surface_not_two_things_either_side_of_the_path() -> None:
    # A tram passing on the next track (left) and people far ahead (right) both expand fast;
    # as one group their box would span the corridor between them. Two groups: the nearer one.
    left = np.array([[10.0, 60.0], [14.0, 80.0], [12.0, 100.0], [18.0, 90.0]])
    right = np.array([[150.0, 70.0], [160.0, 72.0], [170.0, 69.0], [180.0, 75.0], [165.0, 80.0]])
    pos = np.concatenate([left, right])
    tau = np.array([1.0, 1.1, 1.2, 1.0, 1.5, 1.4, 1.6, 1.5, 1.45])
    group = nearest_surface(pos, tau, np.ones(len(pos), bool), link_px=64.0, min_points=3)
    assert group is not None and group.tolist() == [True] * 4 + [False] * 5
    # Nearer right: the right one. A member outside the mask never counts.
    group = nearest_surface(pos, tau[::-1].copy(), np.ones(len(pos), bool), link_px=64.0, min_points=3)
    assert group is not None and group.tolist() == [False] * 4 + [True] * 5
    mask = np.ones(len(pos), bool)
    mask[4:7] = False  # two of the right group left: too few for a surface
    group = nearest_surface(pos, tau[::-1].copy(), mask, link_px=64.0, min_points=3)
    assert group is not None and group.tolist() == [True] * 4 + [False] * 5


def test_a_surface_is_linked_through_its_features_and_too_few_make_none() -> None:
    # A wall's features 40 px apart in a chain are one surface, however wide the chain.
    chain = np.array([[x, 90.0] for x in range(20, 300, 40)])
    group = nearest_surface(chain, np.full(len(chain), 2.0), np.ones(len(chain), bool), link_px=64.0, min_points=3)
    assert group is not None and group.all()
    apart = np.array([[0.0, 0.0], [100.0, 0.0], [200.0, 0.0], [300.0, 0.0]])
    assert nearest_surface(apart, np.ones(4), np.ones(4, bool), link_px=64.0, min_points=3) is None
