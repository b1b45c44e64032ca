"""Say "stop rearguard.service first" when a command a person runs needs
the GPIO lines or the camera that the installed service already holds.

Without it, `rearguard check ranging` on an installed Pi fails with lgpio's
"GPIO busy", which reads like a wiring fault. The hint comes from asking
systemd whether the unit is active (and, failing that, from the error's
own "busy"); under the service itself it is never given.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable

UNIT = "rearguard.service"
STOP = f"sudo systemctl stop {UNIT.removesuffix('.service')}"
START = f"sudo systemctl start {UNIT.removesuffix('.service')}"


def service_active() -> bool:
    """Is the installed unit running? False where there is no systemd."""
    if shutil.which("systemctl") is None:
        return False
    try:
        done = subprocess.run(["systemctl", "is-active", "--quiet", UNIT], timeout=3, check=False,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def under_the_service() -> bool:
    # systemd sets INVOCATION_ID for every unit it starts; the service must not tell itself to stop
    return bool(os.environ.get("INVOCATION_ID"))


def hint(error: str = "", *, active: Callable[[], bool] | None = None) -> str:
    """What to do when `error` (setting up pins or the camera) may be the
    service holding them: a sentence to print after the error, or ""."""
    if under_the_service():
        return ""
    if (active or service_active)():
        return (f"{UNIT} is running and holds the GPIO pins and the camera: stop it first ({STOP}), "
                f"run this again, then start it ({START})")
    if "busy" in error.lower():
        return (f"the pin or camera is busy: another program holds it (is {UNIT} or another rearguard "
                "running? `systemctl status rearguard`)")
    return ""
