"""YOLOX detector: decode, NMS and letterbox maths on tiny hand-made ONNX
graphs whose output we choose, then the real YOLOX-Nano on real images."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from device.core.coco import COCO_CLASSES, class_id
from device.core.types import Detections
from device.perception.detector import (
    PAD_VALUE,
    CanvasLetterboxer,
    Detector,
    Letterboxer,
    ModelError,
    YoloxDetector,
    grids,
    session_options,
)
from yolox_reference import decode, letterbox, nms, scale_boxes, to_blob

SIZE = 64  # tiny input: 8x8 + 4x4 + 2x2 = 84 anchors
N_ANCHORS = 84
N_CLASSES = 80
PERSON, DOG, CAR = class_id("person"), class_id("dog"), class_id("car")


def anchor(stride: int, x: int, y: int, size: int = SIZE) -> int:
    """Row of the anchor at cell (x, y) of a stride, in the export's order."""
    offset = 0
    for s in (8, 16, 32):
        n = size // s
        if s == stride:
            return offset + y * n + x
        offset += n * n
    raise ValueError(stride)


def set_row(raw: np.ndarray, row: int, cx: float, cy: float, w: float, h: float,
            obj: float, cls: int, cls_score: float) -> None:
    raw[row, :4] = (cx, cy, w, h)
    raw[row, 4] = obj
    raw[row, 5 + cls] = cls_score


