"""`rearguard models ...`: install, fetch, list and verify detector models, and
build the derived ones (dynamic input size, int8).

cli.py calls `register(sub)`; each handler returns an exit status (0 ok,
1 failed) and reports a failure as one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from device.core.config import DEFAULT_INPUT_SIZE
from device.model_store import store as models
from device.perception.detector import ModelError

PROG = "rearguard models"


def _fail(msg: str) -> int:
    print(f"{PROG}: error: {msg}", file=sys.stderr)
    return 1


def _guarded(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn the errors a person can act on into one stderr line and status 1."""

    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except ModelError as err:
            return _fail(str(err))
        except OSError as err:  # e.g. the models directory is not writable
            where = f" ({err.filename})" if err.filename else ""
            return _fail(f"{err.strerror or err}{where}")

    run.__name__ = fn.__name__
    run.__doc__ = fn.__doc__
    return run


@_guarded
def cmd_install(args: argparse.Namespace) -> int:
    path = models.install(Path(args.path), args.name)
    print(f"installed {args.name}: {path}")
    return 0


@_guarded
def cmd_fetch(args: argparse.Namespace) -> int:
    path = models.fetch(args.name, allow_unverified=args.allow_unverified, timeout=args.timeout)
    ok = models.verify(path) in models.spec(args.name).accepted()
    print(f"{'installed' if ok else 'installed UNVERIFIED'} {args.name}: {path}")
    return 0


@_guarded
def cmd_list(args: argparse.Namespace) -> int:
    directory = models.models_dir()
    print(f"models directory: {directory}" + "".join(f" (then {d})" for d in models.search_dirs()[1:]))
    have = {m.name: m for m in models.installed()}
    for name, s in sorted(models.manifest().items()):
        m = have.get(name)
        if m is None:
            status = "not installed"
        elif m.verified:
            status = f"installed, verified ({m.path})"
        else:
            status = f"installed, UNVERIFIED sha256 {m.sha256} ({m.path})"
        print(f"{name:<19} {status}\n{'':<19} {s.description} [{s.licence}]")
        for kind, what in (("dynamic", "any input size (`rearguard models dynamic`)"),
                           ("int8", "int8, any input size (`rearguard models quantize`)")):
            dname = models.derived_name(name, kind)
            d = have.get(dname)
            if d is None:
                status = "not built"
            elif d.verified:
                status = f"built, matches its build record ({d.path})"
            else:
                status = f"built, does NOT match its build record: rebuild ({d.path})"
            print(f"{dname:<19} {status}\n{'':<19} derived from {name}: {what}")
    return 0


def _shared_images() -> Path | None:
    """../shared/images/coco (the development photos) if present."""
    from device.tools.shared import shared_file

    d = shared_file("images", "coco")
    return d if d is not None and d.is_dir() else None


def _describe(d: models.Derived) -> str:
    return (
        f"built {d.name}: {d.path} (sha256 {d.sha256}, {d.size:,} bytes; from {d.base} "
        f"sha256 {d.base_sha256[:12]}..., onnx {d.tools.get('onnx')}, onnxruntime {d.tools.get('onnxruntime')})"
    )


@_guarded
def cmd_dynamic(args: argparse.Namespace) -> int:
    from device.model_store import derive as variants

    print(_describe(variants.build("dynamic", args.base, source=args.source)))
    return 0


