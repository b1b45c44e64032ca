"""Scale between detections, at camera rate: each camera track's box followed
by feature flow on every frame, whatever the detector's pace.

The detector may give a result only a few times a second (a Pi Zero: 2-3),
and a box's growth fitted over those results needs several of them before
it says anything; at 8 m/s closing that is metres. Between detections the
object's own texture still moves, and its scale change is the time to
collision (Mori and Scherer 2013; the same measure looming uses for
class-free surfaces, `device.perception.looming`):

- Shi-Tomasi corners are seeded inside each track's box (its inner part, so
  fewer land on the background), followed frame to frame with pyramidal
  Lucas-Kanade and checked forward-backward; a point that disagrees or
  leaves the box is dropped, and the box is topped up when too few remain.
- The box's scale step between two frames is the median ratio of the
  pairwise distances of its surviving points: distances between points do
  not change with the camera's rotation or shift, so the gait's sway drops
  out, and the median ignores the minority of points on the background.
- Over the last `span_s` the steps multiply to a scale s; for an object
  closing at a steady speed the time to collision now is dt / (s - 1).
- The box is carried: shifted by the points' median motion and scaled by
  each step, so between detections the track has a current box, and a new
  detection (made on an older frame: the detector's latency) is brought up
  to now by the steps since its frame. The scale since the detection's
  frame is what its distance has shrunk by.

Pure apart from OpenCV: frames, their times and the newest camera result
in, results out; no threads, no clock.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from device.core.camera import CameraResult
from device.core.clock import NS_PER_S
from device.core.types import Frame
from device.perception.small_grey import small_grey

Box = tuple[float, float, float, float]

LK_PARAMS: dict[str, Any] = dict(winSize=(9, 9), maxLevel=2, criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03))
FB_MAX_PX = 0.5  # forward-backward disagreement above this (small-image px): a lost point
MIN_PAIR_PX = 3.0  # pairs closer than this carry no scale (small-image px)
SEED_INSET = 0.15  # corners are seeded this fraction of the box in from each side
KEEP_MARGIN = 0.1  # a point further than this fraction outside the carried box is dropped
MIN_STEP_COVER = 0.7  # a span's steps measured at least this fraction of its frames, or no ttc
MAX_TTC_S = 30.0  # slower than this: not closing, as far as an alert is concerned
MAX_STEP = 0.25  # |log scale| of one frame step above this is a tracking failure, not motion
INHERIT_IOU = 0.3  # a new track whose box overlaps a vanished track's carried box this much is the same object
# A detection whose box (brought up to now) is shorter than the trail's
# carried box by more than this factor is not what the flow followed (the
# tracker gave a far person's box to a nearer one's trail in a crowd, or the
# flow's points spread on something else): the flow claimed growth the box
# does not have, and the trail starts over on the detection, its steps and
# streak with it. On vtest at the Pi 4's pace a trail carried its history
# onto another person 6 m further off (84 px against ~160) and its time to
# collision of 1.4 s drew a false WARN. One way only: a detection taller than
# the carried box is a flow that lagged a real approach (near contact, with
# points lost: 158 against 106 px in jogger-8mps-rough at zero2w), and
# restarting it there cost the lead it gave.
MAX_SIZE_MISS = 1.4


@dataclass(frozen=True)
class FlowParams:
    width: int = 320  # small grey image width, pixels
    max_points: int = 40  # per track
    min_points: int = 5  # per track, for a scale step
    span_s: float = 0.27  # baseline of the time to collision (steps multiplied over it)
    max_tracks: int = 4  # the largest boxes (the nearest objects) are followed; the cost is per track


@dataclass(frozen=True)
class FlowTrack:
    """One camera track as the flow followed it to this frame."""

    track_id: int  # the camera track's id now
    box: Box  # carried to this frame, in the frame's pixels
    scale: float  # the box's scale now over at the detection it came from (>1: nearer)
    ttc_s: float | None  # time to collision from the scale over span_s; None: not closing or unmeasured
    points: int  # features followed inside it
    detection_t_ns: int  # frame time of the detection the box was last set from
    # The flow's own id for the object: kept when the tracker gives it a new
    # track id (a box jump at a slow detector's pace) but the flow-carried box
    # and the new detection agree, so its scale history and streak go on.
    trail_id: int = 0
    followed_s: float = 0.0  # how long the flow has followed it without a break


@dataclass(frozen=True)
class FlowResult:
    t_ns: int
    seq: int
    tracks: tuple[FlowTrack, ...]
    process_ms: float | None = None

    def track(self, track_id: int) -> FlowTrack | None:
        return next((t for t in self.tracks if t.track_id == track_id), None)


@dataclass
class _Trail:
    """One track's points (small-image px), carried box (frame px) and steps."""

    box: Box
    detection_t_ns: int
    trail_id: int
    since_ns: int  # first frame time followed
    pts: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    # Per frame: (frame time, log scale step or None when unmeasured, dx, dy in frame px)
    steps: deque[tuple[int, float | None, float, float]] = field(default_factory=deque)


