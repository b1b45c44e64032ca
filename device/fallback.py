"""The "not protecting" rhythm, for when the device's program cannot run.

`python -m device.fallback` is started by systemd (rearguard-fallback.service,
OnFailure= of rearguard.service) when the service has failed for good: a
config error, a crash loop, systemd giving up. It only drives the motor and
the buzzer, so it imports as little as possible: the standard library and
gpiozero, nothing of the rest of the package (a broken install, a bad
config or a missing model must not stop it too). It reads the two output
pins from the config's [outputs] table when it can and falls back to the
default pins when it cannot (the config may be the very thing that is broken).

The rhythm (three beats, then a pause: no level or cue has it) is defined
here and nowhere else; device.output.alerts takes it from here for the
runner's card. It plays until the service stops it (SIGTERM), with the
outputs left off.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
import tomllib
from pathlib import Path

# (seconds, motor on, buzzer on), looping: beat-beat-beat, pause.
NOT_PROTECTING: tuple[tuple[float, bool, bool], ...] = (
    (0.3, True, True), (0.3, False, False),
    (0.3, True, True), (0.3, False, False),
    (0.3, True, True), (1.5, False, False),
)
PERIOD_S = sum(d for d, _, _ in NOT_PROTECTING)
DEFAULT_PINS = (12, 25)  # device.core.config.OutputsConfig's haptic_pin, buzzer_pin
DEFAULT_CONFIG = "/etc/rearguard/config.toml"
POWER_OFF_STATUS = 75  # device.app.live.EXIT_POWER_OFF: the button held, not a failure to signal


def output_at(elapsed_s: float) -> tuple[bool, bool]:
    """(motor, buzzer) at `elapsed_s` into the rhythm."""
    phase = round(elapsed_s * 1000) % round(PERIOD_S * 1000)  # whole ms: no float drift at the edges
    for seconds, motor, buzzer in NOT_PROTECTING:
        if phase < round(seconds * 1000):
            return motor, buzzer
        phase -= round(seconds * 1000)
    return NOT_PROTECTING[-1][1], NOT_PROTECTING[-1][2]


def read_pins(path: str | os.PathLike[str] | None) -> tuple[int, int | None, str]:
    """(motor pin, buzzer pin or None when the buzzer is off, where they came from)."""
    motor, buzzer = DEFAULT_PINS
    if path is None or not Path(path).exists():
        return motor, buzzer, "default pins (no config file)"
    try:
        outputs = tomllib.loads(Path(path).read_text()).get("outputs", {})
        m, b = outputs.get("haptic_pin", motor), outputs.get("buzzer_pin", buzzer)
        if not all(isinstance(p, int) and not isinstance(p, bool) and 0 <= p <= 27 for p in (m, b)):
            raise ValueError(f"pins {m!r}, {b!r} are not GPIO numbers 0-27")
        on = outputs.get("buzzer", True)
        return m, (b if on is not False else None), f"pins from {path}"
    except (OSError, ValueError, tomllib.TOMLDecodeError, AttributeError) as err:
        return motor, buzzer, f"default pins ({path} unreadable: {err})"


def play(set_outputs, now, wait, stop: threading.Event, duration_s: float | None = None) -> None:
    """Drive `set_outputs(motor, buzzer)` at each change of the rhythm until
    `stop` is set (or `duration_s` passed); outputs off at the end."""
    start = now()
    last = None
    try:
        while not stop.is_set():
            elapsed = now() - start
            if duration_s is not None and elapsed >= duration_s:
                break
            out = output_at(elapsed)
            if out != last:
                set_outputs(*out)
                last = out
            wait(0.02)
    finally:
        set_outputs(False, False)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m device.fallback", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=os.environ.get("REARGUARD_CONFIG", DEFAULT_CONFIG))
    p.add_argument("--duration", type=float, default=None, help="stop after S seconds (default: until SIGTERM)")
    args = p.parse_args(argv)
    if os.environ.get("MONITOR_EXIT_STATUS") == str(POWER_OFF_STATUS):
        # systemd's OnFailure= passes the failed service's status: the runner held
        # the button and the Pi is powering off (rearguard-poweroff.service)
        print("rearguard-fallback: the device stopped for the button's shutdown: nothing to play",
              file=sys.stderr, flush=True)
        return 0
    motor_pin, buzzer_pin, where = read_pins(args.config)
    mock = os.environ.get("GPIOZERO_PIN_FACTORY", "").strip().lower() == "mock"
    from gpiozero import DigitalOutputDevice  # after the config: a missing gpiozero still says the pins

    motor = DigitalOutputDevice(motor_pin, initial_value=False)
    buzzer = DigitalOutputDevice(buzzer_pin, initial_value=False) if buzzer_pin is not None else None
    print(f"rearguard-fallback: NOT PROTECTING: the device's program is not running "
          f"(journalctl -u rearguard says why); playing the not-protecting rhythm on motor GPIO{motor_pin}"
          f"{f', buzzer GPIO{buzzer_pin}' if buzzer_pin is not None else ''} ({where})", file=sys.stderr, flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    t0 = time.monotonic()

    def set_outputs(m: bool, b: bool) -> None:
        motor.value = m
        if buzzer is not None:
            buzzer.value = b
        if mock:  # simulated pins: the levels are what a check can see
            print(f"pins {time.monotonic() - t0:.3f} GPIO{motor_pin}={int(m)}"
                  + (f" GPIO{buzzer_pin}={int(b)}" if buzzer is not None else ""), flush=True)

    try:
        play(set_outputs, time.monotonic, stop.wait, stop, args.duration)
    finally:
        motor.close()
        if buzzer is not None:
            buzzer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
