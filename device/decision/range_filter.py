"""One ultrasonic sensor's readings -> the distance to act on. Pure: no I/O,
no threads, no clock; time comes in with each reading.

gpiozero's default (`DistanceSensor(queue_len=9)`) answers with the median
of the last nine pings, taken 60 ms after one another: an approaching
object is reported where it was about a third of a second ago, and one that
appears takes five pings to show. This filter trusts each ping as soon as
it is explained, and only then:

- Tracks: the objects being followed (up to three: a hand and the wall past
  it). A ping inside the gate around where a track predicts it (its robust
  line through the recent echoes) is that object's new distance at once:
  no median, so no lag while something approaches.
- Confirmation: a ping no track explains waits. It starts a new track when
  the echo of the ping just before agrees with it (a slow or standing
  object), when three back-to-back pings lie on one line at a plausible
  speed (a cyclist at 8 m/s moves ~0.5 m between pings, too far to
  "agree"), or when three agreeing echoes come within five pings, whatever
  came between (a soft target echoing only every other ping). A lone spike
  is never confirmed, so it never becomes the distance; two chance echoes
  must also come back to back and agree.
- Nearest wins: a sensor reports the first echo it hears, so a farther
  echo does not replace a nearer object; the nearest live track is reported.
- Dropouts: cheap sensors lose the echo from soft targets (clothing, a
  hand) on many pings. A track of three echoes or more lives `hold_s` after
  its last echo (so a soft target does not look "clear" between echoes)
  and then ends (so a real "nothing there" is not hidden for long); one of
  only two echoes lives `young_hold_s`. An ended track is remembered a
  while longer, so one echo where it should be brings it straight back.
- Staleness: nothing is reported when the sensor's newest ping of any kind
  is older than the caller's max age: a sensor that went quiet says
  nothing, even if its last echo was near.
- A faulted reading resets everything: readings before and after a fault
  are never combined.

The closing speed is a Theil-Sen slope (median of pairwise slopes) over the
track's recent echoes, so one bad echo hardly moves it; a fresh track has
none until its echoes span `min_rate_span_s`. Measured against gpiozero's
queue in `device.tools.range_eval` (`rearguard check ranging --trace/--simulated`).
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from device.core.clock import NS_PER_S
from device.core.types import Range


@dataclass(frozen=True)
class FilterParams:
    """The filter's judgement, in physical units. The defaults are what the
    figures in docs/ranging.md were measured with."""

    # Two pings of a standing object agree within this (HC-SR04 echoes
    # jitter by millimetres; Python's timing adds centimetres at worst) ...
    agree_m: float = 0.10
    # ... plus this speed times the time between them (slow movement).
    agree_speed_mps: float = 1.5
    # ... and only pings this close in time confirm each other as a pair.
    pair_max_s: float = 0.25
    # A track takes a ping within tol + speed_margin * dt of its prediction;
    # the margin absorbs a change of speed between two pings.
    track_tol_m: float = 0.10
    speed_margin_mps: float = 2.0
    # The gate stops widening after this long without an echo: after a
    # dropout the object must be found near where it was going, or be
    # confirmed afresh (one ping), not taken from anywhere within a metre.
    gate_max_s: float = 0.15
    # Fastest a distance can plausibly change: a runner at ~3-7 m/s and an
    # oncoming cyclist. Three pings implying more are not one object.
    max_rate_mps: float = 15.0
    # Three pings on a line: the third within this of the first two's line.
    line_tol_m: float = 0.15
    # A waiting (unconfirmed) ping can be confirmed for this long.
    confirm_s: float = 0.4
    # A track outlives its last echo by this much while pings give no echo
    # of it; a track of only two echoes by young_hold_s.
    hold_s: float = 0.5
    young_hold_s: float = 0.15
    # An object followed for three echoes or more is remembered (not
    # reported) this long after its last echo: one echo where it should be
    # brings it back at once, without waiting for a second.
    remember_s: float = 1.0
    # Closing speed: fitted over this window, from at least this many echoes
    # spanning at least this long.
    rate_window_s: float = 0.6
    min_rate_points: int = 3
    min_rate_span_s: float = 0.2


DEFAULT_PARAMS = FilterParams()


@dataclass(frozen=True)
class Estimate:
    """What the filter believes about the nearest followed object."""

    t_ns: int  # time of the newest echo of this object
    distance_m: float  # that echo's distance
    closing_mps: float | None  # > 0: approaching; None: too little history
    dropout: bool  # the sensor has pinged since t_ns without an echo of it


def theil_sen_slope(points: Sequence[tuple[int, float]]) -> float:
    """Median of pairwise slopes, metres per second; points are (t_ns, metres).

    Plain Python, not numpy: a window holds ~10 points (45 pairs), where
    numpy's per-call overhead is most of the cost (6x here, more on a
    Pi and far more under emulation) and this runs for every ping and
    every loop pass. Same arithmetic, so the same floats.
    """
    t = [p[0] / NS_PER_S for p in points]
    d = [p[1] for p in points]
    n = len(t)
    slopes = [(d[j] - d[i]) / (t[j] - t[i]) for i in range(n) for j in range(i + 1, n) if t[j] - t[i] > 0]
    return statistics.median(slopes)


class _Track:
    def __init__(self, points: list[tuple[int, float]]) -> None:
        self.points: deque[tuple[int, float]] = deque(points, maxlen=24)
        # Latest ping that should have echoed off this object and did not:
        # no echo at all, or only a farther one (a sensor reports the nearest).
        self.missed_ns = -1
        # line() for the points as they were at their newest one: each ping
        # and each loop pass asks, but it only changes when an echo is added.
        self._line_key: tuple[int, tuple[int, float]] | None = None  # (len, newest point) it was fitted at
        self._line_params: FilterParams | None = None
        self._line: tuple[float, float] | None = None

    @property
    def last(self) -> tuple[int, float]:
        return self.points[-1]

    def line(self, p: FilterParams) -> tuple[float, float] | None:
        """Robust straight line through the recent echoes: (slope m/s, its
        value at the newest echo); None while the history is too short."""
        key = (len(self.points), self.points[-1])
        if key != self._line_key or p is not self._line_params:
            self._line, self._line_key, self._line_params = self._fit(p), key, p
        return self._line

    def _fit(self, p: FilterParams) -> tuple[float, float] | None:
        t_last = self.points[-1][0]
        window = round(p.rate_window_s * NS_PER_S)
        pts = [x for x in self.points if t_last - x[0] <= window]
        if len(pts) < p.min_rate_points or (pts[-1][0] - pts[0][0]) < p.min_rate_span_s * NS_PER_S:
            return None
        slope = theil_sen_slope(pts)
        at_last = statistics.median([d - slope * (t - t_last) / NS_PER_S for t, d in pts])
        return slope, at_last

    def explains(self, t_ns: int, d: float, p: FilterParams) -> float | None:
        """How far d is from the prediction, if inside the gate; else None."""
        t_last, d_last = self.last
        dt = (t_ns - t_last) / NS_PER_S
        wide = min(dt, p.gate_max_s)
        line = self.line(p)
        if line is None:
            # Too short a history to fit: go on at the speed the confirming
            # echoes showed (slow for a pair, fast for a line of three).
            t0, d0 = self.points[0]
            speed = (d_last - d0) / ((t_last - t0) / NS_PER_S) if t_last > t0 else 0.0
            margin = p.agree_speed_mps if len(self.points) < 3 else p.speed_margin_mps
            pred, gate = d_last + speed * dt, p.track_tol_m + margin * wide
        else:
            # From the robust line, not the newest echo: one bad echo that
            # slipped in does not drag the next prediction with it.
            pred, gate = line[1] + line[0] * dt, p.track_tol_m + p.speed_margin_mps * wide
        miss = abs(d - pred)
        return miss if miss <= gate else None


class RangeFilter:
    """Feed `update()` one sensor's Ranges in time order; ask `estimate()`."""

    MAX_TRACKS = 3  # a runner's beam rarely holds more than a near and a far object

    def __init__(self, params: FilterParams = DEFAULT_PARAMS) -> None:
        self.p = params
        self._confirm_ns = round(params.confirm_s * NS_PER_S)
        self._pair_ns = round(params.pair_max_s * NS_PER_S)
        self._hold_ns = round(params.hold_s * NS_PER_S)
        self._young_hold_ns = round(params.young_hold_s * NS_PER_S)
        self._remember_ns = round(params.remember_s * NS_PER_S)
        self.reset()

    def reset(self) -> None:
        self._tracks: list[_Track] = []
        # Echoes no track explains yet: (t_ns, metres, ping number)
        self._waiting: deque[tuple[int, float, int]] = deque(maxlen=8)
        self._last_ping_ns: int | None = None
        self._pings = 0  # pings so far: tells whether echoes came back to back

    def update(self, r: Range) -> bool | None:
        """Take one reading. Returns True if an echo became (part of) the
        distance, False if it waits for confirmation, None for no echo or a fault."""
        if r.fault is not None:
            self.reset()
            return None
        self._last_ping_ns = r.t_ns
        self._pings += 1
        cutoff = r.t_ns - self._confirm_ns
        while self._waiting and self._waiting[0][0] < cutoff:
            self._waiting.popleft()
        self._tracks = [
            tr for tr in self._tracks
            if r.t_ns - tr.last[0] <= (self._remember_ns if len(tr.points) >= 3 else self._hold_ns)
        ]
        if r.metres is None:
            for tr in self._tracks:
                tr.missed_ns = r.t_ns
            return None
        t, d = r.t_ns, r.metres
        best: tuple[float, _Track] | None = None
        for tr in self._tracks:
            miss = tr.explains(t, d, self.p)
            if miss is not None and (best is None or miss < best[0]):
                best = (miss, tr)
        for tr in self._tracks:
            if tr is not (best and best[1]) and d > tr.last[1] + self.p.track_tol_m:
                tr.missed_ns = t  # a farther echo: this nearer object did not echo
        if best is not None:
            best[1].points.append((t, d))
            return True
        new = self._confirmed(t, d)
        if new is not None:
            used = {x[0] for x in new}
            self._waiting = deque((w for w in self._waiting if w[0] not in used), maxlen=8)
            self._tracks.append(_Track(new))
            if len(self._tracks) > self.MAX_TRACKS:  # forget the one seen longest ago
                self._tracks.remove(min(self._tracks, key=lambda tr: tr.last[0]))
            return True
        self._waiting.append((t, d, self._pings))
        return False

    def _confirmed(self, t: int, d: float) -> list[tuple[int, float]] | None:
        """The points of a new track this ping confirms, or None."""
        p = self.p
        # Three agreeing echoes among five pings, whatever came between: a
        # soft target echoing only every other ping, or a hand in front of a
        # wall, is confirmed within five pings, never left hidden.
        def agree(a: tuple[int, float], b: tuple[int, float]) -> bool:
            return abs(a[1] - b[1]) <= p.agree_m + p.agree_speed_mps * abs(a[0] - b[0]) / NS_PER_S

        recent = [(tw, dw) for tw, dw, n in self._waiting if n >= self._pings - 4 and agree((tw, dw), (t, d))]
        for i in range(len(recent) - 1, 0, -1):
            for j in range(i - 1, -1, -1):
                if agree(recent[i], recent[j]):
                    return [recent[j], recent[i], (t, d)]
        # Otherwise only echoes of back-to-back pings confirm each other:
        # chance false echoes are rare, rarer still two in a row that agree.
        if not self._waiting or self._waiting[-1][2] != self._pings - 1:
            return None
        t2, d2, _ = self._waiting[-1]
        dt23 = (t - t2) / NS_PER_S
        # A pair: a standing or slow object.
        if t - t2 <= self._pair_ns and abs(d - d2) <= p.agree_m + p.agree_speed_mps * dt23:
            return [(t2, d2), (t, d)]
        # A line: a fast object, three echoes at one plausible speed.
        if len(self._waiting) < 2 or self._waiting[-2][2] != self._pings - 2 or dt23 <= 0:
            return None
        t1, d1, _ = self._waiting[-2]
        dt12 = (t2 - t1) / NS_PER_S
        if dt12 <= 0:
            return None
        slope = (d2 - d1) / dt12
        if abs(slope) <= p.max_rate_mps and abs(d - (d2 + slope * dt23)) <= p.line_tol_m:
            return [(t1, d1), (t2, d2), (t, d)]
        return None

    def _reportable(self, tr: _Track, now_ns: int) -> bool:
        t_last = tr.last[0]
        if now_ns - t_last > self._hold_ns:
            return False
        if tr.missed_ns < t_last or now_ns - t_last <= self._young_hold_ns:
            return True
        # Held through lost echoes only when well established: three echoes
        # in all and two within hold_s. Two chance echoes followed by
        # silence, or one chance echo near a remembered object, must not
        # hold an alert.
        recent = sum(1 for t, _ in tr.points if t_last - t <= self._hold_ns)
        return len(tr.points) >= 3 and recent >= 2

    def estimate(self, now_ns: int, max_age_ns: int) -> Estimate | None:
        """The nearest followed object now, or None: nothing confirmed, its
        last echo older than hold_s, or no ping at all within max_age_ns."""
        if self._last_ping_ns is None or now_ns - self._last_ping_ns > max_age_ns:
            return None
        live = [tr for tr in self._tracks if self._reportable(tr, now_ns)]
        if not live:
            return None
        tr = min(live, key=lambda x: x.last[1])
        t_last, d_last = tr.last
        line = tr.line(self.p)
        return Estimate(
            t_ns=t_last,
            distance_m=d_last,
            closing_mps=None if line is None else -line[0],
            dropout=self._last_ping_ns > t_last,
        )


class MedianQueue:
    """gpiozero's default DistanceSensor reading, for comparison: the median
    of the last `queue_len` pings as fractions of max distance (no echo
    counts as 1.0, failed pings are skipped), nothing until the queue is
    full (partial=False), and 'nothing in range' at >= 99 % of max."""

    def __init__(self, max_distance_m: float, queue_len: int = 9) -> None:
        self.max_distance_m = max_distance_m
        self.queue: deque[float] = deque(maxlen=queue_len)

    def update(self, r: Range) -> None:
        if r.fault is not None:
            return  # gpiozero drops failed pings (ignore={None})
        value = 1.0 if r.metres is None else min(1.0, r.metres / self.max_distance_m)
        self.queue.append(value)

    def distance(self) -> float | None:
        if len(self.queue) < (self.queue.maxlen or 0):
            return None
        v = statistics.median(self.queue)
        return None if v >= 0.99 else v * self.max_distance_m
