"""The README's "Faults and bad input" table names a test on every row; each
named test must exist, so the table cannot outlive what backs it."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def fault_table_rows() -> list[str]:
    text = (REPO / "README.md").read_text()
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
