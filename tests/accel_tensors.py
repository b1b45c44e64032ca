"""Tensors in the accelerators' exact output layouts, made from Detections,
for the backends' tests (the inverse of device/perception/backends/*_decode).

- `imx500_metadata`: a request's metadata as the AI Camera gives it for a
  post-processed ("_pp") detection network: `CnnOutputTensor`, one flat
  float list of boxes (N, 4) as (y0, x0, y1, x1) in [0, 1], scores (N,),
  classes (N,) and the count, each tensor flattened in Fortran order (what
  picamera2's `IMX500.get_outputs` undoes), plus the shapes and ScalerCrop.
- `hailo_nms`: `Hailo.run`'s output for an NMS .hef: per class, a (k, 5)
  array of [y_min, x_min, y_max, x_max, score] in [0, 1].
"""

from __future__ import annotations

from typing import Any

import numpy as np

from device.core.types import Detections
from device.perception.backends.imx500_decode import FULL_SENSOR, Geometry


def frame_to_inference(xyxy: np.ndarray, g: Geometry) -> np.ndarray:
    """Frame pixels -> normalised (y0, x0, y1, x1) on the full sensor: the
    inverse of convert_inference_coords' scalings, in real numbers (which
    the backend's decoder uses), for a full-sensor ROI."""
    cx, cy, cw, ch = g.scaler_crop
    sw, sh = g.sensor_output
    fw, fh = FULL_SENSOR
    kx, ky, kw, kh = cx * sw / fw, cy * sh / fh, cw * sw / fw, ch * sh / fh  # the crop in sensor-mode pixels
    iw, ih = g.isp_output
    x = np.asarray(xyxy, np.float64)
    sx = x[:, [0, 2]] * kw / iw + kx  # sensor-mode pixels
    sy = x[:, [1, 3]] * kh / ih + ky
    nx, ny = sx / sw, sy / sh  # sensor-mode pixels -> full sensor, normalised
    return np.stack([ny[:, 0], nx[:, 0], ny[:, 1], nx[:, 1]], axis=1)


def imx500_metadata(dets: Detections, g: Geometry, *, rows: int = 100, order: str = "yx") -> dict[str, Any]:
    n = len(dets)
    boxes = np.zeros((rows, 4), np.float32)
    scores = np.zeros(rows, np.float32)
    classes = np.zeros(rows, np.float32)
    b = frame_to_inference(dets.xyxy, g)
    boxes[:n] = b if order == "yx" else b[:, [1, 0, 3, 2]]
    scores[:n] = dets.confidence
    classes[:n] = dets.class_id
    tensors = [boxes, scores, classes, np.array([n], np.float32)]
    flat = np.concatenate([t.ravel(order="F") for t in tensors]).tolist()
    return {"CnnOutputTensor": flat, "ScalerCrop": g.scaler_crop,
            "_shapes": [list(t.shape) for t in tensors]}


def hailo_nms(dets: Detections, width: int, height: int, classes: int = 80) -> list[np.ndarray]:
    out = [np.zeros((0, 5), np.float32) for _ in range(classes)]
    for (x0, y0, x1, y1), s, c in zip(dets.xyxy, dets.confidence, dets.class_id, strict=True):
        row = np.array([[y0 / height, x0 / width, y1 / height, x1 / width, s]], np.float32)
        out[int(c)] = np.concatenate([out[int(c)], row])
    return out
