"""Looming as a threat source next to the detector's tracks and the sensors.

`device.perception.looming` measures; this decides when a measurement may
become a candidate: only while fresh (`camera.max_age_s`), only once
`looming.min_frames` frames in a row have shown a time to contact (one
frame of bad flow must not alert), and only when the closing speed it
implies is possible. The alert policy (persistence, hold, hysteresis)
then treats it like any camera candidate.
"""

from __future__ import annotations

from device.core.clock import NS_PER_S
from device.core.config import Config
from device.decision.candidate import Candidate
from device.perception.looming import LoomingParams, LoomingResult

SOURCE = "looming"
LABEL = "obstacle"  # no class: any upright surface in the path


def looming_params(config: Config, width: int | None = None) -> LoomingParams:
    """The estimator's parameters from the config (camera geometry included)."""
    lc, cam = config.looming, config.camera
    return LoomingParams(
        width=lc.width if width is None else min(lc.width, width),
        max_features=lc.max_features,
        span_s=lc.span_s,
        min_speed_mps=lc.min_speed_mps,
        min_points=lc.min_points,
        ground_margin=lc.ground_margin,
        corridor_half_width_m=config.alerts.corridor_half_width_m,
        max_height_m=lc.max_height_m,
        hfov_deg=cam.hfov_deg,
        mount_height_m=cam.mount_height_m,
        pitch_deg=cam.pitch_deg,
    )


def centre_inside(group: tuple[float, float, float, float], box: tuple[float, float, float, float]) -> bool:
    """Looming's group (xyxy) lies in `box` (xyxy, the same frame size): its centre does."""
    cx, cy = (group[0] + group[2]) / 2, (group[1] + group[3]) / 2
    return box[0] <= cx <= box[2] and box[1] <= cy <= box[3]


class LoomingTrack:
    """The newest looming result and how many frames in a row have loomed."""

    def __init__(self, config: Config) -> None:
        self.min_frames = config.looming.min_frames
        self.max_age_ns = round(config.camera.max_age_s * NS_PER_S)
        self.max_closing = config.alerts.max_closing_mps
        self.result: LoomingResult | None = None
        self.streak = 0

    def add(self, result: LoomingResult) -> None:
        self.result = result
        self.streak = self.streak + 1 if result.ttc_s is not None else 0

    def _current(self, now_ns: int) -> LoomingResult | None:
        """The newest result, if fresh and confirmed by min_frames in a row."""
        r = self.result
        if r is None or now_ns - r.t_ns > self.max_age_ns or self.streak < self.min_frames:
            return None
        return r

    def closing_inside(self, box: tuple[float, float, float, float], now_ns: int, max_ttc_s: float) -> bool:
        """Looming's expanding group lies inside `box` (its centre does; the
        same frame size) and closes within `max_ttc_s`: the surface the box
        shows is coming nearer, whatever its class says of its distance."""
        r = self._current(now_ns)
        if r is None or r.ttc_s is None or r.box is None or not 0 < r.ttc_s <= max_ttc_s:
            return False
        return centre_inside(r.box, box)

    def candidate(self, now_ns: int) -> Candidate | None:
        r = self._current(now_ns)
        if r is None:
            return None
        if r.ttc_s is None or r.distance_m is None or r.ttc_s <= 0:
            return None
        if r.distance_m / r.ttc_s > self.max_closing:
            return None
        return Candidate(
            source=SOURCE,
            label=LABEL,
            distance_m=r.distance_m,
            bearing_deg=r.bearing_deg if r.bearing_deg is not None else 0.0,
            ttc_s=r.ttc_s,
            in_path=True,  # only features inside the corridor make a group
        )
