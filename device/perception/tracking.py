"""Frame-to-frame association of detections, and each track's time to collision.

Why a small tracker of our own rather than a library (issue 4 weighed
norfair, the obvious candidate):
- norfair 2.3 (the current release) requires numpy < 2, and the
  opencv-python-headless 5 this project installs requires numpy >= 2: the
  two cannot be installed together. norfair also pulls in scipy, filterpy
  (which depends on matplotlib) and rich: some 250 MB on a Pi for what is
  here about 100 lines.
- Its matching is greedy by distance, like this one; its gain is a Kalman
  filter on the box corners. A constant-velocity prediction of the box
  centre and of its scale (below) gives the part of that which matters
  here: keeping an identity through a missed frame or two while an object
  crosses or looms.
- What time to collision needs is the raw box history of one object, which
  we keep per track anyway; a filter's smoothed box would add lag to it.
- There are a handful of objects behind a runner, not a crowd.

Time to collision comes from the box's growth. For an object closing at a
constant speed, its image size is proportional to 1/distance, so 1/size
falls linearly in time and reaches zero at contact: a straight-line fit of
1/size against time gives the contact time with no lag (a fit of the
growth *rate* over a window describes the middle of the window, about half
a second late at 10-15 fps). The fit is Theil-Sen (median of pairwise
slopes), so a partial detection or an occlusion for a frame or two hardly
moves it.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

from device.core.clock import NS_PER_S
from device.core.coco import COCO_CLASSES
from device.core.types import Detections
from device.perception.ego import moved
from device.perception.geometry import EDGE_PX, NEAR_EDGE_FRAC

Box = tuple[float, float, float, float]

# A time to collision needs this many boxes over at least this long. The span
# is what binds at 7.5 detections a second and more (0.4 s is 4-7 boxes); the
# count only keeps a slow detector (2-3 a second) from fitting a line to two.
MIN_SCALE_POINTS = 3
MIN_SCALE_SPAN_S = 0.4
# A box whose shape (ln width/height) changes faster than this fraction of its
# growth rate, and faster than the floor (1/s), is not looming (see _isotropic).
ASPECT_TOLERANCE = 0.5
ASPECT_FLOOR_PER_S = 0.15
# YOLOX-Nano's box is taller than its object by a few of the model input's
# pixels, whatever the object's size: h_det = k h_true + c. A fit of 1/h against
# time then reads long by h_det / (h_det - c), so the fit takes c off each box
# height first (`box_offset_px` turns it into frame pixels). Measured with
# scripts/box_offset.py (docs/evaluation.md, "The detector's box offset"): real
# COCO people (157, from both shared photo sets) zoomed from 20 to 160 px tall in
# a 640x360 frame, c per person by a Theil-Sen line, the median per input:
# - 416 letterbox (the built-in default): +1.67 frame px of 103 people (95 %
#   interval of the median +0.02 to +3.3; 62 of 103 above 0) = 1.1 input px;
# - 320x192 stretch (the pi4 and zero2w defaults): +1.23 frame px of 76 people
#   (interval -0.6 to +4.1; 45 above 0) = 0.7 input px.
# In input pixels the two differ, so each input takes its own figure; an input
# not measured takes nothing off. The widths show no offset (+0.6 and +1.1 frame
# px, as often negative), so only heights are corrected.
BOX_OFFSET_INPUT_PX: dict[tuple[int, int, str], float] = {
    (416, 416, "letterbox"): 1.1,
    (320, 192, "stretch"): 0.7,
}


@dataclass
class Track:
    track_id: int
    class_id: int
    box: Box
    confidence: float
    last_t_ns: int
    hits: int = 1
    # (t_ns, box height px) over the recent window: the scale history
    heights: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=32))
    # (t_ns, box) over the recent window: what time to collision is fitted on
    boxes: deque[tuple[int, Box]] = field(default_factory=lambda: deque(maxlen=32))
    # The detector's height offset in frame pixels for each of `boxes`, newest last
    # (its input's BOX_OFFSET_INPUT_PX at the scale that box was detected at)
    box_offsets: deque[float] = field(default_factory=lambda: deque(maxlen=32))
    # Constant-velocity motion of the box, for matching after a gap: centre
    # velocity (px/s) and growth rate of ln(size) (1/s), smoothed.
    velocity: tuple[float, float] = (0.0, 0.0)
    growth: float = 0.0
    size_jumps: int = 0  # times its size history was restarted (see IouTracker._apply)
    # Summed detection score per class id: class_id is the best of them (a
    # track of confusable classes, CONFUSABLE, is named by its evidence).
    class_scores: dict[int, float] = field(default_factory=dict)

    def scale_rate(self, window_ns: int) -> float | None:
        """d(ln h)/dt in 1/s over the window; None if the history is too short.

        1 / scale_rate is a time to collision for the middle of the window;
        `ttc_s` gives it for now.
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

    def predicted(self, t_ns: int) -> Box:
        """Where the box should be at t_ns if it keeps moving as it did."""
        dt = min((t_ns - self.last_t_ns) / NS_PER_S, 0.5)
        x1, y1, x2, y2 = self.box
        cx = (x1 + x2) / 2 + self.velocity[0] * dt
        cy = (y1 + y2) / 2 + self.velocity[1] * dt
        k = math.exp(max(-1.0, min(1.0, self.growth * dt)))
        hw, hh = (x2 - x1) / 2 * k, (y2 - y1) / 2 * k
        return (cx - hw, cy - hh, cx + hw, cy + hh)

    def ttc_s(self, window_ns: int, width: int, height: int) -> float | None:
        """Time to collision now from the box's growth over the window, in a
        width x height image; None if the history is short or not growing."""
        return self.ttc_estimate(window_ns, width, height)[0]

    def ttc_estimate(self, window_ns: int, width: int, height: int) -> tuple[float | None, str | None]:
        """(time to collision, the measure it came from: "height" or "width").

        The box height is the measure (it varies least with a person's
        stride); while the newest box's top or bottom is cut off by the image
        (_cut_vertically), the width is used instead, if it is whole. A
        width-based value is noisier (arms and legs swing): the estimator lets
        it carry on a closing streak, never start one.
        """
        # box_offsets is appended and cleared with boxes (IouTracker._apply): one offset a box.
        recent_off = [(t, b, o) for (t, b), o in zip(self.boxes, self.box_offsets, strict=True)
                      if self.last_t_ns - t <= window_ns]
        recent = [(t, b) for t, b, _ in recent_off]
        # Each height less the detector's own offset (BOX_OFFSET_INPUT_PX): what the object's size does.
        heights = [(t, b[3] - b[1] - o) for t, b, o in recent_off if not _cut_vertically(b, height)]
        widths = [(t, b[2] - b[0]) for t, b in recent if not _cut_sideways(b, width)]
        if recent and _cut_vertically(recent[-1][1], height):
            # The newest box is cut: its height is not its object's, and the
            # older whole ones (and their shape, what _isotropic judges) say
            # how it came on up to a second ago, not now; the width says it
            # now. (Fitted on to the last whole height, then vetoed by their
            # shape, the dog of scenes dog-1mps at 3 m got no time to
            # collision for 0.13 s, which broke its closing streak.)
            heights = []
        elif not self._isotropic(recent, width, height):
            return None, None
        for name, series in (("height", heights), ("width", widths)):
            ttc = contact_time(series, self.last_t_ns)
            if ttc is not False:
                return ttc, name
        return None, None


    @staticmethod
    def _isotropic(recent: list[tuple[int, Box]], width: int, height: int) -> bool:
        """False when the box changes shape faster than it grows.

        Looming scales a box evenly; a box that grows mainly in one
        direction is a detection merging with a neighbour, an object being
        uncovered, or the detector settling on a new outline. Its growth is
        no time to collision. Judged on whole (uncut) boxes only; a person's
        stride makes the shape wobble, hence the floor.
        """
        whole = [(t, b) for t, b in recent if not _cut_vertically(b, height) and not _cut_sideways(b, width)]
        if len(whole) < MIN_SCALE_POINTS:
            return True
        t = [p[0] / NS_PER_S for p in whole]
        grow = theil_sen([(ti, math.log(max(b[3] - b[1], 1.0))) for ti, (_, b) in zip(t, whole, strict=True)])
        shape = theil_sen([(ti, math.log(max(b[2] - b[0], 1.0) / max(b[3] - b[1], 1.0))) for ti, (_, b) in zip(t, whole, strict=True)])
        if grow is None or shape is None:
            return True
        return abs(shape) <= max(ASPECT_TOLERANCE * abs(grow), ASPECT_FLOOR_PER_S)


