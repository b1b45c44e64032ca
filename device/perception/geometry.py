"""Where a detected box is, in metres and degrees, from a pinhole camera model.

The camera looks where the runner is going (behind them). Its image is
therefore mirrored with respect to the runner's body: something on the
image's left is on the runner's right. Bearings here are in the runner's
frame: 0 straight behind, negative on the runner's left.

Two independent distance estimates, fused:

- box height against a typical real height per class (`CLASS_HEIGHT_M`):
  works at any range, but a child is not an adult and chairs differ, so it
  is good to some 25 %;
- the box's bottom edge against the ground plane: an object standing on flat
  ground at distance d has its foot point at an angle atan(H / d) below the
  horizon for a camera mounted at height H. Exact for any size of object,
  very good near (where the angle is large), poor far (a degree of pitch
  error, for example from the runner's gait, is a large error in d).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from device.core.config import CameraConfig

# Typical real heights (metres) of what the box of each class spans. Rough by
# nature; a 20% error in height is a 20% error in distance but no error in
# time to collision, which comes from the box's growth rate.
CLASS_HEIGHT_M: dict[str, float] = {
    "person": 1.7,
    "bicycle": 1.1,
    "car": 1.5,
    "motorcycle": 1.2,
    "bus": 3.0,
    "truck": 3.0,
    "dog": 0.5,
    "cat": 0.3,
    "horse": 1.6,
    "bench": 0.85,
    "chair": 0.9,
    "fire hydrant": 0.7,
    "stop sign": 0.75,
    "parking meter": 1.3,
    "potted plant": 0.8,
    "traffic light": 0.9,
    "suitcase": 0.6,
    "skateboard": 0.15,
    "sports ball": 0.22,
    "umbrella": 1.0,
}
DEFAULT_HEIGHT_M = 1.0

# Classes whose box bottom is where they touch the ground. A stop sign's or a
# traffic light's box is the sign on its pole, a ball or an umbrella is
# carried or flies: their bottom edge says nothing about distance.
GROUNDED_CLASSES: frozenset[str] = frozenset({
    "person", "bicycle", "car", "motorcycle", "bus", "truck", "dog", "cat", "horse",
    "bench", "chair", "fire hydrant", "parking meter", "potted plant", "suitcase", "skateboard",
})

# Relative (log) standard errors of the two estimates, for weighting them.
HEIGHT_SIGMA = 0.25  # spread of real heights within a class
PITCH_SIGMA_RAD = math.radians(2.0)  # gait and mounting: the camera's tilt is known to ~2 degrees
GROUND_SIGMA_FLOOR = 0.05  # uneven ground, box edge a few pixels off
# The foot point must be at least this far below the horizon: nearer the
# horizon the ground estimate runs off to infinity.
MIN_GROUND_ANGLE_DEG = 1.0
# Two estimates this many combined standard errors apart do not describe the
# same thing: the ground assumption has failed (feet hidden behind something,
# a person sitting on a wall, a slope), so the box height is used alone.
AGREE_SIGMAS = 2.5
EDGE_PX = 2.0  # a box side this close to an image edge is cut off by it
# The near field: a box that spans the frame's height (cut by its top and
# bottom) or covers this much of the frame is nearer than the class's height
# can say (a person spans a 66 degree camera's height from 2.3 m in).
NEAR_FILL = 0.5
# A detector's box stops a few pixels short of an edge that cuts its object
# (YOLOX-Nano: 3-6 px at 360): within this fraction of the height it is cut.
NEAR_EDGE_FRAC = 0.03


@dataclass(frozen=True)
class CameraGeometry:
    """The one camera model: the decision, the terminal and the preview all
    read distances and bearings through an instance built by `for_camera`
    from the config (no defaults here, so none can differ from it)."""

    width: int
    height: int
    hfov_deg: float
    mount_height_m: float
    pitch_deg: float  # positive = tilted down towards the ground

    @classmethod
    def for_camera(cls, cam: CameraConfig, width: int | None = None, height: int | None = None) -> CameraGeometry:
        """The configured camera; `width`/`height` when frames arrive at another size."""
        return cls(width or cam.width, height or cam.height, cam.hfov_deg, cam.mount_height_m, cam.pitch_deg)

    @property
    def focal_px(self) -> float:
        return (self.width / 2) / math.tan(math.radians(self.hfov_deg) / 2)

    def bearing_deg(self, x_px: float) -> float:
        """Runner-frame bearing of an image column (mirrored, see module doc)."""
        return math.degrees(math.atan2(self.width / 2 - x_px, self.focal_px))

    def below_axis_deg(self, y_px: float) -> float:
        """Angle of an image row below the optical axis (negative above it)."""
        return math.degrees(math.atan2(y_px - self.height / 2, self.focal_px))

    def height_distance_m(self, box: tuple[float, float, float, float], label: str) -> float:
        """Distance along the optical axis from the box height.

        A box cut off by the top or bottom edge is shorter than the object,
        which overstates the distance; such an object is close anyway and its
        box growth (time to collision) still tells the truth.
        """
        h_px = max(box[3] - box[1], 1.0)
        real = CLASS_HEIGHT_M.get(label, DEFAULT_HEIGHT_M)
        return real * self.focal_px / h_px

    def foot_angle_deg(self, box: tuple[float, float, float, float], label: str) -> float | None:
        """Angle of the box's bottom edge below the optical axis, if that edge
        is where the object stands on the ground and is inside the image."""
        if label not in GROUNDED_CLASSES or box[3] >= self.height - EDGE_PX:
            return None
        return self.below_axis_deg(box[3])

    def ground_distance_m(self, box: tuple[float, float, float, float], label: str) -> float | None:
        foot = self.foot_angle_deg(box, label)
        return None if foot is None else ground_distance_m(foot, self.mount_height_m, self.pitch_deg)

    def bottom_ground_m(self) -> float | None:
        """The ground at the frame's bottom edge: the nearest ground the camera sees.
        Anything whose box the bottom edge cuts stands nearer than this."""
        return ground_distance_m(self.below_axis_deg(self.height), self.mount_height_m, self.pitch_deg)

    def cut_at_bottom(self, box: tuple[float, float, float, float]) -> bool:
        return box[3] >= self.height * (1 - NEAR_EDGE_FRAC)

    def cut_at_side(self, box: tuple[float, float, float, float]) -> bool:
        """The left or right edge of the frame cuts the box: its centre and
        width are not its object's (the object goes on beyond the edge)."""
        margin = self.width * NEAR_EDGE_FRAC
        return box[0] <= margin or box[2] >= self.width - margin

    def fills_frame(self, box: tuple[float, float, float, float]) -> bool:
        """Spans the frame from top to bottom, or covers most of it: near by definition."""
        x1, y1, x2, y2 = box
        spans = y1 <= self.height * NEAR_EDGE_FRAC and self.cut_at_bottom(box)
        return spans or (x2 - x1) * (y2 - y1) >= NEAR_FILL * self.width * self.height

    def distance_m(self, box: tuple[float, float, float, float], label: str) -> float:
        """The best distance estimate: box height and ground plane, fused."""
        return fuse_distances(self.height_distance_m(box, label), self.ground_distance_m(box, label),
                              self.mount_height_m)


