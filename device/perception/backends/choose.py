"""Which detector backend to run: `detector.backend` and what is present.

`choose_backend` is pure (config setting + a `Probe` in, a `Choice` out);
`probe` looks at the machine: the device nodes the vendors' own code looks
for, the network file their OS package installs, and their Python module.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Backend = Literal["cpu", "imx500", "hailo"]

# What the vendors' OS packages install (`apt install imx500-all`, which
# brings imx500-models; `apt install hailo-all hailo-models`): the permissive
# detection networks among them (docs/accelerators.md).
IMX500_DEFAULT_MODEL = "/usr/share/imx500-models/imx500_network_nanodet_plus_416x416_pp.rpk"
HAILO_DEFAULT_MODEL = "/usr/share/hailo-models/yolox_s_leaky_h8l_rpi.hef"


@dataclass(frozen=True)
class Presence:
    present: bool
    detail: str  # what was found, or why it cannot be used


@dataclass(frozen=True)
class Probe:
    imx500: Presence
    hailo: Presence


@dataclass(frozen=True)
class Choice:
    backend: Backend
    reason: str
    fell_back: bool = False  # an accelerator was asked for by name and is not there


def choose_backend(setting: str, probe: Probe) -> Choice:
    """The backend to run for `detector.backend` = setting.

    auto prefers the Hailo (a Pi 5's AI Kit / AI HAT+: the larger network at
    the higher rate), then the AI Camera, then the CPU. A named accelerator
    that is not present falls back to the CPU, saying why."""
    if setting == "cpu":
        return Choice("cpu", "detector.backend = cpu")
    if setting in ("imx500", "hailo"):
        seen: Presence = getattr(probe, setting)
        if seen.present:
            return Choice(setting, f"detector.backend = {setting}: {seen.detail}")  # type: ignore[arg-type]
        return Choice("cpu", f"detector.backend = {setting}, but {seen.detail}; using the CPU model", fell_back=True)
    if setting != "auto":
        raise ValueError(f"detector.backend must be auto, cpu, imx500 or hailo (got {setting!r})")
    if probe.hailo.present:
        return Choice("hailo", f"auto: {probe.hailo.detail}")
    if probe.imx500.present:
        return Choice("imx500", f"auto: {probe.imx500.detail}")
    return Choice("cpu", f"auto: no accelerator ({probe.hailo.detail}; {probe.imx500.detail}); using the CPU model")


def _imx500_node(root: Path) -> str | None:
    # picamera2's IMX500.__init__ finds the sensor the same way: a
    # v4l-subdev whose driver module's link names imx500.
    base = root / "sys/class/video4linux"
    for i in range(32):
        module = base / f"v4l-subdev{i}" / "device" / "driver" / "module"
        if module.is_symlink() and "imx500" in os.readlink(module):
            return f"/dev/v4l-subdev{i}"
    return None


def probe(root: str | os.PathLike[str] = "/", *, imx500_model: str | None = None, hailo_model: str | None = None,
          has_module: Callable[[str], bool] | None = None) -> Probe:
    """What this machine has: an accelerator is present when its device
    node, its network file and its Python module all are."""
    r = Path(root)
    found = has_module or (lambda name: importlib.util.find_spec(name) is not None)

    def model(path: str) -> Path:
        return r / path.lstrip("/") if Path(path).is_absolute() else Path(path)

    def presence(device: str | None, what: str, path: str, modules: tuple[str, ...], package: str) -> Presence:
        if device is None:
            return Presence(False, f"no {what}")
        if not model(path).is_file():
            return Presence(False, f"{what} at {device}, but no network file {path} (apt install {package})")
        missing = [m for m in modules if not _safe(found, m)]
        if missing:
            return Presence(False, f"{what} at {device}, but Python cannot import {', '.join(missing)}")
        return Presence(True, f"{what} at {device}, network {path}")

    imx_path = imx500_model or IMX500_DEFAULT_MODEL
    hailo_path = hailo_model or HAILO_DEFAULT_MODEL
    hailo_dev = "/dev/hailo0" if (r / "dev/hailo0").exists() else None
    return Probe(
        imx500=presence(_imx500_node(r), "AI Camera (IMX500)", imx_path, ("picamera2",), "imx500-all"),
        hailo=presence(hailo_dev, "Hailo accelerator", hailo_path, ("picamera2", "hailo_platform"), "hailo-all hailo-models"),
    )


def _safe(found: Callable[[str], bool], name: str) -> bool:
    try:
        return found(name)
    except (ImportError, ValueError):  # find_spec raises for a broken parent package
        return False
