"""`rearguard`: the command line. Every command builds its objects through
device.app.compose, the one composition root, so the device, a laptop and a replay
run the same loop."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any

from device import __version__
from device.core import config as config_file
from device.core.config import DEFAULT_PATHS, Config, ConfigError, config_path, load, to_toml
from device.view.terminal import format_event

EXIT_FAILURE = 1
EXIT_USAGE = 2  # bad config or arguments


def _config(args: argparse.Namespace) -> Config:
    return load(getattr(args, "config", None))


# ---------------------------------------------------------------- config


def cmd_config_check(args: argparse.Namespace) -> int:
    """Only the config: fast (no onnxruntime import), as it runs before every start.
    A missing model does not stop the device (it runs on what works, with FAULT)."""
    _config(args)  # a bad config raises ConfigError: main() names the key, exit 2
    where = (getattr(args, "config", None) or os.environ.get("REARGUARD_CONFIG")
             or next((str(p) for p in DEFAULT_PATHS if p.is_file()), "built-in defaults"))
    print(f"config ok ({where})")
    return 0


def cmd_config_show(args: argparse.Namespace) -> int:
    cfg = _config(args)
    read = config_path(getattr(args, "config", None))
    head = ("# the built-in defaults\n" if read == Path("/dev/null") else f"# read from {read}\n" if read is not None else
            f"# no config file ($REARGUARD_CONFIG unset, {' '.join(str(p) for p in config_file.DEFAULT_PATHS)} absent): "
            "the built-in defaults\n")
    if args.for_board is not None:
        from device.perception import boards
        from device.sensing.pi_health import read_model

        known = boards.load()
        try:
            if args.for_board == "auto":
                line = read_model(args.device_tree)
                board = known.for_device_tree(line) if line else None
                if board is None:
                    print(f"rearguard: no board profile for {line or 'this machine (no device tree model)'}: "
                          "the built-in defaults", file=sys.stderr)
            else:
                board = known.get(args.for_board)
        except (boards.BoardError, OSError) as err:  # OSError: --device-tree a FIFO or /dev/zero
            print(f"rearguard: {err}", file=sys.stderr)
            return EXIT_USAGE
        if board is not None:
            new = boards.with_defaults(cfg, board)
            if board.default_model is None:
                head += f"# {board.title}: no defaults of its own in device/perception/boards.toml\n"
            elif new.detector == cfg.detector:
                head += f"# {board.title}: detector.model and input size as this config sets them\n"
            else:
                head += (f"# {board.title}: detector.model and its input size are its defaults "
                        f"(device/perception/boards.toml: {board.default_why}); edit them to choose your own\n")
            if boards.flow_default_applies(cfg, board):
                head += (f"# {board.title}: flow.enabled is its default (device/perception/boards.toml: "
                         f"{board.default_flow_why})\n")
            if boards.min_rate_default_applies(cfg, board):
                head += (f"# {board.title}: pace.min_rate_hz is its default (device/perception/boards.toml: "
                         f"{board.default_min_rate_why})\n")
            cfg = new
    text = to_toml(cfg, described=True)
    if args.set:
        from device.core.config_edit import parse_assignment, set_values

        text = set_values(text, dict(parse_assignment(s) for s in args.set), "config show --set")
    print(head + text, end="")
    return 0


# ---------------------------------------------------------------- replay


def _preview_address(spec: str) -> tuple[str, int]:
    from device.view.preview import PreviewError, parse_address

    try:
        return parse_address(spec)
    except PreviewError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _duration(text: str) -> float:
    """--duration: a finite number of seconds above 0 (nan, inf and -5 are mistakes)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and 0 < value <= MAX_DURATION_S):
        raise argparse.ArgumentTypeError(
            f"must be a number of seconds above 0 and at most {MAX_DURATION_S:.0f} (got {text!r})"
        )
    return value


MAX_DURATION_S = 366 * 86_400.0  # a year: anything longer is a typo, and "no --duration" runs forever


PREVIEW_HELP = ("serve a live preview page (view, boxes, distances, sensor beams, level) on PORT of this "
                "machine only, or on ADDR:PORT (0.0.0.0:PORT = every network interface)")