def _edge_margin_px(size: int) -> float:
    """How close to an image edge (of `size` px across) a box side is cut off
    by it. The detector's box stops a few pixels short of an edge that cuts
    its object (geometry.NEAR_EDGE_FRAC, as the near field judges it), so
    EDGE_PX alone took such boxes as whole: the dog of scenes dog-1mps at 3 m
    ended 2-10 px above the bottom edge, its heights no longer grew (79 px
    after 84), and the fit on them put its WARN past the threshold."""
    return max(EDGE_PX, NEAR_EDGE_FRAC * size)


def _cut_vertically(b: Box, height: int) -> bool:
    """The image's top or bottom edge cuts the box: its height is not its object's."""
    m = _edge_margin_px(height)
    return b[1] <= m or b[3] >= height - m


def _cut_sideways(b: Box, width: int) -> bool:
    """The image's left or right edge cuts the box: its width is not its object's."""
    m = _edge_margin_px(width)
    return b[0] <= m or b[2] >= width - m


def theil_sen(points: list[tuple[float, float]]) -> float | None:
    """Median of pairwise slopes, or None with fewer than two distinct times."""
    if len(points) < 2:
        return None
    t = np.array([p[0] for p in points], dtype=np.float64)
    y = np.array([p[1] for p in points], dtype=np.float64)
    i, j = np.triu_indices(len(t), k=1)
    dt = t[j] - t[i]
    ok = dt > 0
    if not ok.any():
        return None
    return float(np.median((y[j] - y[i])[ok] / dt[ok]))


