"""`sudo rearguard aim`: the preview to the local network for a limited time,
and only then; the service put back as installed afterwards."""

from __future__ import annotations

import io
import socket
import time
from pathlib import Path

import pytest

from device.cli import aim as A
from device.cli.main import main
from device.view.preview import PreviewServer


def test_aim_widens_the_sandbox_to_the_local_networks_for_its_minutes_then_puts_it_back(tmp_path: Path) -> None:
    calls: list[tuple[str, ...]] = []
    seen: list[str] = []
    dropin = tmp_path / "run" / "rearguard.service.d"

    def systemctl(*args: str) -> int:
        calls.append(args)
        if args == ("restart", A.UNIT):
            seen.append((dropin / A.DROPIN).read_text() if (dropin / A.DROPIN).exists() else "")
        return 0

    waited: list[float] = []
    t = [0.0]

    def sleep(s: float) -> None:
        waited.append(s)
        t[0] += s

    monotonic = time.monotonic
    try:
        time.monotonic = lambda: t[0]  # type: ignore[assignment]
        out = io.StringIO()
        assert A.aim(8080, 2.0, dropin_dir=dropin, systemctl=systemctl, sleep=sleep, out=out) == 0
    finally:
        time.monotonic = monotonic  # type: ignore[assignment]
    # reset-failed before each restart: the unit's start limit (3 in 10 min) is
    # for crash loops, and aiming's own two restarts must not use it up
    assert calls == [("daemon-reload",), ("reset-failed", A.UNIT), ("restart", A.UNIT),
                     ("daemon-reload",), ("reset-failed", A.UNIT), ("restart", A.UNIT)]
    during, after = seen
    assert "IPAddressAllow=10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 169.254.0.0/16 fc00::/7 fe80::/10" in during
    assert "--preview 0.0.0.0:8080 --preview-for 120\n" in during and "ExecStart=\n" in during
    assert "0.0.0.0/0" not in during and "any" not in during.split("IPAddressAllow=")[1]
    assert after == ""  # the service is restarted as installed
    assert sum(waited) == pytest.approx(120.0)
    assert "aiming for 2 min" in out.getvalue() and ":8080/" in out.getvalue()


def test_aim_needs_root_and_a_sane_time(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(A.os, "geteuid", lambda: 1000)
    assert main(["aim"]) == 2
    assert "sudo rearguard aim" in capsys.readouterr().err
    assert main(["aim", "--minutes", "90"]) == 2


def test_the_preview_closes_itself_when_its_time_is_up() -> None:
    server = PreviewServer("127.0.0.1", 0)
    try:
        server.stop_after(0.1)
        for _ in range(100):  # bounded: the timer fires after 0.1 s
            try:
                with socket.create_connection(("127.0.0.1", server.port), timeout=1):
                    pass
            except OSError:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the preview still answers after its time")
    finally:
        server.close()