def const_model(path: Path, raw: np.ndarray, in_hw: tuple[object, object] = (SIZE, SIZE),
                uint8_nhwc: bool = False) -> Path:
    """A graph `output = raw + 0 * mean(images)`: the detector's full path runs,
    and the output is exactly the rows we wrote. The input is float
    [1, 3, H, W] as exported, or uint8 [1, H, W, 3] as the derived models take."""
    if uint8_nhwc:
        images = helper.make_tensor_value_info("images", TensorProto.UINT8, [1, *in_hw, 3])
        convert = [helper.make_node("Cast", ["images"], ["images_f"], to=TensorProto.FLOAT)]
    else:
        images = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, *in_hw])
        convert = [helper.make_node("Identity", ["images"], ["images_f"])]
    output = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, raw.shape[0], raw.shape[1]])
    nodes = [
        *convert,
        helper.make_node("ReduceMean", ["images_f"], ["m"], keepdims=0),
        helper.make_node("Mul", ["m", "zero"], ["z"]),
        helper.make_node("Add", ["raw", "z"], ["output"]),
    ]
    inits = [
        numpy_helper.from_array(raw[None].astype(np.float32), "raw"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
    ]
    graph = helper.make_graph(nodes, "const_yolox", [images], [output], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def blank_raw() -> np.ndarray:
    return np.zeros((N_ANCHORS, 5 + N_CLASSES), np.float32)


# --- pure functions ----------------------------------------------------------


def test_grids_order_and_strides() -> None:
    g, st = grids(SIZE)
    assert g.shape == (N_ANCHORS, 2) and st.shape == (N_ANCHORS, 1)
    # stride 8: row-major, (x, y); x runs fastest
    assert g[1].tolist() == [1, 0] and g[8].tolist() == [0, 1]
    r = anchor(16, 2, 1)
    assert g[r].tolist() == [2, 1] and st[r, 0] == 16
    assert g[-1].tolist() == [1, 1] and st[-1, 0] == 32
    assert grids(416)[0].shape[0] == 3549  # the real model's anchor count


def test_decode_grid_offset_stride_and_exp() -> None:
    raw = blank_raw()
    r = anchor(16, 2, 1)
    set_row(raw, r, 0.5, 0.25, math.log(2.0), 0.0, obj=0.9, cls=PERSON, cls_score=0.8)
    xyxy, scores, cls = decode(raw, SIZE, score_threshold=0.1)
    # cx = (0.5 + 2) * 16 = 40, cy = (0.25 + 1) * 16 = 20, w = 2 * 16, h = 1 * 16
    np.testing.assert_allclose(xyxy, [[24, 12, 56, 28]], atol=1e-4)
    np.testing.assert_allclose(scores, [0.72], atol=1e-6)
    assert cls.tolist() == [PERSON] and cls.dtype == np.int32


def test_decode_accepts_batched_output_and_rejects_wrong_anchor_count() -> None:
    raw = blank_raw()
    set_row(raw, 0, 0.5, 0.5, 0, 0, obj=1, cls=CAR, cls_score=0.5)
    xyxy, _, _ = decode(raw[None], SIZE, score_threshold=0.1)
    np.testing.assert_allclose(xyxy, [[0, 0, 8, 8]], atol=1e-5)
    with pytest.raises(ValueError, match="output has shape"):
        decode(raw[:-1], SIZE)


def test_decode_threshold_is_objectness_times_class_score() -> None:
    raw = blank_raw()
    set_row(raw, 0, 0, 0, 0, 0, obj=0.5, cls=PERSON, cls_score=0.9)  # 0.45
    set_row(raw, 1, 0, 0, 0, 0, obj=0.9, cls=PERSON, cls_score=0.3)  # 0.27
    _, scores, _ = decode(raw, SIZE, score_threshold=0.35)
    np.testing.assert_allclose(scores, [0.45], atol=1e-6)
    _, scores, _ = decode(raw, SIZE, score_threshold=0.2)
    assert len(scores) == 2


def test_decode_class_filter_picks_best_allowed_class() -> None:
    raw = blank_raw()
    # An anchor whose best class is dog, but person is also likely.
    set_row(raw, 5, 0, 0, 0, 0, obj=1.0, cls=DOG, cls_score=0.9)
    raw[5, 5 + PERSON] = 0.6
    # An anchor that is only a car.
    set_row(raw, 9, 0, 0, 0, 0, obj=1.0, cls=CAR, cls_score=0.9)
    _, scores, cls = decode(raw, SIZE, score_threshold=0.35, class_ids=[PERSON])
    assert cls.tolist() == [PERSON]
    np.testing.assert_allclose(scores, [0.6], atol=1e-6)
    _, _, cls = decode(raw, SIZE, score_threshold=0.35)
    assert sorted(cls.tolist()) == sorted([DOG, CAR])


def test_nms_merges_same_class_keeps_other_classes_and_distant_boxes() -> None:
    xyxy = np.array(
        [[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [30, 30, 40, 40]], np.float32
    )
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    cls = np.array([PERSON, PERSON, DOG, PERSON], np.int32)
    keep = nms(xyxy, scores, cls, 0.45)
    assert sorted(keep.tolist()) == [0, 2, 3]  # box 1 (IoU 0.68 with box 0) merged
    # IoU of these two is exactly 1/3: kept apart at 0.34, merged at 0.33
    pair = np.array([[0, 0, 10, 10], [5, 0, 15, 10]], np.float32)
    two = np.array([0.9, 0.8], np.float32), np.array([0, 0], np.int32)
    assert sorted(nms(pair, *two, 0.34).tolist()) == [0, 1]
    assert nms(pair, *two, 0.33).tolist() == [0]
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32), 0.45).shape == (0,)


def test_letterbox_landscape_top_left_with_pad() -> None:
    img = np.zeros((48, 128, 3), np.uint8)
    img[:, :, 0] = 10  # B
    img[:, :, 2] = 200  # R
    out = np.zeros((SIZE, SIZE, 3), np.uint8)
    scale = letterbox(img, SIZE, out)
    assert scale == pytest.approx(0.5)
    assert (out[:24, :, 0] == 10).all() and (out[:24, :, 2] == 200).all()  # BGR kept
    assert (out[24:] == PAD_VALUE).all()


def test_letterbox_portrait_pads_right_and_clears_old_content() -> None:
    img = np.full((128, 64, 3), 7, np.uint8)
    out = np.zeros((SIZE, SIZE, 3), np.uint8)  # stale content must be overwritten
    scale = letterbox(img, SIZE, out)
    assert scale == pytest.approx(0.5)
    assert (out[:, :32] == 7).all() and (out[:, 32:] == PAD_VALUE).all()
    # Same-size image: copied, scale 1
    img2 = np.arange(SIZE * SIZE * 3, dtype=np.uint8).reshape(SIZE, SIZE, 3)
    assert letterbox(img2, SIZE, out) == 1.0 and np.array_equal(out, img2)


def test_scale_boxes_back_and_clip() -> None:
    xyxy = np.array([[10, 10, 20, 30], [-5, 40, 70, 50], [0, 50, 20, 60]], np.float32)
    boxes, valid = scale_boxes(xyxy, 0.5, width=128, height=96)
    np.testing.assert_allclose(boxes[0], [20, 20, 40, 60])
    np.testing.assert_allclose(boxes[1], [0, 80, 128, 96])  # clipped to the image
    assert valid.tolist() == [True, True, False]  # the third lay in the padding


# --- YoloxDetector on tiny graphs ---------------------------------------------------


def test_detector_end_to_end_on_a_known_output(tmp_path: Path) -> None:
    raw = blank_raw()
    # Two overlapping person boxes (same cell region) and a dog in the same place.
    set_row(raw, anchor(16, 1, 1), 0.5, 0.5, math.log(1.0), math.log(1.0), 1.0, PERSON, 0.9)  # 16..32
    set_row(raw, anchor(8, 3, 3), 0.25, 0.25, math.log(2.0), math.log(2.0), 1.0, PERSON, 0.7)  # 18..34, IoU 0.62
    set_row(raw, anchor(8, 2, 2), 0.5, 0.5, math.log(2.0), math.log(2.0), 1.0, DOG, 0.8)  # 12..28
    # Below threshold, and a car the class filter removes.
    set_row(raw, anchor(8, 6, 0), 0.5, 0.5, 0, 0, 0.2, PERSON, 0.5)
    set_row(raw, anchor(32, 0, 0), 0.5, 0.5, 0, 0, 1.0, CAR, 0.95)
    model = const_model(tmp_path / "m.onnx", raw)

    det = YoloxDetector(model, input_size=SIZE, class_ids=[PERSON, DOG], threads=1)
    assert isinstance(det, Detector)
    img = np.zeros((96, 128, 3), np.uint8)  # letterbox scale 0.5: boxes double
    d = det.detect(img)
    order = np.argsort(-d.confidence)
    assert d.class_id[order].tolist() == [PERSON, DOG]
    np.testing.assert_allclose(d.confidence[order], [0.9, 0.8], atol=1e-6)
    np.testing.assert_allclose(d.xyxy[order], [[32, 32, 64, 64], [24, 24, 56, 56]], atol=1e-4)
    assert d.xyxy.dtype == np.float32 and d.class_id.dtype == np.int32
    assert set(det.last_timings) == {"preprocess", "inference", "postprocess"}
    assert all(v >= 0 for v in det.last_timings.values())
    # The input buffer holds the letterboxed image as 1x3xHxW float, pad 114.
    assert det.input_layout == "NCHW float32" and det.input.dtype == np.float32
    assert (det.input[0, :, :48, :] == 0).all() and (det.input[0, :, 48:, :] == PAD_VALUE).all()

    det_all = YoloxDetector(model, input_size=SIZE, threads=1)
    assert CAR in det_all.detect(img).class_id.tolist()
    det.close()
    det.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        det.detect(img)


def test_detector_boxes_clipped_and_padding_boxes_dropped(tmp_path: Path) -> None:
    raw = blank_raw()
    # Near the right edge, spilling out of a 64x64 image.
    set_row(raw, anchor(16, 3, 1), 0.9, 0.5, math.log(2.0), 0, 1.0, PERSON, 0.9)  # x 46.4..78.4, y 16..32
    # Wholly in the bottom padding of a landscape image (image occupies y < 32).
    set_row(raw, anchor(8, 0, 6), 0.5, 0.5, 0, 0, 1.0, DOG, 0.9)  # y 48..56
    model = const_model(tmp_path / "m.onnx", raw)
    with YoloxDetector(model, input_size=SIZE) as det:
        d = det.detect(np.zeros((32, 64, 3), np.uint8))  # scale 1, pad below y=32
    assert d.class_id.tolist() == [PERSON]
    x1, y1, x2, y2 = d.xyxy[0]
    assert 0 <= x1 < x2 <= 64 and 0 <= y1 < y2 <= 32
    np.testing.assert_allclose(d.xyxy[0], [46.4, 16, 64, 32], atol=1e-4)  # x2 clipped


def test_detector_rejects_bad_images(tmp_path: Path) -> None:
    det = YoloxDetector(const_model(tmp_path / "m.onnx", blank_raw()), input_size=SIZE)
    for bad in (np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32), np.zeros((0, 5, 3), np.uint8)):
        with pytest.raises(ValueError, match="image"):
            det.detect(bad)
    assert len(det.detect(np.zeros((10, 10, 3), np.uint8))) == 0


