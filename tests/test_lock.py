"""The lock (constraints.txt) decides what every install gets: it pins each
dependency of pyproject.toml within pyproject's own bounds, keeps the
onnxruntime that dies on a Pi 4 out, is what bootstrap, the installer and
the arm64 check install with, and is what this very environment runs."""

from __future__ import annotations

import importlib.metadata as md
import platform
import re
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "constraints.txt"


def _pins(env: dict[str, str]) -> dict[str, str]:
    """name -> pinned version for one platform (markers evaluated there)."""
    pins: dict[str, str] = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        r = Requirement(line)
        if r.marker is None or r.marker.evaluate(env):
            (spec,) = r.specifier
            assert spec.operator == "==", line
            name = r.name.lower().replace("_", "-")
            assert name not in pins, f"two pins for {name} on {env['platform_machine']}"
            pins[name] = spec.version
    return pins


def _env(machine: str, python: str) -> dict[str, str]:
    return {**default_environment(), "platform_machine": machine, "python_version": python,
            "python_full_version": python + ".0", "sys_platform": "linux", "platform_system": "Linux"}


def _requirements(pi: bool = True) -> list[Requirement]:
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = meta["optional-dependencies"]
    return [Requirement(r) for r in meta["dependencies"] + extras["test"] + (extras["pi"] if pi else [])]


PLATFORMS = [("x86_64", "3.11"), ("aarch64", "3.11"), ("aarch64", "3.13")]


@pytest.mark.parametrize(("machine", "python"), PLATFORMS)
def test_the_lock_pins_every_dependency_within_pyprojects_bounds(machine: str, python: str) -> None:
    env = _env(machine, python)
    pins = _pins(env)
    for r in _requirements():
        if r.marker is not None and not r.marker.evaluate({**env, "extra": "pi"}):
            continue
        name = r.name.lower().replace("_", "-")
        assert name in pins, f"{name} is not in the lock for {machine}/{python}"
        assert r.specifier.contains(pins[name], prereleases=True), f"{name} {pins[name]} outside {r.specifier}"


@pytest.mark.parametrize(("machine", "python"), PLATFORMS)
def test_no_platform_gets_the_onnxruntime_that_dies_on_a_pi_4(machine: str, python: str) -> None:
    assert _pins(_env(machine, python))["onnxruntime"] != "1.21.0"
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    (ort,) = [Requirement(r) for r in meta["dependencies"] if r.startswith("onnxruntime")]
    assert not ort.specifier.contains("1.21.0")


def test_the_pis_numpy_is_the_os_numpy() -> None:
    # python3-picamera2 is built against the OS's numpy: Bookworm 1.24.2, Trixie 2.2.4
    assert _pins(_env("aarch64", "3.11"))["numpy"] == "1.24.2"
    assert _pins(_env("aarch64", "3.13"))["numpy"] == "2.2.4"


def test_every_install_uses_the_lock() -> None:
    assert "--constraint constraints.txt" in (REPO / "scripts" / "bootstrap.sh").read_text()
    assert '"$OPT/constraints.txt"' in (REPO / "scripts" / "install-pi.sh").read_text()
    assert '"$REPO/constraints.txt"' in (REPO / "scripts" / "check-arm64.sh").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert "check-latest" not in ci  # the newest releases must not change CI's result


@pytest.mark.skipif(not (REPO / ".venv").is_dir() or not sys.prefix.startswith(str(REPO / ".venv")),
                    reason="runs in the project's own .venv (scripts/test.sh)")
def test_this_environment_is_the_lock() -> None:
    pins = _pins(_env(platform.machine(), f"{sys.version_info.major}.{sys.version_info.minor}"))
    installed = {d.metadata["Name"].lower().replace("_", "-"): d.version for d in md.distributions()}
    wrong = {n: (installed.get(n), v) for n, v in pins.items() if n in installed and installed[n] != v}
    assert not wrong, f"installed vs locked: {wrong}"
    for r in _requirements(pi=False):  # (the [pi] extra is for a Pi's pip installs)
        if r.marker is None or r.marker.evaluate():
            assert re.sub("_", "-", r.name.lower()) in installed