def contact_time(series: list[tuple[int, float]], now_ns: int) -> float | None | bool:
    """Seconds from now_ns until a size growing as 1/(distance) would be
    infinite, from a Theil-Sen line through 1/size. None: not closing in;
    False: too few points or too short a span to say."""
    if len(series) < MIN_SCALE_POINTS:
        return False
    t = np.array([(p[0] - now_ns) / NS_PER_S for p in series], dtype=np.float64)
    if t[-1] - t[0] < MIN_SCALE_SPAN_S:
        return False
    y = 1.0 / np.maximum(np.array([p[1] for p in series], dtype=np.float64), 1.0)
    i, j = np.triu_indices(len(t), k=1)
    dt = t[j] - t[i]
    ok = dt > 0
    slope = float(np.median((y[j] - y[i])[ok] / dt[ok]))
    if slope >= 0:
        return None
    at_now = float(np.median(y - slope * t))  # the line's value at t = 0 (now)
    if at_now <= 0:
        return None
    return at_now / -slope


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


# Weight of the newest frame in the smoothed motion estimates.
MOTION_ALPHA = 0.5
# A size step (ln of sqrt(area) ratio, off the track's smoothed growth) above
# SIZE_JUMP_LN + SIZE_JUMP_PER_S x dt restarts the track's size history. A
# stride or a partial detection moves a box by ~10 %; a real approach at the
# speeds a runner meets changes it by far less than this within one interval.
SIZE_JUMP_LN = math.log(1.25)
SIZE_JUMP_PER_S = 1.0
# A track survives this many of the detector's intervals unseen (one miss and
# a bit), when that is longer than max_gap_s.
GAP_INTERVALS = 2.5
# A detection no track overlaps enough is still a track's next box when its
# centre is within CENTRE_GATE of the track's box heights from where the track
# was (or was predicted) and its size within SIZE_GATE of it. The runner's
# sway turns the camera 1-3 degrees (twice that running backwards): at 20 m
# that moves a person's box by more than its own width, so IoU alone gives a
# far object a new track every few frames, and no track keeps the history a
# time to collision needs. Tried only after every IoU match, and only where
# the pairing is unambiguous (one candidate each way).
CENTRE_GATE = 1.0
SIZE_GATE = math.log(1.4)
# ... and only for a box this small (px tall): a far object, whose width the
# sway's shift exceeds. A nearer box's own width keeps IoU working through the
# sway, and in a crowd of near people a centre is no identity (pairing the
# wrong two turned their difference in size into growth: a false WARN on vtest).
CENTRE_MAX_PX = 60.0
# Classes YOLOX-Nano confuses with one another on a small object: a detection
# of one continues a track of another (by IoU or centre as within a class), so
# an object the detector names differently from one result to the next keeps
# one track and its hits. Measured (docs/evaluation.md, 'The dog'): at the pi4
# pace the far dog is named person and dog in turn from 7 m to 2 m (horse too,
# under the threshold), each name a new track of one hit, so no track had the
# two hits a candidate needs before 2.2 m; real COCO animals scaled to 64-160 px
# tall are named another animal or a person in 4-6 of 45. People and the
# animals a runner meets are one group: each alerts, and each moves.
#
# Vehicles are a group of their own: COCO's car, truck and bus have no sharp
# border (a van, a pickup, a 1906 motor car), and on the Market Street film
# one car crossing 6-8 m ahead was named car, then car and truck at once, then
# truck (docs/evaluation.md, "Vehicles: one track"): three tracks, the truck's
# at twice the car's distance by its class height. Two-wheelers likewise: the
# film's far cyclist was a bicycle, then a motorcycle. Not bicycles with
# people: a rider is a person box beside the bicycle's, in the same frame.
CONFUSABLE: tuple[frozenset[str], ...] = (
    frozenset({"person", "dog", "cat", "horse", "sheep", "cow", "bear"}),
    frozenset({"car", "truck", "bus"}),
    frozenset({"bicycle", "motorcycle"}),
)
# Two detections of one frame, of different classes of one group, overlapping
# this much are one object named twice: the better scored stands for it, or the
# other starts a track of its own under the other name. The vehicles and the
# two-wheelers at the detector's own class-wise NMS threshold (the film's car at
# 2.5 s, as car and as truck).
GROUP_DUPLICATE_IOU = 0.45
# The people's group only where the two boxes are nearly one: a rider on a
# horse or a person walking a dog are two objects whose boxes differ in shape
# (person-animal pairs in the COCO subset overlap by 0.25 at most). The dog of
# scenes dog-1mps, named dog and person at once at 3 m (IoU 0.90 and 0.98):
# the person box started a second track, which took the dog over from the
# established one for three detections (with the camera's motion in matching),
# and each handover restarted the box history a time to collision is fitted on.
# (main's 4f44ff5 had left this group out: at 0.45 it lost that dog.)
PEOPLE_DUPLICATE_IOU = 0.7


