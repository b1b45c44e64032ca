"""The scene's world: flat ground with a path, and textured rectangles
(quads) standing on it: walls, posts, fences, facades, hedges, parked cars
and photo cut-outs of real objects.

World frame, metres: x to the runner's right, y along the path in the
direction the rear camera looks (where the runner is going), z up; the
ground is z = 0. A quad is a corner p0 and two perpendicular edges e1
(texture's x) and e2 (texture's y, upwards for standing quads). Boxes
(posts, hedges, cars) are several quads; occlusion between them comes from
the renderer's depth test, not from any drawing order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from device.tools.scene import textures as tx

MAX_LEVELS = 7  # mip levels: enough to shrink a 512 tile to 8 texels


def mips(img: np.ndarray) -> tuple[np.ndarray, ...]:
    """A texture and its halvings (pyrDown: Gaussian, so far texture does not alias)."""
    out = [np.ascontiguousarray(img)]
    while len(out) < MAX_LEVELS and min(out[-1].shape[:2]) >= 16:
        out.append(cv2.pyrDown(out[-1]))
    return tuple(out)


@dataclass(frozen=True, eq=False)
class Texture:
    """What a quad shows. `ppm` texels per metre with `tile` (repeating), or
    stretched over the whole quad (ppm None). `alpha` cuts a shape out
    (photo cut-outs): texels with alpha < 0.5 are not there, to the camera
    and to the ultrasonic beam alike."""

    levels: tuple[np.ndarray, ...]
    ppm: float | None = None
    alpha: np.ndarray | None = None

    @classmethod
    def of(cls, img: np.ndarray, ppm: float | None = None, alpha: np.ndarray | None = None) -> Texture:
        return cls(mips(img), ppm, None if alpha is None else alpha.astype(np.float32))


@dataclass(frozen=True, eq=False)
class Quad:
    p0: np.ndarray  # a corner (texture's bottom-left for standing quads)
    e1: np.ndarray  # edge along the texture's x
    e2: np.ndarray  # edge along the texture's y (up for standing quads)
    texture: Texture
    shade: float = 1.0  # sunlight on this face (boxes' sides differ)
    name: str = ""

    @property
    def size(self) -> tuple[float, float]:
        return float(np.linalg.norm(self.e1)), float(np.linalg.norm(self.e2))

    @property
    def normal(self) -> np.ndarray:
        n = np.cross(self.e1, self.e2)
        return n / np.linalg.norm(n)

    def corners(self) -> np.ndarray:
        return np.stack([self.p0, self.p0 + self.e1, self.p0 + self.e1 + self.e2, self.p0 + self.e2])

    def moved(self, d: np.ndarray) -> Quad:
        return Quad(self.p0 + d, self.e1, self.e2, self.texture, self.shade, self.name)


@dataclass(frozen=True, eq=False)
class Ground:
    """The ground plane: `path` texture within `path_half_width_m` of the
    path's centre line x = centre(y), `verge` elsewhere."""

    path: Texture
    verge: Texture
    path_half_width_m: float = 1.2
    curve_radius_m: float | None = None  # None: straight; else the path bends right with this radius

    def centre_x(self, y: np.ndarray) -> np.ndarray:
        if self.curve_radius_m is None:
            return np.zeros_like(y)
        r = self.curve_radius_m
        return (r - np.sqrt(np.maximum(r * r - np.minimum(np.abs(y), r) ** 2, 0.0))).astype(np.float32)


@dataclass(frozen=True, eq=False)
class Thing:
    """Quads that move together: still (velocity 0) or walking/riding."""

    quads: tuple[Quad, ...]
    velocity: tuple[float, float] = (0.0, 0.0)  # m/s in x, y
    label: str = ""  # what it is, for the truth

    def at(self, t: float) -> tuple[Quad, ...]:
        if self.velocity == (0.0, 0.0):
            return self.quads
        d = np.array([self.velocity[0] * t, self.velocity[1] * t, 0.0])
        return tuple(q.moved(d) for q in self.quads)


