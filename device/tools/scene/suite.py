"""The `scenes` suite: a runner on a path meeting every obstacle the mission
names, rendered with true perspective and the runner's own motion, with an
ultrasonic log from the same geometry and the ground truth.

Each scenario is a world (world.py) and a runner (motion.py). The truth:
`contact_s` is when the camera reaches the obstacle's face (the gap closed
by the runner's varying pace and the obstacle's own speed), `clear` is until
the true time to collision falls to `CLEAR_TTC_S` (the whole run when
nothing is on course), the same meaning as the photo suite's. `speed_mps`
in scenario.json is the closing speed (runner plus the obstacle's own).
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from device.core.clock import NS_PER_S
from device.core.config import AlertsConfig, Config
from device.core.types import Frame
from device.record.format import TRUTH, RecordingWriter, SensorMeta
from device.tools.scenario import CLEAR_TTC_S, NoiseModel, ScenarioError, pick, pings, prepare_out_root
from device.tools.scene import textures as tx
from device.tools.scene import world as w
from device.tools.scene.cutout import CutoutError, cut_out
from device.tools.scene.motion import RunnerMotion
from device.tools.scene.render import Intrinsics, Renderer, expose, motion_blur, project
from device.tools.scene.ultrasonic import Beam

LEAD_IN_S = 6.0  # an approach starts this long (at the mean closing speed) before contact
MIN_START_M = 6.0
EXPOSURE_S = 0.004  # daylight exposure of the Camera Module 3; doubles and more in shade


@dataclass(frozen=True)
class Cutout:
    """A real object from a shared COCO photo: its box there (found by
    YOLOX-Nano once) and its true height."""

    file: str
    box: tuple[float, float, float, float]
    label: str
    height_m: float


# Boxes found by YOLOX-Nano (416, score >= 0.5) on ../shared/images/coco:
# people standing upright, whole from head to feet.
PERSON_A = Cutout("000000006471.jpg", (260, 74, 360, 296), "person", 1.8)  # a ball player
PERSON_B = Cutout("000000002153.jpg", (373, 207, 439, 364), "person", 1.75)
PERSON_C = Cutout("000000007088.jpg", (179, 204, 272, 463), "person", 1.2)  # a child in a red coat
PERSON_D = Cutout("000000001000.jpg", (261, 91, 357, 422), "person", 1.6)  # a girl in red
CAR_REAR = Cutout("000000001532.jpg", (225, 361, 417, 479), "car", 1.45)
# Dogs, cyclists and cars seen side on come from the labelled COCO photos
# beside ../shared/images/coco (their COCO boxes; a cyclist is the union of
# the rider's and the bicycle's box). The bench stays built from planks
# (world.bench): the labelled photos' benches have people on them.
LABELLED = "../coco-val-labelled/val2017/"
DOG = Cutout(LABELLED + "000000377575.jpg", (58, 159, 280, 622), "dog", 0.6)  # a poodle standing, head on
CYCLIST = Cutout(LABELLED + "000000261888.jpg", (339, 143, 528, 397), "cyclist", 1.75)  # a rider on a road bike
CAR_SIDE = Cutout(LABELLED + "000000155341.jpg", (152, 285, 393, 416), "car", 1.45)  # a hatchback, three-quarter view


@dataclass(frozen=True)
class SceneSpec:
    name: str
    kind: str  # "approach" | "clear" | "crossing" | "step-in"
    obstacle: str  # wall | post | pole | fence | cutout | none
    runner_mps: float
    object_mps: float = 0.0  # the obstacle's own speed towards the runner
    cutout: Cutout | None = None
    angle_deg: float = 0.0  # a wall turned from square-on
    surround: tuple[str, ...] = ("hedge-left",)
    duration_s: float | None = None  # clear runs
    distance_m: float | None = None  # clear runs with something ahead (standing still)
    curve_radius_m: float | None = None
    shade_at_s: float = 2.0  # when the runner passes into shade (the change of light)
    note: str = ""
    # Things beside the path or moving across it (the `hazards` suite):
    lateral_m: float = 0.0  # the object's centre, + to the runner's right; a crossing starts on this side
    cross_mps: float = 0.0  # crossing: the object's speed across the path
    entry_s: float = 0.0  # crossing, step-in: when the object's body enters the corridor
    entry_gap_m: float = 0.0  # ... and how far ahead of the runner its line is then
    motion_scale: float = 1.0  # the runner's bob and sway, times today's (backward running bounces more)

    @property
    def closing_mps(self) -> float:
        return self.runner_mps + self.object_mps

    @property
    def label(self) -> str:
        return self.cutout.label if self.cutout is not None else self.obstacle

    @property
    def start_m(self) -> float:
        if self.distance_m is not None:
            return self.distance_m
        return max(MIN_START_M, LEAD_IN_S * self.closing_mps)

    @property
    def seed_name(self) -> str:
        """What seeds its randomness: a rough variant is the same world and run, bouncing more."""
        return self.name.removesuffix("-rough")

    @property
    def half_width_m(self) -> float:
        """Half the object's width: its cut-out's box at its true height."""
        if self.cutout is None:
            return 0.0
        x1, y1, x2, y2 = self.cutout.box
        return self.cutout.height_m * (x2 - x1) / (y2 - y1) / 2


def _approach(name: str, obstacle: str, runner: float, obj: float = 0.0, **kw: object) -> SceneSpec:
    return SceneSpec(name, "approach", obstacle, runner, obj, **kw)  # type: ignore[arg-type]


SUITE: tuple[SceneSpec, ...] = (
    *(_approach(f"wall-{v}mps", "wall", float(v), surround=("hedge-left", "lamps-right")) for v in (1, 2, 3, 4)),
    _approach("wall-angled-2mps", "wall", 2.0, angle_deg=35.0, note="wall turned 35 degrees from square-on"),
    *(_approach(f"post-{v}mps", "post", float(v), surround=("hedge-left", "facade-right")) for v in (1, 2, 3, 4)),
    _approach("pole-3mps", "pole", 3.0, note="a thin metal pole, 8 cm, 2.5 m tall"),
    _approach("fence-2mps", "fence", 2.0, note="post-and-rail fence across the path"),
    *(_approach(f"bench-{v}mps", "bench", float(v)) for v in (1, 2, 3)),
    _approach("person-1mps", "cutout", 0.0, 1.0, cutout=PERSON_A, note="walks up to a runner standing still"),
    _approach("person-2mps", "cutout", 1.0, 1.0, cutout=PERSON_B, note="walking towards the runner"),
    _approach("person-3mps", "cutout", 2.0, 1.0, cutout=PERSON_C, surround=("facade-right",),
              note="a child (1.2 m) walking towards the runner"),
    _approach("person-4mps", "cutout", 3.0, 1.0, cutout=PERSON_A, note="walking towards the runner"),
    _approach("person-standing-2mps", "cutout", 2.0, cutout=PERSON_D, note="standing in the path"),
    *(_approach(f"cyclist-{v}mps", "cutout", 1.0, v - 1.0, cutout=CYCLIST, note="riding towards the runner")
      for v in (2, 3, 4)),
    _approach("dog-1mps", "cutout", 1.0, cutout=DOG, note="a dog standing in the path"),
    _approach("dog-2mps", "cutout", 2.0, cutout=DOG),
    _approach("dog-3mps", "cutout", 2.0, 1.0, cutout=DOG, note="trotting towards the runner"),
    SceneSpec("wall-beside-3mps", "clear", "none", 3.0, surround=("wall-right",), duration_s=8.0,
              note="passing a wall 1.6 m to the right"),
    SceneSpec("cars-beside-2mps", "clear", "none", 2.0, surround=("cars-right", "hedge-left"), duration_s=8.0,
              note="parked cars 1.8 m to the right"),
    SceneSpec("facade-beside-3mps", "clear", "none", 3.0, surround=("facade-left", "lamps-right"), duration_s=8.0,
              note="house fronts 2.5 m to the left"),
    SceneSpec("standing-wall-4m", "clear", "wall", 0.0, distance_m=4.0, duration_s=8.0,
              note="runner standing still 4 m from a wall"),
    SceneSpec("curve-3mps", "clear", "none", 3.0, surround=("bollards-curve", "hedge-left"), duration_s=8.0,
              curve_radius_m=40.0, note="a gentle curve (40 m radius) with bollards 2 m outside it"),
)


# The corridor a side pass's body must stay out of: alerts.corridor_half_width_m's default.
PASS_CORRIDOR_M: float = AlertsConfig.model_fields["corridor_half_width_m"].default


def _pass(name: str, cutout: Cutout, runner: float, obj: float, lateral: float, **kw: object) -> SceneSpec:
    """Something coming the other way beside the path: clear until it is past the camera.
    Beside means its body stays outside the corridor (the default alerts.corridor_half_width_m),
    by the crossings' own truth: a body inside the corridor is in the runner's way."""
    d = max(MIN_START_M, 5.0 * (runner + obj))
    spec = SceneSpec(name, "clear", "cutout", runner, obj, cutout=cutout, lateral_m=lateral, distance_m=d,
                     duration_s=round(d / (runner + obj) + 0.3, 2), surround=(), **kw)  # type: ignore[arg-type]
    if abs(lateral) - spec.half_width_m <= PASS_CORRIDOR_M:
        raise ValueError(f"{name}: its body ({spec.half_width_m:.2f} m half width) is inside the "
                         f"{PASS_CORRIDOR_M} m corridor at {lateral} m: that is no side pass")
    return spec


def _ahead(name: str, cutout: Cutout, runner: float, obj: float, distance: float, **kw: object) -> SceneSpec:
    """Someone ahead going the same way at least as fast (never closing)."""
    return SceneSpec(name, "clear", "cutout", runner, -obj, cutout=cutout, distance_m=distance, duration_s=8.0,
                     **kw)  # type: ignore[arg-type]


def _cross(name: str, cutout: Cutout, runner: float, speed: float, from_m: float, entry_s: float, gap_m: float,
           **kw: object) -> SceneSpec:
    """Something crossing the path: its body enters the corridor `entry_s` into the run, when the
    runner is `gap_m` short of its line; it starts on the side `from_m` says (-1 left, +1 right)."""
    return SceneSpec(name, "crossing", "cutout", runner, cutout=cutout, lateral_m=from_m, cross_mps=speed,
                     entry_s=entry_s, entry_gap_m=gap_m, surround=(), **kw)  # type: ignore[arg-type]


def _step_in(name: str, cutout: Cutout, runner: float, speed: float, from_m: float, gap_m: float,
             **kw: object) -> SceneSpec:
    """Something stepping into the frame close by, from outside it: 1.5 s of run-up, then 1 s."""
    return SceneSpec(name, "step-in", "cutout", runner, cutout=cutout, lateral_m=from_m, cross_mps=speed,
                     entry_s=1.5, entry_gap_m=gap_m, surround=(), **kw)  # type: ignore[arg-type]


# Real closing speeds (runner 2-3 m/s plus a jogger 2.5-3.5 m/s or a cyclist
# 4-7 m/s), things crossing 1-8 m ahead, passing beside the path, going the
# same way, stepping in close. A crossing is a hazard when its body is inside
# the corridor (alerts.corridor_half_width_m) when the runner reaches its line.
_HAZARDS: tuple[SceneSpec, ...] = (
    _approach("jogger-5mps", "cutout", 2.5, 2.5, cutout=PERSON_B, note="a jogger running at the runner"),
    _approach("child-running-5mps", "cutout", 2.0, 3.0, cutout=PERSON_C, note="a child (1.2 m) running at the runner"),
    _approach("jogger-6.5mps", "cutout", 3.0, 3.5, cutout=PERSON_A, note="a fast jogger"),
    _approach("jogger-8mps", "cutout", 3.0, 5.0, cutout=PERSON_B, note="a sprinter"),
    _approach("cyclist-6.5mps", "cutout", 2.0, 4.5, cutout=CYCLIST, note="16 km/h"),
    _approach("cyclist-8mps", "cutout", 2.5, 5.5, cutout=CYCLIST, note="20 km/h"),
    _approach("cyclist-10mps", "cutout", 3.0, 7.0, cutout=CYCLIST, note="25 km/h"),
    _approach("dog-running-6.5mps", "cutout", 2.0, 4.5, cutout=DOG, note="a dog running at the runner"),
    _approach("dog-running-8mps", "cutout", 2.5, 5.5, cutout=DOG, note="a dog running at the runner"),
    _cross("cross-walker", PERSON_D, 2.5, 1.4, -1, 5.0, 3.0, note="walks across from the left; in the path when the runner gets there"),
    _cross("cross-walker-clear", PERSON_B, 2.0, 1.4, 1, 4.0, 8.0, note="walks across 8 m ahead and is gone 2 s before the runner gets there"),
    _cross("cross-cyclist", CYCLIST, 2.5, 3.5, 1, 3.0, 2.0, note="rides across from the right, 13 km/h"),
    _cross("cross-cyclist-clear", CYCLIST, 2.5, 4.0, -1, 3.0, 7.0, note="rides across 7 m ahead, gone 2 s early"),
    _cross("cross-dog", DOG, 2.5, 2.0, -1, 3.0, 2.0, note="a dog trots across from the left"),
    _cross("cross-dog-clear", DOG, 2.0, 3.0, 1, 3.0, 6.0, note="a dog runs across 6 m ahead, gone 2 s early"),
    _cross("cross-car", CAR_SIDE, 2.5, 3.0, 1, 3.0, 3.0, note="a car pulls across from the right, 11 km/h"),
    _cross("cross-car-clear", CAR_SIDE, 2.5, 6.0, -1, 3.0, 8.0, note="a car drives across 8 m ahead, gone 2.4 s early"),
    # Centre offsets: each the nearest round one with the body (half widths 0.41, 0.23, 0.14 and
    # 0.65 m) clear of the 1.0 m corridor; a jogger at 0.8 m is a body 0.4 m from the runner's line.
    _pass("pass-jogger-1.5m", PERSON_A, 2.5, 2.5, 1.5, note="an oncoming jogger 1.5 m to the right"),
    _pass("pass-walker-1.3m", PERSON_D, 2.5, 1.4, -1.3, note="an oncoming walker 1.3 m to the left"),
    _pass("pass-dog-1.2m", DOG, 2.0, 3.0, -1.2, note="a dog running past 1.2 m to the left"),
    _pass("pass-cyclist-1.7m", CYCLIST, 2.5, 5.0, 1.7, note="an oncoming cyclist 1.7 m to the right"),
    _ahead("ahead-jogger", PERSON_B, 2.5, 2.7, 6.0, note="a jogger 6 m ahead going the same way, a little faster"),
    _ahead("ahead-walker", PERSON_D, 1.2, 1.4, 4.0, note="walking backwards behind someone walking the same way"),
    _ahead("ahead-cyclist", CYCLIST, 2.5, 5.0, 8.0, note="a cyclist 8 m ahead riding away"),
    _step_in("stepin-person-1.2m", PERSON_B, 0.0, 1.5, -1, 1.2, note="the runner waits; someone steps in 1.2 m away"),
    _step_in("stepin-person-1.5m", PERSON_A, 1.0, 1.5, 1, 1.5, note="walking backwards; someone steps in 1.5 m away"),
    _step_in("stepin-dog-1.0m", DOG, 0.0, 2.0, 1, 1.0, note="the runner waits; a dog runs in 1 m away"),
)
# ... and each again with twice today's bob and sway.
HAZARDS: tuple[SceneSpec, ...] = (*_HAZARDS, *(replace(s, name=s.name + "-rough", motion_scale=2.0) for s in _HAZARDS))
SUITES = {"scenes": SUITE, "hazards": HAZARDS}


def suite(names: Sequence[str] | None = None, which: str = "scenes") -> tuple[SceneSpec, ...]:
    return pick(SUITES[which], names, "scene")


# ---------------------------------------------------------------- the world of a spec


def _surround(kind: str, rng: np.random.Generator, length_m: float, spec: SceneSpec, images: Path) -> list[w.Thing]:
    far = length_m + 10
    if kind == "hedge-left":
        return [w.hedge(-2.6, 1.0, far, rng)]
    if kind == "facade-left":
        return [w.facade(-2.5, -5.0, far + 5, 6.0, rng)]
    if kind == "facade-right":
        return [w.facade(3.0, -5.0, far + 5, 6.0, rng)]
    if kind == "wall-right":
        return [w.Thing((w.upright(1.6, -2.0, 1.6, far, 2.0, w.Texture.of(tx.brick(rng), ppm=256), name="wall"),),
                        label="wall")]
    if kind == "lamps-right":
        return [w.post(float(y), rng, x_m=2.2, width_m=0.1, height_m=4.0, material="metal")
                for y in np.arange(6.0, far, 12.0)]
    if kind == "cars-right":
        # A car's back is near enough a rectangle: the whole box is its rear face.
        rear = _photo_crop(images / CAR_REAR.file, CAR_REAR.box)
        return [w.parked_car(1.8, float(y), rng, rear) for y in np.arange(5.0, far, 6.5)]
    if kind == "bollards-curve":
        m = RunnerMotion(1.0, curve_radius_m=spec.curve_radius_m)
        out = []
        for s in np.arange(5.0, far, 5.0):
            x, y, heading = m.path_point(float(s))
            a = math.radians(heading)  # outside of a right-hand bend: to the left of the path
            out.append(w.post(y + 2.0 * math.sin(a), rng, x_m=x - 2.0 * math.cos(a), width_m=0.15,
                              height_m=0.9, material="metal"))
        return out
    raise ScenarioError(f"{spec.name}: unknown surround {kind!r}")


def _photo_crop(path: Path, box: tuple[float, float, float, float]) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ScenarioError(f"cannot read photo {path}")
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    return img[y1:y2, x1:x2].copy()


def build_world(spec: SceneSpec, images: Path, seed: int = 0, config: Config | None = None) -> w.World:
    cfg = config or Config()
    rng = np.random.default_rng([seed, sum(map(ord, spec.seed_name))])
    place = placement(spec, motion_of(spec, cfg, seed), cfg.alerts.corridor_half_width_m)
    d = place.y_m
    run = spec.runner_mps * (spec.duration_s or (d / max(spec.closing_mps, 1e-9)))
    things: list[w.Thing] = [w.backdrop(rng)]
    if spec.obstacle == "wall":
        things.append(w.wall(d, 8.0, 2.2, rng, angle_deg=spec.angle_deg))
    elif spec.obstacle == "post":
        things.append(w.post(d, rng))
    elif spec.obstacle == "pole":
        things.append(w.post(d, rng, width_m=0.08, height_m=2.5, material="metal"))
    elif spec.obstacle == "bench":
        things.append(w.bench(d, rng))
    elif spec.obstacle == "fence":
        things.append(w.fence(d, 12.0, rng))
    elif spec.obstacle == "cutout":
        assert spec.cutout is not None
        try:
            img, alpha = cut_out(images / spec.cutout.file, spec.cutout.box)
        except CutoutError as err:
            raise ScenarioError(f"{spec.name}: {err}") from None
        things.append(w.billboard(img, alpha, spec.cutout.height_m, d, x_m=place.x_m, velocity=place.velocity,
                                  label=spec.cutout.label))
    elif spec.obstacle != "none":
        raise ScenarioError(f"{spec.name}: unknown obstacle {spec.obstacle!r}")
    for kind in spec.surround:
        things += _surround(kind, rng, max(run, d), spec, images)
    return w.World(w.ground(rng, spec.curve_radius_m), tuple(things), tx.sky(rng, 256, 2048))


def motion_of(spec: SceneSpec, cfg: Config, seed: int = 0) -> RunnerMotion:
    rng = np.random.default_rng([seed, sum(map(ord, spec.seed_name)), 1])
    k = spec.motion_scale
    return RunnerMotion(
        spec.runner_mps, mount_height_m=cfg.camera.mount_height_m, pitch_deg=cfg.camera.pitch_deg,
        step_hz=float(rng.uniform(2.5, 3.0)), phase=float(rng.uniform(0, 2 * math.pi)),
        bob_m=0.03 * k, yaw_sway_deg=float(rng.uniform(1.5, 2.5)) * k, roll_sway_deg=float(rng.uniform(1.0, 2.0)) * k,
        pitch_sway_deg=0.5 * k, curve_radius_m=spec.curve_radius_m,
    )


# ---------------------------------------------------------------- truth


def gap_m(spec: SceneSpec, motion: RunnerMotion, t: float) -> float | None:
    """Distance from the camera to the obstacle's face along the path, if one is on course."""
    if spec.kind != "approach":
        return None
    return spec.start_m - motion.distance_m(t) - spec.object_mps * t