def confusable_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) bool: class ids a[i] and b[j] are the same class or confusable."""
    return _group_of(a)[:, None] == _group_of(b)[None, :]


_GROUP: dict[int, int] = {COCO_CLASSES.index(name): -(g + 1) for g, names in enumerate(CONFUSABLE) for name in names}
_PEOPLE_GROUP = _GROUP[COCO_CLASSES.index("person")]


def _group_of(ids: np.ndarray) -> np.ndarray:
    """A class id's group: its own id, or a negative id shared by a CONFUSABLE group."""
    return np.array([_GROUP.get(int(c), int(c)) for c in ids], np.int64)


def without_group_duplicates(dets: Detections) -> Detections:
    """The detections less those overlapping a better scored one of another
    class of their group by GROUP_DUPLICATE_IOU (the people's group by
    PEOPLE_DUPLICATE_IOU): one object named twice. Same-class overlaps are
    the detector's NMS's business."""
    if len(dets) < 2:
        return dets
    iou = iou_matrix(dets.xyxy, dets.xyxy)
    group = _group_of(dets.class_id)
    limit = np.where(group == _PEOPLE_GROUP, PEOPLE_DUPLICATE_IOU, GROUP_DUPLICATE_IOU)
    twin = (iou >= limit[:, None]) & (group[:, None] == group[None, :]) & (
        dets.class_id[:, None] != dets.class_id[None, :])
    order = np.argsort(-dets.confidence, kind="stable")
    keep = np.ones(len(dets), bool)
    for i in order:
        if keep[i]:
            keep &= ~twin[i] | (np.arange(len(dets)) == i)
    return dets if keep.all() else dets[keep]


