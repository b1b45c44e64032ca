"""Recall by object size on labelled photos: what an input geometry sees small.

`rearguard recall` runs the detector over a COCO-format labelled set
(../shared/images/coco-val-labelled: instances JSON + val2017/*.jpg), keeps
every detection down to a low score, and scores it the COCO way (greedy
matching, best score first, at IoU >= 0.5; crowd regions neither count nor
penalise). For one class (persons by default) it finds the operating point
where precision is still `precision` (0.8), i.e. the lowest score threshold
at which precision >= 0.8, and reports the recall there by the true box's
height in the photo's pixels (<32, 32-96, >96: a far person is a short one).
Beside it, two mAP-like figures to compare geometries: that class's AP at
IoU 0.5, and AP at IoU 0.5:0.95 averaged over the classes with labels (COCO's
101-point interpolation). 164 photos is small: compare geometries on it,
not with published figures.

The JSON is read here (no pycocotools): images, annotations (bbox
[x, y, w, h], iscrowd), categories.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from device.core import coco
from device.core.ports import Detector

HEIGHT_BUCKETS: tuple[tuple[str, float, float], ...] = (("<32", 0.0, 32.0), ("32-96", 32.0, 96.0),
                                                          (">96", 96.0, float("inf")))
IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
SCORE_FLOOR = 0.01  # detections kept down to this score, so the curve is whole


class LabelError(Exception):
    """A labelled set that cannot be read, said for a person."""


@dataclass(frozen=True)
class Truth:
    box: np.ndarray  # (4,) x1 y1 x2 y2
    class_id: int  # YOLOX's class index
    crowd: bool


@dataclass(frozen=True)
class Photo:
    path: Path
    truths: tuple[Truth, ...]


def load_labels(directory: str | Path) -> list[Photo]:
    """The photos of a COCO-format set: `directory`/*.json and its images."""
    d = Path(directory)
    jsons = sorted(d.glob("*.json"))
    if len(jsons) != 1:
        raise LabelError(f"{d}: expected one COCO instances .json, found {len(jsons)}")
    try:
        data = json.loads(jsons[0].read_text())
        cats = {int(c["id"]): c["name"] for c in data["categories"]}
        by_image: dict[int, list[Truth]] = {}
        for a in data["annotations"]:
            x, y, w, h = (float(v) for v in a["bbox"])
            name = cats[int(a["category_id"])]
            by_image.setdefault(int(a["image_id"]), []).append(
                Truth(np.array([x, y, x + w, y + h]), coco.class_id(name), bool(a.get("iscrowd", 0))))
        photos = []
        for im in data["images"]:
            path = next((p for p in (d / "val2017" / im["file_name"], d / im["file_name"]) if p.exists()), None)
            if path is None:
                raise LabelError(f"{d}: image {im['file_name']} named in {jsons[0].name} is missing")
            photos.append(Photo(path, tuple(by_image.get(int(im["id"]), ()))))
    except (KeyError, TypeError, ValueError) as err:
        raise LabelError(f"{jsons[0]}: not a COCO instances file ({type(err).__name__}: {err})") from None
    return photos


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one x1y1x2y2 box with each of `boxes` (N, 4)."""
    if len(boxes) == 0:
        return np.zeros(0)
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = ix * iy
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return np.asarray(inter / np.maximum(area + areas - inter, 1e-9))


def _crowd_overlap(box: np.ndarray, crowds: np.ndarray) -> np.ndarray:
    """COCO's IoU against a crowd region: intersection over the detection's own area."""
    if len(crowds) == 0:
        return np.zeros(0)
    ix = np.clip(np.minimum(box[2], crowds[:, 2]) - np.maximum(box[0], crowds[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], crowds[:, 3]) - np.maximum(box[1], crowds[:, 1]), 0, None)
    return np.asarray(ix * iy / max((box[2] - box[0]) * (box[3] - box[1]), 1e-9))


@dataclass(frozen=True)
class Matched:
    """One class's detections over the set, best score first, matched at one IoU."""

    scores: np.ndarray  # (D,)
    true_positive: np.ndarray  # (D,) bool
    ignored: np.ndarray  # (D,) bool: on a crowd region, neither right nor wrong
    truth_hit_at: np.ndarray  # (G,) index into the detections of the one that found it, else -1
    truth_heights: np.ndarray  # (G,) px


def match(photos: Sequence[Photo], found: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
          class_id: int, iou_min: float) -> Matched:
    """COCO's greedy matching of one class's detections to its labels."""
    per_det: list[tuple[float, int, int]] = []  # (score, photo, index in photo)
    for i, (_, scores, cids) in enumerate(found):
        per_det.extend((float(scores[k]), i, k) for k in np.flatnonzero(cids == class_id))
    per_det.sort(key=lambda t: -t[0])
    truths = [[t for t in p.truths if t.class_id == class_id and not t.crowd] for p in photos]
    crowds = [np.array([t.box for t in p.truths if t.class_id == class_id and t.crowd]).reshape(-1, 4)
              for p in photos]
    offsets = np.cumsum([0] + [len(t) for t in truths])
    heights = np.array([t.box[3] - t.box[1] for ts in truths for t in ts])
    hit_at = np.full(len(heights), -1)
    tp = np.zeros(len(per_det), bool)
    ignored = np.zeros(len(per_det), bool)
    gt_boxes = [np.array([t.box for t in ts]).reshape(-1, 4) for ts in truths]
    for d, (_, i, k) in enumerate(per_det):
        box = found[i][0][k]
        ious = iou(box, gt_boxes[i])
        free = hit_at[offsets[i]:offsets[i + 1]] < 0
        ious = np.where(free, ious, -1.0)
        if len(ious) and ious.max() >= iou_min:
            g = int(ious.argmax())
            hit_at[offsets[i] + g] = d
            tp[d] = True
        elif len(crowds[i]) and _crowd_overlap(box, crowds[i]).max() >= iou_min:
            ignored[d] = True
    scores = np.array([s for s, _, _ in per_det])
    return Matched(scores, tp, ignored, hit_at, heights)


def average_precision(m: Matched) -> float | None:
    """COCO's 101-point interpolated AP; None for a class with no labels."""
    n = len(m.truth_heights)
    if n == 0:
        return None
    keep = ~m.ignored
    tp = np.cumsum(m.true_positive[keep])
    fp = np.cumsum(~m.true_positive[keep])
    if len(tp) == 0:
        return 0.0
    recall = tp / n
    precision = tp / np.maximum(tp + fp, 1)
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # the envelope
    idx = np.searchsorted(recall, RECALL_POINTS, side="left")
    return float(np.mean([precision[i] if i < len(precision) else 0.0 for i in idx]))


@dataclass(frozen=True)
class SizeRecall:
    geometry: str
    photos: int
    class_name: str
    precision: float
    threshold: float | None  # the score threshold of the operating point (None: never that precise)
    buckets: dict[str, tuple[int, int]]  # height bucket -> (found, labelled)
    ap50: float  # the class's AP at IoU 0.5
    map50_95: float  # AP at IoU 0.5:0.95, mean over the labelled classes

    def to_json(self) -> dict[str, Any]:
        return {"geometry": self.geometry, "photos": self.photos, "class": self.class_name,
                "precision": self.precision, "threshold": self.threshold,
                "recall_by_height_px": {k: {"found": f, "labelled": n} for k, (f, n) in self.buckets.items()},
                "ap50": round(self.ap50, 4), "map50_95": round(self.map50_95, 4)}

    def line(self) -> str:
        cells = "  ".join(f"{k}: {f}/{n}" for k, (f, n) in self.buckets.items())
        thr = "never" if self.threshold is None else f"{self.threshold:.3f}"
        return (f"{self.geometry:<22} {self.class_name} recall at precision {self.precision:g} "
                f"(score >= {thr}): {cells}   AP50 {self.ap50:.3f}   mAP50:95 {self.map50_95:.3f}")


def recall_by_size(m: Matched, precision: float) -> tuple[float | None, dict[str, tuple[int, int]]]:
    """The operating point with the most recall at which precision is still
    `precision`, and the labels found there per height bucket."""
    keep = ~m.ignored
    order = np.flatnonzero(keep)
    tp = np.cumsum(m.true_positive[order])
    prec = tp / np.arange(1, len(order) + 1)
    ok = np.flatnonzero(prec >= precision)
    if len(ok) == 0:
        cut, threshold = -1, None
    else:
        last = int(ok[-1])
        cut, threshold = int(order[last]), float(m.scores[order[last]])
    found = (m.truth_hit_at >= 0) & (m.truth_hit_at <= cut)
    buckets = {}
    for name, lo, hi in HEIGHT_BUCKETS:
        inside = (m.truth_heights >= lo) & (m.truth_heights < hi)
        buckets[name] = (int((found & inside).sum()), int(inside.sum()))
    return threshold, buckets


def detect_all(detector: Detector, photos: Iterable[Photo],
               progress: Callable[[int], None] | None = None) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    out = []
    for i, p in enumerate(photos):
        img = cv2.imread(str(p.path), cv2.IMREAD_COLOR)
        if img is None:
            raise LabelError(f"{p.path}: not a readable image")
        d = detector.detect(img)
        out.append((d.xyxy.astype(np.float64), d.confidence.astype(np.float64), d.class_id.astype(np.int64)))
        if progress is not None:
            progress(i + 1)
    return out


def score_set(photos: Sequence[Photo], found: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
              geometry: str, class_name: str = "person", precision: float = 0.8) -> SizeRecall:
    cid = coco.class_id(class_name)
    threshold, buckets = recall_by_size(match(photos, found, cid, 0.5), precision)
    ap50 = average_precision(match(photos, found, cid, 0.5)) or 0.0
    labelled = sorted({t.class_id for p in photos for t in p.truths if not t.crowd})
    aps = []
    for c in labelled:
        per_iou = [average_precision(match(photos, found, c, float(t))) for t in IOU_THRESHOLDS]
        aps.append(float(np.mean([a for a in per_iou if a is not None])))
    return SizeRecall(geometry, len(photos), class_name, precision, threshold, buckets, ap50,
                      float(np.mean(aps)) if aps else 0.0)
