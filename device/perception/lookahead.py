"""A magnified look where the runner is heading: a detector stage.

Far objects are few pixels tall at a small model input: a person at 25 m is
~35 px tall in a 640 x 360 frame and ~14 px after a 256 letterbox. Where
they come from is known: straight back along the path, near the horizon.
`LookaheadDetector` wraps any `Detector` and, on a schedule, also runs it on
a crop of the frame around where the path meets the horizon (from the
camera's mount height and pitch, `crop_box`), which the model's fixed input
then magnifies. The crop's boxes are moved back to full-frame pixels and
merged with the full frame's (class-wise NMS: an object in both views is
one box), so both views feed the same tracks. The wrapper is itself a
`Detector`, so it plugs into the camera path as a stage.

Schedule: `every` = 1 runs the crop beside the full frame on every call
(an object seen only in the crop is in every result, so its track is
continuous); N > 1 runs it on every Nth call only (cheaper, but a far object
is in only every Nth result). `instead` makes every Nth call the crop alone,
in place of the full frame: one inference per call, so the detector time is
the full frame's; objects outside the crop miss that call (a track outlives
2.5 of the detector's intervals unseen, tracking.GAP_INTERVALS, so N >= 2
keeps them). Near comes first: while the last full frame held a box whose
bottom edge is below the crop's (an object nearer than the crop's nearest
ground), the full frame runs in the crop's turn; halving the detections of a
person stepping in at 1.2 m cost the DANGER it drew (the hazards suite at
the pi4 pace). Chosen by `rearguard evaluate` on the far approaches
(docs/geometry.md).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from device.core.config import CameraConfig
from device.core.ports import Detector
from device.core.types import Detections

# Of the crop's height, this much is above the horizon: a tall object at the
# crop's far end rises above it by (its height - mount height), a near one's
# feet go well below it.
ABOVE_HORIZON = 0.4
EDGE_PX = 2.0  # a crop box side this close to a crop edge is cut off by it


def horizon_row(width: int, height: int, cam: CameraConfig) -> float:
    """Image row of the horizon for a camera tilted `pitch_deg` down (above the centre when positive)."""
    focal = (width / 2) / math.tan(math.radians(cam.hfov_deg) / 2)
    return height / 2 - focal * math.tan(math.radians(cam.pitch_deg))


def crop_box(width: int, height: int, cam: CameraConfig, width_frac: float, aspect: float) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the look-ahead crop in a width x height frame:
    `width_frac` of the frame wide, centred on the path (the image centre),
    `aspect` (width / height, the model input's) tall, ABOVE_HORIZON of it
    above the horizon; moved inside the frame where it would leave it."""
    cw = max(32, min(width, round(width * width_frac)))
    ch = max(32, min(height, round(cw / aspect)))
    x0 = (width - cw) // 2
    y0 = round(horizon_row(width, height, cam) - ABOVE_HORIZON * ch)
    y0 = min(max(0, y0), height - ch)
    return x0, y0, x0 + cw, y0 + ch


class LookaheadDetector:
    """Full frame plus a magnified crop where the path meets the horizon, merged."""

    def __init__(self, inner: Detector, camera: CameraConfig, *, every: int = 1, width_frac: float = 0.5,
                 aspect: float = 16 / 9, nms_iou: float = 0.45, instead: bool = False) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1 (got {every})")
        if instead and every < 2:  # the crop alone on every call: nothing outside it is ever seen
            raise ValueError(f"a crop instead of the full frame needs every >= 2 (got {every})")
        if not 0 < width_frac <= 1:
            raise ValueError(f"width_frac must be in (0, 1] (got {width_frac})")
        self.inner = inner
        self.camera = camera
        self.every = every
        self.width_frac = width_frac
        self.aspect = aspect
        self.nms_iou = nms_iou
        self.instead = instead
        self._calls = 0
        self._near = False  # the last full frame saw something nearer than the crop reaches (instead only)
        self._box: tuple[tuple[int, int], tuple[int, int, int, int]] | None = None  # for a frame size
        self.last_crop: tuple[int, int, int, int] | None = None  # the crop the last call ran (None: none)

    def reset(self) -> None:
        """Start the crop's schedule over, as for a new run: a suite's
        recordings are scored each on its own, not by where the schedule
        stood when the one before ended."""
        self._calls, self._near, self.last_crop = 0, False, None

    def crop_for(self, width: int, height: int) -> tuple[int, int, int, int]:
        if self._box is None or self._box[0] != (width, height):
            self._box = ((width, height), crop_box(width, height, self.camera, self.width_frac, self.aspect))
        return self._box[1]

    def detect(self, image: np.ndarray) -> Detections:
        self._calls += 1
        h, w = image.shape[:2]
        x0, y0, x1, y1 = self.crop_for(w, h)
        crop_now = (self._calls - 1) % self.every == 0 and not (self.instead and self._near)
        if crop_now and self.instead:
            full = Detections.empty()
        else:
            full = self.inner.detect(image)
            self._near = bool(len(full)) and bool((full.xyxy[:, 3] > y1).any())
        if not crop_now:
            self.last_crop = None
            return full
        self.last_crop = (x0, y0, x1, y1)
        ahead = self.inner.detect(image[y0:y1, x0:x1])
        # A box cut by a crop edge that is not a frame edge is part of an
        # object the full frame sees whole: left to the full frame.
        b = ahead.xyxy
        cut = (((b[:, 0] <= EDGE_PX) & (x0 > 0)) | ((b[:, 2] >= x1 - x0 - EDGE_PX) & (x1 < w))
               | ((b[:, 1] <= EDGE_PX) & (y0 > 0)) | ((b[:, 3] >= y1 - y0 - EDGE_PX) & (y1 < h)))
        ahead = ahead[~cut]
        if len(ahead) == 0:
            return full
        moved = ahead.xyxy + np.array([x0, y0, x0, y0], np.float32)
        return merge(full, Detections(moved, ahead.confidence, ahead.class_id), self.nms_iou)

    def close(self) -> None:
        self.inner.close()


def merge(a: Detections, b: Detections, nms_iou: float) -> Detections:
    """Both views' boxes, one per object: class-wise NMS, best score kept."""
    if len(a) == 0:
        return b
    xyxy = np.concatenate((a.xyxy, b.xyxy))
    conf = np.concatenate((a.confidence, b.confidence))
    cid = np.concatenate((a.class_id, b.class_id))
    xywh = xyxy.astype(np.float64)
    xywh[:, 2:] -= xywh[:, :2]
    keep = np.asarray(cv2.dnn.NMSBoxesBatched(xywh, conf.astype(np.float32), cid, 0.0, nms_iou), np.int64).reshape(-1)
    keep.sort()
    return Detections(xyxy[keep], conf[keep], cid[keep])
