"""Looming: time to contact with any surface in the path, no object class needed.

Posts and walls are not detector classes. What every obstacle does as the
runner nears it is grow in the image: its features spread apart at the
rate 1 / TTC (Mori and Scherer 2013: relative size change of matched
features; Horn, Fang and Masaki 2007: time to contact from image motion
alone). The ground grows too, so it has to be told apart (Byrne and Taylor
2009 segment by expansion); here the ground-plane model does it:

- A camera `H` up, pitched down by `theta`, moving horizontally at `v`,
  sees a ground point at row y expand away from the horizon (the focus of
  expansion) at the fractional rate k (y - y_h) per frame interval, with
  k = v dt cos^2(theta) / (H f): the ground's expansion is known up to one
  number, the runner's speed. The ground features give it (a robust linear
  fit, with the gait's yaw, pitch, roll and bob as nuisance terms), so the
  runner's own speed comes out: standing still, nothing static can be
  closing, and looming stays silent.
- A feature on an upright surface is nearer than the ground seen at its
  row, so it expands faster than the ground model allows there (above the
  horizon the ground allows none). Its own expansion rate gives its time
  to contact tau and, with the speed, its distance v tau and lateral offset:
  only features inside the path corridor count, so a facade beside the path
  (which expands too) never does.
- The nearest group of such features gives the time to contact by the
  median change of their pairwise distances over a longer baseline
  (`span_s`): distances between points do not change with the camera's
  rotation, so the gait's sway drops out.

Everything runs on a small grey image (`width`, ~160 px) with OpenCV's
Shi-Tomasi corners and pyramidal Lucas-Kanade flow, a few milliseconds a
frame. Pure apart from OpenCV: frames and their times in, results out.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from device.core.clock import NS_PER_S
from device.perception.small_grey import small_grey

# Lucas-Kanade: a 9x9 window on 2 pyramid levels is enough for the few
# pixels a feature moves between frames at 160 px width.
LK_PARAMS: dict[str, Any] = dict(winSize=(9, 9), maxLevel=2, criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03))
FB_MAX_PX = 0.5  # forward-backward disagreement above this: a lost track
GROUND_MIN_BELOW_PX = 3.0  # ground candidates lie at least this far below the horizon
GROUND_MIN_POINTS = 8  # fewer ground features: no speed, no looming
MIN_RADIUS_PX = 4.0  # nearer the focus of expansion a feature's rate is noise
RATE_NOISE = 0.012  # expansion (per short interval) that tracking noise alone gives
EXCESS_PX = 0.25  # ... and the radial displacement beyond the ground's, in small-image pixels
ELEVATED_SCORE = 0.6  # running fraction of frames a track looked elevated, to count
MIN_PAIR_PX = 4.0  # pairs closer than this at the base frame carry no scale
MAX_SPREAD = 0.9  # interquartile range of the pairs' scale over (scale - 1): above, no one surface
GROUP_SPREAD = 1.6  # a group: tau up to this factor above the nearest features'
# ... and one surface: each of its features within this fraction of the image's width of
# another of them. Features of two things at a similar time to contact far apart in the
# image (a tram passing on the next track, people far ahead) are two groups, not one
# spanning the corridor between them.
LINK_FRAC = 0.2
SPEED_FRAMES = 5  # the runner's speed: median of this many frames' ground fits
MAX_DISTANCE_M = 20.0  # beyond this, nothing is a threat for seconds


@dataclass(frozen=True)
class LoomingParams:
    width: int = 320  # small grey image width, pixels (a 14 cm post at 5 m: ~7 px)
    max_features: int = 150
    span_s: float = 0.4  # baseline of the pairwise scale
    ground_span_s: float = 0.27  # baseline of the ground fit (speed, rotation) and of upright-or-not
    min_speed_mps: float = 0.5  # slower: the runner stands; no static obstacle closes
    min_points: int = 3  # features in a group, at least (a 14 cm post has few)
    ground_margin: float = 0.3  # elevated: expanding this fraction faster than the ground
    corridor_half_width_m: float = 1.0
    max_height_m: float = 2.3  # features higher up pass overhead (branches, signs)
    hfov_deg: float = 66.0
    mount_height_m: float = 1.1
    pitch_deg: float = 0.0


@dataclass(frozen=True)
class LoomingResult:
    """What looming concluded about one frame. Image coordinates are the
    frame's own (not the small image's)."""

    t_ns: int
    seq: int
    ttc_s: float | None  # the nearest in-path upright group; None: nothing looms
    distance_m: float | None = None  # speed x ttc
    bearing_deg: float | None = None
    speed_mps: float | None = None  # the runner's own speed from the ground; None: not enough ground
    box: tuple[float, float, float, float] | None = None  # the expanding group, xyxy
    points: int = 0  # features in that group
    features: int = 0  # features tracked
    ground_points: int = 0
    corridor: tuple[tuple[float, float], ...] = ()  # the path on the ground, a polygon
    process_ms: float | None = None


class LoomingEstimator:
    """Feature tracks across frames and the looming judgement of each frame."""

    def __init__(self, params: LoomingParams = LoomingParams()) -> None:
        self.p = params
        self._prev: np.ndarray | None = None
        self._size: tuple[int, int] | None = None  # (w, h) of the small image
        self._frame_size: tuple[int, int] | None = None  # (w, h) of the frames it is made from
        self._scale = 1.0  # frame px per small-image px
        # Per frame: time, track ids, positions (small-image px).
        self._hist: deque[tuple[int, np.ndarray, np.ndarray]] = deque()
        self._ids: np.ndarray = np.zeros(0, np.int64)
        self._pts: np.ndarray = np.zeros((0, 2), np.float32)
        self._elev: dict[int, float] = {}  # track id -> running elevated score
        self._speeds: deque[float] = deque(maxlen=SPEED_FRAMES)
        self._next_id = 0
        self._corridor: tuple[tuple[float, float], ...] = ()

    # -- geometry of the small image ---------------------------------------
    def _setup(self, w: int, h: int) -> None:
        self._frame_size = (w, h)
        sw = max(16, min(self.p.width, w))  # tiny frames are scaled up: LK's window needs room
        sh = max(16, round(h * sw / w))
        self._size = (sw, sh)
        self._scale = w / sw
        self.f = (sw / 2) / math.tan(math.radians(self.p.hfov_deg) / 2)
        self.cx, self.cy = sw / 2, sh / 2
        th = math.radians(self.p.pitch_deg)
        self.y_h = self.cy - self.f * math.tan(th)  # the horizon: focus of expansion
        self.cos2 = math.cos(th) ** 2
        # Features are seeded where the corridor can be: the central columns
        # (at 1.5 m a 1 m half-width reaches ~0.9 of the half-image).
        mask = np.zeros((sh, sw), np.uint8)
        half = int(sw / 2 * 0.8)
        mask[:, int(self.cx) - half:int(self.cx) + half] = 255
        self._mask = mask
        self._corridor = corridor_polygon(w, h, self.p.hfov_deg, self.p.mount_height_m, self.p.pitch_deg,
                                          self.p.corridor_half_width_m)

    def reset(self) -> None:
        self._prev = None
        self._hist.clear()
        self._ids = np.zeros(0, np.int64)
        self._pts = np.zeros((0, 2), np.float32)
        self._elev.clear()
        self._speeds.clear()

    def update(self, t_ns: int, seq: int, image: np.ndarray) -> LoomingResult:
        t0 = time.perf_counter()  # measurement only
        h, w = image.shape[:2]
        if (w, h) != self._frame_size:
            self._setup(w, h)
            self.reset()
        sw, sh = self._size  # type: ignore[misc]
        grey = small_grey(image, sw, sh)
        if self._hist and t_ns <= self._hist[-1][0]:
            self.reset()  # time went backwards (a new recording): start over
        self._track(grey)
        self._seed(grey)
        self._prev = grey
        self._hist.append((t_ns, self._ids.copy(), self._pts.copy()))
        while len(self._hist) > 2 and self._hist[1][0] <= t_ns - round(self.p.span_s * NS_PER_S):
            self._hist.popleft()
        out = self._judge(t_ns, seq)
        return _with_ms(out, (time.perf_counter() - t0) * 1e3)

    def _track(self, grey: np.ndarray) -> None:
        if self._prev is None or len(self._pts) == 0:
            return
        p0 = self._pts.reshape(-1, 1, 2)
        # nextPts=None (cv2 allocates it) is valid; OpenCV 4's stubs do not allow it.
        p1, st, _ = cv2.calcOpticalFlowPyrLK(self._prev, grey, p0, None, **LK_PARAMS)  # type: ignore[call-overload]
        pb, stb, _ = cv2.calcOpticalFlowPyrLK(grey, self._prev, p1, None, **LK_PARAMS)  # type: ignore[call-overload]
        fb = np.linalg.norm((pb - p0).reshape(-1, 2), axis=1)
        sw, sh = self._size  # type: ignore[misc]
        q = p1.reshape(-1, 2)
        ok = (st.ravel() == 1) & (stb.ravel() == 1) & (fb < FB_MAX_PX)
        ok &= (q[:, 0] >= 0) & (q[:, 0] < sw) & (q[:, 1] >= 0) & (q[:, 1] < sh)
        self._ids, self._pts = self._ids[ok], q[ok].astype(np.float32)

    def _seed(self, grey: np.ndarray) -> None:
        room = self.p.max_features - len(self._pts)
        if room < self.p.max_features // 4:
            return
        mask = self._mask.copy()
        for x, y in self._pts:
            cv2.circle(mask, (int(x), int(y)), 4, (0,), -1)
        new = cv2.goodFeaturesToTrack(grey, maxCorners=room, qualityLevel=0.01, minDistance=4, mask=mask,
                                      blockSize=5)
        if new is None:
            return
        new = new.reshape(-1, 2).astype(np.float32)
        ids = np.arange(self._next_id, self._next_id + len(new), dtype=np.int64)
        self._next_id += len(new)
        self._ids = np.concatenate([self._ids, ids])
        self._pts = np.concatenate([self._pts, new])

    def _base(self, t_ns: int, span_s: float) -> tuple[int, np.ndarray, np.ndarray] | None:
        """The oldest kept frame within span_s (at least one frame back)."""
        want = t_ns - round(span_s * NS_PER_S)
        base = None
        for entry in list(self._hist)[:-1]:
            if entry[0] >= want:
                return entry
            base = entry
        return base

    @staticmethod
    def _matched(base: tuple[int, np.ndarray, np.ndarray], ids: np.ndarray, pts: np.ndarray):
        _, bi, ci = np.intersect1d(base[1], ids, assume_unique=True, return_indices=True)
        return ids[ci], base[2][bi].astype(np.float64), pts[ci].astype(np.float64)

    def _ground_fit(self, p0: np.ndarray, p1: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Least squares of the flow on the ground model plus the gait's nuisance
        terms, trimmed twice of the features that do not fit (upright things).
        Unknowns: yaw tx, pitch ty, roll w, ground expansion k, bob b."""
        m = (p0 + p1) / 2
        x, y = m[:, 0] - self.cx, m[:, 1] - self.y_h
        yc = m[:, 1] - self.cy
        d = p1 - p0
        one, zero = np.ones_like(x), np.zeros_like(x)
        ax = np.stack([one, zero, -yc, y * x, zero], axis=1)
        ay = np.stack([zero, one, x, y * y, y], axis=1)
        A = np.concatenate([ax, ay])
        b = np.concatenate([d[:, 0], d[:, 1]])
        use = np.concatenate([y > GROUND_MIN_BELOW_PX] * 2)
        if use.sum() < 2 * GROUND_MIN_POINTS:
            return None
        n = len(x)
        for _ in range(3):
            Au = A[use]
            try:  # 5 unknowns: the normal equations are cheap and well-posed here
                coef = np.linalg.solve(Au.T @ Au, Au.T @ b[use])
            except np.linalg.LinAlgError:
                return None
            res = b - A @ coef
            rp = np.maximum(np.abs(res[:n]), np.abs(res[n:]))  # per point
            scale = 1.4826 * np.median(rp[use[:n]]) + 0.05
            # Upright things are nearer than the ground at their row, so they
            # expand faster, never slower: trim hard on that side.
            outward = (res[:n] * x + res[n:] * y) / np.maximum(np.hypot(x, y), 1.0)
            keep = (y > GROUND_MIN_BELOW_PX) & (rp <= 2.5 * scale) & (outward <= scale)
            if keep.sum() < GROUND_MIN_POINTS:
                return None
            use = np.concatenate([keep, keep])
        return coef, use[:n]

    def _judge(self, t_ns: int, seq: int) -> LoomingResult:
        none = LoomingResult(t_ns=t_ns, seq=seq, ttc_s=None, features=len(self._pts), corridor=self._corridor)
        gb = self._base(t_ns, self.p.ground_span_s)
        if gb is None:
            return none
        ids, p0, p1 = self._matched(gb, self._ids, self._pts)
        fit = self._ground_fit(p0, p1) if len(ids) else None
        if fit is None:
            self._elev.clear()
            self._speeds.clear()
            return none
        (tx, ty, w, k, bob), ground = fit
        dt = (t_ns - gb[0]) / NS_PER_S
        # The runner's speed from this frame's ground, then the median of the
        # last few: a runner cannot change speed within a third of a second,
        # a person walking across the lower image can fool one fit.
        self._speeds.append(k * self.p.mount_height_m * self.f / (self.cos2 * dt))
        speed = float(np.median(np.asarray(self._speeds)))
        k = speed * self.cos2 * dt / (self.p.mount_height_m * self.f)
        base = LoomingResult(
            t_ns=t_ns, seq=seq, ttc_s=None, speed_mps=float(speed), features=len(self._pts),
            ground_points=int(ground.sum()), corridor=self._corridor,
        )
        if speed < self.p.min_speed_mps:
            self._elev.clear()  # standing (or stepping forward): nothing static closes
            return base
        # Each feature's own expansion about the horizon, the gait's rotation taken out.
        m = (p0 + p1) / 2
        x, y, yc = m[:, 0] - self.cx, m[:, 1] - self.y_h, m[:, 1] - self.cy
        rot = np.stack([tx - w * yc, ty + w * x + bob * y], axis=1)
        r = np.stack([x, y], axis=1)
        r2 = (r * r).sum(axis=1)
        rate = (((p1 - p0) - rot) * r).sum(axis=1) / np.maximum(r2, 1e-9)
        ground_rate = np.maximum(k * y, 0.0)
        valid = r2 >= MIN_RADIUS_PX**2
        # Faster than the ground allows at its row, by a margin and by more
        # than tracking noise in pixels (near the focus of expansion a
        # fractional rate is mostly noise).
        excess = rate - ground_rate * (1 + self.p.ground_margin)
        elevated = valid & (excess > RATE_NOISE) & (excess * np.sqrt(r2) > EXCESS_PX)
        tau = np.where(rate > 1e-6, dt / np.maximum(rate, 1e-6), np.inf)
        dist = speed * tau
        lateral = np.abs(x) * dist / self.f
        height = self.p.mount_height_m - yc * dist / self.f
        inside = elevated & (dist <= MAX_DISTANCE_M) & (lateral <= self.p.corridor_half_width_m)
        inside &= height <= self.p.max_height_m
        # A track counts once it has looked elevated in most recent frames.
        elev = {}
        for i, tid in enumerate(ids.tolist()):
            s = self._elev.get(tid, 0.0)
            elev[tid] = s + 0.5 * ((1.0 if inside[i] else 0.0) - s)
        self._elev = elev
        score = np.array([elev[t] for t in ids.tolist()]) if len(ids) else np.zeros(0)
        cand = inside & (score >= ELEVATED_SCORE)
        self.counts: dict[str, float] = {"valid": int(valid.sum()), "elevated": int(elevated.sum()), "inside": int(inside.sum()),
                       "cand": int(cand.sum())}
        if cand.sum() < self.p.min_points:
            return base
        # The nearest group: features within GROUP_SPREAD of the nearest ones' tau, of one surface.
        taus = np.sort(tau[cand])
        near = taus[self.p.min_points - 1]
        link_px = LINK_FRAC * self._size[0]  # type: ignore[index]
        group = nearest_surface(m, tau, cand & (tau <= near * GROUP_SPREAD), link_px, self.p.min_points)
        if group is None:
            return base
        gids = ids[group]
        # The longest baseline (up to span_s) that most of the group was
        # tracked over: a post has few features and they come and go.
        now_pts = self._pts[np.isin(self._ids, gids)]
        now_ids = self._ids[np.isin(self._ids, gids)]
        need = max(self.p.min_points, (len(gids) + 1) // 2)
        lb = None
        for entry in list(self._hist)[:-1]:
            if entry[0] < t_ns - round(self.p.span_s * NS_PER_S) - 1:
                continue
            if np.isin(now_ids, entry[1]).sum() >= need:
                lb = entry
                break
        if lb is None or t_ns - lb[0] < round(self.p.ground_span_s * NS_PER_S * 0.9):
            return base
        _, q0, q1 = self._matched(lb, now_ids, now_pts)
        pi, pj = np.triu_indices(len(q0), 1)  # every pair of points
        d0 = np.linalg.norm(q0[pi] - q0[pj], axis=1)
        d1 = np.linalg.norm(q1[pi] - q1[pj], axis=1)
        far = d0 >= MIN_PAIR_PX
        if far.sum() < self.p.min_points:
            return base
        ratios = d1[far] / d0[far]
        s = float(np.median(ratios))
        span = (t_ns - lb[0]) / NS_PER_S
        if s <= 1.0 + 1e-4:
            return base
        ttc = span / (s - 1.0)
        # One surface scales evenly: its pairs agree. Features of things
        # moving apart (a person walking across the background) do not.
        q25, q75 = np.percentile(ratios, [25, 75])
        spread = float((q75 - q25) / (s - 1.0))
        self.counts.update(spread=spread, ttc=ttc)
        if spread > MAX_SPREAD:
            return base
        pts = self._pts[np.isin(self._ids, gids)] * self._scale
        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        cxf = float(np.median(pts[:, 0]))
        bearing = math.degrees(math.atan2(self.cx * self._scale - cxf, self.f * self._scale))
        return LoomingResult(
            t_ns=t_ns, seq=seq, ttc_s=ttc, distance_m=speed * ttc, bearing_deg=bearing,
            speed_mps=float(speed), box=(float(x0), float(y0), float(x1), float(y1)), points=int(group.sum()),
            features=len(self._pts), ground_points=int(ground.sum()), corridor=self._corridor,
        )


def nearest_surface(pos: np.ndarray, tau: np.ndarray, member: np.ndarray, link_px: float,
                    min_points: int) -> np.ndarray | None:
    """Of the `member` features (positions `pos`, n x 2), the nearest group of one surface, as a
    mask: members linked to one another through steps of at most `link_px` (single linkage),
    and of the groups with at least `min_points`, the one whose min_points-th smallest tau is
    least. None when no group has that many."""
    idx = np.flatnonzero(member)
    if len(idx) < min_points:
        return None
    p = pos[idx]
    near = np.linalg.norm(p[:, None, :] - p[None, :, :], axis=2) <= link_px
    label = np.full(len(idx), -1)
    for start in range(len(idx)):  # connected components, breadth first
        if label[start] >= 0:
            continue
        label[start], frontier = start, [start]
        while frontier:
            reach = np.flatnonzero(near[frontier].any(axis=0) & (label < 0))
            label[reach] = start
            frontier = reach.tolist()
    best, best_tau = None, math.inf
    for g in np.unique(label):
        members = label == g
        if members.sum() < min_points:
            continue
        kth = float(np.sort(tau[idx[members]])[min_points - 1])
        if kth < best_tau:
            best, best_tau = members, kth
    if best is None:
        return None
    out = np.zeros(len(member), bool)
    out[idx[best]] = True
    return out


def _with_ms(r: LoomingResult, ms: float) -> LoomingResult:
    return replace(r, process_ms=ms)


def corridor_polygon(width: int, height: int, hfov_deg: float, mount_height_m: float, pitch_deg: float,
                     half_width_m: float, near_m: float = 1.5, far_m: float = 12.0) -> tuple[tuple[float, float], ...]:
    """The path corridor on flat ground between near_m and far_m, as image
    points (left near, left far, right far, right near); () if off-image."""
    f = (width / 2) / math.tan(math.radians(hfov_deg) / 2)
    th = math.radians(pitch_deg)
    out = []
    for x_m, z_m in ((-half_width_m, near_m), (-half_width_m, far_m), (half_width_m, far_m), (half_width_m, near_m)):
        # World (x right, down = H, forward z) into the pitched camera.
        yc = mount_height_m * math.cos(th) - z_m * math.sin(th)
        zc = mount_height_m * math.sin(th) + z_m * math.cos(th)
        if zc <= 0.05:
            return ()
        out.append((width / 2 + f * x_m / zc, height / 2 + f * yc / zc))
    return tuple(out)