def test_detector_accepts_dynamic_input_and_rejects_fixed_mismatch(tmp_path: Path) -> None:
    dyn = const_model(tmp_path / "dyn.onnx", blank_raw(), in_hw=("height", "width"))
    assert YoloxDetector(dyn, input_size=SIZE).input_size == SIZE
    fixed = const_model(tmp_path / "fixed.onnx", blank_raw())
    with pytest.raises(ModelError, match=r"takes 64x64 images but detector.input_size is 96"):
        YoloxDetector(fixed, input_size=96)


def test_detector_rejects_output_of_another_shape(tmp_path: Path) -> None:
    wrong = const_model(tmp_path / "w.onnx", np.zeros((N_ANCHORS + 1, 85), np.float32))
    with pytest.raises(ModelError, match="has 85 anchors"):
        YoloxDetector(wrong, input_size=SIZE)


def test_detector_rejects_class_ids_the_model_lacks(tmp_path: Path) -> None:
    model = const_model(tmp_path / "m.onnx", blank_raw())
    with pytest.raises(ModelError, match="80 classes"):
        YoloxDetector(model, input_size=SIZE, class_ids=[0, 80])


def test_missing_and_corrupt_models_give_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found.*rearguard models"):
        YoloxDetector(tmp_path / "nope.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a model")
    with pytest.raises(ModelError, match="corrupt"):
        YoloxDetector(junk)
    with pytest.raises(ModelError, match="not a file"):
        YoloxDetector(tmp_path)


