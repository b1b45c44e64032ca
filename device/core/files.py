"""Reading a file the user named: only a regular file, and only so much.

A FIFO (or /dev/zero, a directory, a socket) named as a config, a recording's
JSON or a model would hang a reader or fill the memory (issue 23): it is
refused with an error naming it. The file is opened without blocking (a
FIFO's open would wait for a writer) and checked on the open descriptor.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

MB = 1_000_000


class FileRefused(OSError):
    """Not a regular file, or larger than the reader allows (str: the reason, naming the file)."""


def _is_devnull(st: os.stat_result) -> bool:
    try:
        null = os.stat(os.devnull)
    except OSError:
        return False
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == null.st_rdev


def open_regular(path: str | Path, *, allow_devnull: bool = False) -> int:
    """A descriptor on `path` (blocking again), which must be a regular file
    (or, with `allow_devnull`, /dev/null: empty); raises OSError."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if allow_devnull and _is_devnull(st):
            pass  # `--config /dev/null`: the built-in defaults (scripts/install-pi.sh uses it)
        elif not stat.S_ISREG(st.st_mode):
            kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode)
                    else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "a socket")
            raise FileRefused(f"{path} is {kind}, not a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: str | Path, limit: int, *, allow_devnull: bool = False) -> bytes:
    """The bytes of `path`, a regular file of at most `limit` bytes; raises OSError."""
    fd = open_regular(path, allow_devnull=allow_devnull)
    with os.fdopen(fd, "rb") as f:
        data = f.read(limit + 1)  # a file that grows while read is bounded too
    if len(data) > limit:
        raise FileRefused(f"{path} is larger than {limit / MB:g} MB: not a file this reads")
    return data


def describe(err: OSError) -> str:
    """An OSError as one line that names its file."""
    if isinstance(err, FileRefused) or not err.strerror:
        return str(err)
    return f"{err.filename}: {err.strerror}" if err.filename else err.strerror
