"""Test doubles shared by the test files: time helpers, detections, frame
sources, detectors and gpiozero mock pins.

Everything here is deterministic: no sleeps, no wall-clock tolerances. The
fake HC-SR04 (`fake_hcsr04`) echoes as its trigger pulse falls, with the
echo's edges exactly `pulse` apart on the pin factory's ticks, so gpiozero's
real DistanceSensor code path reads the exact distance however loaded the
machine is; `PingClock` runs an UltrasonicRanger's fault timing on its pings.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from gpiozero.pins.mock import MockFactory, MockPin, MockPWMPin, MockTriggerPin
from gpiozero.pins.pi import PiPin

from device.core.clock import NS_PER_S
from device.core.types import Detections, Frame
from device.sensing.camera import CameraError, LatestSlot
from device.sensing.ultrasonic import UltrasonicRanger

# -- time ---------------------------------------------------------------------


def ns(t: float) -> int:
    """Seconds to the clocks' integer nanoseconds."""
    return round(t * NS_PER_S)


# -- detections -----------------------------------------------------------------


def wait_until(cond: Callable[[], bool]) -> bool:
    """Bounded wait for another thread (up to 10 s, in 10 ms polls)."""
    tick = threading.Event()
    for _ in range(1000):
        if cond():
            return True
        tick.wait(0.01)
    return cond()


def dets(*boxes: tuple[float, float, float, float], cls: int = 0, score: float = 0.9) -> Detections:
    """Detections of the given xyxy boxes, all one class and score."""
    n = len(boxes)
    return Detections(
        xyxy=np.array(boxes, np.float32).reshape(n, 4),
        confidence=np.full(n, score, np.float32),
        class_id=np.full(n, cls, np.int32),
    )


# -- detectors (the Detector port) ------------------------------------------------


class FixedDetector:
    """Sees the same detections in every image; remembers the shapes it was given."""

    def __init__(self, detections: Detections | None = None) -> None:
        self.detections = detections if detections is not None else Detections.empty()
        self.seen: list[tuple[int, ...]] = []

    def detect(self, image: np.ndarray) -> Detections:
        self.seen.append(image.shape)
        return self.detections

    def close(self) -> None:
        pass


class NoDetections(FixedDetector):
    """An empty path behind the runner."""


class FailingDetector:
    """A model that cannot run (a bad file, a wrong graph)."""

    def detect(self, image: np.ndarray) -> Detections:
        raise RuntimeError("bad model")

    def close(self) -> None:
        pass


class BlockedDetector:
    """A detector stuck in inference until released: a slow Pi Zero, a hang."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def detect(self, image: np.ndarray) -> Detections:
        self.entered.set()
        self.release.wait(10)
        return Detections.empty()

    def close(self) -> None:
        self.release.set()


# -- frame sources (the FrameSource port) -----------------------------------------


class SlotFrames:
    """A FrameSource fed by the test: put() a frame, the pipeline takes it."""

    width, height = 64, 48

    def __init__(self) -> None:
        self.slot: LatestSlot[Frame] = LatestSlot()
        self.error: str | None = None
        self.closed = False

    def put(self, t_ns: int, seq: int, *, frozen: bool = False) -> None:
        # A real sensor's noise makes every frame differ; frozen=True repeats one.
        rng = np.random.default_rng(0 if frozen else seq + 1)
        self.slot.put(Frame(seq, t_ns, rng.integers(0, 256, (self.height, self.width, 3), dtype=np.uint8)))

    def latest(self) -> Frame | None:
        return self.slot.take()

    def wait(self, timeout: float) -> bool:
        return self.slot.wait(timeout)

    def close(self) -> None:
        self.closed = True
        self.slot.close()


class ListFrames:
    """A FrameSource that hands out the given frames, one per poll."""

    def __init__(self, frames: Sequence[Frame], width: int = 64, height: int = 48) -> None:
        self.frames = list(frames)
        self.width, self.height = width, height
        self.error: str | None = None

    def latest(self) -> Frame | None:
        return self.frames.pop(0) if self.frames else None

    def wait(self, timeout: float) -> bool:
        return bool(self.frames)

    def close(self) -> None:
        self.frames = []


# -- gpiozero mock pins -----------------------------------------------------------

SPEED_OF_SOUND = 343.26  # m/s, what gpiozero's DistanceSensor uses


def echo_time_for(metres: float) -> float:
    """The echo pulse an HC-SR04 gives for an object at `metres`."""
    return 2 * metres / SPEED_OF_SOUND


# A real echo jitters by millimetres, and the ranger takes readings equal to
# 0.01 mm again and again for a frozen sensor; so the fake object's distance
# steps through these offsets, ping after ping: known values, still exact.
JITTER_M = (0.0, 0.001, 0.002, 0.003)


def reads(metres: float | None, expected: float) -> bool:
    """`metres` is what the fake sensor at `expected` gives: expected plus
    one of the JITTER_M steps (to float rounding)."""
    return metres is not None and any(abs(metres - expected - j) < 1e-6 for j in JITTER_M)


class ExactEchoPin(MockPin):
    """An HC-SR04 echo line whose pulse length is exact on the pin factory's
    ticks: the falling edge is reported at rise + pulse, whatever the mock
    echo thread's sleep() overshot by on a loaded machine. The pulse is the
    next of `pulses` when set (a scripted, broken or recorded sensor), else
    the driving trigger pin's `echo_time` (`trigger`, set by fake_hcsr04)
    lengthened by the next JITTER_M step.

    gpiozero's DistanceSensor times the edges it is called back with
    (Pin.when_changed(ticks, state)), so this drives its real code path."""

    pulses: Iterator[float] | None = None
    trigger: MockTriggerPin | None = None
    _rise: float | None = None
    _pings = 0

    def _call_when_changed(self) -> None:
        if self._state:
            self._rise = self._last_change
            return PiPin._call_when_changed(self, self._rise, True)
        rise, self._rise = self._rise, None
        if self.pulses is not None:
            pulse = next(self.pulses)
        elif self.trigger is not None:
            pulse = self.trigger.echo_time + echo_time_for(JITTER_M[self._pings % len(JITTER_M)])
            self._pings += 1
        else:
            pulse = None
        if pulse is None or rise is None:
            return super()._call_when_changed()
        return PiPin._call_when_changed(self, rise + pulse, False)


class ExactEchoPWMPin(ExactEchoPin, MockPWMPin):
    """ExactEchoPin for a MockFactory(pin_class=MockPWMPin)."""


class SyncTriggerPin(MockTriggerPin):
    """An HC-SR04 trigger that echoes as its pulse falls (as the sensor
    starts its burst then), in the pinging thread, with no echo thread and
    no sleep: with an ExactEchoPin the echo's edges are then complete,
    exactly timed, before gpiozero starts waiting for them, so no ping is
    lost to a starved thread. (MockTriggerPin sleeps the echo time in a
    thread of its own, and gpiozero gives up after 0.1 s.)"""

    def _set_state(self, value: float) -> None:
        was = self._state
        super(MockTriggerPin, self)._set_state(value)  # the pin itself, not MockTriggerPin's thread
        if was and not value and self.echo_pin is not None:
            self.echo_pin.drive_high()
            self.echo_pin.drive_low()


class SyncPWMTriggerPin(SyncTriggerPin, MockPWMPin):
    """SyncTriggerPin for a MockFactory(pin_class=MockPWMPin), as shared by
    ranging and alerts (MockFactory refuses a pre-made pin whose PWM-ness
    differs from its default pin class). The product's simulated pins
    (device.sensing.simulated.PWMTriggerPin, for --mock-pins) keep
    gpiozero's threaded, slept echo; tests want this exact one."""


