"""What the runner feels: a haptic motor and a buzzer, one rhythm per level.

The rhythms are told apart without looking and without counting:

- CLEAR: nothing.
- CAUTION: a short buzz once a second, motor only (advisory; no noise).
- WARN: fast pulses, motor and buzzer.
- DANGER: continuous, motor and buzzer: stop now.
- FAULT: long-short, both, every ~2 s: "I cannot see part of what I should".
  Its two different on-lengths are what no threat pattern has.

With two optional side motors (outputs.haptic_left_pin/haptic_right_pin),
the pattern also plays on the side of the threat: left, right, or both for
straight behind or an unknown bearing. The main motor and the buzzer play
every pattern as before, so a single-motor build behaves as it always did.

Timing comes from the `now_ns` the main loop passes to `update()` (at 50 Hz or
more), not from threads or gpiozero's blink(): a pattern is a pure function
of the time since it started, so it is deterministic, replayable and tested
without sleeps. A pattern edge lands at most one loop period late (20 ms).
"""

from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass, field

from gpiozero import Buzzer, PWMOutputDevice

from device.core.clock import NS_PER_S
from device.core.config import OutputsConfig
from device.core.faults import Fault, Part
from device.core.types import AlertLevel
from device.fallback import NOT_PROTECTING as FALLBACK_RHYTHM

log = logging.getLogger(__name__)

# ERM vibration motors are driven through a transistor or driver. 200 Hz is
# slow enough for lgpio's software PWM to time well and fast enough that the
# motor's inertia (tens of ms) smooths it into a steady speed.
HAPTIC_PWM_HZ = 200


class AlertError(Exception):
    """An output could not be set up or used; the message names the pin."""


@dataclass(frozen=True)
class Segment:
    duration_s: float
    haptic: float  # motor duty 0..1, before OutputsConfig.haptic_strength
    buzzer: bool


@dataclass(frozen=True)
class Pattern:
    """Segments played in order, looping for as long as the level lasts."""

    segments: tuple[Segment, ...]
    # Segment end times in integer ns, so long runs never drift by float rounding.
    _ends_ns: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.segments:
            raise ValueError("a pattern needs at least one segment")
        ends, t = [], 0
        for s in self.segments:
            if not s.duration_s > 0:
                raise ValueError(f"segment duration must be > 0 s (got {s.duration_s})")
            if not 0.0 <= s.haptic <= 1.0:
                raise ValueError(f"segment haptic must be within 0..1 (got {s.haptic})")
            t += round(s.duration_s * NS_PER_S)
            ends.append(t)
        object.__setattr__(self, "_ends_ns", tuple(ends))

    @property
    def period_ns(self) -> int:
        return self._ends_ns[-1]


def _pattern(*segments: tuple[float, float, bool]) -> Pattern:
    return Pattern(tuple(Segment(*s) for s in segments))


PATTERNS: dict[AlertLevel, Pattern] = {
    AlertLevel.CLEAR: _pattern((1.0, 0.0, False)),
    # Full duty, not a gentle one: a small ERM may not start below ~50 %.
    AlertLevel.CAUTION: _pattern((0.15, 1.0, False), (0.85, 0.0, False)),
    AlertLevel.WARN: _pattern((0.1, 1.0, True), (0.15, 0.0, False)),
    AlertLevel.DANGER: _pattern((1.0, 1.0, True)),
    AlertLevel.FAULT: _pattern((0.6, 1.0, True), (0.2, 0.0, False), (0.15, 1.0, True), (1.0, 0.0, False)),
}


# What each level means to the runner and what they should do: the runner's
# card (docs/runners-card.md, `python -m device.output.card`) is generated
# from these and PATTERNS/CUES, so the card cannot drift from the rhythms.
LEVEL_MEANING: dict[AlertLevel, tuple[str, str]] = {
    AlertLevel.CLEAR: ("nothing closing in that the device can see", "run on"),
    AlertLevel.CAUTION: ("something behind, not yet closing fast", "look over your shoulder when you can"),
    AlertLevel.WARN: ("something closing in", "look now; be ready to stop or step aside"),
    AlertLevel.DANGER: ("about to hit something", "stop now"),
    AlertLevel.FAULT: ("a sensor, the camera or the model is not working: silence is no longer a promise",
                       "stop and look behind you yourself; check the device before running on"),
}


@dataclass(frozen=True)
class Cue:
    """A short one-off signal (not a level): played once over CLEAR, never
    over CAUTION, WARN, DANGER or FAULT, so it can never hide a threat."""

    name: str
    pattern: Pattern
    meaning: str
    action: str


# Short-short-long, both outputs: no level has three pulses that then stop.
READY = Cue(
    "ready", _pattern((0.1, 1.0, True), (0.1, 0.0, False), (0.1, 1.0, True), (0.1, 0.0, False), (0.5, 1.0, True)),
    "the self-test passed and the device is watching behind you", "run",
)

