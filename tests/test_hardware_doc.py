"""hardware.md says what the code does: the haptic PWM frequency, and every
output pin the config has (the side motors too), with its config key."""

from __future__ import annotations

import re
from pathlib import Path

from device.core.config import OutputsConfig
from device.output.alerts import HAPTIC_PWM_HZ

HARDWARE = Path(__file__).resolve().parents[1] / "hardware.md"


def test_the_pwm_frequency_in_hardware_md_is_the_codes() -> None:
    text = HARDWARE.read_text()
    # every sentence that speaks of PWM and a frequency gives the code's
    pwm = [m.group(0) for m in re.finditer(r"[^.]*PWM[^.]*\b\d+ Hz[^.]*", text)]
    assert pwm, "hardware.md names no PWM frequency"
    assert [s for s in pwm if f"{HAPTIC_PWM_HZ} Hz" not in s] == []


def test_every_output_pin_key_is_in_hardware_md() -> None:
    text = HARDWARE.read_text()
    keys = [k for k in OutputsConfig.model_fields if k.endswith("_pin")]
    assert set(keys) >= {"haptic_pin", "buzzer_pin", "haptic_left_pin", "haptic_right_pin"}
    assert [k for k in keys if f"`outputs.{k}`" not in text] == []


def test_the_suggested_side_motor_pins_make_a_valid_config() -> None:
    """The TOML block hardware.md gives for the side motors loads as it stands."""
    import tomllib

    from device.core.config import from_dict

    text = HARDWARE.read_text()
    block = text[text.index("## Side motors"):]
    toml = block[block.index("```toml") + 7:block.index("```", block.index("```toml") + 7)]
    cfg = from_dict(tomllib.loads(toml))
    assert (cfg.outputs.haptic_left_pin, cfg.outputs.haptic_right_pin) == (13, 19)