def add_pace_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--board", metavar="NAME", default=None,
                   help="model the detector at this board's speed (pi5, pi4, zero2w, or with an AI accelerator "
                   "pi4-imx500, zero2w-imx500, pi5-hailo8l: device/perception/boards.toml, "
                   "for the configured model and input size): busy that long per frame, taking the newest frame "
                   "when free, as the device does; inline (the default) detects every frame at once")
    p.add_argument("--detector-ms", metavar="MS[,LATENCY_MS]", default=None,
                   help="model the detector as busy MS per frame, its result reaching the loop LATENCY_MS "
                   "(default MS) after the frame; overrides --board")
    p.add_argument("--detector-jitter", metavar="MS", type=float, default=0.0,
                   help="with --board or --detector-ms: each inference takes 0 to MS longer, drawn from a "
                   "generator seeded with --seed (an irregular, loaded detector; the same on every replay)")
    p.add_argument("--seed", type=int, default=0, help="seed for --detector-jitter (default 0)")


def recordings_in(directory: str) -> list[Path]:
    """The recordings DIR stands for: itself, or, for a directory that
    `run --record DIR` wrote (segments and no meta.json of its own), its
    segments in order."""
    from device.record.format import META
    from device.record.segments import SEGMENT_GLOB, segment_index

    d = Path(directory)
    try:
        if not d.is_dir() or (d / META).exists():
            return [d]
        segments = sorted((s for s in d.glob(SEGMENT_GLOB) if s.is_dir()), key=segment_index)
    except OSError:  # a name too long, no permission: opening it says so, naming the file
        return [d]
    return segments or [d]


VIEWER_GONE_S = 5.0  # a page that has asked nothing this long was closed (it asks twice a second)
FIRST_VIEWER_S = 60.0  # after a replay nobody watched, how long the preview waits for a first look


def linger(preview: Any, err: Any = sys.stderr, clock: Any = None, sleep: Any = None) -> None:
    """Keep the preview of a finished replay up (its last frame) while a
    viewer is looking: until the page has been closed for VIEWER_GONE_S,
    or, if nobody looked yet, FIRST_VIEWER_S for a first look. Ctrl-C stops."""
    import time

    clock = clock or time.monotonic
    sleep = sleep or time.sleep
    start = clock()
    print(f"replay done; the preview at {preview.url} keeps showing its last frame until the page is closed "
          "(Ctrl-C to stop; --exit-at-end not to wait)", file=err, flush=True)
    while True:
        seen = preview.last_request
        now = clock()
        if seen is None or seen < start:
            if now - start >= FIRST_VIEWER_S:
                return
        elif now - seen >= VIEWER_GONE_S:
            return
        sleep(0.25)


