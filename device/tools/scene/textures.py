"""Procedural textures with real structure, so corners and edges exist for
feature trackers: brick, wood, asphalt, grass, hedge, plaster, metal, sky.

Tiles are periodic (noise is filtered white noise in the Fourier domain,
bricks repeat a whole number of times) so a plane can repeat them without
seams. Every texture is BGR uint8, made from a seeded generator: the same
seed gives the same scene.
"""

from __future__ import annotations

import cv2
import numpy as np

TILE = 512  # tile side in texels; a power of two so the mip levels tile too


def noise(rng: np.random.Generator, h: int, w: int, beta: float = 1.6, cutoff: float = 1.0) -> np.ndarray:
    """Periodic 1/f^beta noise, zero mean, unit std. cutoff < 1 removes the
    finest detail (a fraction of the Nyquist frequency)."""
    white = rng.standard_normal((h, w))
    # numpy 1.24's stubs want an array for n; an int is what fftfreq takes
    fy = np.fft.fftfreq(h)[:, None]  # type: ignore[call-overload]
    fx = np.fft.fftfreq(w)[None, :]  # type: ignore[call-overload]
    f = np.hypot(fx, fy)
    f[0, 0] = 1.0
    amp = f ** (-beta / 2) * (f <= 0.5 * cutoff)
    amp[0, 0] = 0.0
    out = np.real(np.fft.ifft2(np.fft.fft2(white) * amp))
    return (out - out.mean()) / (out.std() + 1e-9)


def _bgr(base: tuple[float, float, float], shade: np.ndarray) -> np.ndarray:
    """A colour (BGR 0-255) times a per-texel brightness field."""
    img = np.asarray(base, np.float32)[None, None, :] * shade[..., None].astype(np.float32)
    # C order: cv2 4.x (the Python 3.11 lock) refuses to draw on the
    # Fortran-ordered array a transposed noise field gives.
    return np.ascontiguousarray(np.clip(img, 0, 255).astype(np.uint8))