def fake_hcsr04(factory: MockFactory, trigger: int, echo: int, echo_time: float, *,
                pin_class: type[MockTriggerPin] = SyncTriggerPin,
                echo_class: type[ExactEchoPin] = ExactEchoPin) -> MockTriggerPin:
    """An HC-SR04 on (trigger, echo) of `factory` echoing after `echo_time`
    seconds (change the trigger's echo_time to move the object)."""
    echo_pin = factory.pin(echo, pin_class=echo_class)
    trig = factory.pin(trigger, pin_class=pin_class, echo_pin=echo_pin, echo_time=echo_time)
    if isinstance(echo_pin, ExactEchoPin):
        echo_pin.trigger = trig
    return trig


class PingClock:
    """A Clock for an UltrasonicRanger on mock pins that runs on its pings,
    not on the machine's time: every ping the ranger's scheduler lets start
    (a good one, a failed one, one that finds the echo line stuck high)
    moves it on by `cycle_s`, the ping cycle the scheduler keeps.

    The ranger judges faults by its clock ("no valid ping for 0.3 s"); on
    real time a loaded machine that starves gpiozero's threads for 0.3 s
    makes a healthy fake sensor look silent. On this clock a starved thread
    stops time too. It reads 0 until attach(ranger)."""

    def __init__(self, cycle_s: float = 0.06) -> None:
        self.cycle_ns = round(cycle_s * NS_PER_S)
        self._starts: deque[tuple[str, float]] | None = None

    def attach(self, ranger: UltrasonicRanger) -> UltrasonicRanger:
        # The scheduler logs each start in a bounded deque (for `check`);
        # an unbounded copy counts them all. Looked up per ping, so this
        # takes effect at once.
        self._starts = deque(ranger.scheduler.starts)
        ranger.scheduler.starts = self._starts
        return ranger

    def now_ns(self) -> int:
        return 0 if self._starts is None else len(self._starts) * self.cycle_ns


class LateCamera:
    """An `open_camera` stand-in for compose: the first attempt finds no
    camera (a slow driver, a loose ribbon), every later one opens `make()`."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make
        self.attempts = 0
        self.opened: list[Any] = []

    def __call__(self, source: str, cfg: object, clock: object) -> Any:
        self.attempts += 1
        if self.attempts == 1:
            raise CameraError("no camera on the ribbon")
        self.opened.append(self.make())
        return self.opened[-1]


def thread_nices(pid: int | str = "self") -> dict[int, int]:
    """Every thread of a process (Python's or not), from /proc (Linux):
    native id -> nice. A thread that ends while it is read is left out."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(FileNotFoundError):
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
            out[int(tid)] = int(fields[16])  # stat field 19, nice
    return out


# -- camera paths -------------------------------------------------------------------


def inline_camera(frames: Any, stage: Any, clock: Any, recorder: Any = None, sides: Sequence[Any] = (),
                  max_age_s: float | None = None) -> Any:
    """A camera path that runs `stage` (and `sides`) inline on `frames`."""
    from device.camera_path import CameraPath, InlineRunner
    from device.core.config import Config

    return CameraPath(InlineRunner(frames, stage, sides, recorder), clock,
                      Config().camera.max_age_s if max_age_s is None else max_age_s)


def threaded_camera(frames: Any, stage: Any, clock: Any, recorder: Any = None, sides: Sequence[Any] = (),
                    **kw: Any) -> Any:
    """A started camera path that runs `stage` (and `sides`) in threads of their own."""
    from device.camera_path import CameraPath, ThreadedRunner
    from device.core.config import Config

    path = CameraPath(ThreadedRunner(frames, stage, sides, recorder, **kw), clock, Config().camera.max_age_s)
    path.start()
    return path
