"""`rearguard scenario ...` (make and list scenario recordings) and
`rearguard evaluate DIR...` (score the alerts against their ground truth).

cli.py calls `register(sub)` with its subparsers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from device.core.config import ConfigError, from_dict, load
from device.perception.boards import size_label


def register(sub: argparse._SubParsersAction) -> None:
    sc = sub.add_parser("scenario", help="make scenario recordings with ground truth from photos")
    sc_sub = sc.add_subparsers(dest="scenario_command", metavar="COMMAND", required=True)

    mk = sc_sub.add_parser(
        "make", help="build a scenario suite (or some of it) as recordings with truth.json",
        description="Build recordings with truth.json and a simulated HC-SR04 log. Two suites: "
        "`photos` (the default) zooms into a real photo about the obstacle (people crossing, clear "
        "paths); `scenes` renders a 3D world of textured planes and photo cut-outs (walls, posts, "
        "fences, benches, people, cyclists, dogs; things beside the path; a curve) through the "
        "configured camera of a runner who bobs and sways (docs/scenes.md); `hazards` renders the same "
        "way fast head-on closers, crossings, side passes, people ahead going the same way and "
        "things stepping in close, each also with twice the bob and sway. "
        "`rearguard scenario list [--suite scenes]` names them.",
    )
    mk.add_argument("out", metavar="OUT_DIR", help="directory to write one recording per scenario into")
    mk.add_argument("--images", required=True, metavar="DIR",
                    help="the photos the suite names (the shared COCO photos: ../shared/images/coco)")
    mk.add_argument("--suite", choices=("photos", "scenes", "hazards", "far"), default="photos",
                    help="which suite (default photos: the zoomed-photo suite)")
    mk.add_argument("--only", nargs="+", metavar="NAME", help="make only these scenarios")
    mk.add_argument("--size", metavar="WxH",
                    help="frame size (default: the config's camera size, 640x360 built in)")
    mk.add_argument("--fps", type=float, help="frame rate (default: the config's camera fps, 15 built in)")
    mk.add_argument("--hfov", type=float, metavar="DEG",
                    help="virtual camera's horizontal field of view (default: the config's camera.hfov_deg, "
                    "66 built in: the Camera Module 3)")
    mk.add_argument("--config", metavar="PATH",
                    help="the camera (size, fps, hfov; scenes also its mount height and pitch, and the "
                    "ultrasonic beam) to make the recordings for (default: as for `run`)")
    mk.add_argument("--jobs", type=int, default=1, metavar="N",
                    help="scenes: render N scenes at a time (default 1)")
    mk.add_argument("--ultrasonic-log", metavar="CSV",
                    help="fit the sensor noise to this HC-SR04 log (default: the model fitted to "
                    "../shared/ultrasonic/hcsr04_log.csv, built in)")
    mk.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    mk.set_defaults(func=cmd_make)

    ft = sc_sub.add_parser(
        "footage", help="cut labelled real footage into recordings with truth.json",
        description="Cut the clips a labels file names (default: device/tools/labels/"
        "market_street_1906_part2.json, a 1906 street film from the front of a cable car) out of the "
        "video into recordings with truth.json, for `rearguard evaluate`.",
    )
    ft.add_argument("out", metavar="OUT_DIR", help="directory to write one recording per clip into")
    ft.add_argument("--video", default=None, metavar="PATH",
                    help="the video (default: ../shared/footage/ and the file the labels name)")
    ft.add_argument("--labels", default=None, metavar="JSON", help="the labels file (default: the market street one)")
    ft.set_defaults(func=cmd_footage)

    ls = sc_sub.add_parser("list", help="list a suite's scenarios")
    ls.add_argument("--suite", choices=("photos", "scenes", "hazards", "far"), default="photos",
                    help="which suite (default photos)")
    ls.set_defaults(func=cmd_list)

    ev = sub.add_parser(
        "evaluate", help="replay recordings with truth.json and score the alerts",
        description="Replay each recording (or each recording inside a directory) through the "
        "device's pipeline and score it against truth.json: lead time before contact, missed "
        "contacts, false-alarm seconds in clear windows, level changes per minute.",
    )
    ev.add_argument("dirs", nargs="+", metavar="DIR", help="recordings, or directories of recordings")
    ev.add_argument("--config", metavar="PATH", help="config file (default: as for `run`)")
    ev.add_argument("--json", action="store_true", help="print JSON: scenarios and summary")
    ev.add_argument("--plot", metavar="OUT.png", help="draw distance, TTC and level per scenario (needs matplotlib); "
                    "with several boards one plot each, OUT-BOARD.png")
    ev.add_argument("--board", metavar="NAME[,NAME...]", default=None,
                    help="score with the detector modelled at each board's speed (pi5, pi4, zero2w, inline; with an "
                    "AI accelerator pi4-imx500, zero2w-imx500, pi5-hailo8l; "
                    "device/perception/boards.toml): a table each, and --json keyed by board")
    ev.add_argument("--detector-ms", metavar="MS[,LATENCY_MS]", default=None,
                    help="score with the detector modelled as busy MS per frame (instead of --board)")
    ev.set_defaults(func=cmd_evaluate)


def _fail(err: Exception, code: int = 1) -> int:
    print(f"rearguard: {err}", file=sys.stderr)
    return code


EXIT_USAGE = 2  # a bad config, as for every command


def cmd_list(args: argparse.Namespace) -> int:
    if args.suite in ("scenes", "hazards", "far"):
        from device.tools.scene.far import FAR
        from device.tools.scene.suite import SUITES

        for sc in (FAR if args.suite == "far" else SUITES[args.suite]):
            what = f"{sc.label} from {sc.start_m:g} m" if sc.kind == "approach" else (
                f"{sc.label} at {sc.cross_mps:g} m/s, line {sc.entry_gap_m:g} m ahead at {sc.entry_s:g} s"
                if sc.kind in ("crossing", "step-in") else
                f"{sc.duration_s:g} s" + (f", {sc.label} at {sc.start_m:g} m" if sc.obstacle != "none" else ""))
            print(f"{sc.name:<22} {sc.kind:<9} {sc.closing_mps:>4g} m/s closing  {what:<22}"
                  + (f"  ({sc.note})" if sc.note else ""))
        return 0
    from device.tools.scenario import SUITE

    for s in SUITE:
        what = f"{s.photo.label} from {s.d0_m:g} m" if s.kind == "approach" else s.kind
        print(f"{s.name:<26} {s.kind:<9} {s.speed_mps:>4g} m/s  {what:<24} ultrasonic {s.ultrasonic}"
              + (f"  ({s.note})" if s.note else ""))
    return 0


def cmd_make(args: argparse.Namespace) -> int:
    from device.record.format import RecordingError
    from device.tools.scenario import NoiseModel, ScenarioError, VirtualCamera, make_suite

    size = None
    if args.size is not None:
        try:
            w, h = (int(v) for v in args.size.lower().split("x"))
            if w < 64 or h < 48:
                raise ValueError
        except ValueError:
            return _fail(ValueError(f"--size must be WIDTHxHEIGHT of at least 64x48, got {args.size!r}"))
        size = (w, h)
    if (args.fps is not None and not 1 <= args.fps <= 120) or (args.hfov is not None and not 10 < args.hfov < 170):
        return _fail(ValueError("--fps must be within 1-120 and --hfov within 10-170 degrees"))
    if args.jobs < 1:
        return _fail(ValueError(f"--jobs must be at least 1, got {args.jobs}"))
    progress = lambda spec, path: print(f"made {path}", file=sys.stderr)  # noqa: E731
    try:
        cfg = load(args.config)  # photos too: the configured camera is the default (issue 23)
    except ConfigError as err:
        return _fail(err, EXIT_USAGE)
    try:
        noise = NoiseModel.fit(args.ultrasonic_log) if args.ultrasonic_log else NoiseModel()
        if args.suite in ("scenes", "hazards", "far"):
            from device.tools.scene.far import make_far
            from device.tools.scene.suite import make_suite as make_scenes

            camera: dict[str, object] = {}
            if size is not None:
                camera["width"], camera["height"] = size
            if args.fps is not None:
                camera["fps"] = round(args.fps)
            if args.hfov is not None:
                camera["hfov_deg"] = args.hfov
            if camera:  # validated as if written in the config file
                data = cfg.model_dump(mode="python")
                data["camera"].update(camera)
                cfg = from_dict(data, "--size/--fps/--hfov")
            if args.suite == "far":  # far approaches, for the acquisition distances
                made = make_far(args.images, args.out, names=args.only, config=cfg, noise=noise, seed=args.seed,
                                progress=progress)
            else:
                made = make_scenes(args.images, args.out, names=args.only, config=cfg, noise=noise, seed=args.seed,
                                   jobs=args.jobs, progress=progress, which=args.suite)
        else:
            c = cfg.camera
            w, h = size or (c.width, c.height)
            cam = VirtualCamera(width=w, height=h, fps=args.fps or float(c.fps), hfov_deg=args.hfov or c.hfov_deg)
            made = make_suite(args.images, args.out, names=args.only, cam=cam, noise=noise, seed=args.seed,
                              progress=progress)
    except (ScenarioError, RecordingError, ConfigError, OSError) as err:
        return _fail(err)
    print(f"{len(made)} scenario recordings in {args.out}")
    return 0


def cmd_footage(args: argparse.Namespace) -> int:
    from device.record.format import RecordingError
    from device.tools.footage import MARKET_STREET, load_labels, make_footage
    from device.tools.scenario import ScenarioError

    try:
        labels = Path(args.labels) if args.labels else MARKET_STREET
        video = args.video or str(Path("..") / "shared" / "footage" / str(load_labels(labels).get("video", "")))
        made = make_footage(video, args.out, labels,
                            progress=lambda name, path: print(f"made {path}", file=sys.stderr))
    except (ScenarioError, RecordingError, OSError) as err:
        return _fail(err)
    print(f"{len(made)} footage recordings in {args.out}")
    return 0


def _num(x: float | None, unit: str = "") -> str:
    return "-" if x is None else f"{x:.2f}{unit}"


def cmd_evaluate(args: argparse.Namespace) -> int:
    from device.tools.evaluate import EvaluationError, evaluate, hazard_rows, plot

    try:
        cfg = load(args.config)
    except ConfigError as err:
        return _fail(err, EXIT_USAGE)
    if args.plot:  # fail before a long replay, not after it
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            return _fail(EvaluationError(
                "--plot needs matplotlib: pip install 'rearguard[plot]' (or pip install matplotlib)"))
    from device.app.replay import pace_for
    from device.perception.boards import BoardError

    try:
        if args.detector_ms is not None:  # one made-up board
            paces = {f"{args.detector_ms}ms": pace_for(None, cfg, args.detector_ms)}
        elif args.board:
            paces = {name: pace_for(name, cfg) for name in dict.fromkeys(b.strip() for b in args.board.split(","))}
        else:
            paces = {"inline": None}
    except BoardError as err:
        return _fail(err)
    keyed = args.board is not None or args.detector_ms is not None
    results: dict[str, Any] = {}
    status = 0
    plots: list[str] = []
    for name, pace in paces.items():
        label = f" [{name}]" if keyed else ""
        try:
            def progress(rec: str, label: str = label) -> None:
                print(f"replaying {rec}{label}", file=sys.stderr)

            ev = evaluate(args.dirs, cfg, pace=pace, progress=progress)
            if args.plot:
                out = args.plot if len(paces) == 1 else _plot_name(args.plot, str(name))
                plot(ev, out)
                plots.append(out)
        except EvaluationError as err:
            return _fail(err)
        data = ev.to_json()
        for rec_name, why in ev.failed:
            print(f"rearguard: {rec_name} not scored{label}: {why}", file=sys.stderr)
            status = 1
        if ev.failed and not args.json:
            print(f"{len(ev.failed)} recording(s) not scored (see above); the figures are for the other "
                  f"{len(ev.scores)}")
        if keyed:  # without --board the JSON keeps its old shape
            data["pace"] = ({"detector_ms": pace.busy_ms, "latency_ms": pace.latency_ns / 1e6,
                             "detections_per_s": round(pace.rate_hz, 2)} if pace is not None else None)
        hazards = hazard_rows(ev)
        if hazards:
            data["hazards"] = hazards
        results[str(name)] = data
        if not args.json:
            if keyed:
                how = ("inline: every frame detected at once" if pace is None else
                       f"detector {pace.busy_ms:g} ms a frame ({pace.rate_hz:.1f} detections/s at most), "
                       f"{cfg.detector.model} at {size_label(cfg.detector.input_geometry)}")
                print(f"== board {name}: {how}")
            _print_table(ev, data)
            if hazards:
                _print_hazards(hazards)
    if args.json:
        print(json.dumps(results if keyed else results["inline"], indent=2))
        return status
    for out in plots:
        print(f"plot: {out}")
    return status


def _print_hazards(rows: list[dict[str, Any]]) -> None:
    """The hazards suite, each judged by its kind's own measure (evaluate.hazard_rows)."""
    print(f"{'hazard':<26} {'kind':<9} {'m/s':>4} {'lead':>6} {'WARN s':>6} {'DANGER':>6} {'top':<7} target")
    for r in rows:
        lead = "MISSED" if r["kind"] in ("approach", "crossing") and r["target"].startswith(("lead", "warned")) \
            and r["lead_s"] is None else _num(r["lead_s"])
        print(f"{r['name']:<26} {r['kind']:<9} {_num(r['speed_mps']):>4} {lead:>6} {r['warn_s']:6.2f} "
              f"{_num(r.get('danger_after_s')):>6} {r['max_level']:<7} {r['target']}: "
              + ("met" if r["ok"] else "NOT met"))
    bad = sum(1 for r in rows if not r["ok"])
    print(f"hazards: {len(rows) - bad} of {len(rows)} targets met")


