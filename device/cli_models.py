"""`rearguard models ...`: install, fetch, list and verify detector models.

cli.py calls `register(sub)`; each handler returns an exit status (0 ok,
1 failed) and reports a failure as one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from device import models
from device.detector import ModelError

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
    print(f"models directory: {directory}")
    have = {m.name: m for m in models.installed()}
    for name, s in sorted(models.manifest().items()):
        m = have.get(name)
        if m is None:
            status = "not installed"
        elif m.verified:
            status = f"installed, verified ({m.path})"
        else:
            status = f"installed, UNVERIFIED sha256 {m.sha256} ({m.path})"
        print(f"{name:<14} {status}\n{'':<14} {s.description} [{s.licence}]")
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
        return _fail(f"no models installed in {models.models_dir()}; run `rearguard models fetch`")
    bad = [m for m in found if not m.verified]
    for m in found:
        print(f"{m.name}: {'ok' if m.verified else 'MISMATCH'} {m.path} (sha256 {m.sha256})")
    if bad:
        return _fail(
            f"{', '.join(m.name for m in bad)} does not match the manifest; reinstall with "
            "`rearguard models fetch` or `rearguard models install PATH`"
        )
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

    v = msub.add_parser("verify", help="check installed models (or PATH) against the manifest")
    v.add_argument("path", nargs="?", default=None, metavar="PATH", help="a file to check instead")
    v.set_defaults(func=cmd_verify)
