"""A tiny ray-cast world for the looming tests: textured planes seen by a
pinhole camera moving along the path. Only for tests (the suite's renderer
is device/tools/scene).

World: x right, y up, z along the path (the way the camera looks). The
ground is y = 0; a frontal wall is z = const; a side wall is x = const.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

PX_PER_M = 100.0


def texture(seed: int, size: int = 1024, contrast: float = 1.0) -> np.ndarray:
    """Multi-scale noise: corners at every scale, like brick, bark or gravel."""
    rng = np.random.default_rng(seed)
    out = np.zeros((size, size), np.float32)
    for cell in (4, 8, 16, 32):
        n = rng.random((size // cell, size // cell)).astype(np.float32)
        out += cv2.resize(n, (size, size), interpolation=cv2.INTER_LINEAR)
    out = (out - out.mean()) / (out.std() + 1e-6)
    return np.clip(128 + 45 * contrast * out, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Plane:
    kind: str  # "ground" | "front" (z = at) | "side" (x = at)
    at: float
    lo: tuple[float, float] = (-1e9, 1e9)  # extent along the plane's first free axis
    hi: tuple[float, float] = (-1e9, 1e9)  # ... and its second
    tex: np.ndarray | None = None


@dataclass(frozen=True)
class Camera:
    width: int = 320
    height: int = 180
    hfov_deg: float = 66.0
    mount_height_m: float = 1.1
    pitch_deg: float = 0.0


def render(cam: Camera, planes: list[Plane], z_m: float, *, x_m: float = 0.0, bob_m: float = 0.0,
           yaw_deg: float = 0.0, roll_deg: float = 0.0, pitch_extra_deg: float = 0.0) -> np.ndarray:
    """One BGR frame with the camera at (x_m, H + bob_m, z_m)."""
    w, h = cam.width, cam.height
    f = (w / 2) / math.tan(math.radians(cam.hfov_deg) / 2)
    u, v = np.meshgrid(np.arange(w) + 0.5 - w / 2, np.arange(h) + 0.5 - h / 2)
    # Camera rays (x right, y up, z forward), then roll, pitch (down), yaw.
    d = np.stack([u, -v, np.full_like(u, f)], axis=-1)
    r, p, yw = math.radians(roll_deg), math.radians(cam.pitch_deg + pitch_extra_deg), math.radians(yaw_deg)
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), math.sin(p)], [0, -math.sin(p), math.cos(p)]])
    ry = np.array([[math.cos(yw), 0, math.sin(yw)], [0, 1, 0], [-math.sin(yw), 0, math.cos(yw)]])
    d = d @ (ry @ rx @ rz).T
    o = np.array([x_m, cam.mount_height_m + bob_m, z_m])
    best = np.full((h, w), np.inf)
    out = np.full((h, w), 170, np.uint8)  # a featureless sky
    for pl in planes:
        axis = {"ground": 1, "front": 2, "side": 0}[pl.kind]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (pl.at - o[axis]) / d[..., axis]
        hit = o + t[..., None] * d
        a, b = {"ground": (0, 2), "front": (0, 1), "side": (2, 1)}[pl.kind]
        ok = (t > 0) & (t < best) & np.isfinite(t)
        ok &= (hit[..., a] >= pl.lo[0]) & (hit[..., a] <= pl.lo[1])
        ok &= (hit[..., b] >= pl.hi[0]) & (hit[..., b] <= pl.hi[1])
        if not ok.any():
            continue
        tex = pl.tex if pl.tex is not None else texture(axis)
        ts = tex.shape[0]
        mx = np.mod(hit[..., a] * PX_PER_M, ts).astype(np.float32)
        my = np.mod(-hit[..., b] * PX_PER_M, ts).astype(np.float32)
        sample = cv2.remap(tex, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
        out = np.where(ok, sample, out)
        best = np.where(ok, t, best)
    return cv2.cvtColor(out, cv2.COLOR_GRAY2BGR)


GROUND = Plane("ground", 0.0, tex=texture(1, contrast=0.6))


def wall(at_m: float, half_width_m: float = 3.0, height_m: float = 2.5) -> Plane:
    return Plane("front", at_m, lo=(-half_width_m, half_width_m), hi=(0.0, height_m), tex=texture(2))


def post(at_m: float, x_m: float = 0.0, width_m: float = 0.12, height_m: float = 1.2) -> Plane:
    return Plane("front", at_m, lo=(x_m - width_m / 2, x_m + width_m / 2), hi=(0.0, height_m), tex=texture(3))


def side_wall(x_m: float, z0: float = 0.0, z1: float = 60.0, height_m: float = 3.0) -> Plane:
    return Plane("side", x_m, lo=(z0, z1), hi=(0.0, height_m), tex=texture(4))
