"""Issue 24: the accelerators' output decoding, on synthesised tensors in
the vendors' exact layouts (docs/accelerators.md). No hardware, no picamera2."""

from __future__ import annotations

import numpy as np
import pytest

from device.core.coco import COCO_CLASSES
from device.core.types import Detections
from device.perception.backends.hailo_decode import decode_nms_by_class
from device.perception.backends.imx500_decode import (
    FULL_SENSOR,
    Geometry,
    PpLayout,
    TensorLayoutError,
    coco80_map,
    decode_pp,
    detections,
    to_frame,
    unpack_outputs,
)
from tests.accel_tensors import hailo_nms, imx500_metadata

# ------------------------------------------------ picamera2's maths, transcribed


class Rect:
    """libcamera's Rectangle as picamera2 uses it (geometry.cpp: scaledBy
    truncates through int64; boundedTo is the intersection), kept as plain
    Python ints: the reference `to_frame` is held to."""

    def __init__(self, x: int, y: int, w: int, h: int) -> None:
        self.x, self.y, self.w, self.h = int(x), int(y), int(w), int(h)

    def scaled_by(self, num: tuple[int, int], den: tuple[int, int]) -> Rect:
        return Rect(self.x * num[0] // den[0], self.y * num[1] // den[1],
                    self.w * num[0] // den[0], self.h * num[1] // den[1])

    def bounded_to(self, b: Rect) -> Rect:
        x0, y0 = max(self.x, b.x), max(self.y, b.y)
        x1, y1 = min(self.x + self.w, b.x + b.w), min(self.y + self.h, b.y + b.h)
        return Rect(x0, y0, max(x1 - x0, 0), max(y1 - y0, 0))

    def translated_by(self, dx: int, dy: int) -> Rect:
        return Rect(self.x + dx, self.y + dy, self.w, self.h)


def picamera2_convert(coords: tuple[float, float, float, float], g: Geometry) -> tuple[int, int, int, int]:
    """IMX500.convert_inference_coords + __get_obj_scaled (raspberrypi/picamera2,
    picamera2/devices/imx500/imx500.py), one box at a time."""
    y0, x0, y1, x1 = coords
    fw, fh = FULL_SENSOR
    vals = np.maximum(np.array([x0 * fw, y0 * fh, (x1 - x0) * fw, (y1 - y0) * fh]), 0).astype(np.int32)
    obj = Rect(*vals)
    full = FULL_SENSOR
    sensor_crop = Rect(*g.scaler_crop).scaled_by(g.sensor_output, full)
    if g.roi != (0, 0, 0, 0):
        obj = obj.bounded_to(Rect(*g.roi))
    obj_sensor = obj.scaled_by(g.sensor_output, full)
    obj_bound = obj_sensor.bounded_to(sensor_crop)
    obj_translated = obj_bound.translated_by(-sensor_crop.x, -sensor_crop.y)
    s = obj_translated.scaled_by(g.isp_output, (sensor_crop.w, sensor_crop.h))
    return s.x, s.y, s.w, s.h


GEOMETRIES = [
    # 640x480 main from the 2028x1520 binned mode, full field of view
    Geometry((640, 480), (2028, 1520), (0, 0, 4056, 3040)),
    # 640x360: a 16:9 crop of the sensor (what libcamera picks for a 16:9 stream)
    Geometry((640, 360), (2028, 1520), (0, 380, 4056, 2280)),
    # full-resolution mode, odd crop, and an aspect-ratio ROI (set_auto_aspect_ratio for a square input)
    Geometry((768, 576), (4056, 3040), (8, 6, 4040, 3030), roi=(508, 0, 3040, 3040)),
]


@pytest.mark.parametrize("g", GEOMETRIES)
def test_imx500_boxes_land_where_picamera2_puts_them(g: Geometry) -> None:
    rng = np.random.default_rng(7)
    a = rng.uniform(-0.05, 1.05, (200, 2, 2))
    boxes = np.concatenate([a.min(axis=1), a.max(axis=1)], axis=1)  # (y0, x0, y1, x1)
    want = np.array([picamera2_convert(tuple(b), g) for b in boxes])
    assert np.array_equal(to_frame(boxes, g, integer=True), want)
    # the backend's sub-pixel boxes: the same steps without the truncations,
    # so picamera2's edges are at most 2 px short of them (x + w: two truncations)
    exact = to_frame(boxes, g)
    x0, y0, x1, y1 = exact[:, 0], exact[:, 1], exact[:, 0] + exact[:, 2], exact[:, 1] + exact[:, 3]
    w0, v0, w1, v1 = want[:, 0], want[:, 1], want[:, 0] + want[:, 2], want[:, 1] + want[:, 3]
    for e, p in ((x0, w0), (y0, v0), (x1, w1), (y1, v1)):
        d = e - p
        assert (d > -1.0).all() and (d < 3.0).all()


def test_imx500_unpacks_the_flat_tensor_in_fortran_order() -> None:
    boxes = np.arange(12, dtype=np.float32).reshape(3, 4)
    scores = np.array([0.9, 0.8, 0.1], np.float32)
    flat = np.concatenate([boxes.ravel(order="F"), scores])
    # the layout: all y0 first, then all x0, ... (what the first demo split by hand)
    assert flat[:3].tolist() == [0, 4, 8]
    out = unpack_outputs(flat.tolist(), [[3, 4], [3]])
    assert np.array_equal(out[0], boxes) and np.array_equal(out[1], scores)
    with pytest.raises(TensorLayoutError, match="need 15"):
        unpack_outputs(flat[:-1], [[3, 4], [3]])


def test_imx500_pp_decode_orders_normalisation_count_and_threshold() -> None:
    boxes = np.array([[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0], [0.3, 0.3, 0.4, 0.4]], np.float32)
    scores = np.array([0.9, 0.2, 0.8], np.float32)
    classes = np.array([0, 2, 5], np.float32)
    b, s, c = decode_pp([boxes, scores, classes, np.array([3.0])], PpLayout(), 0.5)
    assert np.allclose(b, boxes[[0, 2]]) and s.tolist() == pytest.approx([0.9, 0.8]) and c.tolist() == [0, 5]
    # the count says only the first row is real: the rest is padding
    b, s, c = decode_pp([boxes, scores, classes, np.array([1.0])], PpLayout(), 0.5)
    assert len(s) == 1
    # xy order (YOLOv8n pp's intrinsics) and boxes in input pixels
    xy = boxes[:, [1, 0, 3, 2]] * 320
    b, _, _ = decode_pp([xy, scores, classes], PpLayout("xy", True, 320), 0.5)
    assert np.allclose(b, boxes[[0, 2]], atol=1e-6)
    with pytest.raises(TensorLayoutError, match="boxes, scores and classes"):
        decode_pp([boxes], PpLayout(), 0.5)
    with pytest.raises(TensorLayoutError, match=r"\(N, 4\)"):
        decode_pp([boxes[:, :3], scores, classes], PpLayout(), 0.5)


def test_imx500_round_trip_from_detections_to_frame_pixels() -> None:
    g = GEOMETRIES[0]
    dets = Detections(np.array([[100, 50, 220, 400], [500, 300, 639, 479]], np.float32),
                      np.array([0.9, 0.6], np.float32), np.array([0, 2], np.int32))
    md = imx500_metadata(dets, g)
    outs = unpack_outputs(md["CnnOutputTensor"], md["_shapes"])
    b, s, c = decode_pp(outs, PpLayout(), 0.35)
    got = detections(b, s, c, g)
    assert np.allclose(got.xyxy, dets.xyxy, atol=1e-3)
    assert got.class_id.tolist() == [0, 2] and np.allclose(got.confidence, dets.confidence)


def test_imx500_class_ids_through_the_networks_labels_and_the_allowed_classes() -> None:
    # SSD MobileNetV2's labels keep "-" placeholders (COCO-91 ids); NanoDet-Plus pp's are dropped
    labels = ["person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
              "traffic light", "fire hydrant", "-", "stop sign"]
    keep_dashes = coco80_map(labels, False, COCO_CLASSES)
    assert keep_dashes[11] == -1 and keep_dashes[12] == COCO_CLASSES.index("stop sign")
    drop = coco80_map(labels, True, COCO_CLASSES)
    assert drop[11] == COCO_CLASSES.index("stop sign")
    g = GEOMETRIES[0]
    boxes = np.array([[0.1, 0.1, 0.5, 0.5]] * 3)
    got = detections(boxes, np.array([0.9, 0.8, 0.7]), np.array([0, 11, 2]), g, class_map=keep_dashes, allowed=[0])
    assert got.class_id.tolist() == [0]


def test_hailo_nms_by_class_to_frame_pixels() -> None:
    out: list[np.ndarray] = [np.zeros((0, 5), np.float32) for _ in range(80)]
    out[0] = np.array([[0.1, 0.2, 0.5, 0.4, 0.9], [0.0, 0.0, 0.1, 0.1, 0.2]], np.float32)
    out[2] = np.array([[0.5, 0.5, 1.2, 1.0, 0.7]], np.float32)  # y_max past the edge: clipped
    d = decode_nms_by_class(out, 640, 480, 0.35)
    assert d.class_id.tolist() == [0, 2]
    assert np.allclose(d.xyxy, [[128, 48, 256, 240], [320, 240, 640, 480]])
    assert np.allclose(d.confidence, [0.9, 0.7])
    assert decode_nms_by_class(out, 640, 480, 0.35, allowed=[2]).class_id.tolist() == [2]
    assert len(decode_nms_by_class([np.zeros((0, 5))] * 80, 640, 480, 0.35)) == 0
    with pytest.raises(TensorLayoutError, match=r"\(k, 5\)"):
        decode_nms_by_class([np.zeros((1, 4))], 640, 480, 0.35)


def test_hailo_round_trip_is_exact_to_float_precision() -> None:
    dets = Detections(np.array([[10.5, 20.25, 300, 200], [0, 0, 639, 479]], np.float32),
                      np.array([0.9, 0.5], np.float32), np.array([0, 7], np.int32))
    got = decode_nms_by_class(hailo_nms(dets, 640, 480), 640, 480, 0.35)
    assert np.allclose(got.xyxy, dets.xyxy, atol=1e-3) and got.class_id.tolist() == [0, 7]
