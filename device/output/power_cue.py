"""When to play the power-low cue: the supply sagging (the Pi's
under-voltage flag) or a UPS battery at or below `power.low_battery_pct`.

Sparse on purpose: at once when power first goes low, then at most once
every `power.cue_every_s` while it is low. Only over CLEAR: the Alerter drops a cue over anything
higher anyway, and a cue asked for then would be lost, so it waits for CLEAR
instead. Pure: the loop hands it the time, the level and the newest health.
"""

from __future__ import annotations

from device.core.clock import NS_PER_S
from device.core.config import PowerConfig
from device.core.types import AlertLevel
from device.output.alerts import POWER_LOW, Cue


class PowerCues:
    def __init__(self, power: PowerConfig) -> None:
        self.low_pct = power.low_battery_pct
        self.every_ns = round(power.cue_every_s * NS_PER_S)
        # When the cue last played. Kept when power comes back: a supply that
        # sags now and then must not play the cue at every sag.
        self._last_ns: int | None = None

    def low(self, under_voltage: bool, battery_pct: float | None) -> str | None:
        """Why power is low, or None."""
        if under_voltage:
            return "under-voltage"
        if battery_pct is not None and battery_pct <= self.low_pct:
            return f"battery {battery_pct:.0f} %"
        return None

    def due(self, now_ns: int, level: AlertLevel, under_voltage: bool, battery_pct: float | None) -> Cue | None:
        """The cue to play now, or None."""
        if self.low(under_voltage, battery_pct) is None or level != AlertLevel.CLEAR:
            return None
        if self._last_ns is not None and now_ns - self._last_ns < self.every_ns:
            return None
        self._last_ns = now_ns
        return POWER_LOW
