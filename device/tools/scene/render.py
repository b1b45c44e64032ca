"""Ray casting through the configured pinhole camera onto the world's planes.

Every pixel's ray is intersected with the ground and with every quad; the
nearest hit wins (a depth buffer), so occlusion is exact whatever the order
of the quads. Textures are sampled bilinearly from a mip level chosen per
pixel by its footprint on the surface, so far ground and brick do not
alias. Why this rather than an OpenGL renderer: see docs/scenes.md.

Camera frame: x right, y down, z forward (the optical axis), like OpenCV.
Pose: position in the world (see world.py), yaw (+ = towards the runner's
right, +x), pitch (+ = looking down), roll.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from device.tools.scene.world import Ground, Quad, Texture, World

NEAR_M = 0.05  # nothing nearer than this to the lens is drawn
CHUNK = 1024  # cv2.remap maps must stay below 32767 in each dimension: sample in rows of this


@dataclass(frozen=True)
class Intrinsics:
    width: int
    height: int
    hfov_deg: float

    @property
    def focal_px(self) -> float:
        return (self.width / 2) / math.tan(math.radians(self.hfov_deg) / 2)

    @property
    def centre(self) -> tuple[float, float]:
        return self.width / 2, self.height / 2


@dataclass(frozen=True)
class Pose:
    x: float
    y: float
    z: float
    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    roll_deg: float = 0.0

    @property
    def position(self) -> np.ndarray:
        return np.array([self.x, self.y, self.z])

    def rotation(self) -> np.ndarray:
        """Camera-to-world rotation: columns are the camera's right, down and
        forward axes in world coordinates."""
        # Level camera looking along +y: right is the runner's left (-x), down is -z.
        base = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
        y, p, r = (math.radians(a) for a in (self.yaw_deg, self.pitch_deg, self.roll_deg))
        yaw = np.array([[math.cos(y), math.sin(y), 0.0], [-math.sin(y), math.cos(y), 0.0], [0.0, 0.0, 1.0]])
        pitch = np.array([[1.0, 0.0, 0.0], [0.0, math.cos(p), math.sin(p)], [0.0, -math.sin(p), math.cos(p)]])
        roll = np.array([[math.cos(r), -math.sin(r), 0.0], [math.sin(r), math.cos(r), 0.0], [0.0, 0.0, 1.0]])
        return yaw @ base @ pitch @ roll


def project(cam: Intrinsics, pose: Pose, points: np.ndarray) -> np.ndarray:
    """World points (N, 3) to pixels (N, 2) and depth (N,): the pinhole model."""
    c = (np.asarray(points, float) - pose.position) @ pose.rotation()
    f = cam.focal_px
    cx, cy = cam.centre
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.stack([cx + f * c[:, 0] / c[:, 2], cy + f * c[:, 1] / c[:, 2], c[:, 2]], axis=1)


def _dot(d: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Row-wise dot of directions d (3, N) with one vector v (3,)."""
    return d[0] * np.float32(v[0]) + d[1] * np.float32(v[1]) + d[2] * np.float32(v[2])


