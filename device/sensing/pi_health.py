"""What a Raspberry Pi says about itself: which board it is, the firmware's
throttling and under-voltage flags, and the CPU temperature.

A Pi on a power bank throttles, and its detector slows with it; a sagging
supply (under-voltage) comes before a brown-out. The readers take their
paths (and the command runner) as arguments, so tests use fake files; on a
laptop there is no device tree, so no board and no health.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from device.core.files import FileRefused, read_regular
from device.core.priority import background_thread

log = logging.getLogger(__name__)

MODEL_PATH = Path("/proc/device-tree/model")
THROTTLED_PATH = Path("/sys/devices/platform/soc/soc:firmware/get_throttled")
TEMP_PATH = Path("/sys/class/thermal/thermal_zone0/temp")

# get_throttled's bits (Raspberry Pi firmware): 0-3 now, 16-19 the same "has occurred since boot".
FLAGS = {0: "under-voltage", 1: "frequency capped", 2: "throttled", 3: "soft temperature limit"}
OCCURRED_SHIFT = 16


def read_model(path: Path = MODEL_PATH) -> str | None:
    """The device tree's model line ("Raspberry Pi 4 Model B Rev 1.4"), or
    None where there is none (a laptop)."""
    try:
        text = read_regular(path, 4096).decode("utf-8", "replace")
    except FileRefused:
        raise  # a FIFO or /dev/zero named as the model file: said, not waited on
    except OSError:
        return None
    return text.strip("\x00 \n") or None


def parse_throttled(text: str) -> int:
    """"50005" (sysfs, hex) or "throttled=0x50005" (vcgencmd); ValueError otherwise."""
    return int(text.strip().removeprefix("throttled=").strip(), 16)


@dataclass(frozen=True)
class Health:
    throttled: int | None  # the firmware's bits, None when unreadable
    temp_c: float | None
    battery_pct: float | None = None  # a UPS HAT's fuel gauge, None without one or when unreadable

    def _names(self, shift: int) -> tuple[str, ...]:
        if self.throttled is None:
            return ()
        return tuple(name for bit, name in FLAGS.items() if self.throttled >> (bit + shift) & 1)

    @property
    def now(self) -> tuple[str, ...]:
        return self._names(0)

    @property
    def occurred(self) -> tuple[str, ...]:
        return self._names(OCCURRED_SHIFT)

    @property
    def under_voltage(self) -> bool:
        return "under-voltage" in self.now

    def text(self) -> str:
        parts = []
        if self.temp_c is not None:
            parts.append(f"cpu {self.temp_c:.0f} C")
        if self.battery_pct is not None:
            parts.append(f"battery {self.battery_pct:.0f} %")
        if self.throttled is not None:
            parts.append(", ".join(f"{n.upper() if n == 'under-voltage' else n} now" for n in self.now) or "power ok")
            since = [n for n in self.occurred if n not in self.now]
            if since:
                parts.append("since boot: " + ", ".join(since))
        return ", ".join(parts)

    def as_json(self) -> dict[str, object]:
        return {"throttled": None if self.throttled is None else hex(self.throttled), "temp_c": self.temp_c,
                "battery_pct": self.battery_pct, "now": list(self.now), "occurred": list(self.occurred), "under_voltage": self.under_voltage}


Runner = Callable[[list[str]], str]


def _vcgencmd(args: list[str]) -> str:
    return subprocess.run(args, capture_output=True, text=True, timeout=2, check=True).stdout


class HealthReader:
    """Reads the flags from sysfs if the firmware driver offers them, else
    from `vcgencmd get_throttled`; the temperature from thermal_zone0."""

    def __init__(self, throttled_path: Path = THROTTLED_PATH, temp_path: Path = TEMP_PATH,
                 run: Runner | None = _vcgencmd, which: Callable[[str], str | None] = shutil.which,
                 battery: Callable[[], float] | None = None) -> None:
        self.throttled_path, self.temp_path = throttled_path, temp_path
        self.run = run if run is not None and which("vcgencmd") else None
        self.battery = battery  # state of charge in %, from a fuel gauge; raises when unreadable

    def throttled(self) -> int | None:
        try:
            return parse_throttled(self.throttled_path.read_text())
        except (OSError, ValueError):
            pass
        if self.run is None:
            return None
        try:
            return parse_throttled(self.run(["vcgencmd", "get_throttled"]))
        except (OSError, ValueError, subprocess.SubprocessError) as err:
            log.debug("vcgencmd get_throttled: %s", err)
            return None

    def temp_c(self) -> float | None:
        try:
            return round(int(self.temp_path.read_text().strip()) / 1000, 1)  # millidegrees
        except (OSError, ValueError):
            return None

    def battery_pct(self) -> float | None:
        if self.battery is None:
            return None
        try:
            return self.battery()
        except Exception as err:  # a gauge that fails is reported, never takes the device down
            log.warning("battery unreadable: %s", err)
            return None

    def read(self) -> Health:
        return Health(self.throttled(), self.temp_c(), self.battery_pct())


class HealthMonitor:
    """Reads the health every `period_s` in a thread of its own, so a slow
    vcgencmd never holds up the alert loop; the loop only reads `latest`.
    Changes are logged: under-voltage as a warning."""

    def __init__(self, reader: HealthReader, period_s: float) -> None:
        self.reader, self.period_s = reader, period_s
        self.latest: Health | None = None
        self._stop = threading.Event()
        self._thread = background_thread(self._work, name="rearguard-health")

    def start(self) -> None:
        self._thread.start()

    def poll(self) -> Health:
        """One reading, logged if it changed (the thread's body; tests call it)."""
        h = self.reader.read()
        old = self.latest
        if old is None or (h.now, h.occurred) != (old.now, old.occurred):
            (log.warning if h.under_voltage else log.info)("pi health: %s", h.text() or "unreadable")
        self.latest = h
        return h

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception:  # health is for information: it never takes the device down
                log.exception("pi health reading failed")
            self._stop.wait(self.period_s)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
