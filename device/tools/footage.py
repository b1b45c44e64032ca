"""Real footage with hand-labelled truth, as recordings `evaluate` scores.

A labels file (JSON, kept in the repository: device/tools/labels/) names a
video and cuts it into clips, each with its truth in the video's own time:
`contact_s` (when something's body enters the path close, or null), `clear`
windows (nothing in or entering the path close) and what happens when, in
words. `make_footage` writes each clip as a recording (frames at the labels'
rate, the ultrasonic log of an open street: nothing in range, with the
fitted HC-SR04 noise) with truth.json and scenario.json, so the camera path
is what is measured. The video itself is never in the repository.
"""

from __future__ import annotations

import json
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
                                 sensors=[SENSOR], source=f"rearguard scenario footage: {src.name} {start:g}-{end:g} s") as wr:
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
