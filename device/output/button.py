"""The runner's one button: a press pauses the alerts, a hold shuts the Pi down.

Pure: the loop hands `ButtonControl.update()` the time and whether the
button is down (read once a pass, at 50 Hz: that is its debounce), and
puts `gate()` between the felt level and the outputs.

- A press (released before `hold_s`) pauses for `pause_s`: the PAUSED cue;
  a press while paused resumes early. When the pause ends: RESUMED.
- A hold of `hold_s` plays SHUTTING_DOWN; when it has played, `update()`
  asks once for the power-off (the caller's port does it).
- While paused (and while shutting down) the outputs get CLEAR for
  everything but DANGER. DANGER still plays because a pause is asked for
  before the runner knows what comes next: at a crossing or a water stop
  they stand still or step back, and something about to hit them is the one
  thing they would never have chosen to silence. CAUTION, WARN and FAULT
  are what a stop is for: the runner is looking, and can press again.
"""

from __future__ import annotations

from dataclasses import dataclass

from device.core.clock import NS_PER_S
from device.core.config import ButtonConfig
from device.core.types import AlertLevel
from device.output.alerts import PAUSED, RESUMED, SHUTTING_DOWN, Cue


@dataclass(frozen=True)
class Action:
    cue: Cue | None = None
    power_off: bool = False


NOTHING = Action()


class ButtonControl:
    def __init__(self, button: ButtonConfig) -> None:
        self.pause_ns = round(button.pause_s * NS_PER_S)
        self.hold_ns = round(button.hold_s * NS_PER_S)
        self._down_ns: int | None = None  # when the current press began
        self._held = False  # this press already became a hold
        self.paused_until_ns: int | None = None
        self._off_at_ns: int | None = None  # shutting down: power off at this time
        self._off_asked = False

    @property
    def paused(self) -> bool:
        return self.paused_until_ns is not None

    @property
    def shutting_down(self) -> bool:
        return self._off_at_ns is not None

    def update(self, now_ns: int, pressed: bool) -> Action:
        if self._off_at_ns is not None:
            if not self._off_asked and now_ns >= self._off_at_ns:
                self._off_asked = True
                return Action(power_off=True)
            return NOTHING
        if pressed:
            if self._down_ns is None:
                self._down_ns, self._held = now_ns, False
            elif not self._held and now_ns - self._down_ns >= self.hold_ns:
                self._held = True
                self._off_at_ns = now_ns + SHUTTING_DOWN.pattern.period_ns
                return Action(cue=SHUTTING_DOWN)
            return NOTHING
        if self._down_ns is not None:  # released
            was_hold, self._down_ns = self._held, None
            if not was_hold:
                if self.paused:
                    self.paused_until_ns = None
                    return Action(cue=RESUMED)
                self.paused_until_ns = now_ns + self.pause_ns
                return Action(cue=PAUSED)
        if self.paused_until_ns is not None and now_ns >= self.paused_until_ns:
            self.paused_until_ns = None
            return Action(cue=RESUMED)
        return NOTHING

    def gate(self, level: AlertLevel) -> AlertLevel:
        """The level the outputs get: as felt, or CLEAR while paused (DANGER always plays)."""
        if (self.paused or self.shutting_down) and level != AlertLevel.DANGER:
            return AlertLevel.CLEAR
        return level


class GatedSink:
    """An AlertSink that passes every level through `ButtonControl.gate`."""

    def __init__(self, sink, control: ButtonControl) -> None:  # sink: device.core.ports.AlertSink
        self.sink, self.control = sink, control

    def update(self, level: AlertLevel, now_ns: int, direction: str | None = None) -> None:
        self.sink.update(self.control.gate(level), now_ns, direction=direction)