# --- the real model ------------------------------------------------------------


def vtest_frame(shared: Path, index: int) -> np.ndarray:
    cap = cv2.VideoCapture(str(shared / "footage" / "vtest.avi"))
    try:
        cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = cap.read()
    finally:
        cap.release()
    assert ok, f"cannot read frame {index} of vtest.avi"
    return frame


def iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def real(model_path: Path) -> YoloxDetector:
    return YoloxDetector(model_path, input_size=416)


@pytest.mark.real_model
def test_real_model_finds_pedestrians_in_vtest(real: YoloxDetector, shared: Path) -> None:
    frame = vtest_frame(shared, 100)
    d = real.detect(frame)
    people = d[d.class_id == PERSON]
    # Frame 100 shows about eight walkers; YOLOX-Nano at 416 finds most of them.
    assert 4 <= len(people) <= 20
    h, w = frame.shape[:2]
    assert (d.xyxy[:, 0] >= 0).all() and (d.xyxy[:, 2] <= w).all()
    assert (d.xyxy[:, 1] >= 0).all() and (d.xyxy[:, 3] <= h).all()
    assert (d.xyxy[:, 2] > d.xyxy[:, 0]).all() and (d.xyxy[:, 3] > d.xyxy[:, 1]).all()
    assert (people.confidence > 0.35).all()
    # Pedestrians seen from a raised camera are taller than wide.
    hw = (people.xyxy[:, 3] - people.xyxy[:, 1]) / (people.xyxy[:, 2] - people.xyxy[:, 0])
    assert np.median(hw) > 1.5


@pytest.mark.real_model
def test_real_model_class_filter_on_vtest(model_path: Path, shared: Path) -> None:
    frame = vtest_frame(shared, 100)
    with YoloxDetector(model_path, class_ids=[PERSON]) as det:
        d = det.detect(frame)
    assert len(d) >= 4 and (d.class_id == PERSON).all()


@pytest.mark.real_model
def test_real_model_riders_and_horses(real: YoloxDetector, shared: Path) -> None:
    img = cv2.imread(str(shared / "images" / "coco" / "000000007281.jpg"))
    d = real.detect(img)
    names = [COCO_CLASSES[c] for c in d.class_id]
    horses = d[d.class_id == class_id("horse")]
    people = d[d.class_id == PERSON]
    assert len(horses) == 2, names
    assert len(people) >= 2, names
    # Each horse carries a rider: some person box overlaps it.
    for hb in horses.xyxy:
        assert max(iou(hb, pb) for pb in people.xyxy) > 0.1


@pytest.mark.real_model
def test_real_model_portrait_box_scaled_back(real: YoloxDetector, shared: Path) -> None:
    # A 375x500 portrait photo of a stop sign: letterboxed with padding on the
    # right, so the box is only right if the scale-back is.
    img = cv2.imread(str(shared / "images" / "coco" / "000000000724.jpg"))
    d = real.detect(img)
    signs = d[d.class_id == class_id("stop sign")]
    assert len(signs) == 1
    # The sign's extent, read off the photo by eye.
    assert iou(signs.xyxy[0], np.array([120, 70, 256, 226])) > 0.8


