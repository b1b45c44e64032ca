"""Scenario recordings with ground truth, made from real photos.

A runner backing towards an obstacle at speed v is, to the rear camera, a
zoom into the scene about that obstacle. A photo stands for the scene (a
billboard at the obstacle's distance d), seen by a virtual pinhole camera
with the device's field of view, mounted `mount_height_m` up and level:

- the obstacle is placed in the runner's path: its column is the optical
  axis (or `lateral_m` to the side of it), and the photo's row that lies at
  the camera's height on the obstacle is the horizon, so the obstacle's
  foot point is where flat ground at distance d would be;
- its box height in the photo and its class's typical height fix the
  photo's scale at the start distance d0; thereafter the image scales by
  d0 / d(t), d(t) = d0 - v t, until contact (d = 0). Near the end the
  obstacle overfills the frame, as a real one would, and short obstacles
  slip out under the view.

Where the first frame needs more than the photo holds, the surround is a
heavily blurred mirror of it: it gives no sharp object to detect.

Crossings paste a person cut from a photo (feathered edges) onto a distant
background photo at a world position (lateral X, distance D), walking
across; clear runs zoom slowly into a distant, empty-looking photo.

The ultrasonic log follows the same world: an echo from the nearest object
inside the sensor's cone (vertically too: the beam, at the camera's height,
passes over short obstacles close up) within its range, with noise,
bursts of lost echoes and late (farther) echoes fitted to a real HC-SR04
log (`NoiseModel.fit`), pinged at the device's own rate.

Every recording holds `truth.json`: `contact_s` (when the runner reaches the
obstacle, or null) and `clear` (where no WARN or higher is right: until the
true time to collision falls to `CLEAR_TTC_S`, or the whole run when nothing
is on course).
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Protocol, TypeVar

import cv2
import numpy as np

from device.core.clock import NS_PER_S
from device.core.types import Frame, Range
from device.perception.geometry import CLASS_HEIGHT_M
from device.record.format import TRUTH, RecordingWriter, SensorMeta
from device.sensing.ultrasonic import NO_ECHO_S as NO_ECHO_WAIT_S
from device.sensing.ultrasonic import SPEED_OF_SOUND_MPS as SPEED_OF_SOUND

PING_WAIT_S = 0.06  # ranging.sample_wait_s: the device's pause between pings
# Until the true time to collision falls to this, nothing calls for a WARN:
# it is the CAUTION threshold (4 s), so a WARN there is early by >= 1.5 s.
CLEAR_TTC_S = 4.0
BACKGROUND_M = 60.0  # distance of a background photo: far enough never to matter
SENSOR = SensorMeta(name="centre", bearing_deg=0.0, beam_deg=15.0, max_distance_m=4.0)
OBJECT_HALF_WIDTH_M = 0.25  # what a sensor's beam must touch to echo


class ScenarioError(Exception):
    """A scenario that cannot be made, with the reason."""


def prepare_out_root(root: Path, names: Sequence[str]) -> None:
    """Make the suite's output folder; refuse one that already holds any of
    these recordings (a recording is never overwritten)."""
    clash = [n for n in names if (root / n).exists()]
    if clash:
        raise ScenarioError(f"{root}: already holds {', '.join(clash)}; choose a new directory or remove them")
    root.mkdir(parents=True, exist_ok=True)


# ---------------------------------------------------------------- ultrasonic noise


@dataclass(frozen=True)
class NoiseModel:
    """HC-SR04 behaviour: lost echoes come in bursts (a two-state chain),
    good echoes scatter by sigma, some echoes come from something farther
    away (the beam slipping past the target)."""

    p_lose_after_echo: float = 0.22
    p_lose_after_loss: float = 0.27
    sigma_m: float = 0.02
    p_late_echo: float = 0.07
    p_spurious: float = 0.02  # an echo from nothing (ground, crosstalk) when the path is open

    @classmethod
    def fit(cls, log_path: str | Path) -> NoiseModel:
        """Fit to an HC-SR04 log (`Timestamp,Distance_cm`, 400 = no echo).

        Losses: transition frequencies of the no-echo/echo sequence. Scatter:
        the standard deviation of the readings before the first big change
        (the log starts on a still background). Late echoes: readings at
        least 0.5 m farther than the valid readings either side.
        """
        path = Path(log_path)
        try:
            with path.open(newline="", encoding="utf-8") as f:
                rows = list(csv.reader(f))
        except OSError as err:
            raise ScenarioError(f"cannot read ultrasonic log {path}: {err}") from None
        if not rows or [h.strip().lower() for h in rows[0]] != ["timestamp", "distance_cm"]:
            raise ScenarioError(f"{path}: expected an HC-SR04 log with the header Timestamp,Distance_cm")
        try:
            cm = [float(r[1]) for r in rows[1:] if len(r) == 2]
        except ValueError as err:
            raise ScenarioError(f"{path}: a Distance_cm is not a number ({err})") from None
        if len(cm) < 20:
            raise ScenarioError(f"{path}: {len(cm)} readings are too few to fit a noise model (need 20)")
        lost = [c >= 400 for c in cm]
        pairs = list(pairwise(lost))
        after_echo = [b for a, b in pairs if not a]
        after_loss = [b for a, b in pairs if a]
        valid = [c for c in cm if c < 400]
        still: list[float] = []
        for c in valid:
            if still and abs(c - np.median(still)) > 0.2 * np.median(still):
                break
            still.append(c)
        late = sum(  # an echo from >= 0.5 m behind both neighbours: the beam slipped past
            1 for a, b, c in zip(valid, valid[1:], valid[2:], strict=False) if b > a + 50 and b > c + 50
        )
        return cls(
            p_lose_after_echo=sum(after_echo) / max(len(after_echo), 1),
            p_lose_after_loss=sum(after_loss) / max(len(after_loss), 1),
            sigma_m=float(np.std(still)) / 100 if len(still) >= 5 else cls.sigma_m,
            p_late_echo=late / max(len(valid) - 2, 1),
        )


# ---------------------------------------------------------------- the world


@dataclass(frozen=True)
class Photo:
    """A photo and, for an obstacle or a person to cut out, its box there."""

    file: str
    label: str | None = None
    box: tuple[float, float, float, float] | None = None


@dataclass(frozen=True)
class Walker:
    """A person cut from a photo, walking across at distance_m (runner's frame)."""

    photo: Photo
    distance_m: float
    start_x_m: float  # lateral start, negative = runner's left
    speed_mps: float  # lateral, positive = towards the runner's right


@dataclass(frozen=True)
class ScenarioSpec:
    name: str
    kind: str  # "approach" | "clear" | "crossing"
    photo: Photo  # approach: the obstacle's photo; otherwise the background
    speed_mps: float  # the runner's speed, backwards
    d0_m: float = BACKGROUND_M  # approach: start distance to the obstacle
    duration_s: float | None = None  # approach: until contact
    lateral_m: float = 0.0  # approach: obstacle's offset from the path, + = runner's right
    walkers: tuple[Walker, ...] = ()
    ultrasonic: str = "normal"  # normal | dropouts | silent | fault
    fault_at_s: float = 0.0  # ultrasonic == "fault": the sensor's echo line dies then
    note: str = ""

    @property
    def contact_s(self) -> float | None:
        if self.kind != "approach" or self.speed_mps <= 0 or abs(self.lateral_m) > 1.0:
            return None
        return self.d0_m / self.speed_mps

    @property
    def length_s(self) -> float:
        if self.duration_s is not None:
            return self.duration_s
        contact = self.contact_s
        if contact is None:
            raise ScenarioError(f"{self.name}: needs a duration")
        return contact

    def truth(self) -> dict[str, object]:
        contact = self.contact_s
        if contact is None:
            return {"contact_s": None, "clear": [[0.0, round(self.length_s, 3)]]}
        end = contact - CLEAR_TTC_S
        return {"contact_s": round(contact, 3), "clear": [[0.0, round(end, 3)]] if end > 0 else []}


# Obstacle boxes were found by YOLOX-Nano in ../shared/images/coco; they only
# place the virtual camera, the truth comes from the geometry.
P = Photo
SUITE: tuple[ScenarioSpec, ...] = (
    ScenarioSpec("person-1mps", "approach", P("000000006460.jpg", "person", (279, 141, 331, 208)), 1.0, 6.0),
    ScenarioSpec("person-2mps", "approach", P("000000001490.jpg", "person", (454, 120, 501, 240)), 2.0, 10.0),
    ScenarioSpec("person-3mps", "approach", P("000000006460.jpg", "person", (279, 141, 331, 208)), 3.0, 14.0),
    ScenarioSpec("person-4mps", "approach", P("000000001268.jpg", "person", (398, 205, 465, 294)), 4.0, 18.0),
    ScenarioSpec("person-3mps-offset", "approach", P("000000002473.jpg", "person", (442, 284, 492, 383)),
                 3.0, 14.0, lateral_m=0.5, note="0.5 m right of the path: bearing and side motor"),
    ScenarioSpec("person-2mps-dropouts", "approach", P("000000002261.jpg", "person", (278, 151, 389, 295)),
                 2.0, 10.0, ultrasonic="dropouts", note="soft target: ~70 % of echoes lost"),
    ScenarioSpec("person-3mps-silent", "approach", P("000000008211.jpg", "person", (414, 185, 479, 345)),
                 3.0, 14.0, ultrasonic="silent", note="sensor hears nothing: camera alone"),
    ScenarioSpec("chair-1mps", "approach", P("000000001993.jpg", "chair", (117, 247, 227, 394)), 1.0, 6.0),
    ScenarioSpec("hydrant-1.5mps", "approach", P("000000008899.jpg", "fire hydrant", (137, 392, 186, 488)),
                 1.5, 8.0),
    ScenarioSpec("car-2mps", "approach", P("000000001532.jpg", "car", (225, 361, 417, 479)), 2.0, 10.0),
    ScenarioSpec("horse-2mps-fault", "approach", P("000000007281.jpg", "horse", (340, 185, 430, 359)),
                 2.0, 10.0, ultrasonic="fault", fault_at_s=1.0, note="sensor fails 1 s in"),
    ScenarioSpec("truck-3mps", "approach", P("000000009769.jpg", "truck", (79, 182, 467, 377)), 3.0, 14.0),
    ScenarioSpec("potted-plant-2mps", "approach", P("000000000632.jpg", "potted plant", (341, 229, 430, 352)),
                 2.0, 10.0),
    ScenarioSpec("clear-street-2mps", "clear", P("000000006723.jpg"), 2.0, duration_s=10.0,
                 note="a street with a cycle lane, cars far off"),
    ScenarioSpec("clear-field-3mps", "clear", P("000000002923.jpg"), 3.0, duration_s=10.0),
    ScenarioSpec("clear-far-people-1mps", "clear", P("000000003255.jpg"), 1.0, duration_s=10.0,
                 note="people far away on a snowfield"),
    ScenarioSpec("clear-tram-stop-4mps", "clear", P("000000006040.jpg"), 4.0, duration_s=10.0,
                 note="a tram and small people far off"),
    ScenarioSpec("cross-8m-runner-1mps", "crossing", P("000000006723.jpg"), 1.0, duration_s=8.0,
                 walkers=(Walker(P("000000006460.jpg", "person", (279, 141, 331, 208)), 8.0, -4.5, 1.4),),
                 note="a person crosses the path 8 m back while the runner closes at 1 m/s"),
    ScenarioSpec("cross-3.5m-runner-still", "crossing", P("000000002923.jpg"), 0.0, duration_s=7.0,
                 walkers=(Walker(P("000000001490.jpg", "person", (454, 120, 501, 240)), 3.5, 3.0, -1.2),),
                 note="a person crosses 3.5 m behind a runner who stands still"),
    ScenarioSpec("cross-two-people", "crossing", P("000000003255.jpg"), 0.5, duration_s=8.0,
                 walkers=(Walker(P("000000002473.jpg", "person", (442, 284, 492, 383)), 6.0, -4.0, 1.3),
                          Walker(P("000000009772.jpg", "person", (275, 231, 321, 350)), 6.5, 4.0, -1.1)),
                 note="two people cross each other in the path: identities must not swap"),
)
del P


class _Named(Protocol):
    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=_Named)