@_guarded
def cmd_quantize(args: argparse.Namespace) -> int:
    from device.model_store import derive as variants

    directory = args.images if args.images is not None else _shared_images()
    if directory is None:
        return _fail("no calibration images: pass --images DIR (a folder of everyday photos, ideally with people)")
    files = variants.image_files(directory)
    if args.count > 0:
        # Spread the picks over the folder rather than taking its first N.
        step = max(1, len(files) // args.count)
        files = files[::step][: args.count]

    def progress(what: str, done: int, total: int) -> None:
        print(f"{what}: {done}/{total}", file=sys.stderr, end="\r" if done < total else "\n", flush=True)

    built = variants.build(
        "int8", args.base, source=args.source, images=files, input_size=args.input_size,
        float_convs=args.float_convs, progress=progress,
    )
    print(_describe(built) + f"; calibrated on {len(files)} images from {directory}")
    return 0


@_guarded
def cmd_verify(args: argparse.Namespace) -> int:
    if args.path is not None:
        digest = models.verify(args.path)
        name = models.identify(digest)
        if name is None:
            return _fail(f"{args.path}: sha256 {digest} is not a model the manifest knows")
        print(f"{args.path}: ok, {name} (sha256 {digest})")
        return 0
    found = models.installed()
    if not found:
        return _fail(f"no models installed in {' or '.join(map(str, models.search_dirs()))}; "
                     "run `rearguard models fetch`")
    bad = [m for m in found if not m.verified]
    for m in found:
        print(f"{m.name}: {'ok' if m.verified else 'MISMATCH'} {m.path} (sha256 {m.sha256})")
    if bad:
        derived = [m for m in bad if models.split_derived(m.name) is not None]
        base = [m for m in bad if m not in derived]
        msgs = []
        if base:
            msgs.append(
                f"{', '.join(m.name for m in base)} does not match the manifest; reinstall with "
                "`rearguard models fetch` or `rearguard models install PATH`"
            )
        for m in derived:
            try:
                models.check_derived(m.name)
            except ModelError as err:
                msgs.append(str(err))
        return _fail("; ".join(msgs))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `models` and its subcommands to the main parser's subparsers."""
    p = sub.add_parser("models", help="install, fetch, list and verify detector models")
    msub = p.add_subparsers(dest="models_command", metavar="COMMAND", required=True)

    i = msub.add_parser("install", help="install a local model file after checking its sha256")
    i.add_argument("path", metavar="PATH", help="the .onnx file to install")
    i.add_argument("--name", default=models.DEFAULT_MODEL, help="manifest name (default: %(default)s)")
    i.set_defaults(func=cmd_install)

    f = msub.add_parser("fetch", help="download a model from its manifest sources")
    f.add_argument("name", nargs="?", default=models.DEFAULT_MODEL, metavar="NAME",
                   help="manifest name (default: %(default)s)")
    f.add_argument("--allow-unverified", action="store_true",
                   help="accept a download from a source the manifest has no sha256 for")
    f.add_argument("--timeout", type=float, default=models.FETCH_TIMEOUT_S,
                   help="network timeout per source, seconds (default: %(default)s)")
    f.set_defaults(func=cmd_fetch)

    ls = msub.add_parser("list", help="known models and whether each is installed")
    ls.set_defaults(func=cmd_list)

    d = msub.add_parser("dynamic", help="build <base>_dynamic: the base model with any input size")
    d.add_argument("base", nargs="?", default=models.DEFAULT_MODEL, metavar="BASE",
                   help="manifest name of the base model (default: %(default)s)")
    d.add_argument("--from", dest="source", default=None, metavar="PATH",
                   help="build from this base file instead of the installed one (must be a trusted copy)")
    d.set_defaults(func=cmd_dynamic)

    q = msub.add_parser("quantize", help="build <base>_int8: statically quantised, any input size")
    q.add_argument("base", nargs="?", default=models.DEFAULT_MODEL, metavar="BASE",
                   help="manifest name of the base model (default: %(default)s)")
    q.add_argument("--from", dest="source", default=None, metavar="PATH",
                   help="build from this base file instead of the installed one (must be a trusted copy)")
    q.add_argument("--images", type=Path, default=None, metavar="DIR",
                   help="calibration photos (default: ../shared/images/coco when present)")
    q.add_argument("--count", type=int, default=50, metavar="N",
                   help="calibrate on N images spread over DIR, 0 = all (default: %(default)s)")
    q.add_argument("--input-size", type=int, default=DEFAULT_INPUT_SIZE, metavar="N",
                   help="letterbox size the calibration images are prepared at (default: %(default)s)")
    q.add_argument("--float-convs", type=int, default=8, metavar="K",
                   help="keep the K convolutions that quantise worst in float (default: %(default)s)")
    q.set_defaults(func=cmd_quantize)

    v = msub.add_parser("verify", help="check installed models (or PATH) against the manifest")
    v.add_argument("path", nargs="?", default=None, metavar="PATH", help="a file to check instead")
    v.set_defaults(func=cmd_verify)
