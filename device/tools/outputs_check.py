"""`rearguard check outputs`: every rhythm once, named as it plays, so a
runner can feel and hear each one before a run.

The loop is the device's own: `Alerter.update()` every 20 ms on a clock,
so what plays is exactly what the device plays. With simulated pins the
pin levels are printed at each change (time since the rhythm started).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from device.core.clock import NS_PER_S, Clock
from device.core.types import AlertLevel
from device.output.alerts import CUES, LEVEL_MEANING, NOT_PROTECTING, PATTERNS, Alerter, Cue
from device.tools.card import feel, sound

STEP_S = 0.02  # the device loop's 50 Hz
GAP_S = 1.0  # CLEAR between two rhythms, so each is felt on its own


@dataclass(frozen=True)
class Item:
    name: str
    level: AlertLevel | None  # a level plays for `seconds`; None: `cue` plays once
    cue: Cue | None
    seconds: float
    text: str


def plan(each_s: float) -> list[Item]:
    """The rhythms in the order they play: the levels from mild to FAULT, then the cues.
    A level plays `each_s` or two of its periods, whichever is longer."""
    items = []
    for level in (AlertLevel.CAUTION, AlertLevel.WARN, AlertLevel.DANGER, AlertLevel.FAULT):
        pat = PATTERNS[level]
        means, action = LEVEL_MEANING[level]
        secs = max(each_s, 2 * pat.period_ns / NS_PER_S)
        items.append(Item(level.name, level, None, secs,
                          f"feel: {feel(pat)}; sound: {sound(pat)}. Means {means}: {action}."))
    for cue in (*CUES, NOT_PROTECTING):  # not protecting: one round of the fallback's loop
        loops = cue is NOT_PROTECTING
        items.append(Item(cue.name, None, cue, cue.pattern.period_ns / NS_PER_S,
                          f"feel: {feel(cue.pattern, loops)}; sound: {sound(cue.pattern, loops)}. "
                          f"Means {cue.meaning}: {cue.action}."))
    return items


def play_all(alerter: Alerter, clock: Clock, sleep: Callable[[float], None], out: TextIO, *,
             each_s: float = 3.0, pins: Callable[[], str] | None = None) -> int:
    """Play every item of plan(); `pins()` (simulated pins) returns the pin
    levels as text, printed whenever it changes. Returns how many played."""
    items = plan(each_s)
    for n, item in enumerate(items, 1):
        print(f"[{n}/{len(items)}] {item.name}: {item.text}", file=out, flush=True)
        if item.cue is not None:
            alerter.cue(item.cue)
        level = item.level if item.level is not None else AlertLevel.CLEAR
        _run(alerter, clock, sleep, out, level, item.seconds, pins)
        _run(alerter, clock, sleep, out, AlertLevel.CLEAR, GAP_S, pins, quiet=True)
    alerter.off()
    print("done: every rhythm played once", file=out)
    return len(items)


def _run(alerter: Alerter, clock: Clock, sleep: Callable[[float], None], out: TextIO, level: AlertLevel,
         seconds: float, pins: Callable[[], str] | None, quiet: bool = False) -> None:
    start = clock.now_ns()
    end = start + round(seconds * NS_PER_S)
    last = None
    while (now := clock.now_ns()) < end:
        alerter.update(level, now)
        if pins is not None and not quiet:
            text = pins()
            if text != last:
                print(f"  {(now - start) / NS_PER_S:6.2f} s  {text}", file=out)
                last = text
        sleep(STEP_S)
    alerter.update(AlertLevel.CLEAR, clock.now_ns())
