"""The config file: defaults, round trip, and errors that name the key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from device.cli.main import main
from device.core import config


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(text)
    return p


def test_defaults_round_trip_through_toml() -> None:
    cfg = config.Config()
    assert config.from_dict(tomllib.loads(config.to_toml(cfg))) == cfg


def test_load_without_path_uses_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = write(tmp_path, "[camera]\nhfov_deg = 102.0\n")
    monkeypatch.setenv("REARGUARD_CONFIG", str(p))
    assert config.load().camera.hfov_deg == 102.0


def test_sensor_list_from_toml(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        """
[ranging]
max_age_s = 0.25

[[ranging.sensors]]
name = "left"
trigger_pin = 5
echo_pin = 6
bearing_deg = -20

[[ranging.sensors]]
name = "right"
trigger_pin = 16
echo_pin = 26
bearing_deg = 20
type = "jsn-sr04t"
""",
    )
    cfg = config.load(p)
    assert [(s.name, s.bearing_deg, s.type) for s in cfg.ranging.sensors] == [
        ("left", -20.0, "hc-sr04"),
        ("right", 20.0, "jsn-sr04t"),
    ]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[camera]\nbogus = 1\n", "camera.bogus: unknown key"),
        ("[nonsense]\n", "nonsense: unknown key"),
        ("[alerts]\nwarn_ttc_s = -1\n", "alerts.warn_ttc_s"),
        ("[alerts]\nwarn_ttc_s = 9\n", "danger_ttc_s < warn_ttc_s < caution_ttc_s"),
        ("[detector]\ninput_size = 400\n", "detector.input_size: must be a multiple of 32"),
        ("[detector]\ninput_width = 416\n", "input_width and input_height go together"),
        ("[detector]\ninput_width = 416\ninput_height = 250\n", "detector.input_height: must be a multiple of 32"),
        ('[detector]\nfill = "crop"\n', "detector.fill"),
        ('[detector]\nlookahead_mode = "sometimes"\n', "detector.lookahead_mode"),
        ('[detector]\nlookahead_every = 1\nlookahead_mode = "instead"\n', "needs lookahead_every >= 2"),
        ('[detector]\nclasses = ["unicorn"]\n', "'unicorn' is not a COCO class name"),
        ("[outputs]\nbuzzer_pin = 24\n", "GPIO24 is used twice"),
        ("[outputs]\nhaptic_pin = 40\n", "outputs.haptic_pin"),
        ('[camera]\nwidth = "wide"\n', "camera.width"),
        ("[ranging]\nmax_age_s = 0.05\n", "ranging: max_age_s 0.05 is shorter"),
        (
            '[[ranging.sensors]]\nname = "a"\ntrigger_pin = 5\necho_pin = 6\n'
            '[[ranging.sensors]]\nname = "a"\ntrigger_pin = 16\necho_pin = 26\n',
            "sensor names must be unique",
        ),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(config.ConfigError) as err:
        config.load(write(tmp_path, text))
    assert needle in str(err.value)


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match="not valid TOML"):
        config.load(write(tmp_path, "[camera\n"))
    with pytest.raises(config.ConfigError, match="not found"):
        config.load(tmp_path / "nope.toml")


def test_cli_config_show_and_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show"]) == 0
    shown = capsys.readouterr().out
    assert config.from_dict(tomllib.loads(shown)) == config.Config()

    bad = write(tmp_path, "[alerts]\nwarn_distance = 2\n")
    assert main(["config", "show", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "alerts.warn_distance: unknown key" in err
    assert "Traceback" not in err


def test_config_show_says_which_file_it_read_and_what_each_key_means(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REARGUARD_CONFIG", raising=False)
    monkeypatch.setattr(config, "DEFAULT_PATHS", (tmp_path / "absent.toml",))
    assert main(["config", "show"]) == 0
    shown = capsys.readouterr().out
    assert shown.splitlines()[0] == (f"# no config file ($REARGUARD_CONFIG unset, {tmp_path / 'absent.toml'} "
                                     "absent): the built-in defaults")
    # every key carries its field's description, units included
    assert "mount_height_m = 1.1  # camera height above the ground, metres\n" in shown
    assert "warn_ttc_s = 2.5  # warning time to collision\n" in shown
    assert "trigger_pin = 23  # BCM GPIO number wired to the sensor's Trig\n" in shown
    keys = [ln for ln in shown.splitlines() if " = " in ln]
    assert len(keys) > 50 and [ln for ln in keys if "  # " not in ln] == []
    assert config.from_dict(tomllib.loads(shown)) == config.Config()

    mine = write(tmp_path, "[camera]\nhfov_deg = 102.0\n")
    monkeypatch.setenv("REARGUARD_CONFIG", str(mine))
    assert main(["config", "show"]) == 0
    shown = capsys.readouterr().out
    assert shown.splitlines()[0] == f"# read from {mine}"
    assert "hfov_deg = 102.0  #" in shown


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[alerts]\nwarn_tc_s = 2.0\n", "alerts.warn_tc_s: unknown key; did you mean 'warn_ttc_s'"),
        ("[alertz]\n", "alertz: unknown key; did you mean 'alerts'?"),
        ("[[ranging.sensors]]\nname = 'c'\ntrigger_pin = 23\necho_pin = 24\nbearng_deg = 5.0\n",
         "ranging.sensors.0.bearng_deg: unknown key; did you mean 'bearing_deg'"),
        ("[camera]\nzzz = 1\n", "camera.zzz: unknown key\n"),
    ],
)
def test_an_unknown_key_suggests_the_close_ones(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(config.ConfigError) as err:
        config.load(write(tmp_path, text))
    assert needle in str(err.value) + "\n"