def contact_s(spec: SceneSpec, motion: RunnerMotion) -> float | None:
    if spec.kind != "approach":
        return None
    lo, hi = 0.0, 4 * spec.start_m / spec.closing_mps + 1
    for _ in range(60):
        mid = (lo + hi) / 2
        if (gap_m(spec, motion, mid) or 0.0) > 0:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def truth(spec: SceneSpec, motion: RunnerMotion, corridor_m: float = 1.0) -> dict[str, object]:
    if spec.kind in ("crossing", "step-in"):
        p = placement(spec, motion, corridor_m)
        if spec.kind == "step-in":  # no lead to measure: scored by the delay to DANGER (scenario.json hazard_s)
            return {"contact_s": None, "clear": []}
        if p.contact_s is None:
            return {"contact_s": None, "clear": [[0.0, round(p.end_s, 3)]]}
        end = p.contact_s - CLEAR_TTC_S  # as for an approach: clear until 4 s before the hazard
        return {"contact_s": round(p.contact_s, 3), "clear": [[0.0, round(end, 3)]] if end > 0 else []}
    contact = contact_s(spec, motion)
    if contact is None:
        assert spec.duration_s is not None
        return {"contact_s": None, "clear": [[0.0, round(spec.duration_s, 3)]]}
    # clear until the true time to collision (gap / closing speed now) falls to CLEAR_TTC_S
    end = 0.0
    for t in np.arange(0.0, contact, 0.001):
        g = gap_m(spec, motion, float(t)) or 0.0
        if g / (motion.speed(float(t)) + spec.object_mps) <= CLEAR_TTC_S:
            break
        end = float(t)
    return {"contact_s": round(contact, 3), "clear": [[0.0, round(end, 3)]] if end > 0 else []}


