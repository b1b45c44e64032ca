"""Ultrasonic ranging: every ping as a `Range`, and a broken sensor as a named fault.

gpiozero's `DistanceSensor` does the pinging, one queue thread per sensor.
Its `distance` is a median of recent pings (9 by default: ~0.3 s of lag a
runner cannot afford), so `_PingingSensor` overrides `_read()` to hand on
every raw ping with the clock time it finished, and gpiozero keeps a queue
of one so it does no smoothing of its own. Spike and dropout handling is
`device.decision.range_filter`'s, on timestamped data (so a replay redoes it).

Turn-taking: one `PingScheduler` per ranger lets one sensor ping at a time,
in turn, each ping starting at least `cycle_s` (60 ms for an HC-SR04) after
the previous one of *any* sensor started: the previous ping's echoes have
then died away, so no sensor hears another's. That is the highest safe
rate: N sensors get 1 / (N x cycle_s) pings a second each; `rates()` reports
what each actually got.

Faults (`SensorHealth`, pure) are told apart from "nothing in range":
- no echo within max distance (gpiozero's value at its 1.0 clamp) is a
  valid ping: the normal state in an open park, never a fault;
- echo-never-rises / echo-never-falls / impossible-value / silent: no valid
  ping for FAULT_AFTER_S, named by what the failed pings showed;
- frozen-value: FROZEN_READINGS echoes in a row equal to within
  FROZEN_TOL_M (real echoes jitter by millimetres);
- impossible-jumps: JUMPS_FOR_FAULT back-to-back echoes in a row each
  further from the last than any object can move in the time between.
A fault is reported within 0.5 s (see each rule), repeated while it stands,
and cleared by the first reading that shows the sensor working again.

Threads: only the gpiozero queue threads write (one small locked append per
ping); conversion, fault timing and ordering happen in the caller's thread
inside `poll()`.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gpiozero import DistanceSensor
from gpiozero.exc import DistanceSensorNoEcho

from device.core.clock import NS_PER_S, Clock
from device.core.config import RangingConfig, UltrasonicSensorConfig
from device.core.faults import Kind
from device.core.ports import RangeSource  # noqa: F401  (the port, re-exported)
from device.core.types import Range

log = logging.getLogger(__name__)

# Fault names, as they appear in Range.fault and in recordings.
ECHO_NEVER_RISES = "echo-never-rises"  # no pulse at all: unplugged, no power, trigger or echo miswired, dead
ECHO_NEVER_FALLS = "echo-never-falls"  # echo line stuck high: shorted, or a clone hung after a lost echo
IMPOSSIBLE_VALUE = "impossible-value"  # echoes shorter than the sensor can measure (a clone echoing its trigger)
FROZEN_VALUE = "frozen-value"  # the same reading to a hundredth of a millimetre, again and again
IMPOSSIBLE_JUMPS = "impossible-jumps"  # readings leaping further than any object can move
SILENT = "silent"  # no ping has completed at all (a hung read)


def fault_kind(name: str) -> Kind:
    """How a sensor fault named as above failed: a sensor that has gone
    quiet is stalled, one that repeats its reading is frozen, the rest
    (no echo pulse, a stuck line, readings no object can give) failed."""
    return {SILENT: Kind.STALLED, FROZEN_VALUE: Kind.FROZEN}.get(name, Kind.FAILED)

# The HC-SR04's physics, for everything that simulates one (mock pins, the
# scenario suite, the range evaluation): sound at 20 C, as gpiozero's
# DistanceSensor assumes, and the ~38 ms an HC-SR04 holds its echo line high
# when nothing answers.
SPEED_OF_SOUND_MPS = 343.26
NO_ECHO_S = 0.038

# Why a ping gave no value (gpiozero returns None for all three).
NEVER_ROSE = "never-rose"
NEVER_FELL = "never-fell"
MISSED_RISE = "missed-rise"  # a fall without a rise: a pulse too short to time

# gpiozero clamps a reading to max_distance (value 1.0); an HC-SR04 with
# nothing in front holds its echo ~38 ms (~6.5 m), so "at the limit" means
# "nothing echoed in range". The 1 % margin absorbs float rounding.
OUT_OF_RANGE_FRACTION = 0.99

FAULT_AFTER_S = 0.3  # no valid ping for this long = broken
# FROZEN_READINGS echoes in a row within FROZEN_TOL_M of each other are
# frozen. 0.01 mm is 0.06 microseconds of echo: far above the float rounding
# of one repeated value, far below a real echo's jitter (millimetres), so
# that even with 1.4 mm of jitter four equal readings by chance come about
# once in 10^7 pings.
FROZEN_TOL_M = 1e-5
FROZEN_READINGS = 4
# Back-to-back echoes further apart than JUMP_TOL_M + MAX_RATE_MPS x dt are
# an impossible jump; this many in a row is a fault (a single one is a new
# object in the beam, or a spike the filter drops).
JUMP_TOL_M = 0.1
MAX_RATE_MPS = 15.0
JUMPS_FOR_FAULT = 3
FAULT_REFRESH_S = 0.05  # a standing fault is re-reported this often so it never looks stale
RATE_WINDOW_S = 2.0  # rates() counts the pings of this long


class RangingError(Exception):
    """A sensor could not be set up; the message names the sensor and its pins."""


class RecordedRanges:
    """Ranges from a recording, released as the (replay) clock passes them."""

    def __init__(self, ranges: Sequence[Range]) -> None:
        # Stable sort: readings with equal times keep their recorded order.
        self._ranges = sorted(ranges, key=lambda r: r.t_ns)
        self._times = [r.t_ns for r in self._ranges]
        self._next = 0

    def poll(self, now_ns: int) -> list[Range]:
        end = bisect.bisect_right(self._times, now_ns, lo=self._next)
        out = self._ranges[self._next : end]
        self._next = max(self._next, end)
        return out

    @property
    def remaining(self) -> int:
        return len(self._ranges) - self._next

    def close(self) -> None:
        """Nothing to release; kept for the RangeSource interface."""

    def __enter__(self) -> RecordedRanges:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Ping:
    """One raw ping as gpiozero timed it."""

    t_ns: int  # when it finished, on the ranger's clock
    value: float | None  # fraction of max distance (1.0 = nothing in range); None: untimeable
    failure: str | None = None  # NEVER_ROSE / NEVER_FELL / MISSED_RISE when value is None


class SensorHealth:
    """Turns one sensor's raw pings into Ranges, and decides when it is broken.

    Pure: no clock, no threads. Fed pings in time order; `check(now_ns)`
    lets the caller catch a sensor that has stopped completing pings. While
    a fault stands, only fault Ranges come out (every `refresh_s`), so no
    reading of a broken sensor is ever taken for a distance.

    One failed or impossible ping is dropped, not reported: a missed edge on
    a busy CPU says nothing about what is behind the runner, and claiming
    "nothing in range" would be a lie.
    """

    def __init__(
        self,
        sensor: str,
        max_distance_m: float,
        start_ns: int,
        *,
        min_distance_m: float = 0.02,
        fault_after_s: float = FAULT_AFTER_S,
        check_frozen: bool = True,
        refresh_s: float = FAULT_REFRESH_S,
    ) -> None:
        self.sensor = sensor
        self.max_distance_m = max_distance_m
        self.min_distance_m = min_distance_m
        self._fault_after_ns = round(fault_after_s * NS_PER_S)
        # False for quantised readings (e.g. a log in whole cm), where equal
        # values are normal: the frozen check would only raise false faults.
        self._check_frozen = check_frozen
        self._refresh_ns = round(refresh_s * NS_PER_S)
        self._last_good_ns = start_ns  # the grace period starts when the sensor does
        self._last_bad: str | None = None  # why the latest ping was not valid
        self._last_fault_emit_ns: int | None = None
        self._same: tuple[float, int] | None = None  # (value, count) of a run of equal echoes
        self._prev_echo: tuple[int, float] | None = None  # the previous ping, if it was an echo
        self._jumps = 0  # impossible jumps in a row
        self.fault: str | None = None

    # -- faults -------------------------------------------------------------

    def _raise(self, t_ns: int, fault: str, why: str) -> Range:
        if self.fault != fault:
            log.warning("%s: %s (%s)", self.sensor, fault, why)
        self.fault = fault
        self._last_fault_emit_ns = t_ns
        return Range(t_ns=t_ns, sensor=self.sensor, metres=None, fault=fault)

    def _clear(self) -> None:
        if self.fault is not None:
            log.info("%s: %s cleared, sensor reading again", self.sensor, self.fault)
        self.fault = None
        self._last_fault_emit_ns = None

    def _refresh(self, t_ns: int) -> Range | None:
        """The standing fault again, if it is due to be repeated."""
        assert self.fault is not None
        if self._last_fault_emit_ns is not None and t_ns - self._last_fault_emit_ns < self._refresh_ns:
            return None
        self._last_fault_emit_ns = t_ns
        return Range(t_ns=t_ns, sensor=self.sensor, metres=None, fault=self.fault)

    def check(self, now_ns: int) -> Range | None:
        """A fault Range if the sensor has given no valid ping for too long
        (or another fault stands and is due to be repeated), else None."""
        overdue = now_ns - self._last_good_ns >= self._fault_after_ns
        if overdue:
            fault = {
                NEVER_ROSE: ECHO_NEVER_RISES,
                NEVER_FELL: ECHO_NEVER_FALLS,
                MISSED_RISE: IMPOSSIBLE_VALUE,
                IMPOSSIBLE_VALUE: IMPOSSIBLE_VALUE,
                None: SILENT,
            }[self._last_bad]
            if self.fault != fault:
                return self._raise(
                    now_ns, fault, f"no valid ping for {(now_ns - self._last_good_ns) / NS_PER_S:.2f} s"
                )
        if self.fault is not None:
            return self._refresh(now_ns)
        return None

    # -- pings --------------------------------------------------------------

    def observe(self, ping: Ping) -> Range | None:
        t = ping.t_ns
        if ping.value is None:
            log.debug("%s: ping gave no timeable echo (%s)", self.sensor, ping.failure)
            self._last_bad = ping.failure or NEVER_ROSE
            self._prev_echo = None
            return self.check(t)
        if ping.value >= OUT_OF_RANGE_FRACTION:
            metres = None
        else:
            metres = ping.value * self.max_distance_m
            if metres < self.min_distance_m:
                log.debug("%s: %.3f m is below the sensor's %.2f m minimum", self.sensor, metres, self.min_distance_m)
                self._last_bad = IMPOSSIBLE_VALUE
                self._prev_echo = None
                self._same = None
                return self.check(t)
        # A valid ping: the line works and the value is possible.
        self._last_good_ns = t
        self._last_bad = None
        if self.fault in (ECHO_NEVER_RISES, ECHO_NEVER_FALLS, IMPOSSIBLE_VALUE, SILENT):
            self._clear()
        value_fault = self._value_fault(t, metres)
        if value_fault is not None:
            return value_fault
        if self.fault is not None:
            return self._refresh(t)
        return Range(t_ns=t, sensor=self.sensor, metres=metres)

    def _value_fault(self, t: int, metres: float | None) -> Range | None:
        """Frozen values and impossible jumps; clears them when the readings heal."""
        prev, self._prev_echo = self._prev_echo, (None if metres is None else (t, metres))
        if metres is None:
            self._same = None
            self._jumps = 0
            if self.fault in (FROZEN_VALUE, IMPOSSIBLE_JUMPS):
                self._clear()
            return None
        # Frozen: FROZEN_READINGS echoes in a row within FROZEN_TOL_M.
        if self._same is not None and abs(self._same[0] - metres) <= FROZEN_TOL_M:
            self._same = (self._same[0], self._same[1] + 1)
            if self._check_frozen and self._same[1] >= FROZEN_READINGS:
                return self._raise(t, FROZEN_VALUE, f"{self._same[1]} echoes in a row read {metres:.5f} m")
        else:
            self._same = (metres, 1)
            if self.fault == FROZEN_VALUE:
                self._clear()
        # Impossible jumps between back-to-back echoes.
        if prev is not None:
            dt = (t - prev[0]) / NS_PER_S
            if abs(metres - prev[1]) > JUMP_TOL_M + MAX_RATE_MPS * dt:
                self._jumps += 1
                if self._jumps >= JUMPS_FOR_FAULT:
                    return self._raise(t, IMPOSSIBLE_JUMPS, f"{self._jumps} readings in a row jumped further than "
                                       f"{MAX_RATE_MPS:.0f} m/s allows")
            else:
                self._jumps = 0
                if self.fault == IMPOSSIBLE_JUMPS:
                    self._clear()
        return None


class PingScheduler:
    """Sensors take turns: one ping at a time, first come first served (so
    round-robin, as each sensor queues again after its ping), each ping
    starting at least cycle_s after the previous one started.

    Runs in gpiozero's queue threads, on real time: it paces hardware, like
    gpiozero's own sleeps, and decides nothing about the readings.
    """

    POLL_S = 0.05  # waits are bounded so a closing sensor is never kept waiting

    def __init__(self, cycle_s: float, *, now: Callable[[], float] = time.monotonic) -> None:
        self.cycle_s = cycle_s
        self._now = now
        self._cond = threading.Condition()
        self._waiting: deque[object] = deque()
        self._busy = False
        self._next_start = 0.0
        self.starts: deque[tuple[str, float]] = deque(maxlen=256)  # (who, start): for tests and `check`

    def acquire(self, who: object, name: str, stopping: threading.Event) -> bool:
        """Wait for who's turn; False if `stopping` was set first."""
        with self._cond:
            self._waiting.append(who)
            try:
                while not stopping.is_set():
                    if not self._busy and self._waiting[0] is who:
                        delay = self._next_start - self._now()
                        if delay <= 0:
                            self._busy = True
                            start = self._now()
                            self._next_start = start + self.cycle_s
                            self.starts.append((name, start))
                            return True
                        self._cond.wait(min(delay, self.POLL_S))
                    else:
                        self._cond.wait(self.POLL_S)
                return False
            finally:
                self._waiting.remove(who)
                self._cond.notify_all()

    def release(self) -> None:
        with self._cond:
            self._busy = False
            self._cond.notify_all()


