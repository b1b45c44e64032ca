"""The AI Camera's (IMX500) output, decoded: pure functions, no picamera2.

Layouts reproduced from raspberrypi/picamera2 (picamera2/devices/imx500/
imx500.py and examples/imx500/imx500_object_detection_demo.py):

- `CnnOutputTensor` (request metadata) is one flat float32 list holding
  every output tensor in turn; `CnnOutputTensorInfo` gives each tensor's
  shape, and `IMX500.get_outputs` reshapes each slice in Fortran
  (column-major) order. `unpack_outputs` does the same.
- A network with post-processing on the chip ("_pp": NanoDet-Plus 416 pp,
  SSD MobileNetV2 FPNLite 320 pp, EfficientDet-Lite0 pp) gives boxes (N, 4),
  scores (N,), classes (N,) and a count; boxes are (y0, x0, y1, x1) in
  [0, 1] of the network input unless the network's intrinsics say
  `bbox_order = "xy"` (x0, y0, x1, y1) or `bbox_normalization` (boxes in
  input pixels, divided by the input height as the demo does).
- `IMX500.convert_inference_coords` maps a normalised box to the main
  stream's pixels through the full sensor (4056 x 3040), the inference ROI,
  the sensor mode's size, the ScalerCrop and the ISP output size, in
  libcamera's integer Rectangle arithmetic (`Rectangle::scaledBy` truncates
  each coordinate). `to_frame` is that, for many boxes at once, with the
  same truncations, so a box lands on the very pixels picamera2 would draw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from device.core.types import Detections

FULL_SENSOR = (4056, 3040)  # IMX500.__get_full_sensor_resolution: Rectangle(0, 0, 4056, 3040)


class TensorLayoutError(ValueError):
    """Output tensors that do not have the layout the decoder was told to expect."""


def unpack_outputs(flat: Sequence[float] | np.ndarray, shapes: Sequence[Sequence[int]]) -> list[np.ndarray]:
    """The network's output tensors from the flat `CnnOutputTensor`, as
    `IMX500.get_outputs` builds them: consecutive slices, each reshaped in
    Fortran order to its shape from `CnnOutputTensorInfo`."""
    data = np.asarray(flat, dtype=np.float32).ravel()
    need = sum(int(np.prod(s)) for s in shapes)
    if data.size < need:
        raise TensorLayoutError(f"output tensor has {data.size} values; the shapes {list(map(list, shapes))} "
                                f"need {need}")
    out, offset = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        out.append(data[offset:offset + size].reshape(tuple(shape), order="F"))
        offset += size
    return out


@dataclass(frozen=True)
class PpLayout:
    """How a post-processed ("_pp") detection network lays out its boxes
    (picamera2's NetworkIntrinsics `cpu` section)."""

    bbox_order: str = "yx"  # "yx": (y0, x0, y1, x1); "xy": (x0, y0, x1, y1)
    bbox_normalization: bool = False  # True: boxes in input pixels (divided by the input height)
    input_height: int = 416


def decode_pp(outputs: Sequence[np.ndarray], layout: PpLayout, threshold: float
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(boxes (k, 4) as normalised (y0, x0, y1, x1), scores (k,), classes (k,))
    of the detections scoring above `threshold`, in the network's order.

    As the demo's `parse_detections`: boxes = outputs[0], scores =
    outputs[1], classes = outputs[2]; a fourth tensor, when present, is the
    number of valid rows (the rest is padding)."""
    if len(outputs) < 3:
        raise TensorLayoutError(f"a post-processed detector gives boxes, scores and classes; got {len(outputs)} tensors")
    boxes: np.ndarray = np.asarray(outputs[0], np.float32)
    scores: np.ndarray = np.asarray(outputs[1], np.float32).reshape(-1)
    classes: np.ndarray = np.asarray(outputs[2], np.float32).reshape(-1)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or len(scores) != len(boxes) or len(classes) != len(boxes):
        raise TensorLayoutError(f"boxes {boxes.shape}, scores {scores.shape}, classes {classes.shape}: "
                                "expected (N, 4), (N,), (N,)")
    n = len(boxes)
    if len(outputs) > 3 and np.size(outputs[3]) >= 1:
        count = float(np.asarray(outputs[3]).ravel()[0])
        if np.isfinite(count):
            n = int(min(max(count, 0), n))
    boxes, scores, classes = boxes[:n], scores[:n], classes[:n]
    if layout.bbox_normalization:
        boxes = boxes / float(layout.input_height)
    if layout.bbox_order == "xy":
        boxes = boxes[:, [1, 0, 3, 2]]
    elif layout.bbox_order != "yx":
        raise TensorLayoutError(f"bbox_order must be 'yx' or 'xy', got {layout.bbox_order!r}")
    keep = scores > threshold
    return boxes[keep], scores[keep], classes[keep].astype(np.int64)


@dataclass(frozen=True)
class Geometry:
    """What `convert_inference_coords` reads from the camera: the ISP output
    (main stream) size, the sensor mode's (raw stream) size, the request's
    ScalerCrop (x, y, w, h) and the inference ROI set with
    `set_inference_roi_abs` (the full sensor unless an aspect ratio was set)."""

    isp_output: tuple[int, int]  # (w, h) of the stream the frames come from
    sensor_output: tuple[int, int]  # (w, h) of the raw stream
    scaler_crop: tuple[int, int, int, int]
    roi: tuple[int, int, int, int] = (0, 0, *FULL_SENSOR)


def _scaled(r: np.ndarray, num: tuple[float, float], den: tuple[float, float]) -> np.ndarray:
    # libcamera Rectangle::scaledBy: x and w times num.w/den.w, y and h times
    # num.h/den.h; on integers truncated (through int64, toward zero; all are
    # >= 0 here), on floats exact.
    out = r.copy()
    for i, axis in enumerate((0, 1, 0, 1)):
        if r.dtype.kind == "i":
            out[..., i] = r[..., i] * int(num[axis]) // int(den[axis])
        else:
            out[..., i] = r[..., i] * num[axis] / den[axis]
    return out


def _bounded(r: np.ndarray, b: np.ndarray) -> np.ndarray:
    # libcamera Rectangle::boundedTo: the intersection, empty (w or h 0) if none.
    x0 = np.maximum(r[..., 0], b[..., 0])
    y0 = np.maximum(r[..., 1], b[..., 1])
    x1 = np.minimum(r[..., 0] + r[..., 2], b[..., 0] + b[..., 2])
    y1 = np.minimum(r[..., 1] + r[..., 3], b[..., 1] + b[..., 3])
    return np.stack([x0, y0, np.maximum(x1 - x0, 0), np.maximum(y1 - y0, 0)], axis=-1)


def to_frame(boxes_yx: np.ndarray, g: Geometry, integer: bool = False) -> np.ndarray:
    """Normalised (y0, x0, y1, x1) boxes -> (x, y, w, h) in the ISP output's
    pixels: `IMX500.convert_inference_coords`'s steps, for many boxes.

    integer=True is picamera2's result to the pixel (int64): its Rectangle
    maths truncates x and the width separately at each scaling, so an edge
    can land up to 2 px short. The default does the same steps in floats:
    sub-pixel boxes, whose growth from frame to frame the time-to-collision
    is read from (on a 640 px stream the truncation alone moved a warning by
    0.2 s in tests/test_accel_contract.py)."""
    b = np.asarray(boxes_yx, np.float64).reshape(-1, 4)
    fw, fh = FULL_SENSOR
    y0, x0, y1, x1 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    obj = np.maximum(np.stack([x0 * fw, y0 * fh, (x1 - x0) * fw, (y1 - y0) * fh], axis=-1), 0)
    dtype = np.int64 if integer else np.float64
    if integer:  # np.maximum(...).astype(np.int32), as picamera2
        obj = obj.astype(np.int32)
    obj = obj.astype(dtype)
    if tuple(g.roi) != (0, 0, 0, 0):
        obj = _bounded(obj, np.asarray(g.roi, dtype))
    crop = _scaled(np.asarray(g.scaler_crop, dtype), g.sensor_output, FULL_SENSOR)
    sensor = _bounded(_scaled(obj, g.sensor_output, FULL_SENSOR), crop)
    sensor[:, 0] -= crop[0]
    sensor[:, 1] -= crop[1]
    size = (int(crop[2]), int(crop[3])) if integer else (float(crop[2]), float(crop[3]))
    return _scaled(sensor, g.isp_output, size)


def detections(boxes_yx: np.ndarray, scores: np.ndarray, classes: np.ndarray, g: Geometry,
               class_map: np.ndarray | None = None, allowed: Sequence[int] | None = None) -> Detections:
    """`Detections` in the frame's pixels (x1 y1 x2 y2). `class_map[c]` is
    the COCO-80 id of the network's class c (-1: not a COCO-80 class);
    without it the network's ids are taken as COCO-80 ids. Boxes wholly
    outside the crop (zero area after mapping) are dropped; so are classes
    not in `allowed`."""
    if len(scores) == 0:
        return Detections.empty()
    xywh = to_frame(boxes_yx, g)
    cls = np.asarray(classes, np.int64)
    if class_map is not None:
        known = (cls >= 0) & (cls < len(class_map))
        cls = np.where(known, class_map[np.clip(cls, 0, max(len(class_map) - 1, 0))], -1)
    keep = (xywh[:, 2] > 0) & (xywh[:, 3] > 0) & (cls >= 0)
    if allowed is not None:
        keep &= np.isin(cls, np.asarray(list(allowed), np.int64))
    xywh, cls = xywh[keep], cls[keep]
    xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1).astype(np.float32)
    return Detections(xyxy=xyxy, confidence=np.asarray(scores, np.float32)[keep], class_id=cls.astype(np.int32))


def coco80_map(labels: Sequence[str], ignore_dash_labels: bool, coco80: Sequence[str]) -> np.ndarray:
    """The COCO-80 id of each network class id, from the network's labels.

    With `ignore_dash_labels` (NanoDet-Plus pp) the demo drops the "-"
    placeholders before indexing, so the ids count the named classes only;
    without it (SSD MobileNetV2) the ids index the full list, placeholders
    included. Names not in COCO-80 map to -1."""
    names = [s for s in labels if s and s != "-"] if ignore_dash_labels else list(labels)
    index = {n.lower(): i for i, n in enumerate(coco80)}
    return np.asarray([index.get(n.strip().lower(), -1) for n in names], np.int64)
