"""Ultrasonic ranging: every ping as a `Range`, and a broken sensor as a fault.

gpiozero's `DistanceSensor` does the pinging on its own queue thread. Its
`distance` is a median of recent pings (9 by default: ~0.25 s of lag a runner
cannot afford), so `_PingingSensor` overrides `_read()` to hand on every raw
ping with the clock time it finished, and gpiozero is told to keep a queue of
one so it does no smoothing of its own. Any smoothing or spike rejection is
the threat estimator's business, on timestamped data.

Threads: only the gpiozero queue threads write (one small locked append per
ping); everything else - conversion, fault timing, ordering - happens in the
caller's thread inside `poll()`, in the pure `SensorHealth`.
"""

from __future__ import annotations

import bisect
import logging
import threading
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

from gpiozero import DistanceSensor
from gpiozero.exc import DistanceSensorNoEcho

from device.clock import NS_PER_S, Clock
from device.config import UltrasonicSensorConfig
from device.types import Range

log = logging.getLogger(__name__)

NO_ECHO_SIGNAL = "no-echo-signal"
"""Range.fault of a sensor whose echo line has given no usable pulse for a while."""

# gpiozero clamps a reading to max_distance (value 1.0); an HC-SR04 with
# nothing in front holds its echo ~38 ms (~6.5 m), so "at the limit" means
# "nothing echoed in range". The 1 % margin absorbs float rounding.
OUT_OF_RANGE_FRACTION = 0.99

FAULT_AFTER_S = 0.3  # no valid ping for this long = broken; detected well within 0.5 s
FAULT_REFRESH_S = 0.05  # a standing fault is re-reported this often so it never looks stale


class RangingError(Exception):
    """A sensor could not be set up; the message names the sensor and its pins."""


class RangeSource(Protocol):
    def poll(self, now_ns: int) -> list[Range]:
        """Readings taken since the last poll with t_ns <= now_ns, oldest first. Never blocks."""
        ...

    def close(self) -> None: ...


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


class SensorHealth:
    """Turns one sensor's raw pings into Ranges, and decides when it is broken.

    Fed in time order with gpiozero's raw result: a float in [0, 1] (fraction
    of max distance) or None (no timeable echo: line never rose, never fell,
    or stuck high - unplugged, miswired or dead). One failed ping is common
    (a missed edge on a busy CPU) and is dropped: it says nothing about what
    is behind the runner, and claiming "nothing in range" would be a lie.
    Only when no valid ping has come for `fault_after_s` is a fault Range
    emitted; the next valid ping clears it. "Nothing in range" (a ping at
    max distance) is a valid ping: an open park is not a fault.

    Pure: no clock, no threads; `check(now_ns)` lets the caller detect a
    sensor that has gone completely silent (e.g. a hung read).
    """

    def __init__(
        self,
        sensor: str,
        max_distance_m: float,
        start_ns: int,
        *,
        fault_after_s: float = FAULT_AFTER_S,
        refresh_s: float = FAULT_REFRESH_S,
    ) -> None:
        self.sensor = sensor
        self.max_distance_m = max_distance_m
        self._fault_after_ns = round(fault_after_s * NS_PER_S)
        self._refresh_ns = round(refresh_s * NS_PER_S)
        self._last_good_ns = start_ns  # the grace period starts when the sensor does
        self._last_fault_emit_ns: int | None = None
        self.fault: str | None = None

    def observe(self, t_ns: int, raw: float | None) -> Range | None:
        if raw is None:
            log.debug("%s: ping gave no timeable echo", self.sensor)
            return self.check(t_ns)
        self._last_good_ns = t_ns
        if self.fault is not None:
            log.info("%s: echo back, fault cleared", self.sensor)
            self.fault = None
            self._last_fault_emit_ns = None
        metres = None if raw >= OUT_OF_RANGE_FRACTION else raw * self.max_distance_m
        return Range(t_ns=t_ns, sensor=self.sensor, metres=metres)

    def check(self, now_ns: int) -> Range | None:
        """A fault Range if the sensor is (still) overdue, else None."""
        if now_ns - self._last_good_ns < self._fault_after_ns:
            return None
        if self.fault is None:
            self.fault = NO_ECHO_SIGNAL
            log.warning(
                "%s: no valid echo for %.2f s: sensor unplugged, miswired or dead",
                self.sensor,
                (now_ns - self._last_good_ns) / NS_PER_S,
            )
        elif (
            self._last_fault_emit_ns is not None
            and now_ns - self._last_fault_emit_ns < self._refresh_ns
        ):
            return None
        self._last_fault_emit_ns = now_ns
        return Range(t_ns=now_ns, sensor=self.sensor, metres=None, fault=self.fault)


