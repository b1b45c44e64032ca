"""docs/troubleshooting.md: its guide names every part that can fail and every
kind of sensor fault the code can raise, and its "Faults and bad input"
table names a test on every row; each named test must exist, so the table
cannot outlive what backs it."""

from __future__ import annotations

import re
from pathlib import Path

from device.core.faults import Part
from device.sensing import ultrasonic

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "troubleshooting.md"


def guide() -> str:
    text = DOC.read_text()
    return text.split("## What each fault means and what fixes it", 1)[1].split("\n## ", 1)[0]


def test_the_guide_says_what_each_part_s_fault_means() -> None:
    text = guide()
    # a sensor's fault is named for the sensor (`centre: silent`), the others for their part
    missing = [p.value for p in Part if p is not Part.SENSOR and f"`{p.value}: " not in text]
    assert missing == []


def sensor_fault_kinds() -> set[str]:
    """The names under "# Fault names" in device/sensing/ultrasonic.py, as Range.fault carries them."""
    source = Path(ultrasonic.__file__).read_text()
    block = source.split("# Fault names", 1)[1].split("\n\n", 1)[0]
    return {getattr(ultrasonic, name) for name in re.findall(r"^([A-Z_]+) = ", block, re.M)}


def test_the_guide_has_a_row_for_every_kind_of_sensor_fault() -> None:
    kinds = sensor_fault_kinds()
    rows = re.findall(r"^\| `([a-z-]+)` \|", guide(), re.M)
    assert len(kinds) >= 6
    assert sorted(kinds - set(rows)) == []


def fault_table_rows() -> list[str]:
    text = DOC.read_text()
    section = text.split("## Faults and bad input", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| fault")]


def test_every_row_names_tests_that_exist() -> None:
    rows = fault_table_rows()
    assert len(rows) >= 20
    for row in rows:
        cell = row.rstrip(" |").rsplit("|", 1)[1]
        names = re.findall(r"`([^`]+)`", cell)
        assert names, f"no test named in: {row}"
        current = None
        for name in names:
            if "::" in name:
                current, name = name.split("::", 1)
            assert current is not None, f"{name} names no file: {row}"
            source = (REPO / "tests" / current).read_text()
            assert re.search(rf"^def {re.escape(name)}\(", source, re.M), f"tests/{current}::{name} not found"
