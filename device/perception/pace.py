"""The detector's pace as the loop sees it: detections per second, how old
a result is when it arrives, and how long an inference takes; and the
judgement of that pace against the board's profile.

Pure: times come in as numbers from the caller's (injected) clock, so the
same results give the same figures on the device, in a replay and in tests.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass

from device.core.clock import NS_PER_S


@dataclass(frozen=True)
class Pace:
    rate_hz: float | None  # camera results reaching the loop per second, over the window (None: window not full)
    latency_s: float | None  # median age of a result (now - its frame's time) when it reached the loop
    age_s: float | None  # age of the newest result now (None: no result yet)
    detect_ms: float | None  # median time of one detect() over the window
    results: int  # results in the window

    def text(self) -> str:
        rate = "-" if self.rate_hz is None else f"{self.rate_hz:.1f}"
        lat = "-" if self.latency_s is None else f"{self.latency_s:.2f} s"
        return f"{rate} det/s, result {lat} old"


class PaceMeter:
    """Counts the camera results the loop takes over a sliding window."""

    def __init__(self, window_s: float, now_ns: int) -> None:
        if not window_s > 0:
            raise ValueError(f"pace window must be positive (got {window_s})")
        self.window_ns = round(window_s * NS_PER_S)
        self._seen: deque[tuple[int, int, float | None]] = deque()  # (arrived, frame time, detect ms)
        self._started_ns = now_ns
        self._newest_frame_ns: int | None = None

    def restart(self, now_ns: int) -> None:
        """A new camera feed: its pace is measured afresh."""
        self._seen.clear()
        self._started_ns = now_ns
        self._newest_frame_ns = None

    def note(self, frame_t_ns: int, now_ns: int, detect_ms: float | None = None) -> None:
        self._seen.append((now_ns, frame_t_ns, detect_ms))
        self._newest_frame_ns = frame_t_ns
        self._trim(now_ns)

    def _trim(self, now_ns: int) -> None:
        while self._seen and self._seen[0][0] <= now_ns - self.window_ns:
            self._seen.popleft()

    def reading(self, now_ns: int) -> Pace:
        self._trim(now_ns)
        full = now_ns - self._started_ns >= self.window_ns
        n = len(self._seen)
        lats = [(a - f) / NS_PER_S for a, f, _ in self._seen]
        dms = [d for _, _, d in self._seen if d is not None]
        return Pace(
            rate_hz=n * NS_PER_S / self.window_ns if full else None,
            latency_s=round(statistics.median(lats), 3) if lats else None,
            age_s=None if self._newest_frame_ns is None else round((now_ns - self._newest_frame_ns) / NS_PER_S, 3),
            detect_ms=round(statistics.median(dms), 1) if dms else None,
            results=n,
        )


@dataclass(frozen=True)
class PaceLimits:
    degraded_factor: float  # detect() slower than the board's profile by more than this: degraded
    min_rate_hz: float  # fewer results a second than this: the camera path is too slow to help
    max_latency_s: float  # camera.max_age_s: the decision's bound on a camera result's age


@dataclass(frozen=True)
class Verdict:
    degraded: str | None = None  # why the detector is slower than its board should be (a warning)
    too_slow: str | None = None  # why the camera path cannot help at all (a fault)


def judge(pace: Pace, expected_ms: float | None, limits: PaceLimits) -> Verdict:
    """`expected_ms`: the board profile's time for this model and input size
    (None: no board known, so no degraded check)."""
    degraded = too_slow = None
    if expected_ms is not None and pace.detect_ms is not None and pace.detect_ms > expected_ms * limits.degraded_factor:
        degraded = (f"detector {pace.detect_ms:.0f} ms per inference, over {limits.degraded_factor:g}x "
                    f"the board's {expected_ms:.0f} ms")
    # The decision keeps a camera result for camera.max_age_s plus the
    # detector's interval (at most max_age_s more): one older than that on
    # arrival is dropped at once, so the camera adds nothing.
    interval = 1 / pace.rate_hz if pace.rate_hz else limits.max_latency_s
    bound = limits.max_latency_s + min(interval, limits.max_latency_s)
    if pace.latency_s is not None and pace.latency_s > bound:
        too_slow = (f"too slow to help: results {pace.latency_s:.2f} s old on arrival, over the "
                    f"{bound:.2f} s a result stands (camera.max_age_s {limits.max_latency_s:g})")
    elif pace.rate_hz is not None and pace.rate_hz < limits.min_rate_hz:
        too_slow = f"too slow to help: {pace.rate_hz:.1f} detections/s (pace.min_rate_hz {limits.min_rate_hz:g})"
    return Verdict(degraded, too_slow)