def pick(specs: tuple[T, ...], names: Sequence[str] | None, what: str) -> tuple[T, ...]:
    """The specs named (all of them for none), in the order named, each once
    (a name given twice would be made twice into the same directory, and the
    second attempt's cleanup deleted the first's recording); an unknown name
    is an error listing the known ones. `what`: "scenario", "scene"."""
    if not names:
        return specs
    by_name = {s.name: s for s in specs}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ScenarioError(f"unknown {what}(s): {', '.join(unknown)}; known: {', '.join(by_name)}")
    return tuple(by_name[n] for n in dict.fromkeys(names))


def suite(names: Sequence[str] | None = None) -> tuple[ScenarioSpec, ...]:
    return pick(SUITE, names, "scenario")


# ---------------------------------------------------------------- rendering


@dataclass(frozen=True)
class VirtualCamera:
    width: int = 640
    height: int = 360
    hfov_deg: float = 66.0
    mount_height_m: float = 1.1
    fps: float = 15.0
    bob_deg: float = 0.5  # the runner's stride tilts the camera up and down ...
    bob_hz: float = 2.8  # ... at about the step rate

    @property
    def focal_px(self) -> float:
        return (self.width / 2) / math.tan(math.radians(self.hfov_deg) / 2)


def _read_photo(images: Path, photo: Photo) -> np.ndarray:
    path = images / photo.file
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ScenarioError(f"cannot read photo {path}")
    return img