# Two quick ticks, both outputs, 0.2 s in all: shorter than any level's
# pulse train, and the only rhythm of two equal blips.
POWER_LOW = Cue(
    "power low", _pattern((0.05, 1.0, True), (0.1, 0.0, False), (0.05, 1.0, True)),
    "the supply is failing (the Pi's under-voltage flag) or the UPS battery is low; repeated every "
    "power.cue_every_s (60 s) while it lasts", "head home or change the power bank: the device may stop soon",
)

# The button's acknowledgements (device.output.button), motor only: a pause
# at a crossing or a water stop needs no noise. Paused falls (long-short),
# resumed rises (short-long); shutting down is long-long with the buzzer.
PAUSED = Cue(
    "paused", _pattern((0.4, 1.0, False), (0.15, 0.0, False), (0.1, 1.0, False)),
    "the button was pressed: alerts are paused for button.pause_s (60 s); DANGER still plays",
    "press again to resume early; stay put or look behind you yourself",
)
RESUMED = Cue(
    "resumed", _pattern((0.1, 1.0, False), (0.15, 0.0, False), (0.4, 1.0, False)),
    "the pause is over (its time ran out, or the button was pressed again): alerts are back", "run",
)
SHUTTING_DOWN = Cue(
    "shutting down", _pattern((0.8, 1.0, True), (0.2, 0.0, False), (0.8, 1.0, True)),
    "the button was held for button.hold_s (3 s): the Pi shuts down safely",
    "wait until the Pi's green light stops (about 20 s) before pulling the power",
)

CUES: tuple[Cue, ...] = (READY, POWER_LOW, PAUSED, RESUMED, SHUTTING_DOWN)

# Played by device.fallback (its own tiny program, started by systemd when
# the service has failed), looping; here as a Cue for the card and
# `rearguard check outputs`, which play one round of it.
NOT_PROTECTING = Cue(
    "not protecting", _pattern(*((d, 1.0 if motor else 0.0, buzz) for d, motor, buzz in FALLBACK_RHYTHM)),
    "the device's program cannot run (a config error, a crash loop): nothing is watching behind you; "
    "repeats until the program runs again", "do not run with it; the journal says why (journalctl -u rearguard)",
)


def pattern_output(pattern: Pattern, elapsed_ns: int) -> tuple[float, bool]:
    """(haptic duty, buzzer on) at `elapsed_ns` after the pattern started."""
    if elapsed_ns < 0:
        raise ValueError(f"elapsed time cannot be negative (got {elapsed_ns} ns)")
    phase = elapsed_ns % pattern.period_ns
    seg = pattern.segments[bisect.bisect_right(pattern._ends_ns, phase)]
    return seg.haptic, seg.buzzer


def side_duties(haptic: float, direction: str | None) -> tuple[float, float]:
    """(left, right) side-motor duty for the main motor's duty and the threat's side."""
    left = haptic if direction in (None, "left", "centre") else 0.0
    right = haptic if direction in (None, "right", "centre") else 0.0
    return left, right


def effective_level(level: AlertLevel, faults: tuple[Fault, ...]) -> AlertLevel:
    """The level the runner feels, given the threat level and any faults.

    A real WARN or DANGER always plays: whatever else is broken, something
    is closing in and the runner must stop; a fault rhythm then would hide
    the one thing still known. Below that, a fault wins over CLEAR or
    CAUTION, because with a blind sensor or camera "all clear" is no longer
    a promise the device can keep, and the runner must know that.

    An accelerator's fault alone plays no FAULT: detection goes on on the
    CPU model, so "all clear" still holds; it is named (log, STATUS,
    preview) like the pace's `degraded`. Should the CPU be too slow to
    help, the pace watch's own camera fault plays FAULT.
    """
    if level in (AlertLevel.WARN, AlertLevel.DANGER):
        return level
    if any(f.part is not Part.ACCELERATOR for f in faults):
        return AlertLevel.FAULT
    return level


class _PatternPlayer:
    """Which pattern plays and since when: the Alerter's timing, apart from its pins."""

    def __init__(self, haptic_strength: float, buzzer: bool) -> None:
        self._strength = haptic_strength
        self._buzzer = buzzer
        self.level: AlertLevel | None = None  # None: nothing playing (off)
        self._start_ns = 0
        self.cue: Cue | None = None  # the cue playing or waiting for its first output
        self._cue_start_ns: int | None = None

    def play_cue(self, cue: Cue) -> None:
        """Play `cue` once from the next output() at CLEAR; a newer cue replaces it."""
        self.cue, self._cue_start_ns = cue, None

    def output(self, level: AlertLevel, now_ns: int) -> tuple[float, bool]:
        level = AlertLevel(level)
        if self.cue is not None:
            if level != AlertLevel.CLEAR:
                # Anything above CLEAR says more than a cue: the cue is dropped,
                # not postponed (a late "ready" or "battery low" would mislead).
                log.debug("cue %s dropped for %s", self.cue.name, level.name)
                self.cue = None
            else:
                if self._cue_start_ns is None:
                    self._cue_start_ns = now_ns
                elapsed = now_ns - self._cue_start_ns
                if elapsed < self.cue.pattern.period_ns:
                    self.level = None  # CLEAR starts afresh when the cue ends
                    haptic, buzz = pattern_output(self.cue.pattern, elapsed)
                    return haptic * self._strength, buzz and self._buzzer
                self.cue = None
        if level != self.level:
            log.debug("pattern %s starts", level.name)
            self.level = level
            self._start_ns = now_ns  # a new level starts at phase 0, immediately
        haptic, buzz = pattern_output(PATTERNS[level], now_ns - self._start_ns)
        return haptic * self._strength, buzz and self._buzzer

    def stop(self) -> None:
        self.level = None
        self.cue = None


