"""Where a detected box is, in metres and degrees, from a pinhole camera model.

The camera looks where the runner is going (behind them). Its image is
therefore mirrored with respect to the runner's body: something on the
image's left is on the runner's right. Bearings here are in the runner's
frame: 0 straight behind, negative on the runner's left.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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


@dataclass(frozen=True)
class CameraGeometry:
    width: int
    height: int
    hfov_deg: float

    @property
    def focal_px(self) -> float:
        return (self.width / 2) / math.tan(math.radians(self.hfov_deg) / 2)

    def bearing_deg(self, x_px: float) -> float:
        """Runner-frame bearing of an image column (mirrored, see module doc)."""
        return math.degrees(math.atan2(self.width / 2 - x_px, self.focal_px))

    def distance_m(self, box: tuple[float, float, float, float], label: str) -> float:
        """Distance along the optical axis from the box height.

        A box cut off by the top or bottom edge is shorter than the object,
        which overstates the distance; such an object is close anyway and its
        box growth (time to collision) still tells the truth.
        """
        h_px = max(box[3] - box[1], 1.0)
        real = CLASS_HEIGHT_M.get(label, DEFAULT_HEIGHT_M)
        return real * self.focal_px / h_px