def planned_rate_hz(n_sensors: int, cycle_s: float) -> float:
    """Pings per second each sensor gets when every ping fits in one cycle
    (an HC-SR04 ping takes at most ~38 ms, under the 60 ms cycle)."""
    return 1.0 / (max(1, n_sensors) * cycle_s)


class _PingingSensor(DistanceSensor):
    """A DistanceSensor that pings when the scheduler says and hands every
    raw ping, with why it failed if it did, to `sink` (on gpiozero's queue thread).

    This reaches into gpiozero's internals (`_queue.sample_wait`, `_read`,
    `_echo_rise`/`_echo_fall`), so pyproject.toml bounds gpiozero to the
    2.0 series and scripts/check-gpiozero.sh (run by CI) tests the ranging
    against both ends of that range. We keep gpiozero's own ping rather than
    timing echoes ourselves on raw pins: its trigger pulse, edge timing on
    each pin factory's ticks, class-wide echo lock and timeouts are used on
    every Pi by many people; a copy of ours would be the less-tested code
    on the safety path. Widening the bound means rerunning that script."""

    def __init__(
        self,
        name: str,
        echo: int,
        trigger: int,
        *,
        max_distance: float,
        scheduler: PingScheduler,
        sink: Callable[[float | None, str | None], None],
        pin_factory,
    ) -> None:
        # Set first: the queue thread starts inside super().__init__.
        self._name = name
        self._scheduler = scheduler
        self._sink = sink
        self._sched_stop = threading.Event()
        super().__init__(
            echo,
            trigger,
            queue_len=1,  # no median inside gpiozero: every ping reaches _read and us
            partial=True,
            max_distance=max_distance,
            pin_factory=pin_factory,
        )
        # DistanceSensor hard-codes a 0.06 s pause after each ping; the
        # scheduler paces pings instead. GPIOQueue re-reads this each cycle.
        self._queue.sample_wait = 0.0

    def close(self) -> None:
        self._sched_stop.set()  # a thread waiting for its turn gives up at once
        # Stop the queue thread before gpiozero closes the trigger pin:
        # DistanceSensor.close() does it the other way round, so a ping in
        # flight could find its trigger gone.
        queue = getattr(self, "_queue", None)
        if queue is not None:
            try:
                queue.stop()
            except RuntimeError:  # never started
                pass
        super().close()

    def _read(self) -> float | None:
        queue = getattr(self, "_queue", None)
        stopping = self._sched_stop
        if queue is not None and queue.stopping.is_set():
            return None
        if not self._scheduler.acquire(self, self._name, stopping):
            return None
        try:
            # The real DistanceSensor ping: it holds the class-level ECHO_LOCK
            # from the trigger until the echo falls, as a second guard.
            raw = super()._read()
            failure = None
            if raw is None:
                if self.pin.state:
                    failure = NEVER_FELL
                elif self._echo_fall is not None and self._echo_rise is None:
                    failure = MISSED_RISE
                else:
                    failure = NEVER_ROSE
        finally:
            self._scheduler.release()
        if not stopping.is_set():
            self._sink(raw, failure)
        return raw


