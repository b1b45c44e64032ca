"""Hand the C heaps' free pages back to the OS now and then (glibc only).

glibc keeps what a thread frees in that thread's arena, resident, for its
next allocation. A live run's frames (decode, resize, the recorder's and the
preview's JPEGs, an incident clip's decode and encode) pass through a dozen
threads, so free pages pile up in the middle of their arenas, where glibc
never returns them by itself: measured (scripts/soak.py, docs/performance.md
"Memory over a long run"), the private memory crept about 0.15 MB a minute
between incident clips and settled only after 15 minutes or more. glibc's
`malloc_trim(0)` returns every free page of every arena (madvise), so calling
it periodically keeps a long run's memory flat from the start.

It runs in its own lowered thread, never in the loop: a trim that has much
to return took over a second in a test (the alert loop has 20 ms a pass).
Elsewhere than glibc (musl, macOS) there is no `malloc_trim` and this does
nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from collections.abc import Callable

from device.core.priority import background_thread

log = logging.getLogger(__name__)

# Often enough that a frame's worth of freed pages does not linger for long,
# rarely enough that re-faulting the pages the next frames need costs nothing
# measurable (soak: the CPU a frame took was within the run-to-run spread).
TRIM_PERIOD_S = 30.0


def glibc_trim() -> Callable[[], int] | None:
    """glibc's malloc_trim(0) as a call, or None where there is none."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.malloc_trim
    except (OSError, AttributeError):  # no libc by that name, or not glibc
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return lambda: int(fn(0))


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
