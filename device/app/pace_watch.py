"""The live device's own pace: detections per second and result age
measured on the loop's clock from the camera feed's results, held to the
board's profile, plus the Pi's throttling flags and temperature.

The live camera path notes every camera result the loop takes here
(`PaceWatch` is its `ResultMeter`); `PaceWatch` turns the figures into a
degraded warning (logged and shown), a too-slow fault (the FAULT pattern,
through the pipeline's extra faults) and the text that STATUS, the terminal
line and the preview show.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device.core.clock import Clock
from device.core.config import Config
from device.core.faults import Fault, Kind, Part
from device.perception import boards
from device.perception.boards import size_label
from device.perception.pace import Pace, PaceLimits, PaceMeter, Verdict, judge
from device.sensing.fuel_gauge import Max1704x
from device.sensing.pi_health import MODEL_PATH, Health, HealthMonitor, HealthReader, read_model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BoardChoice:
    name: str | None  # the profile held to, None for no degraded check
    expected_ms: float | None  # the profile's ms per detect() for the configured model and size
    why: str  # how it was chosen, or why there is none


def choose_board(cfg: Config, model_line: str | None) -> BoardChoice:
    """`pace.board` wins; `auto` asks the device tree (`model_line`)."""
    known = boards.load()
    setting = cfg.pace.board
    if setting == "none":
        return BoardChoice(None, None, "pace.board = none: no degraded check")
    if setting == "auto":
        board = known.for_device_tree(model_line) if model_line else None
        if board is None:
            why = (f"no board profile for {model_line!r}" if model_line
                   else "not a Raspberry Pi (no /proc/device-tree/model)")
            return BoardChoice(None, None, why + ": no degraded check")
        how = f"{board.name} from the device tree"
    else:
        board, how = known.get(setting), f"{setting} from pace.board"
    try:
        ms = boards.config_detect_ms(board, cfg, known.detect_overhead)
    except boards.BoardError:
        return BoardChoice(board.name, None, f"{how}, but its profile has no figure for {cfg.detector.model} "
                                             f"at {size_label(cfg.detector.input_geometry)}: no degraded check")
    return BoardChoice(board.name, ms, f"{how}: profile {ms:g} ms per detection ({board.status})")


class PaceWatch:
    def __init__(self, cfg: Config, clock: Clock, *, model_path: Path = MODEL_PATH,
                 health: HealthMonitor | None = None, gauge: Max1704x | None = None) -> None:
        self.clock = clock
        self.meter = PaceMeter(cfg.pace.window_s, clock.now_ns())
        self.limits = PaceLimits(cfg.pace.degraded_factor, cfg.pace.min_rate_hz, cfg.camera.max_age_s)
        try:
            model_line = read_model(model_path)
        except OSError as err:  # not a regular file: no board known, the device runs on
            log.warning("pace: %s", err)
            model_line = None
        self.board = choose_board(cfg, model_line)
        self.on_pi = bool(model_line and model_line.startswith("Raspberry Pi"))
        self.gauge = gauge  # a UPS HAT's fuel gauge, read with the health (closed here)
        if health is None and (self.on_pi or gauge is not None):
            battery = (lambda: gauge.read().percent) if gauge is not None else None
            health = HealthMonitor(HealthReader(battery=battery), cfg.pace.health_period_s)
        self.health = health
        self.active = False  # a detector's results are metered (no camera, no pace to judge)
        self.pace: Pace | None = None
        self.verdict = Verdict()

    def restart(self, now_ns: int) -> None:
        """A camera (with a detector) opened, or came back: its pace is measured afresh."""
        self.active = True
        self.meter.restart(now_ns)

    def note(self, frame_t_ns: int, now_ns: int, detect_ms: float | None = None) -> None:
        """A camera result the loop took (from the camera path's poll)."""
        self.meter.note(frame_t_ns, now_ns, detect_ms)

    def start(self) -> None:
        if self.health is not None:
            self.health.start()

    def observe(self, now_ns: int) -> Verdict:
        """From the loop, once a pass: pure arithmetic on what was noted."""
        if not self.active:
            self.pace, self.verdict = None, Verdict()
            return self.verdict
        self.pace = self.meter.reading(now_ns)
        verdict = judge(self.pace, self.board.expected_ms, self.limits)
        old = self.verdict
        if verdict.degraded and not old.degraded:
            log.warning("pace degraded: %s", verdict.degraded)
        elif old.degraded and not verdict.degraded:
            log.info("pace back within the board's profile")
        if verdict.too_slow and not old.too_slow:
            log.error("camera %s", verdict.too_slow)
        self.verdict = verdict
        return verdict

    def faults(self) -> tuple[Fault, ...]:
        if self.verdict.too_slow is None:
            return ()
        return (Fault(Part.CAMERA, Kind.TOO_SLOW, self.verdict.too_slow),)

    @property
    def health_now(self) -> Health | None:
        return self.health.latest if self.health is not None else None

    def warnings(self) -> tuple[str, ...]:
        """Shown and logged, but no FAULT pattern: the device still warns."""
        out = []
        if self.verdict.degraded:
            out.append(f"degraded: {self.verdict.degraded}")
        h = self.health_now
        if h is not None and h.under_voltage:
            out.append("UNDER-VOLTAGE: power supply too weak, a brown-out may follow")
        return tuple(out)

    def text(self) -> str:
        """One short line for STATUS and the terminal."""
        parts = [self.pace.text() if self.pace is not None else "no camera pace"]
        if self.board.name is not None:
            parts[0] += f" ({self.board.name}" + (f", profile {self.board.expected_ms:g} ms" if self.board.expected_ms else "") + ")"
        if self.pace is not None and self.pace.detect_ms is not None:
            parts.append(f"detect {self.pace.detect_ms:.0f} ms")
        h = self.health_now
        if h is not None and h.text():
            parts.append(h.text())
        parts += self.warnings()
        return "; ".join(parts)

    def as_json(self) -> dict[str, Any]:
        p = self.pace
        return {
            "rate_hz": None if p is None else p.rate_hz, "latency_s": None if p is None else p.latency_s,
            "age_s": None if p is None else p.age_s, "detect_ms": None if p is None else p.detect_ms,
            "board": self.board.name, "profile_ms": self.board.expected_ms, "board_why": self.board.why,
            "degraded": self.verdict.degraded, "too_slow": self.verdict.too_slow,
            "health": None if self.health_now is None else self.health_now.as_json(),
            "warnings": list(self.warnings()), "text": self.text(),
        }

    def close(self) -> None:
        if self.health is not None:
            self.health.close()
        if self.gauge is not None:
            self.gauge.close()