@dataclass(frozen=True)
class SensorStatus:
    """What `rearguard check ranging` shows for one sensor."""

    name: str
    rate_hz: float  # pings completed per second over the last RATE_WINDOW_S
    last: Range | None  # the newest Range (echo, no echo or fault)
    fault: str | None


class UltrasonicRanger:
    """One gpiozero DistanceSensor per configured sensor, taking turns; a RangeSource."""

    def __init__(
        self,
        sensors: Sequence[UltrasonicSensorConfig],
        clock: Clock,
        *,
        pin_factory=None,
        cycle_s: float | None = None,
        sample_wait_s: float | None = None,
    ) -> None:
        # sample_wait_s: the same thing under its config key's name
        # (ranging.sample_wait_s); the default is the HC-SR04's 60 ms.
        cycle_s = cycle_s if cycle_s is not None else sample_wait_s if sample_wait_s is not None else 0.06
        if not cycle_s > 0:
            raise RangingError(f"the ping cycle must be > 0 s (got {cycle_s})")
        self._clock = clock
        self._lock = threading.Lock()
        self.scheduler = PingScheduler(cycle_s)
        self._devices: list[_PingingSensor] = []
        self._buffers: list[deque[Ping]] = []
        self._health: list[SensorHealth] = []
        self._names = [s.name for s in sensors]
        self._ping_times: list[deque[int]] = []
        self._last: list[Range | None] = []
        self._closed = False
        # gpiozero warns on every failed ping from its thread; that would be
        # stderr spam on a Pi with a loose wire. SensorHealth logs failures
        # (debug per ping, warning when it becomes a fault) instead.
        warnings.filterwarnings("ignore", category=DistanceSensorNoEcho)
        try:
            for s in sensors:
                buf: deque[Ping] = deque()
                try:
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always")
                        dev = _PingingSensor(
                            s.name,
                            s.echo_pin,
                            s.trigger_pin,
                            max_distance=s.max_distance_m,
                            scheduler=self.scheduler,
                            sink=self._sink_for(buf),
                            pin_factory=pin_factory,
                        )
                except Exception as err:
                    # gpiozero's own errors (pin in use, invalid pin, no pin
                    # factory), MockFactory's ValueError, lgpio.error for a
                    # line another process holds: all mean "fix the wiring/config".
                    raise RangingError(
                        f"ultrasonic sensor {s.name!r} (trigger GPIO{s.trigger_pin}, "
                        f"echo GPIO{s.echo_pin}) could not be set up: {err}"
                    ) from err
                for w in caught:
                    # e.g. "use the pigpio pin factory": pigpio does not run on a Pi 5.
                    log.debug("%s: gpiozero: %s", s.name, w.message)
                self._devices.append(dev)
                self._buffers.append(buf)
                self._health.append(
                    SensorHealth(
                        s.name, s.max_distance_m, clock.now_ns(),
                        min_distance_m=s.min_distance_m,
                    )
                )
                self._ping_times.append(deque(maxlen=512))
                self._last.append(None)
                log.info(
                    "ultrasonic %s (%s): trigger GPIO%d, echo GPIO%d, %.2f-%.1f m",
                    s.name, s.type, s.trigger_pin, s.echo_pin, s.min_distance_m, s.max_distance_m,
                )
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_config(cls, ranging: RangingConfig, clock: Clock, *, pin_factory=None) -> UltrasonicRanger:
        return cls(ranging.sensors, clock, pin_factory=pin_factory, cycle_s=ranging.sample_wait_s)

    def _sink_for(self, buf: deque[Ping]) -> Callable[[float | None, str | None], None]:
        def sink(raw: float | None, failure: str | None) -> None:
            # Clock read and append under one lock: poll() can then never
            # miss a reading stamped before its now_ns.
            with self._lock:
                buf.append(Ping(self._clock.now_ns(), raw, failure))

        return sink

    def poll(self, now_ns: int) -> list[Range]:
        if self._closed:
            return []
        out: list[Range] = []
        with self._lock:
            pending = []
            for buf in self._buffers:
                taken = []
                while buf and buf[0].t_ns <= now_ns:
                    taken.append(buf.popleft())
                pending.append(taken)
        for i, (health, taken) in enumerate(zip(self._health, pending, strict=True)):
            for ping in taken:
                self._ping_times[i].append(ping.t_ns)
                r = health.observe(ping)
                if r is not None:
                    out.append(r)
                    self._last[i] = r
            r = health.check(now_ns)
            if r is not None:
                out.append(r)
                self._last[i] = r
        out.sort(key=lambda r: r.t_ns)
        return out

    def rates(self, now_ns: int) -> dict[str, float]:
        """Pings per second each sensor completed over the last RATE_WINDOW_S
        (as polled: call poll() regularly)."""
        window = round(RATE_WINDOW_S * NS_PER_S)
        out = {}
        for name, times in zip(self._names, self._ping_times, strict=True):
            recent = [t for t in times if now_ns - t <= window]
            out[name] = (len(recent) - 1) / ((recent[-1] - recent[0]) / NS_PER_S) if len(recent) >= 2 and recent[-1] > recent[0] else 0.0
        return out

    def status(self, now_ns: int) -> list[SensorStatus]:
        rates = self.rates(now_ns)
        return [
            SensorStatus(name, rates[name], last, health.fault)
            for name, last, health in zip(self._names, self._last, self._health, strict=True)
        ]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for dev in self._devices:
            dev._sched_stop.set()  # every waiting thread gives up before any join
        for dev in self._devices:
            try:
                dev.close()
            except Exception:  # one stuck sensor must not keep the others' pins
                log.exception("closing an ultrasonic sensor failed")
        self._devices.clear()

    def __enter__(self) -> UltrasonicRanger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