@pytest.mark.real_model
def test_real_model_truncated_file_and_wrong_input_size(model_path: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(model_path.read_bytes()[:200_000])
    with pytest.raises(ModelError, match="corrupt"):
        YoloxDetector(cut)
    with pytest.raises(ModelError, match="416x416.*input_size is 320"):
        YoloxDetector(model_path, input_size=320)


# --- speed paths: same results as the plain ones ------------------------------------


def reference_decode(raw: np.ndarray, size: int, score_threshold: float, class_ids=None):
    """The decode written the plain way (every anchor scored): what the
    objectness-first decode must equal."""
    rows = raw.reshape(-1, raw.shape[-1])
    g, st = grids(size)
    cls = rows[:, 5:] if class_ids is None else rows[:, 5:][:, list(class_ids)]
    best = cls.argmax(axis=1)
    scores = rows[:, 4] * cls[np.arange(len(cls)), best]
    keep = scores > score_threshold
    if class_ids is not None:
        best = np.asarray(class_ids)[best]
    r = rows[keep]
    centre = (r[:, 0:2] + g[keep]) * st[keep]
    half = np.exp(r[:, 2:4]) * st[keep] * 0.5
    return np.concatenate((centre - half, centre + half), axis=1), scores[keep], best[keep]


@pytest.mark.parametrize("threshold", [0.0, 0.2, 0.35, 0.7])
@pytest.mark.parametrize("class_ids", [None, [PERSON], [PERSON, DOG, CAR]])
def test_decode_objectness_first_equals_plain_decode(threshold: float, class_ids) -> None:
    rng = np.random.default_rng(7)
    raw = rng.random((N_ANCHORS, 5 + N_CLASSES), dtype=np.float32)  # sigmoid-like scores in [0, 1)
    raw[:, :4] = rng.normal(0, 1, (N_ANCHORS, 4))
    raw[rng.random(N_ANCHORS) < 0.3, 4] = 0.0  # some anchors with no objectness at all
    got = decode(raw, SIZE, score_threshold=threshold, class_ids=class_ids)
    want = reference_decode(raw, SIZE, threshold, class_ids)
    assert len(got[1]) == len(want[1]) > 0
    np.testing.assert_allclose(got[0], want[0], rtol=1e-6)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-6)
    assert got[2].tolist() == want[2].tolist()