@dataclass(frozen=True)
class Placement:
    """Where a cut-out stands and how it moves; for a crossing or a step-in,
    when its body enters the corridor and whether that is a hazard."""

    x_m: float
    y_m: float
    velocity: tuple[float, float]
    entry_s: float | None = None  # its body enters the corridor
    arrive_s: float | None = None  # the runner reaches its line (None: never)
    contact_s: float | None = None  # the hazard: entry, when it is in the corridor as the runner arrives
    end_s: float = 0.0  # where the recording ends

    def x_at(self, t: float) -> float:
        return self.x_m + self.velocity[0] * t


def placement(spec: SceneSpec, motion: RunnerMotion, corridor_m: float) -> Placement:
    if spec.kind not in ("crossing", "step-in"):
        x = spec.lateral_m if spec.obstacle == "cutout" else 0.0
        return Placement(x, spec.start_m, (0.0, -spec.object_mps))
    side = 1.0 if spec.lateral_m > 0 else -1.0
    b, u = spec.half_width_m, spec.cross_mps
    y = motion.distance_m(spec.entry_s) + spec.entry_gap_m
    x0 = side * (corridor_m + b + u * spec.entry_s)
    arrive = motion.time_at(y)
    inside = lambda t: abs(x0 - side * u * t) - b <= corridor_m  # noqa: E731
    if spec.kind == "step-in":
        # Near by definition: in the corridor a step from the runner (standing, or near enough).
        end = spec.entry_s + 1.0 if arrive is None else min(spec.entry_s + 1.0, arrive - 0.3)
        return Placement(x0, y, (-side * u, 0.0), spec.entry_s, arrive, spec.entry_s, end)
    assert arrive is not None, f"{spec.name}: a crossing needs a moving runner"
    hazard = inside(arrive)
    end = min(spec.entry_s + 1.0, arrive - 0.1) if hazard else arrive
    return Placement(x0, y, (-side * u, 0.0), spec.entry_s, arrive, spec.entry_s if hazard else None, end)


