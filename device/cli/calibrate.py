"""`rearguard calibrate`: measure the camera's mount height and pitch with
the device worn, and write them into the config.

The runner stands still, wearing the device; a helper stands straight
behind them (in the camera's view), feet visible, at each measured distance
in turn (default 5 m and 10 m, taped from the point on the ground below the
camera). At each the detector watches for a few seconds; the helper's foot
row at two distances gives the height and the pitch
(device/perception/calibrate.py), with how sure it is.

`--write` sets `camera.mount_height_m` and `camera.pitch_deg` in the config
file in place: only those two values change, every comment, key and blank
line of the file stays (device/core/config_edit.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np

from device.core.config import Config, ConfigError, config_path, load
from device.core.ports import Detector, FrameSource
from device.perception.calibrate import Calibration, CalibrationError, Stop, calibrate
from device.perception.geometry import EDGE_PX, CameraGeometry

PERSON = 0  # COCO class id
MIN_SCORE = 0.5
DEFAULT_STOPS = (5.0, 10.0)  # the feet in view of a level camera up to 1.8 m high; a box small enough to sit well


def foot_rows(images: Iterable[np.ndarray], detector: Detector, geometry: CameraGeometry
              ) -> list[tuple[float, float]]:
    """(foot row, box height) of the helper in each image: the bottom edge of
    the person box nearest the middle column, skipped where the feet are cut
    off by the image's edge."""
    rows = []
    for image in images:
        d = detector.detect(image)
        best: tuple[float, float, float] | None = None
        for box, score, cls in zip(d.xyxy, d.confidence, d.class_id, strict=True):
            if int(cls) != PERSON or float(score) < MIN_SCORE:
                continue
            x1, y1, x2, y2 = (float(v) for v in box)
            off = abs((x1 + x2) / 2 - geometry.width / 2)
            if y2 < geometry.height - EDGE_PX and (best is None or off < best[0]):
                best = (off, y2, y2 - y1)
        if best is not None:
            rows.append((best[1], best[2]))
    return rows


def measure(geometry: CameraGeometry, stops: Mapping[float, Iterable[np.ndarray]], detector: Detector) -> Calibration:
    """Height and pitch from the images seen at each distance."""
    seen = {d: foot_rows(imgs, detector, geometry) for d, imgs in stops.items()}
    return calibrate(geometry, [Stop(d, tuple(r for r, _ in rows), tuple(h for _, h in rows))
                                for d, rows in seen.items()])


def _live_frames(frames: FrameSource, seconds: float, clock: Callable[[], float] = time.monotonic
                 ) -> Iterator[np.ndarray]:
    """New frames from a FrameSource for `seconds`."""
    end, seen = clock() + seconds, None
    while clock() < end:
        f = frames.latest()
        if f is not None and f.seq != seen:
            seen = f.seq
            yield f.image
        else:
            time.sleep(0.01)


def cmd_calibrate(args: argparse.Namespace) -> int:
    from device.app.compose import build_detector, open_camera
    from device.app.service_hint import hint
    from device.core.clock import MonotonicClock
    from device.sensing.camera import CameraError

    cfg: Config = load(args.config)
    target = config_path(args.config)
    if args.write and target is None:
        print("rearguard: --write: no config file to write into (none given, $REARGUARD_CONFIG unset, "
              "/etc/rearguard/config.toml absent): give --config PATH", file=sys.stderr)
        return 2
    distances = tuple(args.at) if args.at else DEFAULT_STOPS
    detector, faults = build_detector(cfg)
    if detector is None:
        print(f"rearguard: calibrate needs the detector: {'; '.join(str(f) for f in faults)}", file=sys.stderr)
        return 1
    try:
        frames = open_camera(args.source, cfg, MonotonicClock())
    except CameraError as err:
        print(f"rearguard: {err}", file=sys.stderr)
        if args.source == "pi" and (h := hint(str(err))):
            print(f"rearguard: {h}", file=sys.stderr)
        detector.close()
        return 1
    geometry = CameraGeometry.for_camera(cfg.camera, frames.width, frames.height)
    print("Wear the device as you run with it and stand still, facing away from the path. A helper stands "
          "straight behind you, in full view, feet visible, at each distance below, measured on the ground "
          "from the point below the camera.")
    seen: dict[float, list[np.ndarray]] = {}
    try:
        for d in distances:
            if sys.stdin.isatty():
                input(f"helper at {d:g} m, then Enter: ")
            else:
                print(f"helper at {d:g} m: measuring in {args.settle:g} s", flush=True)
                time.sleep(args.settle)
            seen[d] = list(_live_frames(frames, args.seconds))
            print(f"  {len(seen[d])} frames at {d:g} m", flush=True)
        result = measure(geometry, seen, detector)
    except CalibrationError as err:
        print(f"rearguard: {err}", file=sys.stderr)
        return 1
    finally:
        frames.close()
        detector.close()
    return report(result, cfg, target, write=args.write, as_json=args.json)


