"""What a non-editable install ships (scripts/install-pi.sh installs
/opt/rearguard that way): every package under device/, or the installed
service fails at its first import of a package left out."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_package_under_device_is_in_pyproject() -> None:
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    tree = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "device").rglob("__init__.py")}
    assert tree - listed == set(), "add these to [tool.setuptools] packages"
    assert listed - tree == {"device.models_data"}  # models/, mapped by package-dir