@dataclass(frozen=True, eq=False)
class World:
    ground: Ground
    things: tuple[Thing, ...]
    sky: np.ndarray  # BGR, drawn where no ray hits anything (panorama over yaw and height)
    sun: tuple[float, float, float] = (0.4, -0.5, 0.77)  # towards the sun, for face shading

    def quads(self, t: float) -> tuple[Quad, ...]:
        return tuple(q for th in self.things for q in th.at(t))


# ---------------------------------------------------------------- building blocks

V = np.array


def _shade(normal: np.ndarray, sun: tuple[float, float, float]) -> float:
    s = np.asarray(sun) / np.linalg.norm(sun)
    return float(0.65 + 0.35 * max(0.0, float(np.dot(normal, s))))


def upright(x0: float, y0: float, x1: float, y1: float, height: float, texture: Texture,
            z0: float = 0.0, name: str = "") -> Quad:
    """A standing rectangle from ground point (x0, y0) to (x1, y1), height tall."""
    q = Quad(V([x0, y0, z0], float), V([x1 - x0, y1 - y0, 0.0]), V([0.0, 0.0, height]), texture, name=name)
    return Quad(q.p0, q.e1, q.e2, texture, _shade(q.normal, World.sun), name)


def box(cx: float, cy: float, width: float, depth: float, height: float, sides: Texture,
        top: Texture | None = None, z0: float = 0.0, name: str = "") -> tuple[Quad, ...]:
    """An upright box centred at (cx, cy), from z0 up: four walls and a lid."""
    x0, x1, y0, y1 = cx - width / 2, cx + width / 2, cy - depth / 2, cy + depth / 2
    faces = [
        upright(x1, y0, x0, y0, height, sides, z0=z0, name=name),  # the face towards the runner
        upright(x0, y1, x1, y1, height, sides, z0=z0, name=name),
        upright(x0, y0, x0, y1, height, sides, z0=z0, name=name),
        upright(x1, y1, x1, y0, height, sides, z0=z0, name=name),
    ]
    lid = Quad(V([x0, y0, z0 + height]), V([width, 0.0, 0.0]), V([0.0, depth, 0.0]), top or sides, 1.0, name)
    return (*faces, lid)


def wall(distance_m: float, width_m: float, height_m: float, rng: np.random.Generator,
         angle_deg: float = 0.0, centre_x_m: float = 0.0) -> Thing:
    """A brick wall across the path, its face `distance_m` ahead at the path's
    centre, turned `angle_deg` from facing the runner square on."""
    a = math.radians(angle_deg)
    hx, hy = width_m / 2 * math.cos(a), width_m / 2 * math.sin(a)
    tex = Texture.of(tx.brick(rng), ppm=256)
    face = upright(centre_x_m + hx, distance_m + hy, centre_x_m - hx, distance_m - hy, height_m, tex, name="wall")
    return Thing((face,), label="wall")


def post(distance_m: float, rng: np.random.Generator, x_m: float = 0.0, width_m: float = 0.14,
         height_m: float = 1.2, material: str = "wood") -> Thing:
    tex = Texture.of(tx.wood(rng) if material == "wood" else tx.metal(rng), ppm=400)
    return Thing(box(x_m, distance_m + width_m / 2, width_m, width_m, height_m, tex, name=material), label="post")


def fence(distance_m: float, width_m: float, rng: np.random.Generator, height_m: float = 1.1) -> Thing:
    """A post-and-rail fence across the path: posts every 2 m, three rails."""
    tex = Texture.of(tx.wood(rng), ppm=400)
    quads: list[Quad] = []
    for x in np.arange(-width_m / 2, width_m / 2 + 0.01, 2.0):
        quads += box(float(x), distance_m + 0.06, 0.12, 0.12, height_m, tex, name="fence")
    for z in (0.3, 0.65, 1.0):
        quads.append(upright(width_m / 2, distance_m, -width_m / 2, distance_m, 0.1, tex, z0=z - 0.05, name="rail"))
    return Thing(tuple(quads), label="fence")