class Alerter:
    """Drives the haptic motor (PWM) and the buzzer from `update()` calls."""

    def __init__(self, outputs: OutputsConfig, *, pin_factory=None) -> None:
        self._player = _PatternPlayer(outputs.haptic_strength, outputs.buzzer)
        self._haptic: PWMOutputDevice | None = None
        self._buzzer: Buzzer | None = None
        self._sides: tuple[PWMOutputDevice, ...] = ()
        self._closed = False
        self._out: tuple[float, bool] = (0.0, False)
        self._side_out: tuple[float, float] = (0.0, 0.0)
        try:
            self._haptic = PWMOutputDevice(
                outputs.haptic_pin, frequency=HAPTIC_PWM_HZ, initial_value=0, pin_factory=pin_factory
            )
        except Exception as err:
            # Anything raised here means "this pin cannot be used": gpiozero's
            # own errors, MockFactory's ValueError, lgpio.error for a GPIO line
            # another process holds. A person needs the pin, not a traceback.
            raise AlertError(
                f"haptic motor on GPIO{outputs.haptic_pin} (PWM) could not be set up: {err}"
            ) from err
        if outputs.buzzer:  # disabled: the pin is left alone, not even claimed
            try:
                self._buzzer = Buzzer(outputs.buzzer_pin, initial_value=False, pin_factory=pin_factory)
            except Exception as err:
                self._haptic.close()
                raise AlertError(
                    f"buzzer on GPIO{outputs.buzzer_pin} could not be set up: {err}"
                ) from err
        if outputs.haptic_left_pin is not None and outputs.haptic_right_pin is not None:
            sides = []
            for name, pin in (("left", outputs.haptic_left_pin), ("right", outputs.haptic_right_pin)):
                try:
                    sides.append(PWMOutputDevice(pin, frequency=HAPTIC_PWM_HZ, initial_value=0,
                                                 pin_factory=pin_factory))
                except Exception as err:
                    for dev in (self._haptic, self._buzzer, *sides):
                        if dev is not None:
                            dev.close()
                    raise AlertError(f"{name} haptic motor on GPIO{pin} (PWM) could not be set up: {err}") from err
            self._sides = tuple(sides)
        log.info(
            "alerts: haptic GPIO%d at %.0f %%, buzzer %s",
            outputs.haptic_pin,
            outputs.haptic_strength * 100,
            f"GPIO{outputs.buzzer_pin}" if outputs.buzzer else "off",
        )

    @property
    def level(self) -> AlertLevel | None:
        """The level playing, or None after off()/close()."""
        return self._player.level

    @property
    def output(self) -> tuple[float, bool]:
        """(haptic duty, buzzer on) as last written."""
        return self._out

    @property
    def side_output(self) -> tuple[float, float]:
        """(left, right) side-motor duty as last written; (0, 0) without side motors."""
        return self._side_out

    def cue(self, cue: Cue) -> None:
        """Play `cue` once, starting at the next update() at CLEAR (see Cue)."""
        self._player.play_cue(cue)

    @property
    def cue_playing(self) -> str | None:
        """The name of the cue playing or waiting to, else None."""
        cue = self._player.cue
        return cue.name if cue is not None else None

    def update(self, level: AlertLevel, now_ns: int, direction: str | None = None) -> None:
        """Set the outputs for `level` at `now_ns`; side motors, if any, play
        on the threat's `direction` ("left", "centre", "right"; None = both).
        Never blocks; writes only changes."""
        if self._closed:
            raise AlertError("alerter is closed")
        out = self._player.output(level, now_ns)
        self._write(out, side_duties(out[0], direction) if self._sides else (0.0, 0.0))

    def off(self) -> None:
        """Everything off; the next update() starts its pattern afresh."""
        if self._closed:
            return
        self._player.stop()
        self._write((0.0, False), (0.0, 0.0))

    def _write(self, out: tuple[float, bool], sides: tuple[float, float]) -> None:
        haptic, buzz = out
        assert self._haptic is not None
        if haptic != self._out[0]:
            self._haptic.value = haptic
        if buzz != self._out[1] and self._buzzer is not None:
            self._buzzer.value = buzz
        for dev, duty, old in zip(self._sides, sides, self._side_out, strict=False):  # no side motors: _sides is empty
            if duty != old:
                dev.value = duty
        self._out = out
        self._side_out = sides

    def close(self) -> None:
        if self._closed:
            return
        try:
            self.off()
        finally:
            self._closed = True
            for dev in (self._haptic, self._buzzer, *self._sides):
                if dev is not None:
                    dev.close()

    def __enter__(self) -> Alerter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
