"""systemd's notify protocol: READY, WATCHDOG, STATUS, STOPPING.

The protocol is one datagram to the socket named by $NOTIFY_SOCKET, so it is
written here rather than pulled in: `systemd-python` needs libsystemd
headers to build on the Pi, and the small `sdnotify` package has been
unmaintained since 2017. Outside systemd every call is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        addr = env.get("NOTIFY_SOCKET", "")
        if addr.startswith("@"):  # abstract namespace
            addr = "\0" + addr[1:]
        self._addr = addr or None
        self._sock: socket.socket | None = None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        # systemd advises pinging at half the interval.
        self.watchdog_interval_s: float | None = (
            int(usec) / 1e6 / 2 if usec.isdigit() and int(usec) > 0 and mine else None
        )

    @property
    def enabled(self) -> bool:
        return self._addr is not None

    def send(self, message: str) -> bool:
        if self._addr is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message.encode(), self._addr)
            return True
        except OSError as err:  # never let the notifier take the loop down
            log.warning("sd_notify %r failed: %s", message.split("\n")[0], err)
            return False

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class WatchdogPinger:
    """Pings from the main loop at the rate systemd asked for, so a stalled
    loop stops the pings and systemd restarts the service."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        self.interval_ns = (
            round(notifier.watchdog_interval_s * 1e9) if notifier.watchdog_interval_s else None
        )
        self._last: int | None = None

    def beat(self, now_ns: int) -> None:
        if self.interval_ns is None:
            return
        if self._last is None or now_ns - self._last >= self.interval_ns:
            self.notifier.watchdog()
            self._last = now_ns
