"""The reference YOLOX steps, the oracle the detector's fast paths are held to.

Plain and slow on purpose: letterbox and blob as YOLOX's own demo writes
them, decode of every anchor, OpenCV's NMS, boxes scaled back. The
product's `Letterboxer`, `CanvasLetterboxer` and fused postprocess in
`YoloxDetector` must give what these give (tests/test_detector.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from device.perception.detector import PAD_VALUE, STRIDES, fit, grids


def letterbox(image: np.ndarray, size: int, out: np.ndarray) -> float:
    """Resize `image` keeping its aspect into the top-left of `out` (size x size x 3
    uint8), pad the rest with 114, as YOLOX's own preprocessing does.

    Returns the scale factor: letterbox pixels = image pixels * scale.
    """
    h, w = image.shape[:2]
    scale, nh, nw = fit(h, w, size)
    region = out[:nh, :nw]
    if (nh, nw) == (h, w):
        region[...] = image
    else:
        # Written straight into the buffer: no per-frame allocation.
        resized = cv2.resize(image, (nw, nh), dst=region, interpolation=cv2.INTER_LINEAR)
        if resized is not region:  # OpenCV had to allocate; keep the result anyway
            region[...] = resized
    out[nh:, :] = PAD_VALUE
    out[:nh, nw:] = PAD_VALUE
    return scale


def to_blob(canvas: np.ndarray, blob: np.ndarray) -> None:
    """HxWx3 uint8 -> preallocated 1x3xHxW float32 (BGR 0-255, no normalisation)."""
    np.copyto(blob[0], canvas.transpose(2, 0, 1))


def decode(
    raw: np.ndarray,
    size: int,
    strides: Sequence[int] = STRIDES,
    *,
    score_threshold: float = 0.0,
    class_ids: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw YOLOX rows (N, 5 + classes), or (1, N, 5 + classes) -> boxes in
    letterbox pixels.

    Each anchor keeps its best class among `class_ids` (all classes if None),
    scored objectness x class score; anchors scoring <= score_threshold are
    dropped here, before NMS, so NMS only sees plausible boxes.
    Returns (xyxy (M, 4) float32, scores (M,) float32, class ids (M,) int32).
    """
    rows = raw.reshape(-1, raw.shape[-1])
    g, st = grids(size, tuple(strides))
    if rows.shape[0] != g.shape[0] or rows.shape[1] < 6:
        raise ValueError(
            f"model output has shape {raw.shape}; a YOLOX model at input {size} "
            f"with strides {tuple(strides)} gives ({g.shape[0]}, 5 + classes)"
        )
    # Class scores are sigmoids (<= 1), so score <= objectness: anchors whose
    # objectness is already at or below the threshold cannot pass, and most
    # of the thousands of anchors are dropped before their class scores are read.
    cand = np.flatnonzero(rows[:, 4] > score_threshold)
    r = rows[cand]
    if class_ids is not None:
        allowed = np.asarray(class_ids, dtype=np.intp)
        cls = r[:, 5 + allowed]
    else:
        cls = r[:, 5:]
    best = cls.argmax(axis=1)
    scores = r[:, 4] * cls[np.arange(len(cls)), best]
    keep = scores > score_threshold
    if class_ids is not None:
        best = allowed[best]
    idx = cand[keep]
    r, g, st = r[keep], g[idx], st[idx]
    centre = (r[:, 0:2] + g) * st
    half = np.exp(r[:, 2:4]) * st * 0.5
    xyxy = np.concatenate((centre - half, centre + half), axis=1).astype(np.float32, copy=False)
    return xyxy, scores[keep].astype(np.float32, copy=False), best[keep].astype(np.int32, copy=False)


def nms(xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by class-aware NMS (OpenCV), best score first."""
    if len(scores) == 0:
        return np.zeros((0,), np.intp)
    xywh = xyxy.copy()
    xywh[:, 2:] -= xyxy[:, :2]
    # Scores were thresholded in decode; 0 here only drops exact zeros.
    kept = cv2.dnn.NMSBoxesBatched(xywh, scores, class_ids, 0.0, iou)
    return np.asarray(kept, dtype=np.intp).reshape(-1)


def scale_boxes(xyxy: np.ndarray, scale: float, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Letterbox pixels -> image pixels, clipped to the image.

    Returns (boxes, mask of boxes with area left): a box that lay wholly in
    the padding has none and is not an object in the image.
    """
    out = xyxy / np.float32(scale)
    np.clip(out[:, 0::2], 0, width, out=out[:, 0::2])
    np.clip(out[:, 1::2], 0, height, out=out[:, 1::2])
    valid = (out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1])
    return out.astype(np.float32), valid
