"""`rearguard runs`: each run of the service from its journal, with its
alerts (what, which side, how near), faults and power warnings. The journal
lines are made by the device's own StatusLine, so a change of its wording
that `runs` cannot read fails here."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from device.cli.main import main
from device.cli.runs import parse_runs
from device.core.types import AlertLevel, Threat
from device.view.terminal import StatusLine

BOOT0, BOOT1 = "b0" * 16, "b1" * 16


def _journal(run_id: str, boot: str, t0_s: float, steps: list[tuple[float, AlertLevel, Threat, str]],
             extra: list[tuple[float, str]] = ()) -> list[dict[str, str]]:  # type: ignore[assignment]
    out: list[tuple[float, str]] = [(t0_s, "rearguard 0.1.0: source pi, pins gpiozero default; Ctrl-C to stop")]
    for t, level, threat, pace in steps:
        stream = io.StringIO()
        line = StatusLine(stream)
        line.show(threat, level, 0, t, pace=pace)
        out += [(t0_s + t, ln) for ln in stream.getvalue().splitlines()]
    out += [(t0_s + t, m) for t, m in extra]
    return [{"MESSAGE": m, "__REALTIME_TIMESTAMP": str(round(t * 1e6)), "_SYSTEMD_INVOCATION_ID": run_id,
             "_BOOT_ID": boot} for t, m in sorted(out, key=lambda x: x[0])]


def _threat(level: AlertLevel, **kw: object) -> Threat:
    return Threat(t_ns=0, level=level, **kw)  # type: ignore[arg-type]


@pytest.fixture()
def journal(tmp_path: Path) -> Path:
    t0 = 1_780_000_000.0  # 2026-05-28 20:26:40 UTC
    person = _threat(AlertLevel.CAUTION, source="camera", distance_m=2.6, ttc_s=3.1, bearing_deg=-10.4,
                     direction="left", label="person")
    echo = _threat(AlertLevel.WARN, source="ultrasonic", distance_m=1.5, bearing_deg=0.0, direction="centre",
                   label="centre")
    clear = _threat(AlertLevel.CLEAR, source="none")
    first = _journal("inv1", BOOT0, t0, [
        (1.0, AlertLevel.CLEAR, clear, "pace ok"),
        (20.0, AlertLevel.CAUTION, person, "pace ok"),
        (21.0, AlertLevel.WARN, echo, "pace ok"),
        (23.0, AlertLevel.CLEAR, clear, "pace ok"),
        (40.0, AlertLevel.FAULT, _threat(AlertLevel.CLEAR, source="none", faults=("camera: no frame for 1.2 s",)),
         "pi health: UNDER-VOLTAGE now"),
        (41.0, AlertLevel.FAULT, _threat(AlertLevel.CLEAR, source="none", faults=("camera: no frame for 2.4 s",)),
         "pi health: UNDER-VOLTAGE now"),
    ], extra=[(39.5, "2026-05-28 20:27:19,500 WARNING device.sensing.pi_health: pi health: UNDER-VOLTAGE now"),
              (60.0, "stopped after 900 frames; 5 alert changes")])
    second = _journal("inv2", BOOT1, t0 + 3600, [(1.0, AlertLevel.CLEAR, clear, "")],
                      extra=[(0.5, "fault: sensor centre: no echo pulse (echo-never-rises)")])
    path = tmp_path / "journal.json"
    path.write_text("".join(json.dumps(e) + "\n" for e in first + second))
    return path


def test_runs_lists_each_run_with_its_alerts_faults_and_power(journal: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "--journal", str(journal)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "run 1: 2026-05-28 20:26:40 - 20:27:40 UTC, boot -1: 2 alert(s), 1 fault(s), 1 power warning(s)",
        "  20:27:00  CAUTION  person 2.6 m, 10 deg left, ttc 3.1 s (camera)",
        "  20:27:01  WARN     echo 1.5 m, behind (ultrasonic centre)",
        "  20:27:20  fault    camera: no frame for 1.2 s",
        "  20:27:19  power    pi health: UNDER-VOLTAGE now",  # said once while it lasts
        "  20:27:40  stopped after 900 frames; 5 alert changes",
        "run 2: 2026-05-28 21:26:40 - 21:26:41 UTC, boot 0: 0 alert(s), 1 fault(s)",
        "  21:26:40  fault    sensor centre: no echo pulse (echo-never-rises)",
    ]
    assert main(["runs", "--journal", str(journal), "--json", "--last", "1"]) == 0
    [only] = json.loads(capsys.readouterr().out)
    assert only["id"] == "inv2" and only["faults"][0]["fault"].startswith("sensor centre")


def test_runs_with_nothing_in_the_journal_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text("")
    assert main(["runs", "--journal", str(empty)]) == 0
    assert "group adm or systemd-journal" in capsys.readouterr().out
    assert parse_runs([]) == []
