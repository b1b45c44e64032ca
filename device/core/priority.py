"""Which threads get the CPU first: the alert loop and the ultrasonic pings.

The loop that reads the sensors and plays the alert rhythms needs little CPU
but needs it on time; the detector (whose onnxruntime pool threads may
busy-wait), looming, the camera, the recorder and the preview want a lot
and lose nothing by waiting a few milliseconds. When they all want the
CPU at once (a Zero 2 W, a throttled Pi, a heavy scene), the loop must win,
or the WARN rhythm smears into something the runner cannot tell apart.

Linux schedules threads, each with its own nice value, and a new thread
starts with its creator's. So each best-effort thread lowers itself when it
starts (`background_thread`), and the detector's session is built in such a
thread (`build_in_background`) so that onnxruntime's pool threads, made
then, start low too. Threads that are not lowered (the main loop, gpiozero's
pinging threads, the stall guard) keep the process's priority. Lowering
needs no privilege; raising back would, so the main thread never lowers
itself. Elsewhere than Linux it does nothing.

Only the live device lowers (`rearguard run`, inside `lowering()`, set by
its composition root as gpiozero's pin factory is): a replay, the tests and
the tools share their machine with other programs, which would then outbid
their perception, and have no alert rhythm to protect.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

# Nice 10 against 0 is a CFS weight of 110 against 1024: a thread at 0 that
# wants a contended core gets ~90 % of it. Best-effort threads still get all
# the CPU the loop leaves (it sleeps most of each 20 ms).
BACKGROUND_NICE = 10
_MAX_NICE = 19

_warned = False
_step = 0  # how far background threads lower themselves now; 0: not at all


@contextlib.contextmanager
def lowering(step: int = BACKGROUND_NICE) -> Iterator[None]:
    """Background threads started inside lower themselves by `step`."""
    global _step
    before, _step = _step, step
    try:
        yield
    finally:
        _step = before


def thread_nice(native_id: int | None = None) -> int | None:
    """A thread's nice value (this one by default); None where not Linux."""
    if sys.platform != "linux":
        return None
    return os.getpriority(os.PRIO_PROCESS, native_id or threading.get_native_id())


def lower_this_thread(further: int = 0) -> int | None:
    """Inside `lowering()`, put the calling thread its step (and `further`)
    below the process (its main thread); idempotent, never raises. The new
    nice value, or None: not lowering, not Linux (threads cannot be told
    apart), or refused."""
    global _warned
    if _step == 0 or sys.platform != "linux":
        return None
    try:
        tid = threading.get_native_id()
        target = min(_MAX_NICE, os.getpriority(os.PRIO_PROCESS, os.getpid()) + _step + further)
        if os.getpriority(os.PRIO_PROCESS, tid) < target:
            os.setpriority(os.PRIO_PROCESS, tid, target)
        return target
    except OSError as err:  # a priority is an optimisation: never a reason to stop a thread
        if not _warned:
            log.warning("cannot lower a background thread's priority (%s): the loop shares the CPU equally", err)
            _warned = True
        return None


def background_thread(target: Callable[..., Any], *, name: str, kwargs: dict[str, Any] | None = None,
                      daemon: bool = True, further: int = 0) -> threading.Thread:
    """A (not yet started) thread that lowers itself before running target
    (`further`: below the other background threads too)."""

    def run() -> None:
        lower_this_thread(further)
        target(**(kwargs or {}))

    return threading.Thread(target=run, name=name, daemon=daemon)


def build_in_background(build: Callable[[], T], *, name: str = "rearguard-build") -> T:
    """build() run in a lowered thread and waited for, so whatever threads it
    makes (onnxruntime's pool) start lowered; its exception is raised here.
    Not lowering: build() in the calling thread, as any call."""
    if _step == 0:
        return build()
    out: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            out.append(build())
        except BaseException as err:  # handed to the caller, who decides
            error.append(err)

    thread = background_thread(run, name=name, daemon=False)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return out[0]
