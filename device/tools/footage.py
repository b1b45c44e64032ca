"""Real footage with hand-labelled truth, as recordings `evaluate` scores.

A labels file (JSON, kept in the repository: device/tools/labels/) names a
video and cuts it into clips, each with its truth in the video's own time:
`contact_s` (when something's body enters the path close, or null), `clear`
windows (nothing in or entering the path close) and what happens when, in
words. `make_footage` writes each clip as a recording (frames at the labels'
rate, the ultrasonic log of an open street: nothing in range, with the
fitted HC-SR04 noise) with truth.json and scenario.json, so the camera path
is what is measured. The video itself is never in the repository.

Distances come from where a box's bottom edge meets the ground, so a clip is
replayed with its own camera's height and tilt (kept in the recording). For
footage from a camera over a straight track, the labels give two rails as
lines in the image and the track's gauge; `track_mount` works out the height
and the tilt from them.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from device.core.clock import NS_PER_S
from device.core.types import Frame
from device.record.format import TRUTH, RecordingWriter, SensorMeta
from device.tools.scenario import NoiseModel, ScenarioError, pings

LABELS_DIR = Path(__file__).resolve().parent / "labels"
MARKET_STREET = LABELS_DIR / "market_street_1906_part2.json"
SENSOR = SensorMeta(name="centre", bearing_deg=0.0, beam_deg=15.0, max_distance_m=4.0)


def load_labels(path: str | Path = MARKET_STREET) -> dict[str, Any]:
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ScenarioError(f"{p}: not readable JSON labels ({err})") from None
    clips = data.get("clips") if isinstance(data, dict) else None
    if not isinstance(clips, list) or not clips:
        raise ScenarioError(f"{p}: no clips")
    for c in clips:
        a, b = c.get("start_s"), c.get("end_s")
        if not (isinstance(a, int | float) and isinstance(b, int | float) and 0 <= a < b):
            raise ScenarioError(f"{p}: clip {c.get('name')!r} needs 0 <= start_s < end_s")
        inside = [x for w in c.get("clear", []) for x in w] + ([c["contact_s"]] if c.get("contact_s") is not None else [])
        if any(not a <= x <= b for x in inside):
            raise ScenarioError(f"{p}: clip {c.get('name')!r} has a time outside {a}-{b} s")
    return data


Point = tuple[float, float]


def track_mount(left: tuple[Point, Point], right: tuple[Point, Point], gauge_m: float, width: int, height: int,
                hfov_deg: float) -> tuple[float, float]:
    """(mount height in metres, pitch in degrees down) of a camera over a straight, level track,
    from its two rails, each given as two image points (x, y) on the rail's centre line.

    The rails meet at the horizon row y_v, where tan(pitch) = (height/2 - y_v) / f. Below it,
    a rail pair at depth Z along the axis is f * gauge / Z apart and f * h / (Z cos(pitch))
    below y_v, so h = gauge * cos(pitch) * (y - y_v) / separation at any row y."""

    def x_at(line: tuple[Point, Point], y: float) -> float:
        (x1, y1), (x2, y2) = line
        return x1 + (x2 - x1) * (y - y1) / (y2 - y1)

    if any(a[1] == b[1] for a, b in (left, right)):
        raise ScenarioError("track: each rail needs two points on different rows")
    ya, yb = float(height - 1), float(height // 2)
    sep_a, sep_b = x_at(right, ya) - x_at(left, ya), x_at(right, yb) - x_at(left, yb)
    if sep_a <= 0 or sep_a <= sep_b:
        raise ScenarioError("track: the right rail must be right of the left one and the two must close upwards")
    y_v = ya - sep_a * (ya - yb) / (sep_a - sep_b)  # where the separation, linear in the row, is 0
    f = (width / 2) / math.tan(math.radians(hfov_deg) / 2)
    pitch = math.atan((height / 2 - y_v) / f)
    return gauge_m * math.cos(pitch) * (ya - y_v) / sep_a, math.degrees(pitch)


def clip_mount(data: dict[str, Any], width: int, height: int) -> tuple[float | None, float | None]:
    """The labels' camera mount: from their `track` if they give one, else not known (None, None)."""
    track = data.get("track")
    if track is None:
        return None, None
    try:
        left = tuple((float(x), float(y)) for x, y in track["left_rail"])
        right = tuple((float(x), float(y)) for x, y in track["right_rail"])
        gauge = float(track["gauge_m"])
    except (KeyError, TypeError, ValueError) as err:
        raise ScenarioError(f"track: needs left_rail and right_rail (two [x, y] each) and gauge_m ({err})") from None
    if len(left) != 2 or len(right) != 2 or not gauge > 0:
        raise ScenarioError("track: needs left_rail and right_rail (two [x, y] each) and gauge_m above 0")
    h, pitch = track_mount((left[0], left[1]), (right[0], right[1]), gauge, width, height,
                           float(data.get("hfov_deg", 66.0)))
    return round(h, 2), round(pitch, 1)