def in_view_s(spec: SceneSpec, motion: RunnerMotion, place: Placement, hfov_deg: float) -> float | None:
    """How long before the hazard the object's centre was inside the camera's view (crossings)."""
    if place.contact_s is None:
        return None
    half = math.tan(math.radians(hfov_deg / 2))
    t, seen = place.contact_s, 0.0
    while t > 0:
        ahead = place.y_m - motion.distance_m(t)
        if ahead <= 0 or abs(place.x_at(t)) > ahead * half:
            break
        seen, t = seen + 0.01, t - 0.01
    return round(seen, 2)


# ---------------------------------------------------------------- making one


def light(spec: SceneSpec, t: float) -> tuple[float, float]:
    """(brightness, exposure time) at t: sun, then into shade over 0.6 s
    (auto exposure makes up part of it, with a longer exposure)."""
    k = min(max((t - spec.shade_at_s) / 0.6, 0.0), 1.0)
    k = k * k * (3 - 2 * k)
    return 1.0 - 0.35 * k, EXPOSURE_S * (1 + 1.5 * k)


def frame_at(renderer: Renderer, world: w.World, spec: SceneSpec, motion: RunnerMotion, t: float,
             rng: np.random.Generator) -> np.ndarray:
    pose = motion.pose(t)
    img = renderer.render(world, pose, t)
    gain, exposure = light(spec, t)
    # Blur along the image motion of the scene during the exposure (the
    # camera's sway and bob dominate; measured at a point 8 m ahead).
    a, b = motion.pose(t - exposure / 2), motion.pose(t + exposure / 2)
    r = pose.rotation()
    ahead = pose.position + 8.0 * r[:, 2]
    pa = project(renderer.cam, a, ahead[None])[0]
    pb = project(renderer.cam, b, ahead[None])[0]
    img = motion_blur(img, float(pb[0] - pa[0]), float(pb[1] - pa[1]))
    return expose(img, gain, rng)


