"""The camera's own motion between two detector frames, from the background.

The runner's sway turns the camera 1-3 degrees each way once a stride (twice
that running backwards): between two detections a far object's box moves
across the image by more than its own width although the object has barely
moved. Matched on where its box was, each detection then starts a new track
(or continues the one last seen at the same phase of the sway), and no track
keeps the boxes a time to collision is fitted on (hazards jogger-8mps-rough:
five track ids for one jogger between 30 and 15 m).

The background shows the camera's motion: corners outside the tracked boxes
are followed with pyramidal Lucas-Kanade (checked forward-backward) and
OpenCV's `estimateAffinePartial2D` (RANSAC) fits one rotation, scale and
shift to them. Yaw and pitch are its shift, roll its rotation; the scale
takes up part of the expansion the runner's own forward motion gives the
scene. The tracker moves every track's last box by it before matching
(`IouTracker.update(..., motion=)`), so an identity follows the object, not
the image position.

Pure apart from OpenCV: images and boxes in, a 2x3 matrix (previous frame's
pixels to this frame's) or None out. None when there is no previous frame,
too few background corners agree, or the fit is implausible: the tracker
then matches as it always did.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from device.perception.small_grey import small_grey

Box = tuple[float, float, float, float]

# Worked on a 160 px wide grey image: the corners and two LK passes cost a few
# ms (a 320 px image cost 0.4 of a 416 inference, `rearguard bench`), and a
# box's position to a few frame pixels is all that matching needs. Between two
# detections at a Pi Zero's pace (half a second) the rough sway turns the
# camera up to ~10 degrees: ~20 px at 160 px width, which an 11 px window on
# 4 pyramid levels follows.
LK_PARAMS: dict[str, Any] = dict(winSize=(11, 11), maxLevel=3,
                                 criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03))
FB_MAX_PX = 1.0  # forward-backward disagreement above this (small-image px): a lost corner
BOX_MARGIN = 0.2  # boxes are masked out grown by this fraction each side (limbs, the detector's slack)
MIN_INLIERS = 12  # fewer agreeing corners: no estimate
RANSAC_PX = 1.0  # reprojection threshold, small-image px
# A fit whose scale or rotation is beyond what a runner's camera does between
# two detections (half a second at most) is RANSAC settling on something
# else (a large moving object): no estimate.
MAX_LOG_SCALE = 0.15
MAX_ROLL_DEG = 8.0


class CameraMotion:
    """Follows the background from one detector frame to the next."""

    def __init__(self, width: int = 160, max_corners: int = 60) -> None:
        self.width = width
        self.max_corners = max_corners
        self._prev: np.ndarray | None = None
        self._k = 1.0  # frame px per small-image px

    def reset(self) -> None:
        self._prev = None

    def _grey(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        sw = min(self.width, w)
        sh = max(16, round(h * sw / w))
        self._k = w / sw
        return small_grey(image, sw, sh)

    def update(self, image: np.ndarray, boxes: Sequence[Box]) -> np.ndarray | None:
        """The camera's motion from the previous image to this one, as a 2x3
        matrix on frame pixels (x' = M @ (x, y, 1)), or None. `boxes` (frame
        pixels, of either frame) are masked out: what moves on its own."""
        grey = self._grey(image)
        prev, self._prev = self._prev, grey
        if prev is None or prev.shape != grey.shape:
            return None
        mask = np.full(grey.shape, 255, np.uint8)
        for b in boxes:
            x1, y1, x2, y2 = (v / self._k for v in b)
            gx, gy = (x2 - x1) * BOX_MARGIN, (y2 - y1) * BOX_MARGIN
            cv2.rectangle(mask, (int(x1 - gx), int(y1 - gy)), (int(math.ceil(x2 + gx)), int(math.ceil(y2 + gy))), (0,), -1)
        p0 = cv2.goodFeaturesToTrack(prev, maxCorners=self.max_corners, qualityLevel=0.01, minDistance=4,
                                     mask=mask, blockSize=5)
        if p0 is None or len(p0) < MIN_INLIERS:
            return None
        p0 = p0.astype(np.float32)
        # nextPts=None (cv2 allocates it) is valid; OpenCV 4's stubs do not allow it.
        p1, st, _ = cv2.calcOpticalFlowPyrLK(prev, grey, p0, None, **LK_PARAMS)  # type: ignore[call-overload]
        pb, stb, _ = cv2.calcOpticalFlowPyrLK(grey, prev, p1, None, **LK_PARAMS)  # type: ignore[call-overload]
        fb = np.linalg.norm((pb - p0).reshape(-1, 2), axis=1)
        ok = (st.ravel() == 1) & (stb.ravel() == 1) & (fb < FB_MAX_PX)
        if int(ok.sum()) < MIN_INLIERS:
            return None
        a, b = p0.reshape(-1, 2)[ok], p1.reshape(-1, 2)[ok]
        m, inliers = cv2.estimateAffinePartial2D(a, b, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX)
        if m is None or inliers is None or int(inliers.sum()) < MIN_INLIERS:
            return None
        scale = math.hypot(m[0, 0], m[1, 0])
        roll = math.degrees(math.atan2(m[1, 0], m[0, 0]))
        if abs(math.log(max(scale, 1e-6))) > MAX_LOG_SCALE or abs(roll) > MAX_ROLL_DEG:
            return None
        out = m.astype(np.float64).copy()
        out[:, 2] *= self._k  # the shift in frame pixels (the linear part has no unit)
        return out


def moved(box: Box, m: np.ndarray) -> Box:
    """A box carried by the camera's motion: its centre mapped by `m`, its
    size as it was (the object's own growth is the tracker's to see)."""
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    nx = m[0, 0] * cx + m[0, 1] * cy + m[0, 2]
    ny = m[1, 0] * cx + m[1, 1] * cy + m[1, 2]
    hw, hh = (x2 - x1) / 2, (y2 - y1) / 2
    return (float(nx - hw), float(ny - hh), float(nx + hw), float(ny + hh))