def brick(rng: np.random.Generator) -> np.ndarray:
    """Running-bond brickwork: 64 x 16 texel bricks (0.25 x 0.0625 m at 256
    texels/m), 3-texel mortar, each brick its own tone."""
    h = w = TILE
    course, length, mortar = 16, 64, 3
    img = np.empty((h, w, 3), np.float32)
    grain = noise(rng, h, w, beta=1.0)
    for row in range(h // course):
        y0 = row * course
        offset = (length // 2) * (row % 2)
        for k in range(-1, w // length + 1):
            x0 = k * length + offset
            tone = rng.uniform(0.75, 1.15)
            colour = np.array([52, 72, 150], np.float32) * tone + rng.normal(0, 6, 3)
            xs = slice(max(x0, 0), min(x0 + length, w))
            img[y0:y0 + course, xs] = colour
    ys, xs = np.mgrid[0:h, 0:w]
    offset = (length // 2) * ((ys // course) % 2)
    joint = ((ys % course) < mortar) | (((xs - offset) % length) < mortar)
    img[joint] = (170, 175, 180)
    img *= (1 + 0.12 * grain)[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def wood(rng: np.random.Generator, h: int = TILE, w: int = 128) -> np.ndarray:
    """Vertical grain with knots: for posts, fences and benches."""
    warp = noise(rng, h, w, beta=2.5)
    xs = np.arange(w)[None, :] + 6 * warp
    grain = 0.5 + 0.5 * np.sin(2 * np.pi * xs / 9.0 + 2 * noise(rng, h, w, beta=2.0))
    shade = 0.8 + 0.25 * grain + 0.1 * noise(rng, h, w, beta=0.8)
    img = _bgr((60, 100, 140), shade)
    for _ in range(3):  # knots: dark rings
        cx, cy = int(rng.integers(8, w - 8)), int(rng.integers(8, h - 8))
        cv2.ellipse(img, (cx, cy), (5, 9), 0, 0, 360, (25, 45, 70), -1)
        cv2.ellipse(img, (cx, cy), (8, 14), 0, 0, 360, (40, 70, 100), 2)
    return img


def asphalt(rng: np.random.Generator) -> np.ndarray:
    shade = 0.85 + 0.08 * noise(rng, TILE, TILE, beta=1.8) + 0.12 * noise(rng, TILE, TILE, beta=0.0)
    img = _bgr((96, 98, 100), shade)
    n = 1800  # pale aggregate stones
    ys, xs = rng.integers(0, TILE, n), rng.integers(0, TILE, n)
    img[ys, xs] = np.clip(img[ys, xs].astype(np.int32) + rng.integers(40, 90, (n, 1)), 0, 255).astype(np.uint8)
    return img


def grass(rng: np.random.Generator) -> np.ndarray:
    shade = 0.9 + 0.15 * noise(rng, TILE, TILE, beta=1.7) + 0.2 * noise(rng, TILE, TILE, beta=0.3)
    img = _bgr((55, 140, 90), shade)
    for _ in range(2500):  # blades: short strokes, light and dark
        x, y = int(rng.integers(0, TILE)), int(rng.integers(0, TILE))
        dx, dy = int(rng.integers(-2, 3)), int(rng.integers(3, 8))
        c = (40, 170, 110) if rng.random() < 0.5 else (25, 85, 50)
        cv2.line(img, (x, y), (x + dx, y - dy), c, 1)
    return img


def hedge(rng: np.random.Generator) -> np.ndarray:
    """Leaves at several scales: dark, deep shadows between clumps."""
    clumps = noise(rng, TILE, TILE, beta=2.2)
    leaves = noise(rng, TILE, TILE, beta=0.6)
    shade = 0.75 + 0.25 * clumps + 0.25 * leaves
    shade = np.where(clumps < -1.0, shade * 0.45, shade)
    return _bgr((40, 110, 50), shade)


def plaster(rng: np.random.Generator) -> np.ndarray:
    shade = 0.92 + 0.06 * noise(rng, TILE, TILE, beta=2.0) + 0.05 * noise(rng, TILE, TILE, beta=0.2)
    return _bgr((160, 190, 210), shade)


def facade(rng: np.random.Generator, length_m: float, height_m: float, ppm: float = 64) -> np.ndarray:
    """A house front: plaster with windows (dark panes, white frames) and a door."""
    w, h = int(length_m * ppm), int(height_m * ppm)
    reps = (h // TILE + 1, w // TILE + 1, 1)
    img = np.tile(plaster(rng), reps)[:h, :w].copy()
    win_w, win_h = int(1.0 * ppm), int(1.3 * ppm)
    for floor_y in np.arange(0.8, height_m - 1.4, 2.8):
        y0 = h - int((floor_y + win_h / ppm) * ppm)
        for x in np.arange(0.8, length_m - 1.2, 2.4):
            x0 = int(x * ppm)
            cv2.rectangle(img, (x0 - 3, y0 - 3), (x0 + win_w + 3, y0 + win_h + 3), (235, 238, 240), -1)
            glass = int(rng.integers(40, 80))
            cv2.rectangle(img, (x0, y0), (x0 + win_w, y0 + win_h), (glass + 20, glass + 10, glass), -1)
            cv2.line(img, (x0 + win_w // 2, y0), (x0 + win_w // 2, y0 + win_h), (235, 238, 240), 2)
    return img


def metal(rng: np.random.Generator, h: int = TILE, w: int = 64) -> np.ndarray:
    """A painted pole: a highlight down one side, scratches and grime."""
    xs = np.linspace(0, np.pi, w)[None, :]
    shade = 0.55 + 0.45 * np.sin(xs) ** 3 + 0.08 * noise(rng, h, w, beta=1.2)
    img = _bgr((70, 80, 75), shade)
    for _ in range(25):
        y = int(rng.integers(0, h))
        cv2.line(img, (int(rng.integers(0, w)), y), (int(rng.integers(0, w)), y + int(rng.integers(-4, 5))),
                 (150, 160, 160), 1)
    return img


def car_side(rng: np.random.Generator, length_m: float = 4.2, height_m: float = 1.45, ppm: float = 64) -> np.ndarray:
    """A parked car's flank: paint, a window band, two dark wheels."""
    w, h = int(length_m * ppm), int(height_m * ppm)
    shade = 0.9 + 0.08 * noise(rng, h, w, beta=2.0)
    img = _bgr((150, 60, 40), shade)
    cv2.rectangle(img, (int(0.2 * w), 0), (int(0.8 * w), int(0.35 * h)), (50, 40, 35), -1)
    cv2.line(img, (int(0.5 * w), 0), (int(0.5 * w), int(0.35 * h)), (20, 20, 20), 3)
    cv2.line(img, (0, int(0.55 * h)), (w, int(0.55 * h)), (110, 40, 25), 2)
    for cx in (0.18, 0.82):
        cv2.circle(img, (int(cx * w), h - 1), int(0.3 * h), (25, 25, 25), -1)
        cv2.circle(img, (int(cx * w), h - 1), int(0.15 * h), (150, 150, 150), -1)
    return img


def sky(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Pale sky with soft clouds: little texture, as a real one."""
    grad = np.linspace(0.85, 1.0, h)[:, None] * np.ones((1, w))
    clouds = np.clip(noise(rng, h, w, beta=3.0), 0, None)
    img = np.empty((h, w, 3), np.float32)
    img[..., 0] = 235 * grad
    img[..., 1] = 205 * grad
    img[..., 2] = 170 * grad
    img += 25 * clouds[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)
