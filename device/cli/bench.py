"""`rearguard bench`: time the detection path on real frames.

cli.py calls `register(sub)`. Progress goes to stderr; the report (a table,
or JSON with --json) to stdout. Exit 0, or 1 with one line on stderr.

Options that take a list (--model, --input-size, --threads, --spin) run
every combination side by side on the same frames; the first is the
reference that ratios and person agreement are given against.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from device.core.config import ConfigError, load
from device.core.priority import build_in_background, lowering
from device.model_store import store as models
from device.perception import boards
from device.perception.boards import size_label
from device.perception.detector import ModelError
from device.tools import bench
from device.tools.bench import BenchError, Case
from device.tools.shared import shared_file

PROG = "rearguard bench"
DEFAULT_FRAMES = 200
T = TypeVar("T")


def _fail(msg: str) -> int:
    print(f"{PROG}: error: {msg}", file=sys.stderr)
    return 1


def _list(kind: Callable[[str], T], what: str) -> Callable[[str], list[T]]:
    """An argparse type: a comma-separated list, each item parsed by `kind`."""

    def parse(text: str) -> list[T]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"empty {what} list")
        try:
            return [kind(t) for t in items]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of {what}") from None

    return parse


MAX_THREADS = 16  # as detector.threads: 9999 ran for minutes (issue 23)


def _threads(text: str) -> int:
    n = int(text)
    if not 0 <= n <= MAX_THREADS:
        raise argparse.ArgumentTypeError(f"--threads {n}: must be 0 (auto) to {MAX_THREADS}")
    return n


def _spin(text: str) -> bool | None:
    t = text.strip().lower()
    if t in ("on", "1", "true", "yes"):
        return True
    if t in ("off", "0", "false", "no"):
        return False
    if t == "auto":
        return None
    raise ValueError(text)


def parse_size(text: str) -> int | tuple[int, int]:
    """An input size: 416 (square) or 416x256 (width x height); multiples of 32 are checked apart."""
    return boards.parse_size(text)


def _bad_size(sizes: list[int | tuple[int, int]]) -> str | None:
    for s in sizes:
        if any(n <= 0 or n % 32 for n in boards.as_wh(s)):
            return f"--input-size {size_label(s)}: must be a positive multiple of 32"
    return None


def _resolve(setting: str) -> Path:
    if Path(setting).expanduser().is_file():
        return Path(setting).expanduser()
    return models.resolve(setting)


def cmd_bench(args: argparse.Namespace) -> int:
    try:
        return _bench(args)
    except ConfigError as err:  # a bad config is a usage error, as for every command
        _fail(str(err))
        return 2
    except (BenchError, ModelError) as err:
        return _fail(str(err))
    except ValueError as err:  # e.g. an input size the detector refuses
        return _fail(str(err))


def _bench(args: argparse.Namespace) -> int:
    from device.core.coco import class_id

    cfg = load(args.config)
    d = cfg.detector
    model_settings = args.model or [d.model]
    sizes = args.input_size or [d.input_geometry]
    threads = args.threads or [d.threads]
    spins = args.spin or [None]
    fills = args.fill or [d.fill]
    if args.frames < 1 or args.warmup < 0:
        return _fail("--frames must be >= 1 and --warmup >= 0")
    for f in fills:
        if f not in ("letterbox", "stretch"):
            return _fail(f"--fill {f!r}: letterbox or stretch")
    if (bad := _bad_size(sizes)) is not None:
        return _fail(bad)
    paths = {m: _resolve(m) for m in model_settings}
    cases = [
        Case(model=m, path=paths[m], input_size=s, threads=t, spin=sp, fill=f)
        for m in model_settings for s in sizes for f in fills for t in threads for sp in spins
    ]

    video = args.video if args.video is not None else shared_file("footage", "vtest.avi")
    if video is None:
        return _fail("no video to run on: pass --video PATH (../shared/footage/vtest.avi is not here)")
    images: list[Path] = []
    if args.images is not None:
        from device.model_store.derive import image_files

        images = image_files(args.images)

    total = args.frames
    quiet = args.quiet

    def progress(done: int) -> None:
        if not quiet and (done % 10 == 0 or done == total):
            print(f"bench: frame {done}/{total} ({len(cases)} case{'s' if len(cases) > 1 else ''})",
                  file=sys.stderr, end="\r" if done < total else "\n", flush=True)

    if not quiet:
        for c in cases:
            print(f"bench: {c.label} ({c.path})", file=sys.stderr)
    looming = None
    if cfg.looming.enabled and not args.no_looming:
        from device.decision.looming import looming_params
        from device.perception.looming import LoomingEstimator

        looming = bench.LoomingTiming(LoomingEstimator(looming_params(cfg)), fps=cfg.camera.fps)
    flow = None
    if args.flow:
        from device.app.compose import flow_params
        from device.perception.flow import FlowEstimator

        flow = bench.FlowTiming(FlowEstimator(flow_params(cfg)), fps=cfg.camera.fps)
    from device.perception.ego import CameraMotion

    ego = bench.EgoTiming(CameraMotion())  # the detect stage's own, always timed
    load_ctx: Any = bench.Load(cfg) if args.load else contextlib.nullcontext()
    # With the load, the cases run as the device's detector does: in a
    # lowered thread (device.core.priority), their onnxruntime pools made
    # there too, while the load, like the device's loop, keeps its priority.
    lowered: Any = lowering() if args.load else contextlib.nullcontext()
    with load_ctx as loaded, lowered:
        results = build_in_background(lambda: bench.run(
            cases,
            bench.video_frames(video, args.frames + args.warmup),
            score_threshold=d.score_threshold,
            nms_iou=d.nms_iou,
            class_ids=[class_id(c) for c in d.classes],
            warmup=args.warmup,
            block=args.block,
            images=bench.image_frames(images),
            progress=progress,
            looming=looming,
            flow=flow,
            ego=ego,
        ), name="bench-cases")
    load_info = None
    if args.load:
        load_info = {"alert_updates": loaded.updates, "ranges": loaded.ranges}
        for r in results:
            r.load = loaded.during(r.windows)
    report = bench.BenchResult(results, str(video), load_info, looming, flow, ego)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(format_table(report))
        for line in profile_lines(results):
            print(line)
    return 0


def profile_lines(results: list[bench.CaseResult]) -> list[str]:
    """What this machine measured, as lines for device/perception/boards.toml
    (median and p90 inference ms, the profile's [low, high]), so a builder
    can evaluate with their own board's figures (`rearguard evaluate --board`)."""
    import platform

    from device.perception import boards as board_profiles

    model_line = ""
    try:
        model_line = Path("/proc/device-tree/model").read_text(encoding="utf-8", errors="replace")
    except OSError:
        pass
    board = board_profiles.load().for_device_tree(model_line) if model_line else None
    where = board.name if board is not None else f"this machine ({platform.machine()})"
    out = [f"profile line for {where} in device/perception/boards.toml (inference ms, median and p90; "
           f"status = \"measured\"):"]
    by_model: dict[str, list[str]] = {}
    for r in results:
        if not r.inference:
            continue
        med, p90 = float(np.median(r.inference)), float(np.percentile(r.inference, 90))
        name = Path(r.case.model).stem if r.case.model.endswith(".onnx") else r.case.model
        by_model.setdefault(name, []).append(f"{size_label(r.case.input_size)} = [{med:.1f}, {p90:.1f}]")
    out += [f"  {m} = {{ {', '.join(v)} }}" for m, v in by_model.items()]
    return out


def format_table(report: bench.BenchResult) -> str:
    ref = report.cases[0]
    lines = [
        f"video {report.video}, {len(ref.total)} frames"
        + (f"; load: {report.load['alert_updates']} alert updates, {report.load['ranges']} ranges" if report.load else ""),
        f"{'case':<52} {'pre':>11} {'infer':>13} {'post':>11} {'total':>13} {'ratio':>6} {'vs ref':>7}",
        f"{'':<52} {'med/p90 ms':>11} {'med/p90 ms':>13} {'med/p90 ms':>11} {'med/p90 ms':>13} {'':>6} {'total':>7}",
    ]

    def mp(xs: list[float]) -> str:
        s = bench.stats(xs)
        return f"{s['median']:.2f}/{s['p90']:.2f}"

    for r in report.cases:
        rel = bench.ratio(r.total, ref.total)
        lines.append(
            f"{r.case.label:<52} {mp(r.preprocess):>11} {mp(r.inference):>13} {mp(r.postprocess):>11} "
            f"{mp(r.total):>13} {r.overhead_ratio:>6.3f} {rel:>7.3f}"
        )
    if report.load:
        lines.append("while each case ran: alert loop (50 Hz) tick lateness and ultrasonic ping gaps, ms")
        lines.append(f"{'case':<52} {'late med':>9} {'p99':>8} {'max':>8} {'gap med':>9} {'p99':>8} {'max':>8}")
        for r in report.cases:
            if r.load is None:
                continue
            lt, gp = r.load["alert_tick_late_ms"], r.load["range_gap_ms"]

            def f(x: float | None) -> str:
                return "-" if x is None else f"{x:.2f}"

            lines.append(
                f"{r.case.label:<52} {f(lt['median']):>9} {f(lt['p99']):>8} {f(lt['max']):>8} "
                f"{f(gp['median']):>9} {f(gp['p99']):>8} {f(gp['max']):>8}"
            )
    agreements = [r for r in report.cases[1:] if r.frames_agreement.reference or r.images_agreement.reference]
    if agreements:
        lines.append(f"person agreement against {ref.case.label} (IoU >= 0.5):")
        for r in agreements:
            parts = []
            for what, a in (("frames", r.frames_agreement), ("images", r.images_agreement)):
                if a.reference or a.test:
                    rc, pr = a.recall, a.precision
                    parts.append(
                        f"{what}: recall {'-' if rc is None else f'{rc:.3f}'} "
                        f"precision {'-' if pr is None else f'{pr:.3f}'} ({a.matched}/{a.reference} ref, {a.test} test)"
                    )
            lines.append(f"  {r.case.label}: " + "; ".join(parts))
    def beside(what: str, ms: list[float]) -> str:
        """One step's time on the same frames, as a share of one detect."""
        return (f"{what}: {mp(ms)} ms med/p90 = {bench.ratio(ms, ref.total):.3f} of one {ref.case.label} detect "
                f"({bench.ratio(ms, ref.inference):.3f} of session.run alone)")

    if report.looming is not None and report.looming.ms:
        lm = report.looming
        lines.append(beside(f"looming ({lm.estimator.p.width} px grey, same frames)", lm.ms))
    if report.flow is not None and report.flow.ms:
        fl = report.flow
        lines.append(beside(f"flow ({fl.estimator.p.width} px grey, same frames, "
                            f"{fl.tracks / len(fl.ms):.1f} tracks/frame)", fl.ms))
    if report.ego is not None and report.ego.ms:
        eg = report.ego
        lines.append(beside(f"camera motion ({eg.estimator.width} px grey, detect stage, same frames)", eg.ms))
    lines.append("ratio = median total / median session.run alone on the same input")
    return "\n".join(lines)


def register(sub: argparse._SubParsersAction) -> None:
    """Add `bench` to the main parser's subparsers."""
    p = sub.add_parser(
        "bench", help="time the detection path (preprocess, inference, postprocess) on real frames",
        description="Run the detector on video frames and report per-stage median and p90 ms and "
        "total / inference. Comma-separated lists run every combination side by side on the same "
        "frames; ratios and person agreement are against the first.",
    )
    p.add_argument("--config", metavar="PATH", help="config TOML (detector settings are the defaults here)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--video", type=Path, default=None, metavar="PATH",
                   help="frames to run on (default: ../shared/footage/vtest.avi when present)")
    p.add_argument("--frames", type=int, default=DEFAULT_FRAMES, metavar="N",
                   help="frames measured, after the warm-up (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=5, metavar="N", help="frames run first, not measured (default: %(default)s)")
    p.add_argument("--block", type=int, default=bench.DEFAULT_BLOCK, metavar="N",
                   help="frames each case runs before the next case takes over (default: %(default)s)")
    p.add_argument("--model", type=_list(str, "models"), default=None, metavar="NAME|PATH[,...]",
                   help="model name or .onnx path (default: detector.model)")
    p.add_argument("--input-size", type=_list(parse_size, "sizes (416 or 416x256)"), default=None,
                   metavar="N|WxH[,...]", help="input size: N square or W x H, multiples of 32 "
                   "(default: the config's)")
    p.add_argument("--fill", type=_list(str, "fills"), default=None, metavar="letterbox|stretch[,...]",
                   help="how a frame goes into a non-matching input (default: detector.fill)")
    p.add_argument("--threads", type=_list(_threads, "thread counts"), default=None, metavar="N[,...]",
                   help=f"onnxruntime intra-op threads, 0 (auto) to {MAX_THREADS} (default: detector.threads)")
    p.add_argument("--spin", type=_list(_spin, "on/off/auto values"), default=None, metavar="on|off|auto[,...]",
                   help="let idle onnxruntime threads spin; auto = only with 2 cores to spare (default: auto)")
    p.add_argument("--load", action="store_true",
                   help="run the ultrasonic ranging and alert threads on simulated pins meanwhile")
    p.add_argument("--images", type=Path, default=None, metavar="DIR",
                   help="also compare person detections against the first case on these photos (untimed)")
    p.add_argument("--no-looming", action="store_true",
                   help="do not time looming (any-obstacle expansion) beside the detector")
    p.add_argument("--flow", action="store_true",
                   help="time flow (each track's scale at camera rate, [flow]) beside the detector, "
                        "on the first case's tracks")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=cmd_bench)

    r = sub.add_parser(
        "recall", help="recall by object height at a fixed precision on labelled photos, per input geometry",
        description="Run the detector over a COCO-format labelled set (default ../shared/images/coco-val-labelled) "
        "and report, per input geometry, the recall of a class by true box height (<32, 32-96, >96 px) at "
        "the operating point where precision is still --precision, with AP50 of that class and mAP50:95 "
        "over the labelled classes. Untimed: time geometries with `rearguard bench`.",
    )
    r.add_argument("--config", metavar="PATH", help="config TOML (detector model, thresholds, threads)")
    r.add_argument("--images", type=Path, default=None, metavar="DIR",
                   help="the labelled set: one COCO instances .json and its images (in DIR or DIR/val2017)")
    r.add_argument("--model", default=None, metavar="NAME|PATH", help="model (default: detector.model)")
    r.add_argument("--input-size", type=_list(parse_size, "sizes (416 or 416x256)"), default=None,
                   metavar="N|WxH[,...]", help="input geometries (default: the config's)")
    r.add_argument("--fill", type=_list(str, "fills"), default=None, metavar="letterbox|stretch[,...]",
                   help="how a photo goes into a non-matching input: letterbox (grey padding) or stretch "
                   "(default: letterbox)")
    r.add_argument("--class", dest="class_name", default="person", help="class to report (default: person)")
    r.add_argument("--precision", type=float, default=0.8, help="fixed precision (default: %(default)s)")
    r.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N photos (a quick look)")
    r.add_argument("--json", action="store_true", help="print JSON instead of lines")
    r.set_defaults(func=cmd_recall)


def cmd_recall(args: argparse.Namespace) -> int:
    from device.core.coco import class_id
    from device.perception.detector import FILLS, YoloxDetector
    from device.tools import recall

    try:
        cfg = load(args.config)
        d = cfg.detector
        directory = args.images if args.images is not None else shared_file("images", "coco-val-labelled")
        if directory is None:
            return _fail("no labelled photos: pass --images DIR (../shared/images/coco-val-labelled is not here)")
        class_id(args.class_name)
        if not 0 < args.precision < 1:
            return _fail(f"--precision {args.precision}: must be between 0 and 1")
        fills = args.fill or ["letterbox"]
        bad = [f for f in fills if f not in FILLS]
        if bad:
            return _fail(f"--fill {bad[0]!r}: one of {', '.join(FILLS)}")
        if (bad_size := _bad_size(args.input_size or [])) is not None:
            return _fail(bad_size)
        photos = recall.load_labels(directory)[: args.limit]
        path = _resolve(args.model or d.model)
        results = []
        for size in args.input_size or [d.input_size]:
            for fill in fills:
                geometry = f"{size_label(size)} {fill}"
                with YoloxDetector(path, input_size=size, fill=fill, score_threshold=recall.SCORE_FLOOR,
                                   nms_iou=d.nms_iou, threads=d.threads) as det:
                    found = recall.detect_all(det, photos)
                res = recall.score_set(photos, found, geometry, args.class_name, args.precision)
                results.append(res)
                if not args.json:
                    print(res.line(), flush=True)
    except KeyError:
        return _fail(f"--class {args.class_name!r} is not a COCO class name")
    except (recall.LabelError, ModelError, ConfigError, ValueError) as err:
        return _fail(str(err))
    if args.json:
        print(json.dumps([r.to_json() for r in results], indent=2))
    return 0