# NoiseModel is frozen, so one shared default instance is safe.
DEFAULT_NOISE = NoiseModel()


def sensor_meta(cfg: Config) -> SensorMeta:
    s = cfg.ranging.sensors[0]
    return SensorMeta(name=s.name, bearing_deg=s.bearing_deg, beam_deg=s.beam_deg, max_distance_m=s.max_distance_m)


def make_scene(spec: SceneSpec, images: str | Path, out_dir: str | Path, *, config: Config | None = None,
               noise: NoiseModel = DEFAULT_NOISE, seed: int = 0, length_s: float | None = None) -> Path:
    """Write one rendered scene recording (with truth.json and scenario.json).
    `length_s` cuts the recording short (for tests); the truth stays."""
    cfg = config or Config()
    images, out = Path(images), Path(out_dir)
    if not images.is_dir():
        raise ScenarioError(f"photo directory not found: {images}")
    cam = Intrinsics(cfg.camera.width, cfg.camera.height, cfg.camera.hfov_deg)
    fps = float(cfg.camera.fps)
    world = build_world(spec, images, seed, cfg)
    motion = motion_of(spec, cfg, seed)
    corridor = cfg.alerts.corridor_half_width_m
    tr = truth(spec, motion, corridor)
    place = placement(spec, motion, corridor)
    contact = tr["contact_s"]
    if spec.kind in ("crossing", "step-in"):
        length: float | None = place.end_s
    else:
        length = spec.duration_s if contact is None else float(contact)  # type: ignore[arg-type]
    assert length is not None
    if length_s is not None:
        length = min(length, length_s)
    meta = sensor_meta(cfg)
    beam = Beam.of(meta)
    rng = np.random.default_rng([seed, sum(map(ord, spec.seed_name)), 2])
    ranges = pings(lambda t: beam.echo(world, motion.pose(t), t, cfg.camera.pitch_deg), length, noise, rng,
                   sensor=meta)
    renderer = Renderer(cam)
    n = max(1, math.ceil(length * fps - 1e-9))
    try:
        with RecordingWriter(out, width=cam.width, height=cam.height, fps=fps, hfov_deg=cam.hfov_deg,
                             mount_height_m=cfg.camera.mount_height_m, pitch_deg=cfg.camera.pitch_deg,
                             sensors=[meta], source=f"rearguard scenario make --suite scenes: {spec.name}") as wr:
            for i in range(n):
                t = i / fps
                wr.write_frame(Frame(seq=i, t_ns=round(t * NS_PER_S), image=frame_at(renderer, world, spec, motion, t, rng)))
            wr.write_ranges(ranges)
        (out / TRUTH).write_text(json.dumps(tr) + "\n", encoding="utf-8")
        (out / "scenario.json").write_text(json.dumps({
            "name": spec.name, "kind": spec.kind, "suite": "scenes", "speed_mps": spec.closing_mps,
            "runner_mps": spec.runner_mps, "object_mps": spec.object_mps,
            "d0_m": spec.start_m if spec.kind == "approach" else None,
            "label": spec.label if spec.kind == "approach" else None, "lateral_m": 0.0,
            "ultrasonic": "normal", "photo": spec.cutout.file if spec.cutout else None,
            "curve_radius_m": spec.curve_radius_m, "note": spec.note,
            **_moving_meta(spec, motion, place, cfg),
        }, indent=1) + "\n", encoding="utf-8")
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return out


