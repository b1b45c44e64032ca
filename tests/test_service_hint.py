"""On an installed Pi the service holds the pins and the camera: a command
a person runs then says "stop rearguard.service first", not "check the wiring"."""

from __future__ import annotations

import argparse

import pytest

from device.app import service_hint
from device.cli import check
from device.sensing.ultrasonic import RangingError

BUSY = "ultrasonic sensor 'centre' (trigger GPIO23, echo GPIO24) could not be set up: 'GPIO busy'"


def test_the_hint_names_the_service_when_it_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INVOCATION_ID", raising=False)
    said = service_hint.hint(BUSY, active=lambda: True)
    assert said.startswith("rearguard.service is running and holds the GPIO pins and the camera: stop it first "
                           "(sudo systemctl stop rearguard)")
    # not running, but the line is busy: someone else holds it
    assert "another program holds it" in service_hint.hint(BUSY, active=lambda: False)
    # not running and not busy: a wiring or config problem, no hint
    assert service_hint.hint("pin 23 is invalid", active=lambda: False) == ""
    # the service itself is never told to stop itself
    monkeypatch.setenv("INVOCATION_ID", "0123")
    assert service_hint.hint(BUSY, active=lambda: True) == ""


def test_check_ranging_says_stop_the_service_first(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import device.app.compose

    def held(*_a: object, **_k: object) -> None:
        raise RangingError(BUSY)

    monkeypatch.delenv("INVOCATION_ID", raising=False)
    monkeypatch.setattr(device.app.compose, "compose_ranging", held)
    monkeypatch.setattr(service_hint, "service_active", lambda: True)
    args = argparse.Namespace(config="/dev/null", trace=None, simulated=False, mock_pins=False, duration=1.0)
    assert check.cmd_check_ranging(args) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [f"rearguard: {BUSY}",
                   "rearguard: rearguard.service is running and holds the GPIO pins and the camera: stop it first "
                   "(sudo systemctl stop rearguard), run this again, then start it (sudo systemctl start rearguard)"]


def test_run_says_stop_the_service_first_when_its_pins_are_held(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    import device.app.live as live
    from device.core.config import Config
    from device.output.alerts import AlertError

    def held(*_a: object, **_k: object) -> None:
        raise AlertError("haptic motor on GPIO12 (PWM) could not be set up: 'GPIO busy'")

    monkeypatch.delenv("INVOCATION_ID", raising=False)
    monkeypatch.setattr(live, "compose_device", held)
    monkeypatch.setattr(service_hint, "service_active", lambda: True)
    err = io.StringIO()
    assert live.run_device(Config(), live.RunOptions(), out=io.StringIO(), err=err) == 1
    assert "stop it first (sudo systemctl stop rearguard)" in err.getvalue()


def test_a_person_running_the_device_does_not_record_into_the_services_directory(
        tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    """hardware.md's live test, as the login user with the installed config: no recording FAULT."""
    import os

    from device.cli.main import _not_the_services_recordings
    from device.core.config import from_dict

    service_dir = tmp_path / "var-lib-rearguard"
    service_dir.mkdir(mode=0o750)
    cfg = from_dict({"recording": {"directory": str(service_dir / "recordings")}})
    monkeypatch.delenv("INVOCATION_ID", raising=False)
    monkeypatch.setattr(os, "access", lambda p, mode: not str(p).startswith(str(service_dir)))
    out = _not_the_services_recordings(cfg, None)
    assert out.recording.directory == "" and out.recording.model_copy(update={"directory": cfg.recording.directory}) \
        == cfg.recording
    assert "not recording: " in capsys.readouterr().err
    assert _not_the_services_recordings(cfg, str(tmp_path / "mine")) is cfg  # --record DIR: as asked
    monkeypatch.setenv("INVOCATION_ID", "1")
    assert _not_the_services_recordings(cfg, None) is cfg  # the service itself: a fault if it cannot
    monkeypatch.delenv("INVOCATION_ID")
    monkeypatch.setattr(os, "access", lambda p, mode: True)
    assert _not_the_services_recordings(cfg, None) is cfg  # writable: recorded