def _grow(box: Box, frac: float) -> Box:
    x1, y1, x2, y2 = box
    gx, gy = (x2 - x1) * frac, (y2 - y1) * frac
    return (x1 - gx, y1 - gy, x2 + gx, y2 + gy)


def _scaled(box: Box, log_s: float, dx: float, dy: float) -> Box:
    """The box shifted by (dx, dy) and scaled by exp(log_s) about its centre."""
    x1, y1, x2, y2 = box
    s = math.exp(log_s)
    cx, cy = (x1 + x2) / 2 + dx, (y1 + y2) / 2 + dy
    hw, hh = (x2 - x1) / 2 * s, (y2 - y1) / 2 * s
    return (cx - hw, cy - hh, cx + hw, cy + hh)


def _brought_up(box: Box, t_ns: int, trail: _Trail) -> Box:
    """A box of the frame at t_ns moved on by the trail's steps since."""
    for t, step, dx, dy in trail.steps:
        if t > t_ns:
            box = _scaled(box, step or 0.0, dx, dy)
    return box


def _overgrown(carried: Box, detected: Box) -> float:
    """log of how much taller the carried box is than the detection's."""
    return math.log(max(carried[3] - carried[1], 1e-3) / max(detected[3] - detected[1], 1e-3))


def _iou(a: Box, b: Box) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def scale_step(p0: np.ndarray, p1: np.ndarray, min_points: int) -> float | None:
    """log of the median ratio of pairwise distances from p0 to p1 (the same
    points, in order); None with too few points or pairs."""
    n = len(p0)
    if n < min_points:
        return None
    i, j = np.triu_indices(n, 1)
    d0 = np.hypot(*(p0[i] - p0[j]).T)
    d1 = np.hypot(*(p1[i] - p1[j]).T)
    keep = d0 >= MIN_PAIR_PX
    if int(keep.sum()) < min_points:
        return None
    step = float(np.log(np.median(d1[keep] / d0[keep])))
    return step if abs(step) <= MAX_STEP else None


