"""The command table in docs/commands.md and the argument parser describe
the same commands: every command the parser has is a row, every row is a command,
and each row names every option and argument of its command."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from device.cli.main import build_parser

DOC = Path(__file__).resolve().parents[1] / "docs" / "commands.md"
COMMON = {"--config"}  # every command that reads the config: said once, above the table


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], list[str]]:
    """Each command path (the top level as ()) -> what its row must name:
    the long form of every option, and every positional's metavar."""
    out: dict[tuple[str, ...], list[str]] = {}
    words: list[str] = []
    subs = None
    for a in parser._actions:
        if isinstance(a, argparse._HelpAction):
            continue
        if isinstance(a, argparse._SubParsersAction):
            subs = a
        elif a.option_strings:
            words.append(max(a.option_strings, key=len))
        else:
            words.append(a.metavar or a.dest.upper())
    if subs is None or path == ():
        out[path] = [w for w in words if w not in COMMON]
    if subs is not None:
        for name, sub in subs.choices.items():
            out.update(commands(sub, path + (name,)))
    return out


def doc_rows() -> dict[tuple[str, ...], str]:
    text = DOC.read_text()
    table = text[text.index("| command | what it does |"):]
    rows: dict[tuple[str, ...], str] = {}
    for line in table.splitlines()[2:]:
        if not line.startswith("| `rearguard"):
            break
        code = re.match(r"\| `([^`]*)`", line).group(1).replace("\\|", "|")  # type: ignore[union-attr]
        path = tuple(re.match(r"rearguard((?: [a-z][a-z-]*)*)", code).group(1).split())  # type: ignore[union-attr]
        rows[path] = code
    return rows


def test_every_command_has_a_row_and_every_row_is_a_command() -> None:
    parser, rows = commands(build_parser()), doc_rows()
    assert sorted(rows) == sorted(parser)


def test_each_row_names_every_option_of_its_command() -> None:
    rows = doc_rows()
    missing = {
        " ".join(path) or "rearguard": [w for w in words if not re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])",
                                                                         rows.get(path, ""))]
        for path, words in commands(build_parser()).items()
    }
    assert {k: v for k, v in missing.items() if v} == {}


def test_the_common_config_option_is_explained() -> None:
    assert "`--config PATH`" in DOC.read_text()