def _plot_name(out: str, board: str) -> str:
    p = Path(out)
    return str(p.with_name(f"{p.stem}-{board}{p.suffix or '.png'}"))


def _print_acquisition(ev: Any) -> None:
    """True distance of each approach when it first became an in-path camera
    candidate and when WARN first came."""
    rows = [s for s in ev.scores if s.contact_s is not None]
    if not rows:
        return
    print(f"{'acquisition':<26} {'label':>8} {'m/s':>5} {'camera at':>9} {'WARN at':>8}")
    for s in rows:
        print(f"{s.name:<26} {str(s.label or '-'):>8} {_num(s.speed_mps):>5} "
              f"{_num(s.first_candidate_m, ' m'):>9} {_num(s.first_warn_m, ' m'):>8}")


def _print_table(ev: Any, data: dict[str, Any]) -> None:
    print(f"{'scenario':<26} {'contact':>8} {'1st WARN':>8} {'lead':>6} {'false':>6} {'clear':>6} {'flick/min':>9}")
    for s in ev.scores:
        print(f"{s.name:<26} {_num(s.contact_s):>8} {_num(s.first_warn_s):>8} "
              f"{('MISSED' if s.missed else _num(s.lead_s)):>6} {s.false_alarm_s:6.2f} {s.clear_s:6.1f} "
              f"{s.flicker_per_min:9.1f}")
    sm = data["summary"]
    print(f"min lead {_num(sm['min_lead_s'], ' s')}, median lead {_num(sm['median_lead_s'], ' s')}, "
          f"missed {sm['missed']}, false alarms {sm['false_alarm_s']:.2f} s of {sm['clear_s']:.1f} s clear, "
          f"{sm['flicker_per_min']:.1f} level changes/min")
    _print_acquisition(ev)
    tg = sm["targets"]
    print("targets: lead >= 2 s at <= 3 m/s " + ("met" if tg["lead_at_or_below_3mps_ok"] else f"NOT met ({', '.join(tg['short_lead'])})")
          + "; no missed contact " + ("met" if tg["no_missed_contact"] else "NOT met")
          + "; false alarms <= 1 % of clear time " + ("met" if tg["false_alarm_ok"] else "NOT met"))