@pytest.mark.parametrize("shape", [(48, 128), (128, 64), (64, 64), (20, 30), (576, 768)])
def test_letterboxer_gives_exactly_letterbox_then_to_blob(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(1)
    lb = Letterboxer(SIZE)
    canvas = np.empty((SIZE, SIZE, 3), np.uint8)
    want = np.empty((1, 3, SIZE, SIZE), np.float32)
    for _ in range(2):  # the second frame of a size reuses the buffers
        img = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
        scale = lb(img)
        assert scale == letterbox(img, SIZE, canvas)
        to_blob(canvas, want)
        np.testing.assert_array_equal(lb.blob, want)


def test_letterboxer_repads_when_the_frame_size_changes() -> None:
    lb = Letterboxer(SIZE)
    lb(np.full((64, 64, 3), 9, np.uint8))  # fills the whole input
    lb(np.full((32, 64, 3), 7, np.uint8))  # now half of it is padding again
    assert (lb.blob[0, :, :32] == 7).all() and (lb.blob[0, :, 32:] == PAD_VALUE).all()


@pytest.mark.parametrize("shape", [(48, 128), (128, 64), (64, 64), (20, 30), (576, 768)])
def test_canvas_letterboxer_gives_exactly_letterbox(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(2)
    lb = CanvasLetterboxer(SIZE)
    want = np.empty((SIZE, SIZE, 3), np.uint8)
    for _ in range(2):  # the second frame of a size reuses the canvas and its padding
        img = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
        scale = lb(img)
        assert scale == letterbox(img, SIZE, want)
        assert lb.input is lb.canvas and lb.canvas.shape == (1, SIZE, SIZE, 3)
        np.testing.assert_array_equal(lb.canvas[0], want)


def test_canvas_letterboxer_repads_when_the_frame_size_changes() -> None:
    lb = CanvasLetterboxer(SIZE)
    lb(np.full((64, 64, 3), 9, np.uint8))  # fills the whole canvas
    lb(np.full((32, 64, 3), 7, np.uint8))  # now half of it is padding again
    assert (lb.canvas[0, :32] == 7).all() and (lb.canvas[0, 32:] == PAD_VALUE).all()
    lb(np.full((64, 32, 3), 5, np.uint8))  # portrait: padding on the right, none left below
    assert (lb.canvas[0, :, :32] == 5).all() and (lb.canvas[0, :, 32:] == PAD_VALUE).all()


def test_uint8_nhwc_model_is_fed_the_canvas_and_detects_the_same(tmp_path: Path) -> None:
    raw = blank_raw()
    set_row(raw, anchor(16, 1, 1), 0.5, 0.5, 0, 0, 1.0, PERSON, 0.9)
    set_row(raw, anchor(8, 2, 2), 0.5, 0.5, math.log(2.0), math.log(2.0), 1.0, DOG, 0.8)
    fl = YoloxDetector(const_model(tmp_path / "f.onnx", raw), input_size=SIZE, threads=1)
    u8 = YoloxDetector(const_model(tmp_path / "u.onnx", raw, in_hw=("height", "width"), uint8_nhwc=True),
                       input_size=SIZE, threads=1)
    assert fl.input_layout == "NCHW float32" and u8.input_layout == "NHWC uint8"
    assert u8.input.dtype == np.uint8 and u8.input.shape == (1, SIZE, SIZE, 3)
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    a, b = fl.detect(img), u8.detect(img)
    want = np.empty((SIZE, SIZE, 3), np.uint8)
    letterbox(img, SIZE, want)
    np.testing.assert_array_equal(u8.input[0], want)  # the model got the letterboxed image itself
    np.testing.assert_array_equal(fl.input[0], want.transpose(2, 0, 1))  # the same numbers, float NCHW
    assert len(b) == 2
    np.testing.assert_array_equal(b.xyxy, a.xyxy)
    np.testing.assert_array_equal(b.confidence, a.confidence)
    assert b.class_id.tolist() == a.class_id.tolist()


def test_detector_rejects_other_input_types_and_layouts(tmp_path: Path) -> None:
    def model(elem: int, dims: list[object]) -> Path:
        images = helper.make_tensor_value_info("images", elem, dims)
        output = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, N_ANCHORS, 85])
        nodes = [
            helper.make_node("Cast", ["images"], ["f"], to=TensorProto.FLOAT),
            helper.make_node("ReduceMean", ["f"], ["m"], keepdims=0),
            helper.make_node("Mul", ["m", "zero"], ["z"]),
            helper.make_node("Add", ["raw", "z"], ["output"]),
        ]
        inits = [numpy_helper.from_array(blank_raw()[None], "raw"),
                 numpy_helper.from_array(np.array(0.0, np.float32), "zero")]
        m = helper.make_model(helper.make_graph(nodes, "m", [images], [output], inits),
                              opset_imports=[helper.make_opsetid("", 13)])
        m.ir_version = 8
        p = tmp_path / f"m{elem}_{len(list(tmp_path.iterdir()))}.onnx"
        onnx.save(m, p)
        return p

    with pytest.raises(ModelError, match=r"tensor\(int32\); expected float32 \[1, 3, H, W\] or uint8"):
        YoloxDetector(model(TensorProto.INT32, [1, 3, SIZE, SIZE]), input_size=SIZE)
    with pytest.raises(ModelError, match=r"64 channels; expected 3 \(BGR\), shape \[1, H, W, 3\]"):
        YoloxDetector(model(TensorProto.UINT8, [1, 3, SIZE, SIZE]), input_size=SIZE)  # uint8 but NCHW
    with pytest.raises(ModelError, match=r"takes 32x32 images"):
        YoloxDetector(model(TensorProto.UINT8, [1, 32, 32, 3]), input_size=SIZE)


def test_detect_is_prepare_infer_postprocess(tmp_path: Path) -> None:
    raw = blank_raw()
    set_row(raw, anchor(16, 1, 1), 0.5, 0.5, 0, 0, 1.0, PERSON, 0.9)
    det = YoloxDetector(const_model(tmp_path / "m.onnx", raw), input_size=SIZE, threads=1, spin=False)
    img = np.zeros((96, 128, 3), np.uint8)
    whole = det.detect(img)
    scale = det.prepare(img)
    out = det.infer()
    assert out.shape == (1, N_ANCHORS, 85)
    parts = det.postprocess(out, scale, 128, 96)
    np.testing.assert_array_equal(parts.xyxy, whole.xyxy)
    np.testing.assert_array_equal(parts.confidence, whole.confidence)
    det.close()
    with pytest.raises(RuntimeError, match="closed"):
        det.infer()


