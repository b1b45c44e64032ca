"""Setting config keys in a file's text keeps the builder's comments and
everything else; the result is always a valid config."""

from __future__ import annotations

import tomllib

import pytest

from device.cli.main import main
from device.core.config import ConfigError, load, to_toml
from device.core.config_edit import parse_assignment, set_values

MINE = """# my Pi: wide camera
[camera]
mount_height_m = 1.1  # camera height above the ground, metres
hfov_deg = 102.0 # the Wide  (# in a comment)

[[ranging.sensors]]
name = "centre"
trigger_pin = 23
echo_pin = 24

[alerts]
hold_s = 0.6

[detector]
model = "/home/pi/models/x#1.onnx"  # my own
"""


def test_set_values_keeps_comments_and_order() -> None:
    out = set_values(MINE, {"camera.mount_height_m": 1.42, "camera.pitch_deg": 8.5, "alerts.hold_s": 1.0,
                            "detector.model": "/home/pi/models/y#2.onnx", "recording.directory": "/var/lib/rearguard/recordings"})
    assert out == MINE.replace("mount_height_m = 1.1  #", "mount_height_m = 1.42  #").replace(
        "hfov_deg = 102.0 # the Wide  (# in a comment)\n",
        "hfov_deg = 102.0 # the Wide  (# in a comment)\npitch_deg = 8.5\n").replace(
        "hold_s = 0.6", "hold_s = 1.0").replace(
        'x#1.onnx"  # my own', 'y#2.onnx"  # my own') + '\n[recording]\ndirectory = "/var/lib/rearguard/recordings"\n'
    data = tomllib.loads(out)
    assert data["ranging"]["sensors"][0]["trigger_pin"] == 23  # array tables untouched


def test_set_values_refuses_what_the_config_refuses() -> None:
    with pytest.raises(ConfigError, match=r"camera.pitch_deg: Input should be less than or equal to 45"):
        set_values(MINE, {"camera.pitch_deg": 99.0})
    with pytest.raises(ConfigError, match="camera.pitchdeg: unknown key; did you mean 'pitch_deg'"):
        set_values(MINE, {"camera.pitchdeg": 5.0})
    with pytest.raises(ConfigError, match="section.key"):
        set_values(MINE, {"pitch_deg": 5.0})


def test_parse_assignment() -> None:
    assert parse_assignment("camera.pitch_deg=7.5") == ("camera.pitch_deg", 7.5)
    assert parse_assignment("recording.directory=/var/lib/x") == ("recording.directory", "/var/lib/x")
    assert parse_assignment('recording.directory="a b"') == ("recording.directory", "a b")
    assert parse_assignment("outputs.buzzer=false") == ("outputs.buzzer", False)
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_assignment("camera.pitch_deg")


def test_config_show_set(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    args = ["config", "show", "--config", "/dev/null", "--set", "recording.directory=/var/lib/rearguard/recordings",
            "--set", "recording.segment_s=60", "--set", "recording.budget_mb=300"]
    assert main(args) == 0
    out = tmp_path / "c.toml"
    out.write_text(capsys.readouterr().out)
    cfg = load(out)
    assert (cfg.recording.directory, cfg.recording.segment_s, cfg.recording.budget_mb) == (
        "/var/lib/rearguard/recordings", 60.0, 300.0)
    assert "segment_s = 60  # length of one recording segment" in out.read_text()
    assert main(["config", "show", "--config", "/dev/null", "--set", "recording.budget_mb=60"]) == 2
    assert "recording.budget_mb: 60 MB holds less than two" in capsys.readouterr().err
    assert to_toml(load("/dev/null"))  # the plain form is unchanged
