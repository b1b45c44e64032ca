"""Measure the blind-lens check (device.perception.blind): false faults on
real footage, recordings and plain-scene crops, and how fast a covered,
dark or fogged lens is named.

    python -m device.tools.blind_eval [--video V ...] [--suite DIR ...] [--images DIR] [--stats]

Blind frames are made from real ones (a lens sees its own scene go dark,
fog over or be covered): dark = 3 % of the light plus sensor noise; fogged
= a heavy blur, a quarter of the contrast and a white haze; covered = one
skin-like colour with a soft gradient (a hand or a jacket flap at the lens,
out of focus). Plain scenes are the flattest quarter of each photo (a wall,
the sky, a road surface), blown up to a frame.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from device.core.clock import NS_PER_S
from device.perception.blind import BlindWatch, lens_stats

SIZE = (640, 360)


def darken(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = img.astype(np.float32) * 0.03 + rng.normal(0, 3, img.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def fog(img: np.ndarray, rng: np.random.Generator, noise: float = 2.0) -> np.ndarray:
    blur = cv2.GaussianBlur(img, (0, 0), 25).astype(np.float32)
    out = (blur - blur.mean()) * 0.25 + blur.mean() * 0.4 + 150 + rng.normal(0, noise, img.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def cover(img: np.ndarray, rng: np.random.Generator, noise: float = 2.0) -> np.ndarray:
    h, w = img.shape[:2]
    colour = np.array([rng.uniform(60, 140), rng.uniform(90, 170), rng.uniform(120, 220)], np.float32)  # BGR skin/cloth
    ramp = (np.linspace(0.7, 1.1, w, dtype=np.float32)[None, :, None]
            * np.linspace(0.8, 1.0, h, dtype=np.float32)[:, None, None])
    out = colour[None, None, :] * ramp + rng.normal(0, noise, (h, w, 3))
    return np.clip(out, 0, 255).astype(np.uint8)


# A noisy sensor (gain up in poor light): noise of 8 grey levels per pixel.
BLINDERS = {
    "dark": darken,
    "fogged": fog,
    "covered": cover,
    "fogged, noisy sensor": lambda im, rng: fog(im, rng, 8.0),
    "covered, noisy sensor": lambda im, rng: cover(im, rng, 8.0),
}


def flattest_quarter(img: np.ndarray) -> np.ndarray:
    """The quarter (half width, half height) with the least Laplacian detail, blown up to SIZE."""
    h, w = img.shape[:2]
    best, crop = None, img
    for y in (0, h // 4, h // 2):
        for x in (0, w // 4, w // 2):
            c = img[y:y + h // 2, x:x + w // 2]
            v = lens_stats(c).sharpness
            if best is None or v < best:
                best, crop = v, c
    return cv2.resize(crop, SIZE, interpolation=cv2.INTER_LINEAR)


def video_frames(path: Path) -> Iterator[tuple[int, np.ndarray]]:
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 15.0
    n = 0
    try:
        while True:
            ok, img = cap.read()
            if not ok:
                return
            yield round(n * NS_PER_S / fps), cv2.resize(img, SIZE, interpolation=cv2.INTER_AREA)
            n += 1
    finally:
        cap.release()


def recording_frames(directory: Path) -> Iterator[tuple[int, np.ndarray]]:
    from device.record.format import Recording

    for frame in Recording.open(directory).frames():
        yield frame.t_ns, frame.image


@dataclass
class RunResult:
    name: str
    frames: int
    seconds: float
    blind_frames: int
    faults: int  # times the fault was raised (a run of blind frames held long enough)


def false_faults(name: str, frames: Iterator[tuple[int, np.ndarray]]) -> RunResult:
    watch = BlindWatch()
    n = blind = faults = 0
    first = last = 0
    raised = False
    for t, img in frames:
        if n == 0:
            first = t
        watch.saw(t, img)
        n += 1
        last = t
        blind += watch.blind_for_ns() > 0 or (watch.last is not None and watch.last.why_blind() is not None)
        now = watch.fault_text() is not None
        faults += now and not raised
        raised = now
    return RunResult(name, n, (last - first) / NS_PER_S, blind, faults)


def detection_time(frames: list[np.ndarray], blinder, rng: np.random.Generator, fps: float = 15.0,
                   lead_s: float = 2.0, blind_s: float = 4.0) -> tuple[float | None, float | None]:
    """Seconds from the lens going blind to the fault, and from the view coming back to its clearing."""
    watch = BlindWatch()
    step = round(NS_PER_S / fps)
    t = 0
    seq = [(f, False) for f in frames[:round(lead_s * fps)]]
    blind_src = frames[:round(blind_s * fps)]
    seq += [(blinder(f, rng), True) for f in blind_src]
    seq += [(f, False) for f in frames[:round(lead_s * fps)]]
    went = came = None
    detect = clear = None
    for img, is_blind in seq:
        watch.saw(t, img)
        if is_blind and went is None:
            went = t
        if not is_blind and went is not None and came is None:
            came = t
        faulty = watch.fault_text() is not None
        if detect is None and faulty and went is not None:
            detect = (t - went) / NS_PER_S
        if came is not None and clear is None and not faulty:
            clear = (t - came) / NS_PER_S
        t += step
    return detect, clear


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--video", nargs="*", default=[], help="real footage: false faults over every frame")
    p.add_argument("--suite", nargs="*", default=[], help="scenario suites (directories of recordings)")
    p.add_argument("--images", help="photos: plain-scene crops (false faults) and blind versions (misses)")
    p.add_argument("--max-images", type=int, default=400)
    p.add_argument("--stats", action="store_true", help="print the statistics' distributions per kind")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    rng = np.random.default_rng(21)
    report: dict = {"runs": [], "frames": {}, "detect": {}}
    photos: list[np.ndarray] = []

    for v in args.video:
        report["runs"].append(false_faults(Path(v).name, video_frames(Path(v))).__dict__)
    for s in args.suite:
        for rec in sorted(d.parent for d in Path(s).rglob("meta.json")):
            report["runs"].append(false_faults(f"{Path(s).name}/{rec.relative_to(s)}", recording_frames(rec)).__dict__)

    if args.images:
        paths = sorted(Path(args.images).glob("*.jpg"))[: args.max_images]
        photos = [cv2.resize(im, SIZE, interpolation=cv2.INTER_AREA) for p_ in paths
                  if (im := cv2.imread(str(p_))) is not None]
        kinds: dict[str, list[np.ndarray]] = {
            "photo": photos,
            "plain (flattest quarter)": [flattest_quarter(im) for im in photos],
        }
        for name, fn in BLINDERS.items():
            kinds[name] = [fn(im, rng) for im in photos]
        for name, imgs in kinds.items():
            st = [lens_stats(im) for im in imgs]
            flagged = sum(s.why_blind() is not None for s in st)
            row: dict[str, Any] = {"frames": len(st), "judged_blind": flagged}
            if args.stats:
                for key in ("mean", "p99", "contrast", "sharpness"):
                    vals = np.array([getattr(s, key) for s in st])
                    row[key] = [round(float(q), 1) for q in np.percentile(vals, [0, 1, 5, 50, 95, 99, 100])]
            report["frames"][name] = row
    # detection and clearing: real footage (else the photos as a 15 fps
    # stream), 2 s seen, 4 s blind, 2 s seen again; one stream per 10 s of footage
    clips: list[list[np.ndarray]] = []
    for v in args.video:
        frames = [img for _, img in video_frames(Path(v))]
        clips += [frames[i:i + 60] for i in range(0, len(frames) - 60, 150)]
    if not clips and args.images:
        clips = [photos[i:i + 60] for i in range(0, len(photos) - 59, 10)]
    if clips:
        for name, fn in BLINDERS.items():
            times = [detection_time(c, fn, rng) for c in clips]
            det = [d for d, _ in times if d is not None]
            clr = [c for _, c in times if c is not None]
            report["detect"][name] = {"streams": len(times), "named": len(det),
                                      "detect_s_max": max(det) if det else None,
                                      "clear_s_max": max(clr) if clr else None}

    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    for r in report["runs"]:
        print(f"{r['name']:<50} {r['frames']:>6} frames {r['seconds']:7.1f} s  blind frames {r['blind_frames']:>5}  "
              f"false faults {r['faults']}")
    for name, row in report["frames"].items():
        print(f"{name:<26} {row['judged_blind']:>4}/{row['frames']} judged blind", end="")
        print("".join(f"  {k} {row[k]}" for k in ("mean", "p99", "contrast", "sharpness") if k in row))
    for name, d in report["detect"].items():
        print(f"{name:<10} named in {d['named']}/{d['streams']} streams, within {d['detect_s_max']} s; "
              f"cleared within {d['clear_s_max']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