class _PingingSensor(DistanceSensor):
    """A DistanceSensor that hands every raw ping to `sink` (on gpiozero's queue thread)."""

    def __init__(
        self,
        echo: int,
        trigger: int,
        *,
        max_distance: float,
        sample_wait: float,
        sink: Callable[[float | None], None],
        pin_factory,
    ) -> None:
        self._sink = sink  # set first: the queue thread starts inside super().__init__
        super().__init__(
            echo,
            trigger,
            queue_len=1,  # no median inside gpiozero: every ping reaches _read and us
            partial=True,
            max_distance=max_distance,
            pin_factory=pin_factory,
        )
        # DistanceSensor hard-codes 0.06 s; GPIOQueue re-reads this each
        # cycle, so only the very first wait uses gpiozero's value.
        self._queue.sample_wait = sample_wait

    def _read(self) -> float | None:
        # gpiozero's _read holds the class-level DistanceSensor.ECHO_LOCK
        # (not self.ECHO_LOCK, so shared by this subclass too) from the
        # trigger pulse until the echo falls: sensors take turns and never
        # time each other's pings. We rely on that rather than add a lock.
        raw = super()._read()
        self._sink(raw)
        return raw


class UltrasonicRanger:
    """One gpiozero DistanceSensor per configured sensor; a RangeSource."""

    def __init__(
        self,
        sensors: Sequence[UltrasonicSensorConfig],
        clock: Clock,
        *,
        pin_factory=None,
        sample_wait_s: float = 0.06,
    ) -> None:
        if not sample_wait_s >= 0:
            raise RangingError(f"sample_wait_s must be >= 0 s (got {sample_wait_s})")
        self._clock = clock
        self._lock = threading.Lock()
        self._devices: list[_PingingSensor] = []
        self._buffers: list[deque[tuple[int, float | None]]] = []
        self._health: list[SensorHealth] = []
        self._closed = False
        # gpiozero warns on every failed ping from its thread; that would be
        # stderr spam on a Pi with a loose wire. SensorHealth logs failures
        # (debug per ping, warning when it becomes a fault) instead.
        warnings.filterwarnings("ignore", category=DistanceSensorNoEcho)
        try:
            for s in sensors:
                buf: deque[tuple[int, float | None]] = deque()
                try:
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always")
                        dev = _PingingSensor(
                            s.echo_pin,
                            s.trigger_pin,
                            max_distance=s.max_distance_m,
                            sample_wait=sample_wait_s,
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
                self._health.append(SensorHealth(s.name, s.max_distance_m, clock.now_ns()))
                log.info(
                    "ultrasonic %s: trigger GPIO%d, echo GPIO%d, max %.1f m",
                    s.name, s.trigger_pin, s.echo_pin, s.max_distance_m,
                )
        except BaseException:
            self.close()
            raise

    def _sink_for(self, buf: deque[tuple[int, float | None]]) -> Callable[[float | None], None]:
        def sink(raw: float | None) -> None:
            # Clock read and append under one lock: poll() can then never
            # miss a reading stamped before its now_ns.
            with self._lock:
                buf.append((self._clock.now_ns(), raw))

        return sink

    def poll(self, now_ns: int) -> list[Range]:
        if self._closed:
            return []
        out: list[Range] = []
        with self._lock:
            pending = []
            for buf in self._buffers:
                taken = []
                while buf and buf[0][0] <= now_ns:
                    taken.append(buf.popleft())
                pending.append(taken)
        for health, taken in zip(self._health, pending):
            for t_ns, raw in taken:
                r = health.observe(t_ns, raw)
                if r is not None:
                    out.append(r)
            r = health.check(now_ns)
            if r is not None:
                out.append(r)
        out.sort(key=lambda r: r.t_ns)
        return out

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
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