def hit_quad(q: Quad, origin: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ray parameter t (origin + t * dir), and texture coordinates (u, v in
    metres along e1, e2) where each ray (dirs: (3, N)) meets the quad; t is
    inf for a miss."""
    n = q.normal
    (w, h) = q.size
    e1, e2 = q.e1 / w, q.e2 / h
    rel = origin - q.p0
    with np.errstate(divide="ignore", invalid="ignore"):  # rays parallel to the quad: inf, nan: misses
        t = np.float32(-(rel @ n)) / _dot(dirs, n)
        u = np.float32(rel @ e1) + t * _dot(dirs, e1)
        v = np.float32(rel @ e2) + t * _dot(dirs, e2)
        ok = (t > 0) & (u >= 0) & (u <= w) & (v >= 0) & (v <= h)
    if q.texture.alpha is not None:
        a = q.texture.alpha
        ah, aw = a.shape[:2]
        sel = np.nonzero(ok)[0]
        ix = np.clip((u[sel] / w * aw).astype(np.int32), 0, aw - 1)
        iy = np.clip(((1 - v[sel] / h) * ah).astype(np.int32), 0, ah - 1)
        ok[sel] = a[iy, ix] >= 0.5
    return np.where(ok, t, np.float32(np.inf)), u, v


def hit_ground(origin: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    dz = dirs[2]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.float32(-origin[2]) / dz
    return np.where(dz < 0, t, np.float32(np.inf))


def _remap(img: np.ndarray, mx: np.ndarray, my: np.ndarray, border: int) -> np.ndarray:
    """cv2.remap at N scattered points (maps must be under 32767 a side: rows of CHUNK)."""
    n = mx.size
    pad = (-n) % CHUNK
    mx = np.pad(mx.astype(np.float32, copy=False), (0, pad)).reshape(-1, CHUNK)
    my = np.pad(my.astype(np.float32, copy=False), (0, pad)).reshape(-1, CHUNK)
    got = cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=border)
    return got.reshape(-1, img.shape[2] if img.ndim == 3 else 1)[:n]


def _sample(tex: Texture, tx: np.ndarray, ty: np.ndarray, level: np.ndarray, wrap: bool) -> np.ndarray:
    """Bilinear samples (N, 3) at texel coordinates of level 0, each from its own mip level."""
    out = np.empty((tx.size, 3), np.float32)
    border = cv2.BORDER_WRAP if wrap else cv2.BORDER_REPLICATE
    for lv in range(int(level.min()), int(level.max()) + 1):
        sel = np.nonzero(level == lv)[0]
        if not sel.size:
            continue
        img = tex.levels[lv]
        scale = np.float32(0.5**lv)
        mx = tx[sel] * scale - np.float32(0.5)
        my = ty[sel] * scale - np.float32(0.5)
        if wrap:  # keep coordinates near the tile so float32 stays exact
            mx = np.mod(mx, np.float32(img.shape[1]))
            my = np.mod(my, np.float32(img.shape[0]))
        out[sel] = _remap(img, mx, my, border)
    return out


def _level(tex: Texture, texels_per_m: float, dist: np.ndarray, cos_i: np.ndarray, focal: float) -> np.ndarray:
    """Mip level from a pixel's footprint on the surface (texels it spans)."""
    footprint = np.float32(texels_per_m / focal) * dist / np.sqrt(np.maximum(cos_i, np.float32(0.05)))
    lv = np.floor(np.log2(np.clip(footprint, np.float32(1.0), np.float32(1e6))) + np.float32(0.5)).astype(np.int32)
    return np.clip(lv, 0, len(tex.levels) - 1)


class Renderer:
    """Draws a world through one camera; rays are precomputed per pixel."""

    def __init__(self, cam: Intrinsics) -> None:
        self.cam = cam
        f = cam.focal_px
        cx, cy = cam.centre
        xs, ys = np.meshgrid(np.arange(cam.width) + 0.5, np.arange(cam.height) + 0.5)
        # (3, N) float32, one row per axis: elementwise maths on rows is fast
        self.rays_cam = np.stack([(xs - cx) / f, (ys - cy) / f, np.ones_like(xs)]).reshape(3, -1).astype(np.float32)
        self.index = np.arange(cam.width * cam.height).reshape(cam.height, cam.width)
        self.ray_len = np.sqrt((self.rays_cam**2).sum(axis=0)).astype(np.float32)

    def rays(self, pose: Pose) -> np.ndarray:
        m = pose.rotation().astype(np.float32)
        r = self.rays_cam
        return np.stack([m[i, 0] * r[0] + m[i, 1] * r[1] + m[i, 2] for i in range(3)])

    def render(self, world: World, pose: Pose, t: float) -> np.ndarray:
        """The frame (H, W, 3) float32 BGR, 0-255, before any camera effects."""
        cam = self.cam
        o = pose.position
        dirs = self.rays(pose)
        n = dirs.shape[1]
        img = np.empty((n, 3), np.float32)
        f = cam.focal_px
        scale = self.ray_len  # t is depth along the axis; distance is t * |ray|

        # One pass of depth test: each pixel keeps the nearest surface, which
        # one it is (-1 sky, -2 ground, else the quad's index) and where on it.
        depth = hit_ground(o, dirs)
        owner = np.where(np.isfinite(depth), np.int16(-2), np.int16(-1))
        uu = np.zeros(n, np.float32)
        vv = np.zeros(n, np.float32)
        quads = world.quads(t)
        rot = pose.rotation()
        for k, q in enumerate(quads):
            idx = self._candidates(q, pose, rot)
            if idx is not None and idx.size == 0:
                continue
            d = dirs if idx is None else dirs[:, idx]
            tq, u, v = hit_quad(q, o, d)
            cur = depth if idx is None else depth[idx]
            win = np.nonzero(tq < cur)[0]
            if not win.size:
                continue
            pix = win if idx is None else idx[win]
            depth[pix] = tq[win]
            owner[pix] = k
            uu[pix] = u[win]
            vv[pix] = v[win]
        for k, q in enumerate(quads):
            pix = np.nonzero(owner == k)[0]
            if pix.size:
                img[pix] = self._shade_quad(q, uu[pix], vv[pix], depth[pix] * scale[pix],
                                            np.abs(_dot(dirs[:, pix], q.normal)) / scale[pix], f)
        sel = np.nonzero(owner == -2)[0]
        if sel.size:
            img[sel] = self._ground(world.ground, o, dirs[:, sel], depth[sel], scale[sel], f)
        sel = np.nonzero(owner == -1)[0]
        if sel.size:
            img[sel] = self._sky(world, dirs[:, sel])
        return img.reshape(cam.height, cam.width, 3)

    def _candidates(self, q: Quad, pose: Pose, rot: np.ndarray) -> np.ndarray | None:
        """The pixels a quad can cover: its projected bounding box when it is
        wholly in front of the camera, else None (all pixels)."""
        c = (q.corners() - pose.position) @ rot
        f = self.cam.focal_px
        cx, cy = self.cam.centre
        with np.errstate(divide="ignore", invalid="ignore"):
            p = np.stack([cx + f * c[:, 0] / c[:, 2], cy + f * c[:, 1] / c[:, 2], c[:, 2]], axis=1)
        if np.any(p[:, 2] < NEAR_M):
            if np.all(p[:, 2] < NEAR_M):
                return np.empty(0, np.int64)
            return None
        w, h = self.cam.width, self.cam.height
        x0, x1 = max(int(np.floor(p[:, 0].min())) - 1, 0), min(int(np.ceil(p[:, 0].max())) + 1, w)
        y0, y1 = max(int(np.floor(p[:, 1].min())) - 1, 0), min(int(np.ceil(p[:, 1].max())) + 1, h)
        if x0 >= x1 or y0 >= y1:
            return np.empty(0, np.int64)
        if (x1 - x0) * (y1 - y0) > 0.6 * w * h:
            return None
        return self.index[y0:y1, x0:x1].ravel()

    def _shade_quad(self, q: Quad, u: np.ndarray, v: np.ndarray, dist: np.ndarray, cos_i: np.ndarray,
                    f: float) -> np.ndarray:
        tex = q.texture
        w, h = q.size
        th, tw = tex.levels[0].shape[:2]
        if tex.ppm is None:  # stretched over the quad
            tx, ty = u * np.float32(tw / w), (np.float32(h) - v) * np.float32(th / h)
            ppm = max(tw / w, th / h)
        else:
            tx, ty, ppm = u * np.float32(tex.ppm), (np.float32(h) - v) * np.float32(tex.ppm), tex.ppm
        lv = _level(tex, ppm, dist, cos_i, f)
        out = _sample(tex, tx, ty, lv, wrap=tex.ppm is not None)
        if q.shade != 1.0:
            out *= np.float32(q.shade)
        return out

    def _ground(self, g: Ground, o: np.ndarray, dirs: np.ndarray, t: np.ndarray, scale: np.ndarray,
                f: float) -> np.ndarray:
        x = np.float32(o[0]) + t * dirs[0]
        y = np.float32(o[1]) + t * dirs[1]
        on_path = np.abs(x - g.centre_x(y)) <= g.path_half_width_m
        out = np.empty((t.size, 3), np.float32)
        dist = t * scale
        cos_i = np.abs(dirs[2]) / scale
        for tex, m in ((g.path, on_path), (g.verge, ~on_path)):
            sel = np.nonzero(m)[0]
            if sel.size:
                assert tex.ppm is not None
                lv = _level(tex, tex.ppm, dist[sel], cos_i[sel], f)
                ppm = np.float32(tex.ppm)
                out[sel] = _sample(tex, x[sel] * ppm, y[sel] * ppm, lv, wrap=True)
        return out

    def _sky(self, world: World, dirs: np.ndarray) -> np.ndarray:
        """The sky panorama by ray direction (azimuth, elevation)."""
        sky = world.sky
        sh, sw = sky.shape[:2]
        az = np.arctan2(dirs[0], dirs[1])
        el = np.arctan2(dirs[2], np.hypot(dirs[0], dirs[1]))
        mx = np.mod((az / np.float32(2 * np.pi) + np.float32(0.5)) * np.float32(sw), np.float32(sw))
        my = np.clip((1 - el / np.float32(np.pi / 2)) * np.float32(sh - 1), 0, sh - 1)
        return _remap(sky, mx, my, cv2.BORDER_WRAP).astype(np.float32)


# ---------------------------------------------------------------- camera effects


def motion_blur(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Smear along the image motion (dx, dy) pixels during the exposure."""
    length = math.hypot(dx, dy)
    if length < 0.75:
        return img
    k = int(math.ceil(length)) | 1
    kernel = np.zeros((k, k), np.float32)
    c = k // 2
    for s in np.linspace(-0.5, 0.5, 4 * k):
        kernel[int(round(c + s * dy)), int(round(c + s * dx))] += 1.0
    return cv2.filter2D(img, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REPLICATE)


def expose(img: np.ndarray, gain: float, rng: np.random.Generator, read_sigma: float = 2.0,
           shot: float = 0.35) -> np.ndarray:
    """Light level times the scene, plus shot noise (grows with the signal)
    and read noise, quantised to 8 bits."""
    # cv2 takes a Python scalar as the second operand; OpenCV 4's stubs allow only arrays.
    sig: np.ndarray = cv2.multiply(img, gain)  # type: ignore[call-overload]
    var: np.ndarray = cv2.max(cv2.add(cv2.multiply(sig, shot), read_sigma**2), 0.0)  # type: ignore[call-overload]
    noise: np.ndarray = rng.standard_normal(sig.shape, dtype=np.float32)
    sig += cv2.multiply(noise, cv2.sqrt(var))
    return np.clip(sig, 0, 255, out=sig).astype(np.uint8)