def ground_distance_m(foot_below_axis_deg: float, mount_height_m: float, pitch_deg: float) -> float | None:
    """Horizontal distance to a point on flat ground seen `foot_below_axis_deg`
    below the optical axis of a camera `mount_height_m` up, tilted down by
    `pitch_deg`. None at or above the horizon (no ground there)."""
    angle = foot_below_axis_deg + pitch_deg
    if angle < MIN_GROUND_ANGLE_DEG:
        return None
    return mount_height_m / math.tan(math.radians(angle))


def ground_sigma(distance_m: float, mount_height_m: float) -> float:
    """Relative error of a ground-plane distance: d = H / tan(a) gives
    dd/d = d/H * da (small angles), so a fixed pitch error matters more far away."""
    return GROUND_SIGMA_FLOOR + distance_m / mount_height_m * PITCH_SIGMA_RAD


def fuse_distances(height_m: float, ground_m: float | None, mount_height_m: float) -> float:
    """Inverse-variance mean of the two estimates in log space, or the box
    height estimate alone when there is no ground estimate or the two disagree."""
    if ground_m is None:
        return height_m
    sg = ground_sigma(ground_m, mount_height_m)
    lh, lg = math.log(height_m), math.log(ground_m)
    if abs(lh - lg) > AGREE_SIGMAS * math.hypot(HEIGHT_SIGMA, sg):
        return height_m
    wh, wg = 1 / HEIGHT_SIGMA**2, 1 / sg**2
    return math.exp((wh * lh + wg * lg) / (wh + wg))
