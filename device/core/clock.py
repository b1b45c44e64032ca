"""Injected time. Nothing in the core calls time.time() or time.monotonic().

The device runs on `MonotonicClock`; a replay runs on `ReplayClock`, whose
time is whatever the recording says it is, so a replay is deterministic.
"""

from __future__ import annotations

import time
from typing import Protocol

NS_PER_S = 1_000_000_000


class Clock(Protocol):
    def now_ns(self) -> int: ...


class MonotonicClock:
    """Monotonic nanoseconds; immune to NTP steps when the Pi gets a network."""

    def now_ns(self) -> int:
        return time.monotonic_ns()


class ReplayClock:
    """A clock that only moves when told to: replays and tests."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now = start_ns

    def now_ns(self) -> int:
        return self._now

    def set(self, t_ns: int) -> None:
        if t_ns < self._now:
            raise ValueError(f"replay clock cannot go backwards ({t_ns} < {self._now})")
        self._now = t_ns

    def advance(self, seconds: float) -> None:
        self.set(self._now + round(seconds * NS_PER_S))
