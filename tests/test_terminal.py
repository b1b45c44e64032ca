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
    assert describe(threat(7.0, "centre")) == "person 3.0 m, behind, ttc 2.0 s (camera)"
    assert describe(threat(-12.0, "left")) == "person 3.0 m, 12 deg left, ttc 2.0 s (camera)"
    assert describe(threat(25.0, "right")) == "person 3.0 m, 25 deg right, ttc 2.0 s (camera)"


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


def test_an_event_line_says_what_and_which_side() -> None:
    """The replay's lines, the journal's and --json's `what` all say what
    was seen and on which side, from the loop's own threat."""
    import logging

    from gpiozero.pins.mock import MockFactory, MockPWMPin

    from device.core.clock import ReplayClock
    from device.core.config import from_dict
    from device.core.types import AlertEvent, Range
    from device.output.alerts import Alerter
    from device.pipeline import Pipeline
    from device.sensing.ultrasonic import RecordedRanges
    from device.view.terminal import format_event
    from fakes import ns

    cfg = from_dict({"ranging": {"max_age_s": 0.25, "sensors": [
        {"name": "centre", "trigger_pin": 23, "echo_pin": 24},
        {"name": "left", "trigger_pin": 5, "echo_pin": 6, "bearing_deg": -30.0}]}})
    clock = ReplayClock(0)
    alert = Alerter(cfg.outputs, pin_factory=MockFactory(pin_class=MockPWMPin))
    ranges = [Range(ns(i * 0.06), "left", 1.5) for i in range(4)]
    pipe = Pipeline(cfg, clock, RecordedRanges(ranges), alert, None)
    log = io.StringIO()
    handler = logging.StreamHandler(log)
    logging.getLogger("device.pipeline").addHandler(handler)
    logging.getLogger("device.pipeline").setLevel(logging.INFO)
    try:
        for i in range(20):
            clock.set(ns(i * 0.02))
            pipe.step()
    finally:
        logging.getLogger("device.pipeline").removeHandler(handler)
        alert.close()
    first = pipe.events[0]
    assert (first.level, first.label, first.direction, first.bearing_deg) == (AlertLevel.WARN, "left", "left", -30.0)
    assert format_event(first, 0).split("s  ", 1)[1] == "WARN    echo 1.5 m, 30 deg left (ultrasonic left)"
    assert "alert WARN echo 1.5 m, 30 deg left (ultrasonic left)" in log.getvalue()

    cam = AlertEvent(ns(2.0), AlertLevel.CAUTION, "camera", 2.55, 3.1, (), "person", -10.4, "left")
    assert format_event(cam, 0) == "    2.00 s  CAUTION person 2.5 m, 10 deg left, ttc 3.1 s (camera)"
    behind = AlertEvent(0, AlertLevel.DANGER, "fused", 0.7, None, (), "bicycle", 3.0, "centre")
    assert behind.what() == "bicycle 0.7 m, behind (fused)"
    fault = AlertEvent(0, AlertLevel.FAULT, "fault", None, None, ("sensor left: no echo pulse",))
    assert format_event(fault, 0).endswith("FAULT   faults: sensor left: no echo pulse")
