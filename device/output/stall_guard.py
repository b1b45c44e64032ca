"""A stalled loop must not go silent.

`StallGuard` sits between the loop and the alerter. Every update from the
loop passes through and counts as a heartbeat. If no update comes for
`limit_s`, a small monitor thread plays the FAULT pattern itself until the
loop comes back. (systemd's watchdog restarts a loop that stays stalled;
this covers the seconds before that, and a device run by hand.)

The guard is the one owner of the alert output: both threads reach the
alerter only through it, under one lock, and the time it passes on never
steps back. A loop pass reads its `now` at the start and may write it up to
one pass later; if the guard wrote FAULT at a later time meanwhile, the
pass's output is stamped with that later time (max(now, last written)).
That shifts one pass by at most the stall it just had, which is the truth
(the write happens now, not when the pass began); a pattern computed from an
earlier time would be a phase the runner already felt, or a negative
elapsed time the alerter refuses.
"""

from __future__ import annotations

import logging
import threading

from device.core.clock import NS_PER_S, Clock
from device.core.ports import AlertSink
from device.core.types import AlertLevel

log = logging.getLogger(__name__)


class StallGuard:
    def __init__(self, alerter: AlertSink, clock: Clock, *, limit_s: float = 0.4) -> None:
        self.alerter = alerter
        self.clock = clock
        self.limit_ns = round(limit_s * NS_PER_S)
        self.stalled = False
        self._lock = threading.Lock()
        self._last_beat = clock.now_ns()
        self._out_ns: int | None = None  # latest time passed to the alerter
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def update(self, level: AlertLevel, now_ns: int, direction: str | None = None) -> None:
        with self._lock:
            self._last_beat = self.clock.now_ns()
            if self.stalled:
                log.warning("loop running again")
                self.stalled = False
            self.alerter.update(level, self._stamp(now_ns), direction=direction)

    def _stamp(self, now_ns: int) -> int:
        """`now_ns`, or the last time written if that is later (see the module docstring)."""
        if self._out_ns is not None and now_ns < self._out_ns:
            now_ns = self._out_ns
        self._out_ns = now_ns
        return now_ns

    def check(self) -> bool:
        """Play FAULT if the loop has been silent too long; True if stalled."""
        with self._lock:
            now = self.clock.now_ns()
            if now - self._last_beat <= self.limit_ns:
                return False
            if not self.stalled:
                log.error("loop stalled: no pass for %.2f s", (now - self._last_beat) / NS_PER_S)
                self.stalled = True
            self.alerter.update(AlertLevel.FAULT, self._stamp(now))
            return True

    def start(self, period_s: float = 0.02) -> StallGuard:
        def watch() -> None:
            while not self._stop.wait(period_s):
                self.check()

        self._thread = threading.Thread(target=watch, name="rearguard-stall-guard", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
