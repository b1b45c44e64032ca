"""scripts/install-pi.sh's accelerator_packages (issue 24), run as written in
the script against stub rpicam-hello and hailortcli on PATH, the way
tests/test_install.py runs the installer: the OS packages an AI Camera or an
AI Kit / AI HAT+ needs, and nothing without them."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from test_install import Pi, pi  # noqa: F401 - the stubbed Pi fixture

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "install-pi.sh"

IMX500_LIST = """Available cameras
-----------------
0 : imx500 [4056x3040 10-bit RGGB] (/base/axi/pcie@120000/rp1/i2c@88000/imx500@1a)
    Modes: 'SRGGB10_CSI2P' : 2028x1520 [30.02 fps - (0, 0)/4056x3040 crop]
"""
V3_LIST = """Available cameras
-----------------
0 : imx708 [4608x2592 10-bit RGGB] (/base/axi/pcie@120000/rp1/i2c@88000/imx708@1a)
"""
HAILO_SCAN = "Hailo Devices:\n[-] Device: 0000:01:00.0\n"
NO_HAILO = "Hailo devices not found\n"


def function_text() -> str:
    m = re.search(r"^accelerator_packages\(\) \{\n.*?^\}\n", SCRIPT.read_text(), re.M | re.S)
    assert m, "accelerator_packages() not found in scripts/install-pi.sh"
    return m.group(0)


def run(tmp_path: Path, cameras: str | None, scan: str | None, dev_hailo: bool = False) -> list[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, out in (("rpicam-hello", cameras), ("hailortcli", scan)):
        if out is not None:  # None: the program is not installed
            (bin_dir / name).write_text(f"#!/bin/sh\ncat <<'EOF'\n{out}EOF\n")
            (bin_dir / name).chmod(0o755)
    root = tmp_path / "root"
    (root / "dev").mkdir(parents=True)
    if dev_hailo:
        (root / "dev" / "hailo0").write_text("")
    script = f'cmd() {{ "$@"; }}\nROOT="{root}"\n{function_text()}accelerator_packages\n'
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, check=True)
    return out.stdout.split()


@pytest.mark.parametrize(("cameras", "scan", "dev", "want"), [
    (IMX500_LIST, None, False, ["imx500-all"]),  # an AI Camera, no HailoRT yet
    (V3_LIST, None, True, ["hailo-all", "hailo-models"]),  # a Camera Module 3 and the AI HAT+'s device node
    (V3_LIST, HAILO_SCAN, False, ["hailo-all", "hailo-models"]),  # no node (driver not loaded) but HailoRT sees it
    (IMX500_LIST, HAILO_SCAN, False, ["imx500-all", "hailo-all", "hailo-models"]),
    (V3_LIST, NO_HAILO, False, []),  # "devices not found" is not a device
    ("No cameras available!\n", None, False, []),
    (None, None, False, []),  # neither program installed
])
def test_accelerator_packages(tmp_path: Path, cameras: str | None, scan: str | None, dev: bool,
                              want: list[str]) -> None:
    assert run(tmp_path, cameras, scan, dev) == want


def test_the_function_is_in_the_installer_and_uses_its_cmd_hook() -> None:
    text = function_text()
    assert "cmd rpicam-hello --list-cameras" in text and "cmd hailortcli scan" in text
    assert '"$ROOT/dev/hailo0"' in text


def test_the_installer_apt_installs_what_an_ai_camera_needs(pi: Pi) -> None:  # noqa: F811 - the imported fixture
    """The whole installer (tests/test_install.py's stubbed Pi) on a Pi whose
    rpicam-hello lists an imx500: imx500-all joins the one apt install."""
    stub = Path(pi.env["PATH"].split(":")[0]) / "rpicam-hello"
    stub.write_text(f"#!/bin/sh\ncat <<'EOF'\n{IMX500_LIST}EOF\n")
    stub.chmod(0o755)
    pi.run()
    installs = [c for c in pi.calls() if c.startswith("apt-get install")]
    assert len(installs) == 1 and installs[0].split()[-1] == "imx500-all", installs
    assert "python3-picamera2" in installs[0].split()
    pi.run()  # installed now: a second run asks apt for nothing
    assert not [c for c in pi.calls() if c.startswith("apt-get")]


def test_the_installer_without_an_accelerator_installs_no_accelerator_package(pi: Pi) -> None:  # noqa: F811 - the imported fixture
    stub = Path(pi.env["PATH"].split(":")[0]) / "rpicam-hello"
    stub.write_text(f"#!/bin/sh\ncat <<'EOF'\n{V3_LIST}EOF\n")
    stub.chmod(0o755)
    pi.run()
    (install,) = [c for c in pi.calls() if c.startswith("apt-get install")]
    assert not {"imx500-all", "hailo-all", "hailo-models"} & set(install.split())