def test_session_options_spin_setting() -> None:
    assert session_options(1, spin=False).get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert session_options(2, spin=True).get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert session_options(3).intra_op_num_threads == 3


def test_fixed_size_model_error_points_at_the_dynamic_model(tmp_path: Path) -> None:
    fixed = const_model(tmp_path / "fixed.onnx", blank_raw())
    with pytest.raises(ModelError, match="rearguard models dynamic"):
        YoloxDetector(fixed, input_size=96)


@pytest.mark.parametrize("channel_major", [False, True])
@pytest.mark.parametrize("class_ids", [None, [PERSON, DOG, CAR]])
@pytest.mark.parametrize("shape", [(96, 128), (128, 64)])
def test_postprocess_equals_decode_nms_scale(tmp_path: Path, class_ids, shape: tuple[int, int],
                                            channel_major: bool) -> None:
    """The one-pass postprocess gives what the pure steps give, on outputs
    with many overlapping boxes of several classes, in either layout."""
    blank = blank_raw().T.copy() if channel_major else blank_raw()
    det = YoloxDetector(const_model(tmp_path / "m.onnx", blank), input_size=SIZE, class_ids=class_ids,
                        score_threshold=0.3, nms_iou=0.45, threads=1)
    assert det.channel_major == channel_major
    rng = np.random.default_rng(3)
    h, w = shape
    scale = min(SIZE / h, SIZE / w)
    for _ in range(20):
        raw = np.zeros((N_ANCHORS, 85), np.float32)
        raw[:, :2] = rng.uniform(0, 1, (N_ANCHORS, 2))
        raw[:, 2:4] = rng.normal(0, 0.7, (N_ANCHORS, 2))
        raw[:, 4] = rng.uniform(0, 1, N_ANCHORS)
        raw[:, 5:] = rng.uniform(0, 1, (N_ANCHORS, 80)) ** 4  # mostly low, a few high class scores
        got = det.postprocess((raw.T.copy() if channel_major else raw)[None], scale, w, h)
        xyxy, scores, cls = decode(raw, SIZE, score_threshold=0.3, class_ids=class_ids)
        keep = nms(xyxy, scores, cls, 0.45)
        boxes, valid = scale_boxes(xyxy[keep], scale, w, h)
        want_boxes, want_scores, want_cls = boxes[valid], scores[keep][valid], cls[keep][valid]
        assert len(got) == len(want_scores) > 3
        a, b = np.lexsort((got.xyxy[:, 0], -got.confidence)), np.lexsort((want_boxes[:, 0], -want_scores))
        np.testing.assert_allclose(got.xyxy[a], want_boxes[b], atol=1e-3)
        np.testing.assert_allclose(got.confidence[a], want_scores[b], rtol=1e-6)
        assert got.class_id[a].tolist() == want_cls[b].tolist()
        assert got.xyxy.dtype == np.float32 and got.confidence.dtype == np.float32 and got.class_id.dtype == np.int32


@pytest.mark.parametrize("channel_major", [False, True])
def test_postprocess_candidates_kept_only_when_their_score_passes(tmp_path: Path, channel_major: bool) -> None:
    """Objectness above the threshold makes an anchor a candidate; its score
    (objectness x class score) must pass too, whether NMS runs (several
    candidates) or not (one)."""
    blank = blank_raw().T.copy() if channel_major else blank_raw()
    det = YoloxDetector(const_model(tmp_path / "m.onnx", blank), input_size=SIZE, score_threshold=0.35, threads=1)

    def run(raw: np.ndarray) -> Detections:
        return det.postprocess((raw.T.copy() if channel_major else raw)[None], 1.0, 64, 64)

    for cls_score, kept in ((0.5, False), (0.9, True)):  # scores 0.6 x 0.5 = 0.30, 0.6 x 0.9 = 0.54
        one = blank_raw()
        set_row(one, anchor(16, 1, 1), 0.5, 0.5, 0, 0, 0.6, PERSON, cls_score)  # the only candidate
        several = one.copy()
        several[anchor(8, 0, 0), 4] = 0.9  # two more candidates whose every class score is 0
        several[anchor(32, 1, 1), 4] = 0.8
        for raw in (one, several):
            got = run(raw)
            assert len(got) == int(kept)
            if kept:
                np.testing.assert_allclose(got.xyxy[0], [16, 16, 32, 32], atol=1e-4)
                assert got.class_id.tolist() == [PERSON]
                np.testing.assert_allclose(got.confidence, [0.54], rtol=1e-6)


