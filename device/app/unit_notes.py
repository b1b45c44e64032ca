"""What the installed systemd unit's sandbox does to a choice that works
from a terminal (issue 23): said at start, so nobody finds out later.

- PrivateTmp=yes: the service gets its own /tmp and /var/tmp, deleted when
  it stops; recordings there vanish with it.
- IPAddressDeny=any, IPAddressAllow=localhost: a preview bound to every
  interface (0.0.0.0) is reachable from this machine only.

systemd sets INVOCATION_ID for every unit it runs: without it, none of this applies.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path

PRIVATE_TMP = (Path("/tmp"), Path("/var/tmp"))


def _under(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path == r or r in path.parents for r in roots)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to another interface


def unit_notes(record: str | None, preview: tuple[str, int] | None,
               env: Mapping[str, str] = os.environ) -> list[str]:
    """One line for each choice the unit's sandbox undoes; [] outside systemd."""
    if not env.get("INVOCATION_ID"):
        return []
    notes = []
    if record and _under(Path(os.path.abspath(record)), PRIVATE_TMP):
        notes.append(f"recording into {record}: the service's PrivateTmp=yes gives it a /tmp of its own, "
                     "deleted when it stops; record under /var/lib/rearguard to keep the footage")
    if preview is not None and not _loopback(preview[0]):
        notes.append(f"preview on {preview[0]}:{preview[1]}: the service's IPAddressDeny=any (IPAddressAllow="
                     "localhost) lets only this machine reach it; use an SSH tunnel, or change the unit")
    return notes
