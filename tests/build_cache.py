"""A cache for slow, deterministic test inputs (the int8 model, recordings
made from the shared footage), under .cache/tests/ in the repo.

An entry's key is the hash of everything it is built from: input files by
their sha256, parameters, the source of the code that builds it and the
versions of the tools it uses. A change to any of them is a new key, so a
stale entry is never used; old entries are only disk space (rm -r .cache).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "tests"
DONE = ".complete"


def sha256(path: Path) -> str:
    """A file's sha256, or a directory's: of its files' names and contents, in order."""
    h = hashlib.sha256()
    if path.is_dir():
        for p in sorted(q for q in path.rglob("*") if q.is_file() and "__pycache__" not in q.parts):
            h.update(str(p.relative_to(path)).encode() + b"\0" + sha256(p).encode())
        return h.hexdigest()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def key(inputs: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:32]


def cached(name: str, inputs: dict[str, Any], build: Callable[[Path], None]) -> Path:
    """The directory `build(directory)` fills from `inputs`, built once per key.
    Treat it as read-only: copy what a test changes."""
    entry = CACHE / name / key(inputs)
    if (entry / DONE).is_file():
        return entry
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=entry.parent, prefix=".build-"))
    try:
        build(tmp)
        (tmp / DONE).write_text(json.dumps(inputs, sort_keys=True, indent=1, default=str))
        os.chmod(tmp, 0o755)
        try:
            os.replace(tmp, entry)  # whole or not at all
        except OSError:
            if not (entry / DONE).is_file():  # not another run's complete entry: ours is wanted
                shutil.rmtree(entry, ignore_errors=True)
                os.replace(tmp, entry)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return entry