def report(result: Calibration, cfg: Config, target: Path | None, *, write: bool, as_json: bool) -> int:
    height, pitch = round(result.mount_height_m, 2), round(result.pitch_deg, 1)
    if as_json:
        print(json.dumps({"mount_height_m": height, "pitch_deg": pitch,
                          "mount_height_sigma_m": round(result.height_sigma_m, 3),
                          "pitch_sigma_deg": round(result.pitch_sigma_deg, 2),
                          "residual_deg": round(result.residual_deg, 2),
                          "stops": [{"distance_m": d, "foot_below_axis_deg": round(a, 2), "frames": n}
                                    for d, a, n in result.stops]}, indent=2))
    else:
        for d, a, n in result.stops:
            print(f"  at {d:g} m: foot {a:.2f} deg below the camera's axis ({n} frames)")
        print(result.text())
        print(f"was: camera.mount_height_m = {cfg.camera.mount_height_m:g}, camera.pitch_deg = "
              f"{cfg.camera.pitch_deg:g}")
        if result.residual_deg > 0.5:
            print(f"warning: the stops disagree by {result.residual_deg:.1f} deg rms (uneven ground, or a distance "
                  "measured wrong?)")
    if not write:
        if not as_json:
            print(f"--write sets them in {target or 'the config file'}")
        return 0
    assert target is not None
    from device.core.config_edit import set_values

    try:
        text = target.read_text(encoding="utf-8")
        new = set_values(text, {"camera.mount_height_m": height, "camera.pitch_deg": pitch}, str(target))
        tmp = target.with_name(target.name + ".calibrate.tmp")
        tmp.write_text(new, encoding="utf-8")
        tmp.replace(target)
    except (OSError, ConfigError) as err:
        print(f"rearguard: cannot write {target}: {err} (the installed config is root's: sudo rearguard "
              "calibrate --write)", file=sys.stderr)
        return 1
    print(f"wrote camera.mount_height_m = {height:g} and camera.pitch_deg = {pitch:g} into {target} (every "
          "other line kept); the service reads it when restarted: sudo systemctl restart rearguard",
          file=sys.stderr if as_json else sys.stdout)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="measure the worn camera's height and pitch from a helper at two distances",
                       description="Measure camera.mount_height_m and camera.pitch_deg with the device worn: a "
                       "helper stands straight behind the runner at each --at distance (measured on the ground "
                       "from below the camera); the helper's foot row at two distances gives both, with how sure "
                       "it is. Stop rearguard.service first (it holds the camera).")
    p.add_argument("--config", metavar="PATH", help="config file (default: as for `run`); --write edits it")
    p.add_argument("--source", default="pi", metavar="pi|webcam|N", help="the camera (default pi)")
    p.add_argument("--at", type=float, action="append", metavar="M",
                   help=f"a distance in metres, repeatable (default {' and '.join(f'{d:g}' for d in DEFAULT_STOPS)})")
    p.add_argument("--seconds", type=float, default=3.0, metavar="S", help="seconds watched at each (default 3)")
    p.add_argument("--settle", type=float, default=10.0, metavar="S",
                   help="without a terminal: seconds for the helper to walk to each distance (default 10)")
    p.add_argument("--write", action="store_true", help="set the two keys in the config file, keeping the rest")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_calibrate)
