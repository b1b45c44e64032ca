"""The terminal view shows the decision's own direction and level."""

from __future__ import annotations

import io

from device.core.faults import Fault, Kind, Part
from device.core.types import AlertLevel, Threat
from device.view.terminal import StatusLine, describe


def threat(bearing: float, direction: str | None) -> Threat:
    return Threat(t_ns=0, level=AlertLevel.WARN, source="camera", distance_m=3.0, ttc_s=2.0,
                  bearing_deg=bearing, direction=direction, label="person")


def test_side_is_the_decisions_direction() -> None:
    # 7 degrees is inside alerts.centre_deg (10): centre, so no side shown.
    assert describe(threat(7.0, "centre")) == "person (camera) at 3.00 m, ttc 2.00 s"
    assert describe(threat(-12.0, "left")).endswith(" 12 deg left")
    assert describe(threat(25.0, "right")).endswith(" 25 deg right")


def test_status_line_prints_the_level_it_is_given() -> None:
    out = io.StringIO()
    StatusLine(out).show(threat(0.0, "centre"), AlertLevel.FAULT, 0, 0.0)
    assert out.getvalue().startswith("FAULT ")


def test_status_line_shows_the_devices_own_pace() -> None:
    out = io.StringIO()
    StatusLine(out).show(threat(0.0, "centre"), AlertLevel.WARN, 0, 0.0,
                         pace="7.2 det/s, result 0.14 s old (pi4, profile 155.1 ms); cpu 61 C, power ok")
    assert "[7.2 det/s, result 0.14 s old (pi4, profile 155.1 ms); cpu 61 C, power ok]" in out.getvalue()


def test_a_fault_whose_figures_change_is_printed_once_not_every_pass() -> None:
    # Under systemd (not a terminal) a line goes to the journal per change:
    # a camera stall's growing age is not one.
    out = io.StringIO()
    line = StatusLine(out)
    clear = Threat(t_ns=0, level=AlertLevel.CLEAR, source="none", distance_m=None, ttc_s=None, bearing_deg=None)
    for i in range(50):  # a second of passes
        age = 10.0 + i * 0.02
        line.show(Threat(**{**clear.__dict__, "faults": (Fault(Part.CAMERA, Kind.STALLED, f"no frame for {age:.1f} s"),)}),
                  AlertLevel.FAULT, 0, i * 0.02)
    assert len(out.getvalue().splitlines()) == 1
    line.show(Threat(**{**clear.__dict__, "faults": (Fault(Part.CAMERA, Kind.STALLED, "no frame for 11.0 s"),
                                                     Fault(Part.SENSOR, Kind.FAILED, "echo-never-rises", name="centre"))}),
              AlertLevel.FAULT, 0, 1.0)
    line.show(clear, AlertLevel.CLEAR, 0, 1.02)
    assert [ln.split()[0] for ln in out.getvalue().splitlines()] == ["FAULT", "FAULT", "CLEAR"]
