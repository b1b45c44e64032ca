"""`sudo rearguard aim`: serve the running device's preview to a phone on the
local network for a limited time, and only then.

The installed service may talk to localhost only (`IPAddressDeny=any`,
`IPAddressAllow=localhost`). Aim adds a *runtime* drop-in (under /run: gone
at the next boot whatever happens) that lets the service answer the local
networks (private and link-local ranges, never the internet) and serve its
preview on 0.0.0.0:PORT for the given minutes (`run --preview-for`, so the
preview closes itself on time even if this command is killed), restarts the
service, prints the addresses to open, waits, then removes the drop-in and
restarts the service as it was. Everything else of the sandbox stays.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

UNIT = "rearguard.service"
DROPIN_DIR = Path("/run/systemd/system/rearguard.service.d")
DROPIN = "zz-aim.conf"  # last of the unit's drop-ins (they apply in name order): its ExecStart= wins
EXEC = "/opt/rearguard/.venv/bin/rearguard"
# The local networks a phone may be on: RFC 1918, link-local, IPv6 unique-local and link-local.
LOCAL_NETWORKS = "10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 169.254.0.0/16 fc00::/7 fe80::/10"


def dropin_text(port: int, minutes: float) -> str:
    seconds = round(minutes * 60)
    return (
        "# written by `rearguard aim` (runtime only: gone at the next boot); removed when aiming ends\n"
        "[Service]\n"
        f"IPAddressAllow={LOCAL_NETWORKS}\n"
        "ExecStart=\n"
        f"ExecStart={EXEC} run --source pi --quiet --preview 0.0.0.0:{port} --preview-for {seconds}\n"
    )


def addresses() -> list[str]:
    """This machine's addresses on its networks (hostname -I), else none."""
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=5, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [a for a in out.split() if not a.startswith("127.") and a != "::1"]


def aim(port: int, minutes: float, *, dropin_dir: Path = DROPIN_DIR,
        systemctl: Callable[..., int] | None = None, sleep: Callable[[float], None] = time.sleep,
        out: object = sys.stdout) -> int:
    def run(*args: str) -> int:
        if systemctl is not None:
            return systemctl(*args)
        return subprocess.run(["systemctl", *args], check=False).returncode

    def say(text: str) -> None:
        print(text, file=out, flush=True)  # type: ignore[call-overload]

    path = dropin_dir / DROPIN
    dropin_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(dropin_text(port, minutes), encoding="utf-8")
    try:
        # reset-failed first: the unit's start limit (3 in 10 min) counts a
        # crash loop's starts, not these two on purpose
        if run("daemon-reload") != 0 or run("reset-failed", UNIT) != 0 or run("restart", UNIT) != 0:
            say(f"rearguard: {UNIT} did not restart with the preview; see journalctl -u rearguard -b")
            return 1
        urls = [f"http://{a if ':' not in a else f'[{a}]'}:{port}/" for a in addresses()]
        urls.append(f"http://{socket.gethostname()}.local:{port}/")
        say(f"aiming for {minutes:g} min: open on a phone on the same network (read-only, no password):")
        for u in urls:
            say(f"  {u}")
        say("the preview closes by itself when the time is up; Ctrl-C ends it now")
        end = time.monotonic() + minutes * 60
        try:
            while (left := end - time.monotonic()) > 0:
                sleep(min(left, 30.0))
        except KeyboardInterrupt:
            say("ending early")
        return 0
    finally:
        path.unlink(missing_ok=True)
        run("daemon-reload")
        run("reset-failed", UNIT)
        run("restart", UNIT)
        say(f"aiming over: {UNIT} runs as installed again (localhost only)")


def cmd_aim(args: argparse.Namespace) -> int:
    if not 0 < args.minutes <= 60:
        print("rearguard: --minutes: from a few seconds to 60", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("rearguard: aim changes the service for a while: run it as root (sudo rearguard aim)",
              file=sys.stderr)
        return 2
    return aim(args.port, args.minutes)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("aim", help="serve the device's preview to a phone on the local network for a few minutes",
                       description="On the installed Pi, as root: let rearguard.service serve its preview on "
                       "0.0.0.0:PORT to the local networks only (a runtime drop-in widens IPAddressAllow to the "
                       "private and link-local ranges) for MINUTES, print the addresses to open, then put the "
                       "service back as installed. The preview closes itself on time even if this is killed.")
    p.add_argument("--minutes", type=float, default=10.0, help="how long (default 10, at most 60)")
    p.add_argument("--port", type=int, default=8080, help="the port (default 8080)")
    p.set_defaults(func=cmd_aim)