def make_footage(video: str | Path, out_root: str | Path, labels: str | Path = MARKET_STREET, *,
                 noise: NoiseModel | None = None, seed: int = 0,
                 progress: Callable[[str, Path], None] | None = None) -> list[Path]:
    """Write each labelled clip of `video` as a recording under out_root."""
    data = load_labels(labels)
    src, root = Path(video), Path(out_root)
    if not src.is_file():
        raise ScenarioError(f"video not found: {src}")
    cap = cv2.VideoCapture(str(src))
    native = cap.get(cv2.CAP_PROP_FPS)
    frames: list[np.ndarray] = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    if not frames or not native or native <= 0:
        raise ScenarioError(f"{src}: no frames, or no frame rate")
    fps = float(data.get("fps", native))
    h, w = frames[0].shape[:2]
    mount_height, pitch = clip_mount(data, w, h)
    out: list[Path] = []
    for clip in data["clips"]:
        name, start, end = str(clip["name"]), float(clip["start_s"]), float(clip["end_s"])
        d = root / name
        if d.exists():
            raise ScenarioError(f"{d} already exists: choose a new directory or remove it")
        length = end - start
        n = int(length * fps)
        rng = np.random.default_rng([seed, sum(map(ord, name))])
        ranges = pings(lambda t: None, length, noise or NoiseModel(), rng, sensor=SENSOR)
        try:
            with RecordingWriter(d, width=w, height=h, fps=fps, hfov_deg=float(data.get("hfov_deg", 66.0)),
                                 mount_height_m=mount_height, pitch_deg=pitch, sensors=[SENSOR],
                                 source=f"rearguard scenario footage: {src.name} {start:g}-{end:g} s") as wr:
                for i in range(n):
                    k = round((start + i / fps) * native)
                    if k >= len(frames):
                        break
                    wr.write_frame(Frame(seq=i, t_ns=round(i / fps * NS_PER_S), image=frames[k]))
                wr.write_ranges(ranges)
            contact = clip.get("contact_s")
            truth = {"contact_s": None if contact is None else round(float(contact) - start, 3),
                     "clear": [[round(a - start, 3), round(b - start, 3)] for a, b in clip.get("clear", [])]}
            (d / TRUTH).write_text(json.dumps(truth) + "\n", encoding="utf-8")
            (d / "scenario.json").write_text(json.dumps({
                "name": name, "suite": "footage", "kind": "crossing" if contact is not None else "clear",
                "video": src.name, "start_s": start, "end_s": end, "in_view_s": clip.get("in_view_s"),
                "speed_mps": None, "note": "; ".join(clip.get("events", [])),
            }, indent=1) + "\n", encoding="utf-8")
        except BaseException:
            shutil.rmtree(d, ignore_errors=True)
            raise
        out.append(d)
        if progress is not None:
            progress(name, d)
    return out