def test_postprocess_rejects_output_of_another_size(tmp_path: Path) -> None:
    det = YoloxDetector(const_model(tmp_path / "m.onnx", blank_raw()), input_size=SIZE)
    with pytest.raises(ModelError, match="output has shape"):
        det.postprocess(np.zeros((1, N_ANCHORS + 4, 85), np.float32), 1.0, 64, 64)
    with pytest.raises(ModelError, match="output has shape"):
        det.postprocess(np.zeros((1, 85, N_ANCHORS), np.float32), 1.0, 64, 64)  # the other layout


# --- non-square input (width x height) and stretch ------------------------------


def test_grids_for_a_width_by_height_input() -> None:
    g, st = grids((96, 64))  # 12x8 + 6x4 + 3x2 cells, row-major within each stride
    assert len(g) == 96 + 24 + 6
    assert g[:13].tolist()[12] == [0, 1]  # the 13th stride-8 cell starts the second row of 12
    assert g[96].tolist() == [0, 0] and st[96, 0] == 16


def test_letterboxers_fill_a_wide_input_without_padding_at_its_aspect() -> None:
    img = np.full((36, 64, 3), 9, np.uint8)  # 16:9
    for lb in (Letterboxer((64, 32), "stretch"), CanvasLetterboxer((64, 32), "stretch")):
        scale = lb(img)
        assert scale == (1.0, 32 / 36)
        inp = lb.input
        assert (inp == 9).all() and inp.shape in ((1, 3, 32, 64), (1, 32, 64, 3))
    lb2 = CanvasLetterboxer((64, 32))  # letterbox: one scale, a grey strip on the right
    assert lb2(img) == pytest.approx(32 / 36)
    assert (lb2.canvas[0, :, 57:] == PAD_VALUE).all() and (lb2.canvas[0, :, :56] == 9).all()
    with pytest.raises(ValueError, match="fill must be one of"):
        Letterboxer(64, "crop")


def wide_raw(w: int, h: int) -> np.ndarray:
    return np.zeros((len(grids((w, h))[0]), 5 + N_CLASSES), np.float32)


@pytest.mark.parametrize("fill", ["letterbox", "stretch"])
def test_a_wide_input_maps_boxes_back_to_the_frame(tmp_path: Path, fill: str) -> None:
    w, h = 96, 64
    raw = wide_raw(w, h)
    # stride 16, cell (3, 2): centre (56, 40) in input px, 32 x 32
    row = 96 + 2 * 6 + 3
    set_row(raw, row, 0.5, 0.5, math.log(2.0), math.log(2.0), 1.0, PERSON, 0.9)
    path = const_model(tmp_path / "m.onnx", raw, in_hw=("height", "width"), uint8_nhwc=True)
    det = YoloxDetector(path, input_size=(w, h), fill=fill, threads=1)
    assert det.input.shape == (1, h, w, 3) and det.size_label == "96x64"
    d = det.detect(np.zeros((90, 192, 3), np.uint8))  # frame 192 x 90
    if fill == "stretch":  # x / 2, y / (64 / 90)
        sx, sy = 2.0, 90 / 64
        want = [(56 - 16) * sx, (40 - 16) * sy, (56 + 16) * sx, (40 + 16) * sy]
    else:  # one scale 0.5 (width-bound)
        want = [80, 48, 144, 90]  # y2 (112) clipped to the frame's 90
    np.testing.assert_allclose(d.xyxy[0], want, rtol=1e-5)


def test_a_fixed_size_model_names_its_size(tmp_path: Path) -> None:
    raw = wide_raw(96, 64)
    path = const_model(tmp_path / "m.onnx", raw, in_hw=(64, 96))
    assert YoloxDetector(path, input_size=(96, 64), threads=1).input_width == 96
    with pytest.raises(ModelError, match=r"takes 64x96 images but detector.input_size is 64"):
        YoloxDetector(path, input_size=64, threads=1)
