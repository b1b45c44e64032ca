"""What the camera path concludes about one frame: the data that flows
from the detector's stage to the decision and every view.

The distances here are the decided ones (`device.camera_path.distance`):
the decision and the views read them, nobody fuses them again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from device.core.types import Frame


@dataclass(frozen=True)
class GroundState:
    """A track's filtered position on the ground (m) and velocity (m/s) in
    the runner's frame (device.perception.motion): x sideways, positive
    where bearings are, z ahead along the runner's line."""

    x_m: float
    z_m: float
    vx_mps: float
    vz_mps: float
    vx_sd_mps: float
    vz_sd_mps: float
    updates: int
    # Enough measurements and a small enough velocity covariance to act on.
    settled: bool = False
    x_sd_m: float = 0.0  # standard deviation of x_m
    # The filter's own serial (0: none): one per object, kept when the
    # tracker renames the object's track.
    object_id: int = 0


@dataclass(frozen=True)
class CameraTrack:
    track_id: int
    label: str
    box: tuple[float, float, float, float]
    confidence: float
    hits: int
    # The decided distance: the box height fused with the ground plane while
    # the ground plane is trusted, else the box height alone.
    distance_m: float
    bearing_deg: float
    ttc_s: float | None
    clipped: bool = False
    # The two raw distance measurements the decided one came from: from the
    # box height alone, and the angle of the box's bottom edge below the
    # optical axis (None when the object does not stand on the ground or its
    # bottom is cut off).
    height_distance_m: float | None = None
    foot_angle_deg: float | None = None
    ttc_measure: str | None = None  # "height" or "width": what ttc_s was fitted on
    # Fills the frame (geometry.fills_frame): the bearing of its side nearest
    # the runner's line (0 when it spans the image's centre column); else None.
    near_bearing_deg: float | None = None
    # The ground at the frame's bottom edge when that edge cuts the box: the
    # object stands nearer (its box height alone would put it further away).
    bottom_ground_m: float | None = None
    # Filtered ground position and velocity (None until the camera path has it).
    ground: GroundState | None = None
    # Half the object's width on the ground, m (from the box width at its distance).
    half_width_m: float = 0.0


@dataclass(frozen=True)
class CameraResult:
    """What the camera stage concluded about one frame."""

    t_ns: int
    seq: int
    tracks: tuple[CameraTrack, ...]
    detect_ms: float | None = None
    # The frame the boxes were found in, so a viewer shows boxes, distances
    # and image that belong together. A reference, never a copy.
    frame: Frame | None = field(default=None, compare=False, repr=False)
    # The detector's own pace: the median time between the frames it took,
    # measured once, by the tracker (0 before two frames, or with no detector).
    interval_ns: int = 0