class IouTracker:
    """Greedy IoU matching within a class, against each track's last box and
    its constant-velocity prediction (whichever overlaps more), so a box
    that moved or grew a lot while undetected keeps its identity."""

    def __init__(self, *, min_iou: float = 0.3, max_gap_s: float = 0.6) -> None:
        self.min_iou = min_iou
        self.max_gap_ns = round(max_gap_s * NS_PER_S)
        self.tracks: list[Track] = []
        self._next_id = 1
        self._last_update_ns: int | None = None
        self._intervals: deque[int] = deque(maxlen=8)
        self._offset = 0.0

    def interval_ns(self) -> int:
        """The detector's own pace: the median time between the recent frames
        it was updated with (0 before two). The one measurement of it: each
        camera result carries it on to the decision (`CameraResult.interval_ns`)."""
        if not self._intervals:
            return 0
        return sorted(self._intervals)[len(self._intervals) // 2]

    def gap_ns(self) -> int:
        """How long an unseen track is kept: max_gap_s, or GAP_INTERVALS of the
        detector's own interval between frames if that is longer (a detector
        at 2-3 frames a second would otherwise lose a track at one miss)."""
        if not self._intervals:
            return self.max_gap_ns
        # Floored: `t - last <= gap` cuts integer ns exactly where the float did.
        return max(self.max_gap_ns, math.floor(GAP_INTERVALS * self.interval_ns()))

    def update(self, t_ns: int, dets: Detections, motion: np.ndarray | None = None,
               offset_px: float = 0.0) -> list[Track]:
        """Match detections to tracks; return the tracks seen in this frame.
        `motion` (device.perception.ego: the camera's own motion since the
        previous update, 2x3 on pixels) moves every track's box first, so the
        runner's sway is not taken for the objects' motion. `offset_px` is the
        detector's box-height offset at these detections' scale, in frame
        pixels (`box_offset_px`), kept with each box for the time to collision."""
        self._offset = offset_px
        dets = without_group_duplicates(dets)
        gap = self.gap_ns()  # from the intervals before this one: a long pause is no pace
        if self._last_update_ns is not None and t_ns > self._last_update_ns:
            self._intervals.append(t_ns - self._last_update_ns)
        self._last_update_ns = t_ns
        self.tracks = [tr for tr in self.tracks if t_ns - tr.last_t_ns <= gap]
        if motion is not None:
            for tr in self.tracks:
                tr.box = moved(tr.box, motion)
        seen: list[Track] = []
        unmatched = set(range(len(dets)))
        if self.tracks and len(dets):
            last = np.array([tr.box for tr in self.tracks], dtype=np.float32)
            pred = np.array([tr.predicted(t_ns) for tr in self.tracks], dtype=np.float32)
            iou = np.maximum(iou_matrix(last, dets.xyxy), iou_matrix(pred, dets.xyxy))
            same_class = confusable_matrix(np.array([tr.class_id for tr in self.tracks]), dets.class_id)
            iou = np.where(same_class, iou, 0.0)
            # Greedy: best pairs first; good enough for the handful of objects
            # behind a runner.
            taken: set[int] = set()
            for flat in np.argsort(-iou, axis=None):
                ti, di = divmod(int(flat), iou.shape[1])
                if iou[ti, di] < self.min_iou:
                    break
                if di not in unmatched or ti in taken:
                    continue
                self._continue(ti, t_ns, dets, di, seen, taken, unmatched)
            self._match_by_centre(t_ns, dets, same_class, unmatched, taken, seen)
        for di in sorted(unmatched):
            tr = Track(
                track_id=self._next_id,
                class_id=int(dets.class_id[di]),
                box=(0.0, 0.0, 0.0, 0.0),
                confidence=0.0,
                last_t_ns=t_ns,
            )
            self._next_id += 1
            self._apply(tr, t_ns, dets, di, self._offset)
            self.tracks.append(tr)
            seen.append(tr)
        return seen

    def _match_by_centre(self, t_ns: int, dets: Detections, same_class: np.ndarray, unmatched: set[int],
                         taken: set[int], seen: list[Track]) -> None:
        """Second pass for what IoU left (see CENTRE_GATE): same class (or
        confusable: `same_class`, the IoU pass's matrix; an untaken track's
        class is as it was then), nearest centre (in box heights) first."""
        pairs = []
        for ti, tr in enumerate(self.tracks):
            if ti in taken:
                continue
            for di in unmatched:
                if not same_class[ti, di]:
                    continue
                d = [float(v) for v in dets.xyxy[di]]
                dh = max(d[3] - d[1], 1.0)
                if dh > CENTRE_MAX_PX:
                    continue
                best = math.inf
                for b in (tr.box, tr.predicted(t_ns)):
                    bh = max(b[3] - b[1], 1.0)
                    if abs(math.log(dh / bh)) > SIZE_GATE:
                        continue
                    off = math.hypot((d[0] + d[2] - b[0] - b[2]) / 2, (d[1] + d[3] - b[1] - b[3]) / 2)
                    best = min(best, off / max(dh, bh))
                if best <= CENTRE_GATE:
                    pairs.append((best, ti, di))
        # Only an unambiguous pair: in a crowd (several people of a size within a
        # box height of each other) a centre is no identity, and pairing the wrong
        # two turns their difference in size into growth (a false WARN on vtest).
        per_track = Counter(ti for _, ti, _ in pairs)
        per_det = Counter(di for _, _, di in pairs)
        for _, ti, di in sorted(pairs):
            if ti in taken or di not in unmatched or per_track[ti] > 1 or per_det[di] > 1:
                continue
            self._continue(ti, t_ns, dets, di, seen, taken, unmatched)

    def _continue(self, ti: int, t_ns: int, dets: Detections, di: int, seen: list[Track], taken: set[int],
                  unmatched: set[int]) -> None:
        """Detection di continues track ti (by IoU or by centre alike)."""
        tr = self.tracks[ti]
        self._apply(tr, t_ns, dets, di, self._offset)
        tr.hits += 1
        seen.append(tr)
        taken.add(ti)
        unmatched.discard(di)

    @staticmethod
    def _apply(tr: Track, t_ns: int, dets: Detections, i: int, offset_px: float = 0.0) -> None:
        box: Box = tuple(float(v) for v in dets.xyxy[i])  # type: ignore[assignment]
        if tr.boxes:
            dt = (t_ns - tr.last_t_ns) / NS_PER_S
            if dt > 0:
                (ox1, oy1, ox2, oy2), (x1, y1, x2, y2) = tr.box, box
                vx = ((x1 + x2) - (ox1 + ox2)) / 2 / dt
                vy = ((y1 + y2) - (oy1 + oy2)) / 2 / dt
                size_old = max((ox2 - ox1) * (oy2 - oy1), 1.0)
                size_new = max((x2 - x1) * (y2 - y1), 1.0)
                g = 0.5 * math.log(size_new / size_old) / dt
                a = MOTION_ALPHA
                tr.velocity = (a * vx + (1 - a) * tr.velocity[0], a * vy + (1 - a) * tr.velocity[1])
                # A box whose size jumps far off the track's own growth is not
                # the object looming: another, nearer object taking over the
                # track (a small box inside a big one passes the IoU test), or
                # the detector settling on a new outline. Its size history ends
                # there, so the time-to-collision fit never sees the step as
                # growth (issue 13: a WARN at 8 m, TTC 1.8 s, from one step).
                jump = 0.5 * math.log(size_new / size_old) - tr.growth * dt
                if abs(jump) > SIZE_JUMP_LN + SIZE_JUMP_PER_S * dt:
                    tr.boxes.clear()
                    tr.box_offsets.clear()
                    tr.heights.clear()
                    g = 0.0
                    tr.size_jumps += 1
                tr.growth = a * g + (1 - a) * tr.growth
        tr.box = box
        tr.confidence = float(dets.confidence[i])
        cid = int(dets.class_id[i])
        tr.class_scores[cid] = tr.class_scores.get(cid, 0.0) + tr.confidence
        tr.class_id = max(tr.class_scores, key=lambda c: tr.class_scores[c])
        tr.last_t_ns = t_ns
        tr.heights.append((t_ns, max(box[3] - box[1], 1.0)))
        tr.boxes.append((t_ns, box))
        tr.box_offsets.append(offset_px)


def ttc_from_scale_rate(rate: float | None) -> float | None:
    """Time to collision from the growth rate of ln(size); None if not growing."""
    if rate is None or rate <= 1e-6 or not math.isfinite(rate):
        return None
    return 1.0 / rate


def box_offset_px(detector: object, width: int, height: int,
                  crop: tuple[int, int, int, int] | None = None) -> float:
    """The detector's measured box offset (BOX_OFFSET_INPUT_PX, by its input's
    `input_width`, `input_height` and `fill`) in the pixels of a width x height
    frame; a `LookaheadDetector` is read through its `inner`, at its crop's
    scale when `crop` is the region this result was detected on. 0 for an input
    not measured, or a detector whose input is not known (an accelerator's own
    network)."""
    inner = getattr(detector, "inner", detector)
    iw, ih = getattr(inner, "input_width", None), getattr(inner, "input_height", None)
    fill = getattr(inner, "fill", "letterbox")
    if not isinstance(iw, int) or not isinstance(ih, int) or width <= 0 or height <= 0:
        return 0.0
    offset = BOX_OFFSET_INPUT_PX.get((iw, ih, fill), 0.0)
    if crop is not None:
        width, height = crop[2] - crop[0], crop[3] - crop[1]
    scale_y = ih / height if fill == "stretch" else min(iw / width, ih / height)
    return offset / scale_y
