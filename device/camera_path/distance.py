"""The camera distance, decided once: each track's box-height distance,
fused with the ground plane (the bottom edge against the configured mount
height and pitch) only while the ground plane agrees with box heights on
average. The decision and every view take the result as it is.
"""

from __future__ import annotations

import math
from dataclasses import replace

from device.core.camera import CameraTrack
from device.core.clock import NS_PER_S
from device.core.coco import COCO_CLASSES
from device.core.config import CameraConfig
from device.perception.geometry import EDGE_PX, CameraGeometry, fuse_distances, ground_distance_m
from device.perception.tracking import MIN_SCALE_POINTS, Track

SCALE_WINDOW_NS = round(1.0 * NS_PER_S)  # the box growth a time to collision is fitted on
# ... and at least this many of the detector's intervals: a fit needs
# MIN_SCALE_POINTS boxes, and at a Pi Zero's 0.5 s and more a second would
# never hold three, so the box would never give a time to collision.
SCALE_WINDOW_INTERVALS = MIN_SCALE_POINTS - 0.5


def scale_window_ns(interval_ns: int) -> int:
    """The box-growth window at the detector's pace (its interval between results)."""
    return max(SCALE_WINDOW_NS, round(SCALE_WINDOW_INTERVALS * interval_ns))
# The ground-plane distance is used only while it agrees, on average over
# recent objects, with the box-height distance: a camera mounted higher or
# tilted more than configured, or a slope, shows as a steady disagreement
# (of either sign, depending on where in the image the object is).
GROUND_CHECK_WEIGHT = 0.02  # per observation, of the running mean of |ln(ground / height)|
GROUND_CHECK_MIN = 10  # observations before the ground plane is trusted
GROUND_CHECK_MAX = 0.3  # mean |ln ratio| above this (35 %): the ground plane is off


def measured_tracks(tracks: list[Track], geometry: CameraGeometry, window_ns: int = SCALE_WINDOW_NS) -> tuple[CameraTrack, ...]:
    """The tracks with what the geometry measures of them (time to collision
    from the box growth over `window_ns`); `distance_m` is the box-height
    estimate until `CameraDistances.decide` decides it."""
    out = []
    for tr in tracks:
        label = COCO_CLASSES[tr.class_id]
        cx = (tr.box[0] + tr.box[2]) / 2
        ttc, measure = tr.ttc_estimate(window_ns, geometry.width, geometry.height)
        out.append(
            CameraTrack(
                track_id=tr.track_id,
                label=label,
                box=tr.box,
                confidence=tr.confidence,
                hits=tr.hits,
                distance_m=geometry.distance_m(tr.box, label),
                bearing_deg=geometry.bearing_deg(cx),
                ttc_s=ttc,
                clipped=tr.box[1] <= EDGE_PX or tr.box[3] >= geometry.height - EDGE_PX,
                height_distance_m=geometry.height_distance_m(tr.box, label),
                foot_angle_deg=geometry.foot_angle_deg(tr.box, label),
                ttc_measure=measure,
                near_bearing_deg=_inner_bearing_deg(tr.box, geometry) if geometry.fills_frame(tr.box) else None,
                bottom_ground_m=geometry.bottom_ground_m() if geometry.cut_at_bottom(tr.box) else None,
            )
        )
    return tuple(out)


def _inner_bearing_deg(box: tuple[float, float, float, float], geometry: CameraGeometry) -> float:
    """Bearing of the box's side nearest the image's centre column (0 if it spans it)."""
    mid = geometry.width / 2
    inner = mid if box[0] <= mid <= box[2] else (box[0] if box[0] > mid else box[2])
    return geometry.bearing_deg(inner)



def _near_bound(trusted: bool, tr: CameraTrack, distance: float) -> float:
    """A box the frame's bottom edge cuts stands nearer than the ground there
    (the near field), once the ground plane is trusted: a camera mounted
    higher than configured sees far feet cut off too."""
    if trusted and tr.bottom_ground_m is not None:
        return min(distance, tr.bottom_ground_m)
    return distance


class CameraDistances:
    """Decides each track's distance, and keeps the running check of the
    ground plane against box heights that decides whether it is trusted."""

    def __init__(self, camera: CameraConfig) -> None:
        self.mount_height_m = camera.mount_height_m
        self.pitch_deg = camera.pitch_deg
        self.ground_bias = 0.0  # running mean of |ln(ground / box-height distance)|
        self.ground_checks = 0

    @property
    def ground_trusted(self) -> bool:
        """The ground plane agrees with box heights on average (see GROUND_CHECK_*)."""
        return self.ground_checks >= GROUND_CHECK_MIN and self.ground_bias <= GROUND_CHECK_MAX

    def _ground_distance(self, tr: CameraTrack) -> float | None:
        if tr.foot_angle_deg is None:
            return None
        return ground_distance_m(tr.foot_angle_deg, self.mount_height_m, self.pitch_deg)

    def decide(self, tracks: tuple[CameraTrack, ...]) -> tuple[CameraTrack, ...]:
        """One frame's tracks with their decided distances; every track of
        the frame counts in the ground check before any is decided."""
        grounds = {tr.track_id: self._ground_distance(tr) for tr in tracks}
        for tr in tracks:
            g = grounds[tr.track_id]
            if g is not None and tr.height_distance_m is not None and not tr.clipped:
                a = max(GROUND_CHECK_WEIGHT, 1 / (self.ground_checks + 1))
                self.ground_bias += a * (abs(math.log(g / tr.height_distance_m)) - self.ground_bias)
                self.ground_checks += 1
        trusted = self.ground_trusted
        return tuple(
            tr if tr.height_distance_m is None
            else replace(tr, distance_m=_near_bound(trusted, tr, fuse_distances(
                tr.height_distance_m, grounds[tr.track_id] if trusted else None, self.mount_height_m)))
            for tr in tracks
        )

    def tracks(self, tracks: list[Track], geometry: CameraGeometry, interval_ns: int = 0) -> tuple[CameraTrack, ...]:
        """Measured and decided: what a camera result carries; `interval_ns`
        is the detector's pace (0: unknown yet)."""
        return self.decide(measured_tracks(tracks, geometry, scale_window_ns(interval_ns)))

