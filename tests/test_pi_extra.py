"""The `[pi]` extra asks pip only for what exists for each Python, and
never for lgpio's empty 0.0.0.2 placeholder; where there is no wheel
(Python 3.13, Trixie) the OS's python3-lgpio is the way, and install-pi.sh
always takes that one. scripts/check-arm64.sh resolves the real thing."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]


def pi_extra() -> list[Requirement]:
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    return [Requirement(r) for r in meta["project"]["optional-dependencies"]["pi"]]


def wanted(python: str) -> list[Requirement]:
    return [r for r in pi_extra() if r.marker is None or r.marker.evaluate({"python_version": python})]


@pytest.mark.parametrize("python", ["3.11", "3.12"])
def test_lgpio_wheel_pythons_get_the_real_lgpio(python: str) -> None:
    (lgpio,) = [r for r in wanted(python) if r.name == "lgpio"]
    assert lgpio.specifier.contains("0.2.2.0")
    assert not lgpio.specifier.contains("0.0.0.2")  # the empty placeholder


def test_python_3_13_asks_pip_for_no_lgpio() -> None:
    # lgpio has no cp313 wheel: the OS package is the only working one
    assert [r for r in wanted("3.13") if r.name == "lgpio"] == []


def test_installer_takes_lgpio_from_the_os_not_pip() -> None:
    script = (REPO / "scripts" / "install-pi.sh").read_text()
    assert re.search(r"^APT_PACKAGES=\(.*\bpython3-lgpio\b", script, re.M)
    # pip installs the package itself, no extras: lgpio stays the OS's
    assert re.search(r'pip install --quiet --constraint "\$cfile" "\$OPT"$', script, re.M)
    assert "[pi]" not in script