def _moving_meta(spec: SceneSpec, motion: RunnerMotion, place: Placement, cfg: Config) -> dict[str, object]:
    """scenario.json for the hazards suite: what moves where, and for a
    crossing or a step-in when its hazard begins (read by evaluate's hazard table)."""
    if spec.name not in {h.name for h in HAZARDS}:
        return {}
    out: dict[str, object] = {"suite": "hazards", "label": spec.label, "lateral_m": place.x_m,
                              "cross_mps": spec.cross_mps, "motion_scale": spec.motion_scale,
                              "corridor_half_width_m": cfg.alerts.corridor_half_width_m}
    if spec.kind == "approach":
        out["d0_m"] = spec.start_m
    if spec.kind in ("crossing", "step-in"):
        half = math.tan(math.radians(cfg.camera.hfov_deg / 2))
        hazard = place.contact_s
        if spec.kind == "step-in" and place.entry_s is not None:
            # the hazard begins when its body is both in the corridor and in the frame
            t = place.entry_s
            while t < place.end_s and abs(place.x_at(t)) - spec.half_width_m > (place.y_m - motion.distance_m(t)) * half:
                t += 0.01
            hazard = round(t, 3)
        out.update({"line_m": round(place.y_m, 3), "entry_s": place.entry_s, "arrive_s":
                    None if place.arrive_s is None else round(place.arrive_s, 3),
                    "hazard_s": hazard, "in_view_s": in_view_s(spec, motion, place, cfg.camera.hfov_deg),
                    "speed_mps": spec.runner_mps})
    return out


def _make_one(args: tuple[SceneSpec, Path, Path, Config, NoiseModel, int]) -> Path:
    spec, images, out, cfg, noise, seed = args
    return make_scene(spec, images, out, config=cfg, noise=noise, seed=seed)


def make_suite(images: str | Path, out_root: str | Path, *, names: Sequence[str] | None = None,
               config: Config | None = None, noise: NoiseModel = DEFAULT_NOISE, seed: int = 0, jobs: int = 1,
               progress: Callable[[SceneSpec, Path], None] | None = None, which: str = "scenes") -> list[Path]:
    """Render the suite `which` (scenes or hazards; or `names` of it) into out_root, `jobs` scenes at a time."""
    cfg = config or Config()
    root = Path(out_root)
    specs = suite(names, which)
    prepare_out_root(root, [s.name for s in specs])
    work = [(s, Path(images), root / s.name, cfg, noise, seed) for s in specs]
    out: list[Path] = []
    if jobs <= 1:
        for item in work:
            out.append(_make_one(item))
            if progress is not None:
                progress(item[0], out[-1])
        return out
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for item, path in zip(work, pool.map(_make_one, work), strict=True):
            out.append(path)
            if progress is not None:
                progress(item[0], path)
    return out
