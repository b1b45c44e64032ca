"""The terminal view: alert events as lines, and the live status line.

Every number shown comes from the loop's own results (the threat, its
direction, the felt level), so a terminal never disagrees with the pins.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from typing import Any

from device.core.clock import NS_PER_S
from device.core.faults import texts
from device.core.types import AlertEvent, AlertLevel, Threat, describe_thing

log = logging.getLogger(__name__)


def fmt(x: float | None, unit: str) -> str:
    return "-" if x is None else f"{x:.2f} {unit}"


def side(threat: Threat) -> str:
    """"12 deg left" when the threat is off centre (`alerts.centre_deg`, as the
    decision's `Threat.direction` says), else ""."""
    if threat.direction not in ("left", "right") or threat.bearing_deg is None:
        return ""
    return f"{abs(threat.bearing_deg):.0f} deg {threat.direction}"


def describe(threat: Threat) -> str:
    """The threat as the event lines word it ("person 2.6 m, 10 deg left, ttc 3.1 s (camera)")."""
    if threat.source == "none":
        return "nothing in the way"
    return describe_thing(threat.source, threat.label, threat.distance_m, threat.ttc_s, threat.bearing_deg,
                          threat.direction)


def format_event(e: AlertEvent, start_ns: int) -> str:
    """"  12.34 s  CAUTION person 2.6 m, 10 deg left, ttc 3.1 s (camera)": what and which side."""
    t = (e.t_ns - start_ns) / NS_PER_S
    line = f"{t:8.2f} s  {e.level.name:<7} {e.what()}"
    if e.faults and e.source != "fault":
        line += "  faults: " + "; ".join(e.faults)
    return line


_FIGURE = re.compile(r"\d+(?:\.\d+)?")


def fault_kinds(faults: tuple[str, ...]) -> tuple[str, ...]:
    """The faults without their figures: "camera: no frame for 10.3 s" is
    the same fault at 10.4 s, not a new one to announce (the journal would
    get a line every loop pass, 50 a second, for as long as it lasts)."""
    return tuple(_FIGURE.sub("#", f) for f in faults)


class StatusLine:
    """What the device would do, for a person at a terminal: level, nearest
    threat, frames per second. On a terminal it redraws in place twice a
    second; elsewhere (the journal under systemd) it prints a line when the
    level or the faults change (`fault_kinds`: a changing figure is no
    change), and once a minute."""

    HEARTBEAT_S = 60.0

    def __init__(self, stream: Any = sys.stdout) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._last_print = -1e9
        self._last_key: tuple[AlertLevel, tuple[str, ...]] | None = None
        self._frames0 = 0
        self._t0: float | None = None
        self._fps = 0.0

    def show(self, threat: Threat, level: AlertLevel, frames: int, now_s: float, pace: str = "") -> None:
        """`level` is the felt level (`Pipeline.level`), never recomputed here;
        `pace` the device's own pace and health (`PaceWatch.text`), if any."""
        if self._t0 is None:
            self._t0, self._frames0 = now_s, frames
        elif now_s - self._t0 >= 1.0:
            self._fps = (frames - self._frames0) / (now_s - self._t0)
            self._t0, self._frames0 = now_s, frames
        key = (level, fault_kinds(texts(threat.faults)))
        due = self.HEARTBEAT_S if not self.tty else 0.5
        if key == self._last_key and now_s - self._last_print < due:
            return
        self._last_key, self._last_print = key, now_s
        line = f"{level.name:<7} {describe(threat)}  camera {self._fps:4.1f} fps"
        if pace:
            line += f"  [{pace}]"
        if threat.faults:
            line += "  FAULT " + "; ".join(texts(threat.faults))
        if self.tty:
            self.stream.write("\r\x1b[2K" + line[:300])
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


class Tolerant:
    """A text stream that the device does not depend on: a reader that went
    away (`run | head -1`, a dropped SSH session, a closed journal pipe) must
    never stop it (issue 23). The first failed write is logged once; from
    then on its file descriptor points at /dev/null, so nothing written
    later, nor Python's own flush at exit, fails again."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.lost = False

    def write(self, text: str) -> int:
        if not self.lost:
            try:
                return int(self.stream.write(text))
            except (OSError, ValueError) as err:  # ValueError: the stream was closed
                self._lose(err)
        return len(text)

    def flush(self) -> None:
        if not self.lost:
            try:
                self.stream.flush()
            except (OSError, ValueError) as err:
                self._lose(err)

    def isatty(self) -> bool:
        try:
            return bool(self.stream.isatty())
        except (OSError, ValueError):
            return False

    def _lose(self, err: Exception) -> None:
        self.lost = True
        log.warning("terminal output lost (%s): the device runs on without it", err)
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(null, self.stream.fileno())
            finally:
                os.close(null)
        except (OSError, ValueError, AttributeError):
            pass  # no descriptor of its own (a StringIO): nothing else will write to it