class Billboard:
    """A photo as a plane facing the camera, with a blurred mirror around it
    for views that reach past its edges."""

    def __init__(self, img: np.ndarray) -> None:
        h, w = img.shape[:2]
        self.pad = max(h, w)
        canvas = cv2.copyMakeBorder(img, self.pad, self.pad, self.pad, self.pad, cv2.BORDER_REFLECT_101)
        small = cv2.resize(canvas, None, fx=0.125, fy=0.125, interpolation=cv2.INTER_AREA)
        blurred = cv2.resize(cv2.GaussianBlur(small, (0, 0), 4), (canvas.shape[1], canvas.shape[0]),
                             interpolation=cv2.INTER_LINEAR)
        blurred[self.pad:self.pad + h, self.pad:self.pad + w] = img
        self.canvas = blurred

    def view(self, cam: VirtualCamera, centre: tuple[float, float], scale: float, shift_y: float) -> np.ndarray:
        """The camera's image when photo point `centre` is on the optical axis
        and one photo pixel spans `scale` image pixels."""
        cx, cy = centre[0] + self.pad, centre[1] + self.pad
        src = self.canvas
        if scale < 1:  # shrink first: warpAffine would alias
            src = cv2.resize(src, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            cx, cy, scale = cx * scale, cy * scale, 1.0
        m = np.array([[scale, 0, cam.width / 2 - scale * cx],
                      [0, scale, cam.height / 2 + shift_y - scale * cy]], dtype=np.float64)
        return cv2.warpAffine(src, m, (cam.width, cam.height), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)


def _sprite(img: np.ndarray, box: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray, float]:
    """A person cut out with a margin and feathered edges: (patch, alpha,
    box height in the patch's pixels). The box bottom is the patch bottom."""
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    mx = int(0.15 * (x2 - x1))
    my = int(0.08 * (y2 - y1))
    x1, x2 = max(0, x1 - mx), min(img.shape[1], x2 + mx)
    y1 = max(0, y1 - my)
    patch = img[y1:y2, x1:x2].copy()
    h, w = patch.shape[:2]
    alpha: np.ndarray = np.zeros((h, w), np.float32)
    cv2.ellipse(alpha, (w // 2, h // 2), (int(w * 0.5), int(h * 0.55)), 0, 0, 360, (1.0,), -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), max(2.0, 0.06 * w))
    return patch, alpha, float(box[3] - box[1])


def _paste(frame: np.ndarray, patch: np.ndarray, alpha: np.ndarray, x_c: float, y_bottom: float, scale: float) -> None:
    ph, pw = patch.shape[:2]
    w, h = max(1, round(pw * scale)), max(1, round(ph * scale))
    if w > 4 * frame.shape[1] or h > 4 * frame.shape[0]:
        return
    p = cv2.resize(patch, (w, h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    a = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LINEAR)[..., None]
    x0, y0 = round(x_c - w / 2), round(y_bottom - h)
    fx0, fy0 = max(0, x0), max(0, y0)
    fx1, fy1 = min(frame.shape[1], x0 + w), min(frame.shape[0], y0 + h)
    if fx1 <= fx0 or fy1 <= fy0:
        return
    region = frame[fy0:fy1, fx0:fx1].astype(np.float32)
    sp = p[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0].astype(np.float32)
    sa = a[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0]
    frame[fy0:fy1, fx0:fx1] = (sa * sp + (1 - sa) * region).astype(np.uint8)


@dataclass(frozen=True)
class WorldObject:
    """Something the ultrasonic sensor could hear: runner-frame position."""

    x_m: float
    distance_m: float
    height_m: float


class Scene:
    """Renders a scenario's frames and says where its objects are."""

    def __init__(self, spec: ScenarioSpec, images: Path, cam: VirtualCamera) -> None:
        self.spec = spec
        self.cam = cam
        img = _read_photo(images, spec.photo)
        self.board = Billboard(img)
        f = cam.focal_px
        if spec.kind == "approach":
            if spec.photo.box is None or spec.photo.label is None:
                raise ScenarioError(f"{spec.name}: an approach needs the obstacle's label and box")
            x1, y1, x2, y2 = spec.photo.box
            self.height_m = CLASS_HEIGHT_M[spec.photo.label]
            # Photo pixels per metre at d0 follow from the box; the image
            # scale makes the box as tall as the class would be at d0.
            f_photo = (y2 - y1) * spec.d0_m / self.height_m  # photo's focal length, photo px
            self.scale0 = f / f_photo
            self.board_d0 = spec.d0_m
            # The image is mirrored to the runner: their right is the image's left.
            self.centre = (
                (x1 + x2) / 2 + f_photo * spec.lateral_m / spec.d0_m,
                y2 - f_photo * cam.mount_height_m / spec.d0_m,
            )
        else:
            self.height_m = 0.0
            self.scale0 = cam.width / img.shape[1]
            self.board_d0 = BACKGROUND_M
            self.centre = (img.shape[1] / 2, img.shape[0] / 2)
        self.sprites = []
        for wk in spec.walkers:
            if wk.photo.box is None:
                raise ScenarioError(f"{spec.name}: a walker needs a person box")
            self.sprites.append((wk, *_sprite(_read_photo(images, wk.photo), wk.photo.box)))

    def runner_m(self, t: float) -> float:
        return self.spec.speed_mps * t

    def objects(self, t: float) -> list[WorldObject]:
        run = self.runner_m(t)
        out = []
        if self.spec.kind == "approach":
            out.append(WorldObject(self.spec.lateral_m, self.spec.d0_m - run, self.height_m))
        for wk, *_ in self.sprites:
            out.append(WorldObject(wk.start_x_m + wk.speed_mps * t, wk.distance_m - run, CLASS_HEIGHT_M["person"]))
        return [o for o in out if o.distance_m > 0]

    def frame(self, t: float) -> np.ndarray:
        cam = self.cam
        f = cam.focal_px
        d = max(self.board_d0 - self.runner_m(t), 0.02)
        bob = f * math.tan(math.radians(cam.bob_deg)) * math.sin(2 * math.pi * cam.bob_hz * t)
        img = self.board.view(cam, self.centre, self.scale0 * self.board_d0 / d, bob)
        for wk, patch, alpha, box_h in self.sprites:
            dist = wk.distance_m - self.runner_m(t)
            if dist <= 0.3:
                continue
            x = wk.start_x_m + wk.speed_mps * t
            scale = f * CLASS_HEIGHT_M["person"] / dist / box_h
            _paste(img, patch, alpha, cam.width / 2 - f * x / dist,
                   cam.height / 2 + bob + f * cam.mount_height_m / dist, scale)
        return img


# ---------------------------------------------------------------- ultrasonic


def echo_distance(objects: Sequence[WorldObject], sensor: SensorMeta, sensor_height_m: float) -> float | None:
    """The nearest object inside the sensor's cone and range, else None."""
    half = math.tan(math.radians(sensor.beam_deg / 2))
    best = None
    for o in objects:
        if not 0.02 <= o.distance_m <= sensor.max_distance_m:
            continue
        reach = o.distance_m * half
        if abs(o.x_m) > reach + OBJECT_HALF_WIDTH_M:  # beside the cone
            continue
        if o.height_m < sensor_height_m - reach:  # under the cone
            continue
        if best is None or o.distance_m < best:
            best = o.distance_m
    return best


def ping_log(scene: Scene, noise: NoiseModel, rng: np.random.Generator, sensor_height_m: float) -> list[Range]:
    spec = scene.spec
    return pings(lambda t: echo_distance(scene.objects(t), SENSOR, sensor_height_m), spec.length_s, noise, rng,
                 ultrasonic=spec.ultrasonic, fault_at_s=spec.fault_at_s)


def pings(
    echo: Callable[[float], float | None],
    length_s: float,
    noise: NoiseModel,
    rng: np.random.Generator,
    *,
    sensor: SensorMeta = SENSOR,
    ultrasonic: str = "normal",
    fault_at_s: float = 0.0,
) -> list[Range]:
    """The device's ping log for a world whose true echo at time t is
    `echo(t)` (metres, or None for nothing in the beam): pinged at the
    device's rate, with the noise model's losses, scatter and late echoes."""
    out: list[Range] = []
    t = float(rng.uniform(0, PING_WAIT_S))
    lost = False
    end = length_s
    while t < end:
        true = echo(t)
        wait = NO_ECHO_WAIT_S if true is None else 2 * true / SPEED_OF_SOUND
        t_done = t + wait
        if ultrasonic == "fault" and t >= fault_at_s:
            out.append(Range(round(t_done * NS_PER_S), sensor.name, None, fault="no-echo-signal"))
            t = t_done + PING_WAIT_S + float(rng.uniform(0, 0.01))
            continue
        p_lose = noise.p_lose_after_loss if lost else noise.p_lose_after_echo
        if ultrasonic == "dropouts":
            p_lose = 1 - (1 - p_lose) * 0.35  # a soft, angled target: most echoes lost
        metres: float | None
        if ultrasonic == "silent":
            metres = None
        elif true is None:
            metres = (float(rng.uniform(0.3, sensor.max_distance_m))
                      if rng.random() < noise.p_spurious else None)
        else:
            lost = bool(rng.random() < p_lose)
            if lost:
                metres = None
            elif rng.random() < noise.p_late_echo:
                metres = float(rng.uniform(true, sensor.max_distance_m))
            else:
                sigma = noise.sigma_m * max(true, 0.3)
                metres = float(max(0.02, true + rng.normal(0, sigma)))
        out.append(Range(round(t_done * NS_PER_S), sensor.name, None if metres is None else round(metres, 3)))
        t = t_done + PING_WAIT_S + float(rng.uniform(0, 0.01))
    return out


# ---------------------------------------------------------------- writing


def make_scenario(
    spec: ScenarioSpec,
    images: str | Path,
    out_dir: str | Path,
    *,
    cam: VirtualCamera = VirtualCamera(),
    noise: NoiseModel = NoiseModel(),
    seed: int = 0,
) -> Path:
    """Write one scenario recording (with truth.json) to out_dir."""
    images = Path(images)
    out = Path(out_dir)
    if not images.is_dir():
        raise ScenarioError(f"photo directory not found: {images}")
    scene = Scene(spec, images, cam)
    rng = np.random.default_rng([seed, sum(map(ord, spec.name))])
    ranges = ping_log(scene, noise, rng, cam.mount_height_m)
    n = max(1, math.ceil(spec.length_s * cam.fps - 1e-9))
    try:
        with RecordingWriter(
            out, width=cam.width, height=cam.height, fps=cam.fps, hfov_deg=cam.hfov_deg,
            mount_height_m=cam.mount_height_m, pitch_deg=0.0,  # the virtual camera is level
            sensors=[SENSOR], source=f"rearguard scenario make: {spec.name} ({spec.kind}"
            f", {spec.speed_mps:g} m/s, {spec.photo.file})",
        ) as writer:
            for i in range(n):
                t = i / cam.fps
                writer.write_frame(Frame(seq=i, t_ns=round(t * NS_PER_S), image=scene.frame(t)))
            writer.write_ranges(ranges)
        (out / TRUTH).write_text(json.dumps(spec.truth()) + "\n", encoding="utf-8")
        # What made it, for `rearguard evaluate` (per-speed targets, true curves).
        (out / "scenario.json").write_text(json.dumps({
            "name": spec.name, "kind": spec.kind, "speed_mps": spec.speed_mps,
            "d0_m": spec.d0_m if spec.kind == "approach" else None,
            "label": spec.photo.label if spec.kind == "approach" else None,
            "lateral_m": spec.lateral_m, "ultrasonic": spec.ultrasonic,
            "photo": spec.photo.file, "note": spec.note,
        }, indent=1) + "\n", encoding="utf-8")
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return out


def make_suite(
    images: str | Path,
    out_root: str | Path,
    *,
    names: Sequence[str] | None = None,
    cam: VirtualCamera = VirtualCamera(),
    noise: NoiseModel = NoiseModel(),
    seed: int = 0,
    progress: Callable[[ScenarioSpec, Path], None] | None = None,
) -> list[Path]:
    root = Path(out_root)
    specs = suite(names)
    prepare_out_root(root, [s.name for s in specs])
    out = []
    for spec in specs:
        path = make_scenario(spec, images, root / spec.name, cam=cam, noise=noise, seed=seed)
        out.append(path)
        if progress is not None:
            progress(spec, path)
    return out
