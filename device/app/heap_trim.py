"""Keep the C heaps from holding memory a long run has freed (glibc only).

glibc keeps what a thread frees in that thread's arena, resident, for its
next allocation. A live run's frames (decode, resize, the recorder's and the
preview's JPEGs, an incident clip's decode and encode) pass through a dozen
threads, so free pages pile up in the middle of their arenas, where glibc
never returns them by itself: measured (scripts/soak.py, docs/performance.md
"Memory over a long run"), the private memory crept about 0.15 MB a minute
between incident clips and settled only after 15 minutes or more. glibc's
`malloc_trim(0)` returns every free page of every arena (madvise), so calling
it periodically keeps a long run's memory flat from the start.

The trim cannot undo placement, though. glibc raises its mmap threshold each
time a block above it is freed (to that block's size), so after the first
frame is freed every frame-sized block (640x360x3 is 0.7 MB) comes from the
arena of the thread that asked for it, and where the next ones land decides
how much of an arena stays resident: measured, the arenas' private memory
moved 35-41 MB in 2-4 MB level shifts over a run while the heap and the
mappings stayed flat. `fix_mmap_threshold` pins the threshold at glibc's own
start value (128 KiB), which also turns the raising off: every block that
size or larger is a mapping of its own, handed back to the OS when freed, and
the arenas keep only small objects (side by side: 11 MB of arenas, flat,
against 35-41).

The trim runs in its own lowered thread, never in the loop: a trim that has much
to return took over a second in a test (the alert loop has 20 ms a pass).
Elsewhere than glibc (musl, macOS) there is no `malloc_trim` or `mallopt`
and this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from device.core.priority import background_thread

log = logging.getLogger(__name__)

# Often enough that a frame's worth of freed pages does not linger for long,
# rarely enough that re-faulting the pages the next frames need costs nothing
# measurable (soak: the CPU a frame took was within the run-to-run spread).
TRIM_PERIOD_S = 30.0


# glibc's start value for the threshold; frames, detector inputs and JPEGs
# are all far above it, Python's own objects and small numpy arrays below.
MMAP_THRESHOLD_BYTES = 128 * 1024
M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
THRESHOLD_ENV = "MALLOC_MMAP_THRESHOLD_"  # glibc's own variable for the same setting


def _libc_function(name: str) -> Any:
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):  # no libc by that name, or not glibc
        return None


def glibc_trim() -> Callable[[], int] | None:
    """glibc's malloc_trim(0) as a call, or None where there is none."""
    fn = _libc_function("malloc_trim")
    if fn is None:
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return lambda: int(fn(0))


def fix_mmap_threshold(nbytes: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Pin glibc's mmap threshold at `nbytes` (and so stop glibc raising it).
    True if set; False without glibc, or when the environment already sets
    MALLOC_MMAP_THRESHOLD_ (an experiment's or a unit's choice wins)."""
    if THRESHOLD_ENV in os.environ:
        return False
    fn = _libc_function("mallopt")
    if fn is None:
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_int]
    fn.restype = ctypes.c_int
    return bool(fn(M_MMAP_THRESHOLD, nbytes))  # 1 on success


class HeapTrimmer:
    """Calls `trim` every `period_s` seconds in a background thread, from
    `start()` until `close()` (which waits for the thread: nothing native may
    run after the device has stopped). With `trim` None it does nothing."""

    def __init__(self, trim: Callable[[], object] | None, period_s: float = TRIM_PERIOD_S) -> None:
        if not period_s > 0:
            raise ValueError(f"period_s must be > 0 (got {period_s})")
        self.trim = trim
        self.period_s = period_s
        self.trims = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.trim is None or self._thread is not None:
            return
        self._thread = background_thread(self._run, name="rearguard-heap-trim")
        self._thread.start()

    def _run(self) -> None:
        assert self.trim is not None
        while not self._stop.wait(self.period_s):
            try:
                self.trim()
            except Exception as err:  # memory housekeeping is never a reason to stop anything
                log.warning("heap trim failed, not trying again: %s", err)
                return
            self.trims += 1

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
