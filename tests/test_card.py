"""The runner's card is the generator's output, and the rhythms it and
`rearguard check outputs` describe are the ones the Alerter plays."""

from __future__ import annotations

import io
from pathlib import Path

from gpiozero.pins.mock import MockFactory, MockPWMPin

from device.core.clock import NS_PER_S
from device.core.config import OutputsConfig
from device.core.types import AlertLevel
from device.output.alerts import CUES, NOT_PROTECTING, PATTERNS, READY, Alerter
from device.tools.card import feel, render, sound
from device.tools.outputs_check import GAP_S, plan, play_all

CARD = Path(__file__).resolve().parents[1] / "docs" / "runners-card.md"


def test_the_committed_card_is_the_generators_output() -> None:
    # Regenerate with: python -m device.tools.card > docs/runners-card.md
    assert CARD.read_text() == render()


def test_feel_and_sound_are_worded_from_the_segments() -> None:
    # written out by hand from the spec in alerts.py's docstring
    assert feel(PATTERNS[AlertLevel.CAUTION]) == "on 0.15 s, off 0.85 s; again every 1 s"
    assert sound(PATTERNS[AlertLevel.CAUTION]) == "none"
    assert feel(PATTERNS[AlertLevel.DANGER]) == "continuous"
    assert sound(PATTERNS[AlertLevel.WARN]) == "on 0.1 s, off 0.15 s; again every 0.25 s"
    assert feel(PATTERNS[AlertLevel.FAULT]) == "on 0.6 s, off 0.2 s, on 0.15 s, off 1 s; again every 1.95 s"
    assert feel(PATTERNS[AlertLevel.CLEAR]) == "none"
    assert feel(READY.pattern, False) == "on 0.1 s, off 0.1 s, on 0.1 s, off 0.1 s, on 0.5 s; once"


def test_every_level_and_cue_is_on_the_card() -> None:
    card = render()
    for level in AlertLevel:
        assert f"| {level.name} |" in card
    for cue in (*CUES, NOT_PROTECTING):
        assert f"| {cue.name} |" in card


class FakeClock:
    def __init__(self) -> None:
        self.t = 0

    def now_ns(self) -> int:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += round(s * NS_PER_S)


def test_check_outputs_plays_each_rhythm_named_with_its_pin_levels() -> None:
    factory = MockFactory(pin_class=MockPWMPin)
    alerter = Alerter(OutputsConfig(haptic_pin=12, buzzer_pin=25), pin_factory=factory)
    clock, out = FakeClock(), io.StringIO()
    seen: list[tuple[int, float, bool]] = []

    def pins() -> str:
        seen.append((clock.t, float(factory.pin(12).state), bool(factory.pin(25).state)))
        return f"motor={float(factory.pin(12).state):.2f} buzzer={int(factory.pin(25).state)}"

    n = play_all(alerter, clock, clock.sleep, out, each_s=1.0, pins=pins)
    text = out.getvalue()
    items = plan(1.0)
    assert n == len(items) == 4 + len(CUES) + 1  # and one round of not protecting
    for i, item in enumerate(items, 1):
        assert f"[{i}/{n}] {item.name}:" in text
    # WARN is the second item: 2 s of it (each 1 s < two 0.25 s periods? no: max(1, 0.5) = 1 s)
    assert items[1].name == "WARN" and items[1].seconds == 1.0
    warn_start = round((items[0].seconds + GAP_S) * NS_PER_S)
    warn = [(t - warn_start, m, b) for t, m, b in seen if warn_start <= t < warn_start + NS_PER_S]
    # fast pulses: on for 0.1 s of every 0.25 s, motor and buzzer together
    on = [t for t, m, b in warn if m == 1.0 and b]
    off = [t for t, m, b in warn if m == 0.0 and not b]
    assert len(on) + len(off) == len(warn) == 50
    assert 0 in on and round(0.1 * NS_PER_S) in off and round(0.26 * NS_PER_S) in on
    assert "  0.10 s  motor=0.00 buzzer=0" in text
    # FAULT plays two of its 1.95 s periods even with each_s=1
    assert items[3].seconds == 3.9
    # the ready cue plays once: its last pulse, then silence before the end of the run
    assert "ready:" in text and text.rstrip().endswith("done: every rhythm played once")
    assert factory.pin(12).state == 0 and not factory.pin(25).state
    alerter.close()


def test_the_thresholds_on_the_card_are_the_defaults() -> None:
    from device.app.selftest import GREETING_S
    from device.core.config import AlertsConfig

    a, card = AlertsConfig(), render()
    assert f"WARN: under {a.warn_ttc_s:g} s or nearer than {a.warn_distance_m:g} m" in card
    assert f"CAUTION: time to collision under {a.caution_ttc_s:g} s" in card
    assert f"DANGER: under {a.danger_ttc_s:g} s or nearer than {a.danger_distance_m:g} m" in card
    assert f"{a.persist_s:g} s (`alerts.persist_s`" in card and f"{a.hold_s:g} s (`alerts.hold_s`)" in card
    assert f"within {a.centre_deg:g} degrees" in card
    assert f"together ({GREETING_S:g} s" in card
