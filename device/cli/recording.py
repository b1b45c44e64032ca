"""`rearguard recording ...`: make a recording from any video, and describe one.

cli.py calls `register(sub)` with its subparsers and then `sys.exit(args.func(args))`.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from device.record.format import DEFAULT_SENSOR, NS_PER_S, Recording, RecordingError, from_video
from device.record.incidents import find_clips, read_incident


def register(sub: argparse._SubParsersAction) -> None:
    rec = sub.add_parser("recording", help="make or inspect recordings (docs/recording-format.md)")
    rec_sub = rec.add_subparsers(dest="recording_command", metavar="COMMAND", required=True)

    fv = rec_sub.add_parser(
        "from-video",
        help="turn any video (and optionally an ultrasonic log) into a recording",
        description="Re-encode VIDEO into the recording directory DIR (MJPG AVI, frame times from "
        "the frame rate) and add ultrasonic readings from a CSV: Rearguard's own "
        "t_ns,sensor,metres[,fault] or an HC-SR04 serial log Timestamp,Distance_cm.",
    )
    fv.add_argument("video", metavar="VIDEO", help="any video file OpenCV can read")
    fv.add_argument("dir", metavar="DIR", help="new (or empty) directory to write the recording to")
    fv.add_argument("--ranges", metavar="CSV", help="ultrasonic readings to add")
    fv.add_argument("--fps", type=float, help="frame rate (default: the video's own)")
    fv.add_argument("--hfov", type=float, default=66.0, metavar="DEG",
                    help="camera horizontal field of view in degrees (default 66)")
    fv.add_argument("--mount-height", type=float, metavar="M",
                    help="the camera's height above the ground in metres, kept in the recording "
                         "(default: not recorded; a replay then uses its config's camera.mount_height_m)")
    fv.add_argument("--pitch", type=float, metavar="DEG",
                    help="the camera's tilt below horizontal in degrees, kept in the recording "
                         "(default: not recorded; a replay then uses its config's camera.pitch_deg)")
    fv.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    fv.add_argument("--ranges-offset", type=float, default=0.0, metavar="S",
                    help="seconds into the video at which the first reading belongs (default 0)")
    fv.set_defaults(func=cmd_from_video)

    info = rec_sub.add_parser("info", help="check a recording and summarise it")
    info.add_argument("dir", metavar="DIR", help="recording directory")
    info.add_argument("--no-decode", action="store_true",
                      help="skip decoding every frame to find bad ones (about 2 ms a frame)")
    info.set_defaults(func=cmd_info)

    inc = rec_sub.add_parser(
        "incidents", help="list the incident clips kept around every WARN and DANGER",
        description="List the incident clips in DIR/incidents (DIR: the directory `run --record` or "
        "recording.directory wrote to): when, the level, what raised it, its length and its path. "
        "Each clip is a recording of its own: `rearguard replay PATH` replays it.",
    )
    inc.add_argument("dir", metavar="DIR", help="recording directory (or its incidents folder)")
    inc.set_defaults(func=cmd_incidents)


def _fail(err: Exception) -> int:
    print(f"rearguard: {err}", file=sys.stderr)
    return 1


def cmd_from_video(args: argparse.Namespace) -> int:
    tty = sys.stderr.isatty()

    def progress(done: int, total: int | None) -> None:
        if tty and (done % 25 == 0 or done == total):
            of = f"/{total}" if total else ""
            print(f"\rconverting: {done}{of} frames", end="", file=sys.stderr, flush=True)

    try:
        out = from_video(
            args.video, args.dir, ranges_csv=args.ranges, fps=args.fps, hfov_deg=args.hfov,
            mount_height_m=args.mount_height, pitch_deg=args.pitch, sensor=DEFAULT_SENSOR,
            max_frames=args.max_frames, start_offset_s=args.ranges_offset,
            progress=progress,
        )
        rec = Recording.open(out)
    except (RecordingError, OSError) as err:
        if tty:
            print(file=sys.stderr)
        return _fail(err)
    if tty:
        print(file=sys.stderr)
    print(f"wrote {out}: {rec.frame_count} frames, {len(rec.ranges)} ranges, {rec.duration_s:.2f} s")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    try:
        rec = Recording.open(args.dir)
    except (RecordingError, OSError) as err:
        return _fail(err)
    m = rec.meta
    cam = m.camera
    print(f"recording  {rec.directory}")
    print(f"source     {m.source}")
    print(f"created    {m.created}")
    print(f"camera     {cam.width}x{cam.height} at {cam.fps:g} fps, hfov {cam.hfov_deg:g} deg")
    if cam.mount_height_m is not None or cam.pitch_deg is not None:
        print("mount      " + ", ".join(f"{k} {v:g}" for k, v in (("height m", cam.mount_height_m),
                                                                    ("pitch deg", cam.pitch_deg)) if v is not None))
    print(f"frames     {rec.frame_count}")
    print(f"duration   {rec.duration_s:.2f} s")
    for s in m.sensors:
        print(f"sensor     {s.name}: bearing {s.bearing_deg:g} deg, beam {s.beam_deg:g} deg, "
              f"max {s.max_distance_m:g} m")
    if not m.sensors:
        print("sensors    none")
    kinds = Counter("fault" if r.fault else "no echo" if r.metres is None else "echo" for r in rec.ranges)
    detail = ", ".join(f"{kinds[k]} {k}" for k in ("echo", "no echo", "fault") if kinds[k])
    print(f"ranges     {len(rec.ranges)}" + (f" ({detail})" if detail else ""))
    if rec.truth is None:
        print("truth      none")
    else:
        contact = "none" if rec.truth.contact_s is None else f"{rec.truth.contact_s:g} s"
        print(f"truth      contact {contact}, {len(rec.truth.clear)} clear interval(s)")
    for w in rec.warnings:
        print(f"warning    {w}")
    # Every frame is decoded (open() decodes only the first): a replay skips
    # a bad frame as a camera fault, and this is where to find them first.
    if args.no_decode:
        return 0
    bad = rec.bad_frames()
    for b in bad[:20]:
        print(f"bad frame  {b.reason} (seq {b.seq}, at {(b.t_ns - rec.start_ns) / 1e9:.2f} s)")
    if len(bad) > 20:
        print(f"bad frame  ... {len(bad) - 20} more")
    print(f"decoded    {rec.frame_count - len(bad)} of {rec.frame_count} frames"
          + (f"; {len(bad)} cannot be decoded (replay skips them as a camera fault)" if bad else ""))
    return 0


def cmd_incidents(args: argparse.Namespace) -> int:
    try:
        found = find_clips(args.dir)
    except (RecordingError, OSError) as err:
        return _fail(err)
    rows, status = [], 0
    for p in found:  # one damaged clip hides no other
        try:
            rows.append((read_incident(p), p))
        except RecordingError as err:
            print(f"rearguard: {err}", file=sys.stderr)
            status = 1
    if not rows:
        print(f"no incident clips in {args.dir}")
        return status
    print(f"{'time (UTC)':<23}  {'level':<6}  {'source':<10}  {'length':>7}  path  what")
    for info, path in rows:
        try:
            length = Recording.open(path).duration_s  # what the clip holds (less if recording began later)
        except RecordingError as err:
            print(f"warning    {err}", file=sys.stderr)
            length = (info.end_ns - info.start_ns) / NS_PER_S
        print(f"{info.time[:23].replace('T', ' '):<23}  {info.level:<6}  {info.source:<10}  {length:>6.1f}s  {path}"
              + (f"  {info.what}" if info.what else ""))
    return status
