"""docs/runners-card.md says what each level feels like: its rhythm and buzzer
are those of device/output/alerts.py, and its thresholds the [alerts]
defaults, so the card in a runner's pocket is what the device plays."""

from __future__ import annotations

from pathlib import Path

from device.app.selftest import GREETING_S
from device.core.config import AlertsConfig
from device.core.types import AlertLevel
from device.output.alerts import PATTERNS, Pattern

DOC = Path(__file__).resolve().parents[1] / "docs" / "runners-card.md"


def rhythm(pattern: Pattern) -> str:
    """A pattern as the card words it."""
    if len(pattern.segments) == 1:
        return "on continuously" if pattern.segments[0].haptic > 0 else "off"
    return ", ".join(f"{s.duration_s:g} s {'on' if s.haptic > 0 else 'off'}" for s in pattern.segments)


def rows() -> dict[str, list[str]]:
    out = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] in AlertLevel.__members__:
            out[cells[0]] = cells
    return out


def test_every_level_has_a_row_with_its_rhythm_and_buzzer() -> None:
    table = rows()
    assert sorted(table) == sorted(AlertLevel.__members__)
    for level, pattern in PATTERNS.items():
        cells = table[level.name]
        assert cells[2] == rhythm(pattern), level.name
        assert cells[3] == ("yes" if any(s.buzzer for s in pattern.segments) else "no"), level.name


def test_the_thresholds_on_the_card_are_the_defaults() -> None:
    a, table = AlertsConfig(), rows()
    for level, ttc, dist in (("CAUTION", a.caution_ttc_s, a.caution_distance_m),
                             ("WARN", a.warn_ttc_s, a.warn_distance_m),
                             ("DANGER", a.danger_ttc_s, a.danger_distance_m)):
        assert f"time to collision under {ttc:g} s or nearer than {dist:g} m" in table[level][4], level
    text = DOC.read_text(encoding="utf-8")
    assert f"{a.persist_s:g} s (`alerts.persist_s`" in text and f"{a.hold_s:g} s (`alerts.hold_s`)" in text
    assert f"within {a.centre_deg:g} degrees" in text
    assert f"together ({GREETING_S:g} s)" in text  # the greeting at start
