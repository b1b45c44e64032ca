"""The not-protecting fallback: its rhythm on the exact clock, the pins it
reads from a config that may itself be broken, and how little it imports."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from device import fallback
from device.output.alerts import NOT_PROTECTING, PATTERNS
from device.tools.card import feel

REPO = Path(__file__).resolve().parents[1]


def test_the_rhythm_is_three_beats_then_a_pause() -> None:
    # written out by hand: on 0-0.3, off -0.6, on -0.9, off -1.2, on -1.5, off -3.0, again
    at = {t: fallback.output_at(t) for t in (0.0, 0.29, 0.3, 0.59, 0.6, 0.9, 1.2, 1.49, 1.5, 2.99, 3.0, 3.31)}
    assert [m for m, _ in at.values()] == [True, True, False, False, True, False, True, True, False, False,
                                           True, False]
    assert all(m == b for m, b in at.values())  # the buzzer with the motor
    assert fallback.PERIOD_S == 3.0
    # unlike every level's rhythm, and on the card as the same pattern
    assert NOT_PROTECTING.pattern not in PATTERNS.values()
    assert feel(NOT_PROTECTING.pattern) == "on 0.3 s, off 0.3 s, on 0.3 s, off 0.3 s, on 0.3 s, off 1.5 s; again every 3 s"


def test_pins_come_from_the_config_when_it_can_be_read_else_the_defaults(tmp_path: Path) -> None:
    assert fallback.read_pins(tmp_path / "none.toml")[:2] == (12, 25)
    typo = tmp_path / "typo.toml"  # what stopped the device does not stop the fallback
    typo.write_text("[camera]\nmount_hieght_m = 1.2\n[outputs]\nhaptic_pin = 13\nbuzzer_pin = 26\n")
    assert fallback.read_pins(typo) == (13, 26, f"pins from {typo}")
    quiet = tmp_path / "quiet.toml"
    quiet.write_text("[outputs]\nbuzzer = false\n")
    assert fallback.read_pins(quiet)[:2] == (12, None)
    broken = tmp_path / "broken.toml"
    broken.write_text("[outputs\nhaptic_pin = 13\n")
    m, b, why = fallback.read_pins(broken)
    assert (m, b) == (12, 25) and "unreadable" in why
    silly = tmp_path / "silly.toml"
    silly.write_text("[outputs]\nhaptic_pin = \"twelve\"\n")
    assert fallback.read_pins(silly)[:2] == (12, 25)


def test_play_drives_each_change_on_the_clock_and_ends_with_the_outputs_off() -> None:
    t = [0.0]
    writes: list[tuple[float, bool, bool]] = []
    stop = threading.Event()

    def wait(s: float) -> None:
        t[0] = round(t[0] + s, 6)

    fallback.play(lambda m, b: writes.append((t[0], m, b)), lambda: t[0], wait, stop, duration_s=6.5)
    changes = [(round(at, 2), m) for at, m, _ in writes]
    assert changes[:7] == [(0.0, True), (0.3, False), (0.6, True), (0.9, False), (1.2, True), (1.5, False),
                           (3.0, True)]
    assert writes[-1][1:] == (False, False)


def test_it_imports_nothing_of_the_device_and_plays_on_simulated_pins(tmp_path: Path) -> None:
    code = ("import sys, device.fallback as f; "
            "print(sorted(m for m in sys.modules if m.startswith('device.') or m.split('.')[0] in "
            "('pydantic', 'numpy', 'cv2', 'onnxruntime')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert r.stdout.strip() == "['device.fallback']", r.stdout + r.stderr
    cfg = tmp_path / "config.toml"
    cfg.write_text("[camera]\nmount_hieght_m = 1.2\n")
    env = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock"}
    r = subprocess.run([sys.executable, "-m", "device.fallback", "--config", str(cfg), "--duration", "1.0"],
                       capture_output=True, text=True, timeout=60, cwd=REPO, env=env)
    assert r.returncode == 0, r.stderr
    assert "NOT PROTECTING" in r.stderr and "motor GPIO12, buzzer GPIO25" in r.stderr
    levels = [line.split()[2:] for line in r.stdout.splitlines() if line.startswith("pins ")]
    # the first beats, in order (their timing is the pure test's), and off at the end
    assert levels[:3] == [["GPIO12=1", "GPIO25=1"], ["GPIO12=0", "GPIO25=0"], ["GPIO12=1", "GPIO25=1"]]
    assert levels[-1] == ["GPIO12=0", "GPIO25=0"]


def test_after_the_buttons_shutdown_it_plays_nothing() -> None:
    env = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock", "MONITOR_EXIT_STATUS": "75"}
    r = subprocess.run([sys.executable, "-m", "device.fallback", "--duration", "1.0"],
                       capture_output=True, text=True, timeout=60, cwd=REPO, env=env)
    assert r.returncode == 0 and "nothing to play" in r.stderr and "pins " not in r.stdout
