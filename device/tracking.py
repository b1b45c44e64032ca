"""Frame-to-frame association of detections, and each track's growth rate.

A first, deliberately small tracker: greedy IoU matching within a class. It
only has to keep an object's identity for the second or so over which its
box growth gives a time to collision. (A later issue weighs a library
tracker such as norfair against this.)
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from device.clock import NS_PER_S
from device.types import Detections


# A time to collision needs this many boxes over at least this long.
MIN_SCALE_POINTS = 5
MIN_SCALE_SPAN_S = 0.4


@dataclass
class Track:
    track_id: int
    class_id: int
    box: tuple[float, float, float, float]
    confidence: float
    last_t_ns: int
    hits: int = 1
    # (t_ns, box height px) over the recent window: the scale history
    heights: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=32))

    def scale_rate(self, window_ns: int) -> float | None:
        """d(ln h)/dt in 1/s over the window; None if the history is too short.

        For an object closing at constant speed, 1 / scale_rate is the time
        to collision (TTC = s / (ds/dt)), independent of the object's size.
        The slope is Theil-Sen (the median of pairwise slopes): a box that
        jumps for a frame or two (a partial detection, an occlusion) moves a
        least-squares fit a lot and the median hardly at all.
        """
        pts = [(t, h) for t, h in self.heights if self.last_t_ns - t <= window_ns]
        if len(pts) < MIN_SCALE_POINTS:
            return None
        t = np.array([p[0] for p in pts], dtype=np.float64) / NS_PER_S
        y = np.log(np.array([p[1] for p in pts], dtype=np.float64))
        if t[-1] - t[0] < MIN_SCALE_SPAN_S:
            return None
        i, j = np.triu_indices(len(t), k=1)
        dt = t[j] - t[i]
        ok = dt > 0
        return float(np.median((y[j] - y[i])[ok] / dt[ok]))


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a (N,4) with every box in b (M,4), xyxy."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


class IouTracker:
    def __init__(self, *, min_iou: float = 0.3, max_gap_s: float = 0.6) -> None:
        self.min_iou = min_iou
        self.max_gap_ns = round(max_gap_s * NS_PER_S)
        self.tracks: list[Track] = []
        self._next_id = 1

    def update(self, t_ns: int, dets: Detections) -> list[Track]:
        """Match detections to tracks; return the tracks seen in this frame."""
        self.tracks = [tr for tr in self.tracks if t_ns - tr.last_t_ns <= self.max_gap_ns]
        seen: list[Track] = []
        unmatched = set(range(len(dets)))
        if self.tracks and len(dets):
            prev = np.array([tr.box for tr in self.tracks], dtype=np.float32)
            iou = iou_matrix(prev, dets.xyxy)
            same_class = np.array([tr.class_id for tr in self.tracks])[:, None] == dets.class_id[None, :]
            iou = np.where(same_class, iou, 0.0)
            # Greedy: best pairs first; good enough for the handful of objects
            # behind a runner.
            for flat in np.argsort(-iou, axis=None):
                ti, di = divmod(int(flat), iou.shape[1])
                if iou[ti, di] < self.min_iou:
                    break
                if di not in unmatched or any(s is self.tracks[ti] for s in seen):
                    continue
                tr = self.tracks[ti]
                self._apply(tr, t_ns, dets, di)
                tr.hits += 1
                seen.append(tr)
                unmatched.discard(di)
        for di in sorted(unmatched):
            tr = Track(
                track_id=self._next_id,
                class_id=int(dets.class_id[di]),
                box=(0.0, 0.0, 0.0, 0.0),
                confidence=0.0,
                last_t_ns=t_ns,
            )
            self._next_id += 1
            self._apply(tr, t_ns, dets, di)
            self.tracks.append(tr)
            seen.append(tr)
        return seen

    @staticmethod
    def _apply(tr: Track, t_ns: int, dets: Detections, i: int) -> None:
        box = tuple(float(v) for v in dets.xyxy[i])
        tr.box = box  # type: ignore[assignment]
        tr.confidence = float(dets.confidence[i])
        tr.last_t_ns = t_ns
        tr.heights.append((t_ns, max(box[3] - box[1], 1.0)))


def ttc_from_scale_rate(rate: float | None) -> float | None:
    """Time to collision from the growth rate of ln(size); None if not growing."""
    if rate is None or rate <= 1e-6 or not math.isfinite(rate):
        return None
    return 1.0 / rate
