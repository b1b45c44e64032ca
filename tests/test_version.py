"""One version: pyproject.toml's. The package, `rearguard --version` and the
changelog all give it, and no second copy of it is written in the code."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

import device
from device.cli.main import build_parser

REPO = Path(__file__).resolve().parents[1]


def pyproject_version() -> str:
    return str(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"])


def test_the_package_version_is_pyprojects() -> None:
    # A stale editable install fails here: reinstall after changing the version.
    assert device.__version__ == pyproject_version()


def test_rearguard_version_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"rearguard {pyproject_version()}"


def test_no_second_copy_of_the_version_in_the_code() -> None:
    copies = [str(p.relative_to(REPO)) for p in (REPO / "device").rglob("*.py")
              if re.search(r"""^__version__\s*=\s*["']""", p.read_text(), re.M)]
    assert copies == []


def test_the_changelog_has_the_version_and_an_unreleased_section() -> None:
    headings = re.findall(r"^## \[([^\]]+)\]", (REPO / "CHANGELOG.md").read_text(), re.M)
    assert headings[0] == "Unreleased"
    assert pyproject_version() in headings


def test_the_license_file_is_the_license_pyproject_names() -> None:
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    text = (REPO / "LICENSE").read_text()
    assert meta["license"] == "Apache-2.0"
    assert text.lstrip().startswith("Apache License") and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
