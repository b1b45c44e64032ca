"""The terminal view shows the decision's own direction and level."""

from __future__ import annotations

import io

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