class FlowEstimator:
    """Every camera track followed by feature flow, one frame at a time."""

    def __init__(self, params: FlowParams = FlowParams()) -> None:
        self.p = params
        self._prev: np.ndarray | None = None
        self._prev_t: int | None = None
        self._small: tuple[int, int] | None = None
        self._k = 1.0  # frame px per small-image px
        self._trails: dict[int, _Trail] = {}
        self._camera_t: int | None = None  # frame time of the newest camera result taken
        self._next_trail = 1

    def reset(self) -> None:
        self._prev, self._prev_t, self._camera_t = None, None, None
        self._trails.clear()

    def _grey(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        sw = min(self.p.width, w)
        sh = max(16, round(h * sw / w))
        if self._small != (sw, sh):
            self.reset()
            self._small, self._k = (sw, sh), w / sw
        return small_grey(image, sw, sh)

    def process(self, frame: Frame, camera: CameraResult | None) -> FlowResult:
        """Follow the tracks of `camera` (the newest result the loop could
        have: its frame may be older than this one) onto `frame`."""
        t0 = time.perf_counter()  # measurement only
        grey = self._grey(frame.image)
        if self._prev_t is not None and frame.t_ns <= self._prev_t:
            self.reset()  # time went backwards (a new recording): start over
            grey = self._grey(frame.image)
        if self._prev is not None:
            self._follow(self._prev, grey, frame.t_ns)
        if camera is not None and camera.t_ns != self._camera_t:
            self._take(camera)
        for trail in self._trails.values():
            self._seed(grey, trail)
        self._prev, self._prev_t = grey, frame.t_ns
        tracks = tuple(self._result(tid, tr, frame.t_ns) for tid, tr in sorted(self._trails.items()))
        return FlowResult(frame.t_ns, frame.seq, tracks, (time.perf_counter() - t0) * 1e3)

    # -- one frame's flow ---------------------------------------------------
    def _follow(self, prev: np.ndarray, grey: np.ndarray, t_ns: int) -> None:
        trails = list(self._trails.values())
        counts = [len(tr.pts) for tr in trails]
        if sum(counts):
            p0 = np.concatenate([tr.pts for tr in trails]).reshape(-1, 1, 2)
            # nextPts=None (cv2 allocates it) is valid; OpenCV 4's stubs do not allow it.
            p1, st, _ = cv2.calcOpticalFlowPyrLK(prev, grey, p0, None, **LK_PARAMS)  # type: ignore[call-overload]
            pb, stb, _ = cv2.calcOpticalFlowPyrLK(grey, prev, p1, None, **LK_PARAMS)  # type: ignore[call-overload]
            fb = np.linalg.norm((pb - p0).reshape(-1, 2), axis=1)
            ok_all = (st.ravel() == 1) & (stb.ravel() == 1) & (fb < FB_MAX_PX)
            q_all = p1.reshape(-1, 2)
        else:
            ok_all, q_all = np.zeros(0, bool), np.zeros((0, 2), np.float32)
        span_ns = round(self.p.span_s * NS_PER_S)
        at = 0
        for tr, n in zip(trails, counts, strict=True):
            ok, q, p = ok_all[at:at + n], q_all[at:at + n], tr.pts
            at += n
            before, after = p[ok], q[ok]
            step = scale_step(before, after, self.p.min_points)
            if len(before):
                dx, dy = (float(v) * self._k for v in np.median(after - before, axis=0))
            else:
                dx = dy = 0.0
            tr.box = _scaled(tr.box, step or 0.0, dx, dy)
            tr.steps.append((t_ns, step, dx, dy))
            # Only the steps a detection may still need, and the span's.
            cutoff = min(t_ns - span_ns, tr.detection_t_ns)
            while len(tr.steps) > 1 and tr.steps[1][0] <= cutoff:
                tr.steps.popleft()
            x1, y1, x2, y2 = (v / self._k for v in _grow(tr.box, KEEP_MARGIN))
            inside = (after[:, 0] >= x1) & (after[:, 0] <= x2) & (after[:, 1] >= y1) & (after[:, 1] <= y2)
            tr.pts = after[inside].astype(np.float32)

    def _take(self, camera: CameraResult) -> None:
        """A new detection result: its boxes, brought up to now by the steps
        since its frame, replace the carried ones; a new track id whose box
        is where a vanished track's carried box is continues that trail;
        the other tracks gone are dropped."""
        self._camera_t = camera.t_ns
        # The nearest objects are the largest boxes; only they can be about to hit.
        tracks = sorted(camera.tracks, key=lambda t: t.box[3] - t.box[1], reverse=True)[:self.p.max_tracks]
        ids = {t.track_id for t in tracks}
        gone = {tid: tr for tid, tr in self._trails.items() if tid not in ids}
        for tid in gone:
            del self._trails[tid]
        for tr in tracks:
            trail = self._trails.get(tr.track_id)
            if trail is None:
                trail = self._inherit(tr.box, camera.t_ns, gone)
            if trail is None:
                self._new_trail(tr.track_id, tr.box, camera.t_ns)
                continue
            box = _brought_up(tr.box, camera.t_ns, trail)
            if _overgrown(trail.box, box) > math.log(MAX_SIZE_MISS):
                self._new_trail(tr.track_id, tr.box, camera.t_ns)
                continue
            self._trails[tr.track_id] = trail
            trail.box, trail.detection_t_ns = box, camera.t_ns

    def _new_trail(self, track_id: int, box: Box, t_ns: int) -> None:
        self._trails[track_id] = _Trail(box, t_ns, self._next_trail, t_ns)
        self._next_trail += 1

    @staticmethod
    def _inherit(box: Box, t_ns: int, gone: dict[int, _Trail]) -> _Trail | None:
        best, best_iou = None, INHERIT_IOU
        for tid, trail in gone.items():
            iou = _iou(_brought_up(box, t_ns, trail), trail.box)
            if iou >= best_iou:
                best, best_iou = tid, iou
        return gone.pop(best) if best is not None else None

    def _seed(self, grey: np.ndarray, trail: _Trail) -> None:
        # Topped up only once it runs low: the corner search is most of a
        # track's cost, and the points it has are the ones with history.
        if len(trail.pts) >= max(2 * self.p.min_points, self.p.max_points // 4):
            return
        sw, sh = self._small  # type: ignore[misc]
        x1, y1, x2, y2 = (v / self._k for v in _grow(trail.box, -SEED_INSET))
        c1, r1 = max(0, int(x1)), max(0, int(y1))
        c2, r2 = min(sw, int(math.ceil(x2))), min(sh, int(math.ceil(y2)))
        if c2 - c1 < 3 or r2 - r1 < 3:
            return
        # Corners of the box's inner part only: the response over the whole
        # image for every track would cost as much as an inference.
        roi = grey[r1:r2, c1:c2]
        mask = np.full(roi.shape, 255, np.uint8)
        for x, y in trail.pts:
            cv2.circle(mask, (int(x) - c1, int(y) - r1), 2, (0,), -1)
        new = cv2.goodFeaturesToTrack(roi, maxCorners=self.p.max_points - len(trail.pts), qualityLevel=0.01,
                                      minDistance=2, mask=mask, blockSize=3)
        if new is not None:
            new = new.reshape(-1, 2).astype(np.float32) + np.array([c1, r1], np.float32)
            trail.pts = np.concatenate([trail.pts, new])

    def _result(self, tid: int, trail: _Trail, t_ns: int) -> FlowTrack:
        since = sum(s or 0.0 for t, s, _, _ in trail.steps if t > trail.detection_t_ns)
        return FlowTrack(tid, trail.box, math.exp(since), self._ttc(trail, t_ns), len(trail.pts),
                         trail.detection_t_ns, trail.trail_id, (t_ns - trail.since_ns) / NS_PER_S)

    def _ttc(self, trail: _Trail, t_ns: int) -> float | None:
        """dt / (s - 1) over the steps of the last span_s."""
        span_ns = round(self.p.span_s * NS_PER_S)
        window = [(t, s) for t, s, _, _ in trail.steps if t > t_ns - span_ns]
        older = [t for t, _, _, _ in trail.steps if t <= t_ns - span_ns]
        if len(window) < 2 or not older:
            return None  # the span is not covered yet
        measured = [s for _, s in window if s is not None]
        if len(measured) < MIN_STEP_COVER * len(window):
            return None
        # Unmeasured steps count at the measured ones' mean rate.
        log_s = sum(measured) * len(window) / len(measured)
        dt = (t_ns - older[-1]) / NS_PER_S
        if log_s <= 0:
            return None
        ttc = dt / math.expm1(log_s)
        return ttc if ttc <= MAX_TTC_S else None
