"""The process's last step: no thread of ours may outlive the interpreter.

A daemon thread still inside OpenCV or onnxruntime when Python finalizes is
ended by pthread_exit() as it takes the GIL back; that unwinds through a C++
destructor (OpenCV's PyAllowThreads) and the C++ runtime aborts: "terminate
called without an active exception", exit 134 (issue 23: a live run under
heavy load, whose stop left a thread past its bounded join). Every part is
closed in order before this; a thread that still runs gets a short grace,
and past it the process leaves without finalizing (os._exit), saying which
thread it was, with its exit code intact.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

GRACE_S = 3.0  # after every part's own bounded close: a thread still busy gets this long


def end_process(code: int, grace_s: float = GRACE_S) -> int:
    """`code` once no daemon thread runs; past `grace_s`, leave at once with it."""
    deadline = time.monotonic() + grace_s
    me = threading.current_thread()
    for t in threading.enumerate():
        if t is not me and t.daemon:
            t.join(max(0.0, deadline - time.monotonic()))
    left = [t.name for t in threading.enumerate() if t is not me and t.daemon and t.is_alive()]
    if not left:
        return code
    try:
        print(f"rearguard: still running {grace_s:g} s after the stop: {', '.join(left)}; leaving without "
              "waiting for it", file=sys.stderr)
    except (OSError, ValueError):
        pass
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