def facade(x_m: float, y0_m: float, length_m: float, height_m: float, rng: np.random.Generator) -> Thing:
    """A house front parallel to the path, x_m to the side (its face towards the path)."""
    tex = Texture.of(tx.facade(rng, length_m, height_m))
    if x_m > 0:
        face = upright(x_m, y0_m, x_m, y0_m + length_m, height_m, tex, name="facade")
    else:
        face = upright(x_m, y0_m + length_m, x_m, y0_m, height_m, tex, name="facade")
    return Thing((face,), label="facade")


def hedge(x_m: float, y0_m: float, length_m: float, rng: np.random.Generator, height_m: float = 1.3,
          depth_m: float = 0.8) -> Thing:
    tex = Texture.of(tx.hedge(rng), ppm=200)
    cx = x_m + math.copysign(depth_m / 2, x_m)
    return Thing(box(cx, y0_m + length_m / 2, depth_m, length_m, height_m, tex, name="hedge"), label="hedge")


def parked_car(x_m: float, y0_m: float, rng: np.random.Generator, rear: np.ndarray | None = None) -> Thing:
    """A car parked beside the path, its rear towards the runner: a box with
    painted flanks, and a real car's back (a photo of one) if given."""
    length, width, height = 4.2, 1.8, 1.45
    flank = Texture.of(tx.car_side(rng, length, height))
    paint = Texture.of(tx.car_side(rng, width, height))
    cx, cy = x_m + math.copysign(width / 2, x_m), y0_m + length / 2
    quads = list(box(cx, cy, width, length, height, flank, top=paint, name="car"))
    back = Texture.of(rear) if rear is not None else paint
    quads[0] = upright(cx + width / 2, y0_m - 0.01, cx - width / 2, y0_m - 0.01, height, back, name="car")
    return Thing(tuple(quads), label="car")


def billboard(img: np.ndarray, alpha: np.ndarray, height_m: float, distance_m: float, x_m: float = 0.0,
              velocity: tuple[float, float] = (0.0, 0.0), label: str = "") -> Thing:
    """A photo cut-out standing upright at its true size, facing the runner."""
    h, w = img.shape[:2]
    width_m = height_m * w / h
    tex = Texture.of(img, alpha=alpha)
    q = upright(x_m - width_m / 2, distance_m, x_m + width_m / 2, distance_m, height_m, tex, name=label)
    # Facing the camera: the image is seen as the photo was taken (texture x
    # runs to the camera's right, which is the runner's left: -x).
    q = Quad(q.p0 + q.e1, -q.e1, q.e2, tex, 1.0, label)
    return Thing((q,), velocity=velocity, label=label)


def ground(rng: np.random.Generator, curve_radius_m: float | None = None) -> Ground:
    return Ground(Texture.of(tx.asphalt(rng), ppm=256), Texture.of(tx.grass(rng), ppm=200),
                  curve_radius_m=curve_radius_m)


def backdrop(rng: np.random.Generator, distance_m: float = 90.0) -> Thing:
    """A treeline far off: detail that must never look like an obstacle."""
    tex = Texture.of(tx.hedge(rng), ppm=20)
    return Thing((upright(-300, distance_m, 300, distance_m, 9.0, tex, name="treeline"),), label="backdrop")


def bench(distance_m: float, rng: np.random.Generator, width_m: float = 1.6) -> Thing:
    """A park bench across the path, seat towards the runner: a plank seat
    at 0.45 m, a backrest to 0.88 m, four legs (the shared photos hold no bench)."""
    tex = Texture.of(tx.wood(rng), ppm=400)
    frame = Texture.of(tx.metal(rng), ppm=400)
    y0, depth = distance_m, 0.42
    quads = list(box(0.0, y0 + depth / 2, width_m, depth, 0.05, tex, z0=0.40, name="bench"))
    quads += box(0.0, y0 + depth - 0.02, width_m, 0.04, 0.38, tex, z0=0.50, name="bench")
    for x in (-width_m / 2 + 0.08, width_m / 2 - 0.08):
        for y in (y0 + 0.05, y0 + depth - 0.05):
            quads += box(x, y, 0.06, 0.06, 0.42, frame, name="bench")[:4]
    return Thing(tuple(quads), label="bench")
