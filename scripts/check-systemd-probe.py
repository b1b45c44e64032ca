"""The sandbox probe of scripts/check-systemd.sh.

systemd runs it as the service's ExecStartPost=, so as the service user
under the unit's very sandbox. It tries what the service may and must not
do and prints one line per try, `PROBE <name> allowed|denied <detail>`, to
the journal; the check compares them with what the unit promises. It
changes nothing it could not (every write it is allowed lands in the
service's own state directory) and always exits 0: it must not fail the
start. Plain python3, standard library only.

    probe.py TEST_HOST_IP PORT
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable

MODEL = "/usr/local/share/rearguard/models/yolox_nano.onnx"
CONFIG = "/etc/rearguard/config.toml"


def report(name: str, attempt: Callable[[], object]) -> None:
    try:
        detail = attempt()
        print(f"PROBE {name} allowed {detail if detail is not None else ''}".rstrip(), flush=True)
    except (OSError, PermissionError) as err:
        print(f"PROBE {name} denied {type(err).__name__}: {err.strerror or err}", flush=True)


def create(path: str) -> str:
    with open(path, "w") as f:
        f.write("probe\n")
    os.unlink(path)
    return path


def read(path: str) -> str:
    with open(path, "rb") as f:
        return f"{len(f.read(1 << 20))} bytes"


def model_for_writing() -> str:
    with open(MODEL, "r+b"):
        return MODEL


def replace_model() -> str:
    # a new file beside it, as an atomic replace would need
    return create(os.path.join(os.path.dirname(MODEL), ".probe"))


def root_home() -> str:
    return ", ".join(os.listdir("/root")) or "(empty)"


def host_tmp() -> str:
    # the check put a marker in the container's /tmp: a private /tmp hides it
    if os.path.exists("/tmp/rearguard-check-marker"):
        return "marker visible"
    raise PermissionError(1, "marker not visible (private /tmp)")


def capabilities() -> str:
    with open("/proc/self/status") as f:
        caps = {k: int(v, 16) for k, v in (line.split(":") for line in f if line.startswith("Cap"))}
    held = {k: hex(v) for k, v in caps.items() if v and k != "CapInh"}
    if held:
        return str(held)
    raise PermissionError(1, "no capabilities: " + ", ".join(f"{k}=0" for k in caps))


def raw_socket() -> str:
    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()
    return "opened"


def packet_socket() -> str:
    socket.socket(socket.AF_PACKET, socket.SOCK_RAW).close()
    return "opened"


def localhost() -> str:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        with socket.create_connection(srv.getsockname(), timeout=3):
            return f"connected to {srv.getsockname()}"


def test_host(ip: str, port: int) -> Callable[[], str]:
    def attempt() -> str:
        with socket.create_connection((ip, port), timeout=3) as s:
            return f"connected: {s.recv(64)!r}"
    return attempt


def device() -> str:
    # DevicePolicy=closed: only the pseudo devices and the DeviceAllow= ones
    for path in ("/dev/net/tun", "/dev/kmsg", "/dev/loop-control"):
        if os.path.exists(path):
            with open(path, "rb"):
                return f"{path} opened"
    raise PermissionError(1, "none of /dev/net/tun, /dev/kmsg, /dev/loop-control exists to try")


def in_group(name: str) -> Callable[[], str]:
    # the groups whose devices the unit allows: the service must be in them
    def attempt() -> str:
        import grp
        gid = grp.getgrnam(name).gr_gid
        if gid not in os.getgroups():
            raise PermissionError(1, f"gid {gid} ({name}) not among the process's groups {os.getgroups()}")
        return f"gid {gid}"
    return attempt


def main() -> int:
    ip, port = sys.argv[1], int(sys.argv[2])
    os.makedirs("/var/lib/rearguard/recordings", exist_ok=True)
    report("write-state", lambda: create("/var/lib/rearguard/recordings/.probe"))
    report("read-model", lambda: read(MODEL))
    report("write-model", model_for_writing)
    report("replace-model", replace_model)
    report("read-config", lambda: read(CONFIG))
    report("write-config", lambda: create("/etc/rearguard/.probe"))
    report("write-etc", lambda: create("/etc/.rearguard-probe"))
    report("write-opt", lambda: create("/opt/rearguard/.probe"))
    report("write-usr", lambda: create("/usr/.rearguard-probe"))
    report("read-root", root_home)
    report("see-host-tmp", host_tmp)
    report("capabilities", capabilities)
    report("raw-socket", raw_socket)
    report("packet-socket", packet_socket)
    report("connect-localhost", localhost)
    report("connect-test-host", test_host(ip, port))
    report("open-device", device)
    report("group-gpio", in_group("gpio"))
    report("group-video", in_group("video"))
    report("group-i2c", in_group("i2c"))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as err:  # never fail the service's start
        print(f"PROBE error {type(err).__name__}: {err}", flush=True)
        sys.exit(0)