def cmd_replay(args: argparse.Namespace) -> int:
    from device.app.compose import start_preview
    from device.app.replay import pace_for, replay
    from device.perception.boards import BoardError
    from device.record.format import RecordingError
    from device.view.preview import PreviewError

    cfg = _config(args)
    try:
        pace = pace_for(args.board, cfg, args.detector_ms)
        if pace is not None and args.detector_jitter:
            pace = dataclasses.replace(pace, jitter_ms=args.detector_jitter, seed=args.seed)
    except ValueError as err:
        print(f"rearguard: --detector-jitter: {err}", file=sys.stderr)
        return EXIT_USAGE
    except BoardError as err:
        print(f"rearguard: {err}", file=sys.stderr)
        return EXIT_USAGE

    def progress(done: float, total: float) -> None:
        print(f"replay: {done:6.1f} / {total:.1f} s", file=sys.stderr, flush=True)

    targets = recordings_in(args.recording)
    preview = None
    try:
        preview = start_preview(args.preview)
    except PreviewError as err:  # the preview is optional: replay without it
        print(f"rearguard: replaying without the preview: {err}", file=sys.stderr)
    results = []
    try:
        for target in targets:
            if len(targets) > 1:
                print(f"replay: segment {target}", file=sys.stderr, flush=True)
            # A preview shows the recording at its own pace: as fast as the CPU
            # allows would be over before anyone saw it.
            results.append(replay(target, cfg, realtime=args.realtime or preview is not None, progress=progress,
                                  on_start=preview.show if preview is not None else None, pace=pace))
        if preview is not None and not args.exit_at_end:
            linger(preview)
    except (RecordingError, PreviewError) as err:
        print(f"rearguard: {err}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        if preview is not None:
            preview.close()
    if args.json:
        if len(targets) == 1:
            _print_warnings(results[0])
            print(json.dumps(results[0].to_json(), indent=2))
        else:  # a directory of segments: one object each, in order
            for r in results:
                _print_warnings(r)
            print(json.dumps({"segments": [{"recording": str(t), **r.to_json()} for t, r in zip(targets, results,
                                                                                                  strict=True)]},
                             indent=2))
        return 0
    for target, result in zip(targets, results, strict=True):
        _print_replay(Path(target) if len(targets) > 1 else Path(args.recording), result)
    return 0


def _print_warnings(result: Any) -> None:
    for w in result.warnings:  # what `recording info` would warn of, and what the replay skipped
        print(f"warning: {w}", file=sys.stderr)


def _print_replay(recording: Path, result: Any) -> None:
    _print_warnings(result)
    print(f"replayed {recording}: {result.duration_s:.1f} s, {result.frames} frames")
    if result.pace is not None:
        p = result.pace
        print(f"detector paced at {p['detector_ms']:g} ms a frame (result {p['latency_ms']:g} ms after it): "
              f"{p['detected']} frames detected, {p['dropped']} dropped")
    for f in result.static_faults:
        print(f"fault at start: {f}")
    if not result.events:
        print("no alerts: the path stayed clear")
    for e in result.events:
        print(format_event(e, result.start_ns))
    s = result.stats
    print(f"median detect {s['detect_ms'] if s['detect_ms'] is not None else '-'} ms, "
          f"median step with a frame {s['total_ms'] if s['total_ms'] is not None else '-'} ms")


# ---------------------------------------------------------------- run


def _video_problem(source: str) -> str | None:
    """Why a --source that names a video file cannot be played, or None.
    Said before the device starts: a typo would otherwise run as a camera
    FAULT and exit 0 at the file's "end"."""
    import cv2

    from device.app.compose import is_file_source

    if not is_file_source(source):
        return None  # a camera that is missing is a fault the device lives with (and retries)
    path = Path(source)
    if not path.exists():
        return f"video file not found: {path}"
    if not path.is_file():
        return f"not a video file: {path}"
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            return f"cannot read video file {path}: not a video OpenCV can decode"
    finally:
        cap.release()
    return None


def _writable(directory: Path) -> bool:
    d = directory
    while not d.exists() and d != d.parent:
        d = d.parent
    return os.access(d, os.W_OK | os.X_OK)


def _not_the_services_recordings(cfg: Config, record: str | None) -> Config:
    """A person running `rearguard run` on an installed Pi (hardware.md's live
    test) reads the service's config, whose recording.directory is the
    service's own (/var/lib/rearguard/recordings, not writable by them):
    run without recording and say so, rather than play a recording FAULT.
    Under the service an unwritable directory stays a fault."""
    from device.app.service_hint import under_the_service

    directory = cfg.recording.directory
    if record or not directory or under_the_service() or _writable(Path(directory)):
        return cfg
    print(f"rearguard: not recording: {directory} (recording.directory) is not writable by you (the service's "
          "own?); --record DIR records elsewhere", file=sys.stderr)
    return cfg.model_copy(update={"recording": cfg.recording.model_copy(update={"directory": ""})})


def cmd_run(args: argparse.Namespace) -> int:
    from device.app.live import RunOptions, run_device
    from device.view.preview import PreviewError

    cfg = _config(args)
    if (problem := _video_problem(args.source)) is not None:
        print(f"rearguard: --source: {problem}", file=sys.stderr)
        return EXIT_USAGE
    cfg = _not_the_services_recordings(cfg, args.record)
    logging.getLogger().setLevel(logging.INFO if not args.quiet else logging.WARNING)
    opts = RunOptions(source=args.source, record=args.record, mock_pins=args.mock_pins,
                      duration=args.duration, preview=args.preview, self_test=not args.no_self_test,
                      preview_for=args.preview_for)
    try:
        return run_device(cfg, opts)
    except PreviewError as err:
        print(f"rearguard: {err}", file=sys.stderr)
        return EXIT_FAILURE


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    from device.cli import aim as cli_aim
    from device.cli import bench as cli_bench
    from device.cli import calibrate as cli_calibrate
    from device.cli import check as cli_check
    from device.cli import models as cli_models
    from device.cli import recording as cli_recording
    from device.cli import runs as cli_runs
    from device.cli import scenario as cli_scenario

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", help="config TOML (default: $REARGUARD_CONFIG, "
                        "else /etc/rearguard/config.toml if present, else built-in defaults)")
    parser = argparse.ArgumentParser(
        prog="rearguard",
        description="Rear-obstacle alert for backward runners: rear camera + ultrasonic -> haptic and buzzer.",
    )
    parser.add_argument("--version", action="version", version=f"rearguard {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", parents=[common], help="run the device loop (Pi, webcam or video file)",
                       description="Run the alert loop live. On a laptop use --mock-pins (or "
                       "GPIOZERO_PIN_FACTORY=mock): outputs go to simulated pins and the simulated "
                       "ultrasonic sensors answer 'nothing in range'.")
    p.add_argument("--source", default="pi", metavar="pi|webcam|N|VIDEO",
                   help="pi = Raspberry Pi camera (default), webcam or N = webcam index, or a video file")
    p.add_argument("--record", metavar="DIR", help="record the video and the sensor log as segments in DIR "
                   "(within [recording] budget_mb and min_free_mb; default: recording.directory, if set)")
    p.add_argument("--no-self-test", action="store_true",
                   help="skip the start-up greeting and self-test (each part is still watched while running)")
    p.add_argument("--mock-pins", action="store_true", help="simulated pins (same as GPIOZERO_PIN_FACTORY=mock)")
    p.add_argument("--duration", type=_duration, metavar="S", help="stop after S seconds (S > 0)")
    p.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    p.add_argument("--preview", type=_preview_address, metavar="[ADDR:]PORT", help=PREVIEW_HELP)
    p.add_argument("--preview-for", type=_duration, metavar="S",
                   help="with --preview: stop serving it after S seconds (the device runs on; `rearguard aim`)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("replay", parents=[common], help="replay a recording through the full pipeline",
                       description="Replay a recording through the same pipeline the device runs, on a "
                       "replay clock and simulated pins: the same recording gives the same alerts every time.")
    p.add_argument("recording", metavar="DIR", help="a recording, or a directory `run --record` wrote "
                   "(its segments are replayed in order)")
    p.add_argument("--json", action="store_true", help="print one JSON object: frames, events, stats")
    p.add_argument("--realtime", action="store_true", help="pace the replay to the recording's own time")
    p.add_argument("--preview", type=_preview_address, metavar="[ADDR:]PORT",
                   help=PREVIEW_HELP + "; the replay then runs at the recording's own pace, and its last frame "
                   "stays up until the page is closed")
    p.add_argument("--exit-at-end", action="store_true",
                   help="with --preview: stop serving as soon as the replay ends")
    add_pace_options(p)
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("config", help="show the effective configuration")
    csub = p.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    show = csub.add_parser("show", parents=[common], help="print the effective config as TOML")
    show.add_argument("--for-board", metavar="NAME|auto", default=None,
                      help="with the detector model and input size this board should use (pi5, pi4, zero2w: "
                      "device/perception/boards.toml) where the config sets neither; auto: the board "
                      "--device-tree names (scripts/install-pi.sh writes its config this way)")
    show.add_argument("--device-tree", metavar="FILE", type=Path, default=Path("/proc/device-tree/model"),
                      help="the device tree's model file, for --for-board auto (default: %(default)s)")
    show.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                      help="print it with KEY (section.key) set to VALUE, a TOML value or a plain string; "
                      "repeatable (scripts/install-pi.sh sets the recording defaults this way)")
    show.set_defaults(func=cmd_config_show)

    check = csub.add_parser(
        "check", parents=[common], help="check the config; exit 2 naming the key if it is bad",
        description="Load the config as `run` would and say what is wrong with it (exit 2, one line per bad "
        "key). The service runs it before the device "
        "(ExecStartPre=), so a typo is named in the journal; systemd then starts the not-protecting fallback.")
    check.set_defaults(func=cmd_config_check)

    for module in (cli_models, cli_recording, cli_scenario, cli_bench, cli_check, cli_runs, cli_calibrate, cli_aim):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except ConfigError as err:
        print(f"rearguard: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `rearguard ... | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
