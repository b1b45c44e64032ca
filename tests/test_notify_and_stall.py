"""sd_notify against a real unix datagram socket, and the stall guard."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from device.app.systemd_notify import Notifier, WatchdogPinger
from device.core.clock import NS_PER_S, ReplayClock
from device.core.config import Config
from device.core.types import AlertLevel
from device.output.alerts import PATTERNS, Alerter, pattern_output
from device.output.stall_guard import StallGuard


@pytest.fixture()
def notify_socket(tmp_path: Path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    yield path, sock
    sock.close()


def test_ready_status_watchdog_stopping_reach_the_socket(notify_socket) -> None:
    path, sock = notify_socket
    n = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())})
    assert n.enabled and n.watchdog_interval_s == 1.0
    assert n.ready("running")
    assert sock.recv(4096) == b"READY=1\nSTATUS=running"
    assert n.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert n.status("FAULT camera")
    assert sock.recv(4096) == b"STATUS=FAULT camera"
    assert n.stopping()
    assert sock.recv(4096) == b"STOPPING=1"
    n.close()


def test_abstract_socket_address() -> None:
    name = f"rearguard-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    try:
        n = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert n.ready()
        assert sock.recv(64) == b"READY=1"
    finally:
        sock.close()


def test_without_systemd_everything_is_a_no_op() -> None:
    n = Notifier({})
    assert not n.enabled and n.watchdog_interval_s is None
    assert not n.ready() and not n.watchdog()
    WatchdogPinger(n).beat(0)


def test_watchdog_for_another_pid_is_ignored() -> None:
    n = Notifier({"NOTIFY_SOCKET": "/nonexistent", "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"})
    assert n.watchdog_interval_s is None


def test_a_dead_socket_does_not_raise(tmp_path: Path) -> None:
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert n.watchdog() is False


def test_pinger_pings_at_half_the_interval(notify_socket) -> None:
    path, sock = notify_socket
    pinger = WatchdogPinger(Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "1000000"}))
    sock.settimeout(0.2)
    sent = 0
    for i in range(151):  # 3 s of 20 ms loop passes
        pinger.beat(i * 20_000_000)
    while True:
        try:
            assert sock.recv(64) == b"WATCHDOG=1"
            sent += 1
        except TimeoutError:
            break
    assert sent == 7  # at 0, 0.5, 1.0, ... 3.0 s


def test_stall_guard_plays_fault_when_the_loop_stops_and_lets_go_after() -> None:
    clock = ReplayClock(0)
    factory = MockFactory(pin_class=MockPWMPin)
    alerter = Alerter(Config().outputs, pin_factory=factory)
    guard = StallGuard(alerter, clock, limit_s=0.4)
    haptic = factory.pin(Config().outputs.haptic_pin)
    guard.update(AlertLevel.CLEAR, 0)
    clock.set(round(0.39 * NS_PER_S))
    assert not guard.check() and haptic.state == 0
    clock.set(round(0.41 * NS_PER_S))
    assert guard.check() and guard.stalled
    # The FAULT pattern starts at once (its first segment vibrates).
    assert pattern_output(PATTERNS[AlertLevel.FAULT], 0)[0] > 0
    assert haptic.state > 0
    clock.set(round(0.5 * NS_PER_S))
    guard.update(AlertLevel.CLEAR, clock.now_ns())
    assert not guard.stalled and haptic.state == 0
    alerter.close()
