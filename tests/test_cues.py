"""One-off cues on mock pins with a synthetic clock: they play once over
CLEAR and never over a level that says more."""

from __future__ import annotations

from gpiozero.pins.mock import MockFactory, MockPWMPin

from device.core.config import OutputsConfig
from device.core.types import AlertLevel
from device.output.alerts import READY, Alerter

MS = 1_000_000


def make() -> tuple[Alerter, MockFactory]:
    f = MockFactory(pin_class=MockPWMPin)
    return Alerter(OutputsConfig(haptic_pin=12, buzzer_pin=25), pin_factory=f), f


def run(alerter: Alerter, level: AlertLevel, start_ms: int, end_ms: int) -> list[tuple[int, float]]:
    out = []
    for t in range(start_ms, end_ms, 10):
        alerter.update(level, t * MS)
        out.append((t, alerter.output[0]))
    return out


def test_ready_plays_once_over_clear_then_silence() -> None:
    alerter, _ = make()
    run(alerter, AlertLevel.CLEAR, 0, 100)
    alerter.cue(READY)
    trace = dict(run(alerter, AlertLevel.CLEAR, 100, 2000))
    # short (0.1 s), gap, short, gap, long (0.5 s), then nothing, written out by hand
    assert [trace[t] for t in (100, 190, 200, 290, 300, 390, 400, 490, 500, 990, 1000, 1500)] == \
        [1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    assert alerter.cue_playing is None


def test_a_cue_never_masks_a_threat_and_is_dropped_not_postponed() -> None:
    alerter, f = make()
    alerter.cue(READY)
    alerter.update(AlertLevel.CLEAR, 0)
    assert alerter.output == (1.0, True)
    alerter.update(AlertLevel.CAUTION, 50 * MS)  # CAUTION: its own pattern from phase 0
    assert alerter.level is AlertLevel.CAUTION and alerter.cue_playing is None
    alerter.update(AlertLevel.CAUTION, 200 * MS)
    assert alerter.output[0] == 0.0  # CAUTION's 0.15 s buzz ended at 0.2 s, not the cue's timing
    trace = run(alerter, AlertLevel.CLEAR, 300, 1500)
    assert all(duty == 0.0 for _, duty in trace)  # the dropped cue does not come back
    for level in (AlertLevel.WARN, AlertLevel.DANGER, AlertLevel.FAULT):
        alerter.cue(READY)
        alerter.update(level, 2000 * MS)
        assert alerter.level is level and alerter.cue_playing is None and alerter.output[0] == 1.0
        alerter.update(AlertLevel.CLEAR, 2010 * MS)
    f.close()


def test_clear_after_a_cue_starts_afresh_and_a_level_after_it_too() -> None:
    alerter, _ = make()
    alerter.cue(READY)
    run(alerter, AlertLevel.CLEAR, 0, 1000)
    alerter.update(AlertLevel.CAUTION, 1000 * MS)
    assert alerter.output[0] == 1.0  # CAUTION's first buzz at once
