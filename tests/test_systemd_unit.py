"""systemd/rearguard.service: it verifies, its sandbox scores what docs/install-pi.md
reports, and it has what the device relies on (notify + watchdog, restart,
the unprivileged user, the devices).

`systemd-analyze verify` checks that ExecStart exists, and
/opt/rearguard/.venv/bin/rearguard does not exist on a development machine.
So the unit, unchanged, is verified with --root= against a throwaway root
in tmp holding a copy of this system's unit directory (for the targets it
names) and a stand-in executable at the ExecStart path. Nothing is created
outside tmp.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "systemd" / "rearguard.service"
FALLBACK = REPO / "systemd" / "rearguard-fallback.service"
POWEROFF = REPO / "systemd" / "rearguard-poweroff.service"
EXEC = "/opt/rearguard/.venv/bin/rearguard"
FALLBACK_EXEC = "/opt/rearguard/.venv/bin/python"
# The value reported in docs/install-pi.md for systemd 252
# (Debian/Raspberry Pi OS Bookworm); the issue asks for 4.0 or lower.
REPORTED_EXPOSURE = 1.5

needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections -> (key, value) in order; systemd keys may repeat."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"key outside a section: {line}"
        key, _, value = line.partition("=")
        current.append((key.strip(), value.strip()))
    return sections


def values(section: list[tuple[str, str]], key: str) -> list[str]:
    return [v for k, v in section if k == key]


def one(section: list[tuple[str, str]], key: str) -> str:
    found = values(section, key)
    assert len(found) == 1, f"{key}: {found}"
    return found[0]


@pytest.fixture(scope="module")
def unit() -> dict[str, list[tuple[str, str]]]:
    return parse_unit(UNIT.read_text())


def system_unit_dir() -> Path:
    for d in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")):
        if (d / "multi-user.target").exists():
            return d
    pytest.skip("no systemd unit directory with multi-user.target on this machine")


def make_root(tmp: Path, unit_text: str, *, with_exec: bool = True) -> Path:
    root = tmp / "root"
    shutil.copytree(system_unit_dir(), root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    (root / "etc/systemd/system/rearguard.service").write_text(unit_text)
    (root / "etc/systemd/system/rearguard-fallback.service").write_text(FALLBACK.read_text())
    (root / "etc/systemd/system/rearguard-poweroff.service").write_text(POWEROFF.read_text())
    if with_exec:
        for exe in (EXEC, FALLBACK_EXEC, "/bin/sh", "/usr/bin/systemctl"):  # the OnFailure= units' too
            stand_in = root / exe.lstrip("/")
            stand_in.parent.mkdir(parents=True, exist_ok=True)
            stand_in.write_text("#!/bin/sh\nexit 0\n")
            stand_in.chmod(0o755)
    return root


def verify(root: Path, name: str = "rearguard.service") -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", "verify", f"--root={root}", name],
                          capture_output=True, text=True, timeout=60)


@needs_analyze
def test_unit_verifies(tmp_path: Path) -> None:
    r = verify(make_root(tmp_path, UNIT.read_text()))
    # systemd only warns ("..., ignoring") about bad settings: any output fails
    assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), r.stdout + r.stderr


@needs_analyze
@pytest.mark.parametrize("old, new", [("Type=notify", "Type=notfy"), ("WatchdogSec=2s", "WatchdogSec=2 parsecs"),
                                      ("DeviceAllow=char-media rw", "DeviceAllow=char-media rwx")])
def test_verify_harness_catches_a_broken_setting(tmp_path: Path, old: str, new: str) -> None:
    text = UNIT.read_text()
    assert old in text
    r = verify(make_root(tmp_path, text.replace(old, new)))
    assert "ignoring" in r.stdout + r.stderr


@needs_analyze
def test_verify_harness_checks_the_exec_path(tmp_path: Path) -> None:
    r = verify(make_root(tmp_path, UNIT.read_text(), with_exec=False))
    assert r.returncode != 0 and EXEC in r.stdout + r.stderr


def exposure(path: Path) -> float:
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(path)],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", r.stdout)
    assert m, r.stdout + r.stderr
    return float(m.group(1))


@needs_analyze
def test_security_exposure_is_at_most_the_reported_value() -> None:
    assert REPORTED_EXPOSURE <= 4.0
    assert exposure(UNIT) <= REPORTED_EXPOSURE


@needs_analyze
def test_exposure_measure_sees_the_sandbox(tmp_path: Path) -> None:
    # without its sandbox lines the same unit must score worse, or the
    # measurement above would prove nothing
    bare = tmp_path / "rearguard.service"
    text = UNIT.read_text()
    bare.write_text(text[: text.index("# ---- sandbox ----")] + "\n[Install]\nWantedBy=multi-user.target\n")
    assert exposure(bare) > REPORTED_EXPOSURE + 2


def test_notify_and_watchdog(unit: dict[str, list[tuple[str, str]]]) -> None:
    s = unit["Service"]
    assert one(s, "Type") == "notify"
    assert one(s, "NotifyAccess") == "main"
    wd = one(s, "WatchdogSec")
    m = re.fullmatch(r"(\d+(?:\.\d+)?)s?", wd)
    assert m, wd
    # the 50 Hz loop pings every WatchdogSec/2; a whole second between
    # pings must still be fine, and a stall must not go unnoticed for long
    assert 2.0 <= float(m.group(1)) <= 5.0


def test_restart_policy(unit: dict[str, list[tuple[str, str]]]) -> None:
    s, u = unit["Service"], unit["Unit"]
    assert one(s, "Restart") == "always"
    assert float(one(s, "RestartSec")) >= 1
    # a crash loop gives up eventually instead of restarting forever
    interval, burst = float(one(u, "StartLimitIntervalSec")), int(one(u, "StartLimitBurst"))
    assert burst * float(one(s, "RestartSec")) < interval


def test_runs_unprivileged_with_its_directories(unit: dict[str, list[tuple[str, str]]]) -> None:
    s = unit["Service"]
    assert one(s, "User") == "rearguard"
    assert one(s, "SupplementaryGroups").split() == ["gpio", "video"]
    assert one(s, "StateDirectory") == "rearguard"
    assert one(s, "ConfigurationDirectory") == "rearguard"
    assert one(s, "ExecStart") == f"{EXEC} run --source pi --quiet"
    env = dict(kv.split("=", 1) for line in values(s, "Environment") for kv in line.split())
    assert env["REARGUARD_CONFIG"] == "/etc/rearguard/config.toml"
    # the model is root's: not under the StateDirectory= systemd hands to the user
    assert env["REARGUARD_MODELS"] == "/usr/local/share/rearguard/models"
    assert not env["REARGUARD_MODELS"].startswith(("/var/lib/rearguard", "%S"))
    # no onnxruntime telemetry files in the state directory on the SD card
    assert env["ORT_DISABLE_TELEMETRY"] == "1"
    assert env["GPIOZERO_PIN_FACTORY"] == "lgpio"
    assert one(s, "CapabilityBoundingSet") == ""
    assert one(s, "NoNewPrivileges") == "yes"
    assert one(s, "ProtectSystem") == "strict"


def test_sandbox_leaves_what_the_device_needs(unit: dict[str, list[tuple[str, str]]]) -> None:
    s = unit["Service"]
    # onnxruntime reads /proc/cpuinfo and the CPU topology
    assert values(s, "ProcSubset") == []
    # GPIO (lgpio) and the camera (libcamera) and nothing else
    assert one(s, "DevicePolicy") == "closed"
    assert sorted(values(s, "DeviceAllow")) == sorted(
        ["char-gpiochip rw", "char-video4linux rw", "char-media rw", "char-dma_heap rw"])
    # PrivateDevices=yes would hide /dev/gpiochip* and /dev/video* altogether
    assert values(s, "PrivateDevices") in ([], ["no"])
    # the notify socket (AF_UNIX), libcamera's udev monitor (AF_NETLINK),
    # the localhost preview (AF_INET/6)
    assert set(one(s, "RestrictAddressFamilies").split()) == {"AF_UNIX", "AF_NETLINK", "AF_INET", "AF_INET6"}
    assert values(s, "PrivateNetwork") in ([], ["no"])
    # lgpio makes its FIFOs in the working directory: it must be writable
    assert one(s, "WorkingDirectory") in ("%S/rearguard", "/var/lib/rearguard")
    assert one(s, "SystemCallErrorNumber") == "EPERM"


@needs_analyze
@pytest.mark.parametrize("name", ["rearguard-fallback.service", "rearguard-poweroff.service"])
def test_the_onfailure_units_verify(tmp_path: Path, name: str) -> None:
    r = verify(make_root(tmp_path, UNIT.read_text()), name)
    assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), r.stdout + r.stderr


def test_a_held_button_powers_off_through_its_own_unit_and_not_the_fallback(
        unit: dict[str, list[tuple[str, str]]]) -> None:
    # exit 75 (device.app.live.EXIT_POWER_OFF): not restarted; the power-off unit
    # acts on that status only, the fallback on every other failure
    assert "75" in one(unit["Service"], "RestartPreventExitStatus").split()
    assert one(unit["Unit"], "OnFailure").split() == ["rearguard-fallback.service", "rearguard-poweroff.service"]
    off, fb = parse_unit(POWEROFF.read_text()), parse_unit(FALLBACK.read_text())
    # systemd passes MONITOR_EXIT_STATUS to ExecStart= only, never to ExecCondition=
    assert not values(off["Service"], "ExecCondition") and not values(fb["Service"], "ExecCondition")
    assert one(off["Service"], "ExecStart") == (
        """/bin/sh -c 'if [ "$$MONITOR_EXIT_STATUS" = 75 ]; then exec /usr/bin/systemctl --no-block poweroff; fi'""")
    assert "Install" not in off
    from device.app.live import EXIT_POWER_OFF
    from device.fallback import POWER_OFF_STATUS
    assert EXIT_POWER_OFF == POWER_OFF_STATUS == 75


def test_the_power_off_command_acts_on_status_75_only(tmp_path: Path) -> None:
    # the unit's ExecStart= as systemd runs it ($$ -> $), with systemctl a stand-in
    command = one(parse_unit(POWEROFF.read_text())["Service"], "ExecStart").replace("$$", "$")
    script = command.removeprefix("/bin/sh -c '").removesuffix("'").replace("/usr/bin/systemctl", "echo")
    for status, out in (("75", "--no-block poweroff"), ("2", ""), (None, ""), ("1", "")):
        env = {"PATH": "/usr/bin:/bin", **({"MONITOR_EXIT_STATUS": status} if status else {})}
        r = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, env=env, timeout=10)
        assert r.returncode == 0 and r.stdout.strip() == out, (status, r)


def test_a_failed_service_hands_the_pins_to_the_not_protecting_fallback(unit: dict[str, list[tuple[str, str]]]) -> None:
    # failed for good (start limit, or exit 2 = config error, not retried): the fallback plays
    assert "rearguard-fallback.service" in one(unit["Unit"], "OnFailure").split()
    assert "2" in one(unit["Service"], "RestartPreventExitStatus").split()
    fb = parse_unit(FALLBACK.read_text())
    # starting the device stops the fallback first, so the pins are free
    assert one(fb["Unit"], "Conflicts") == "rearguard.service" and one(fb["Unit"], "After") == "rearguard.service"
    assert "Install" not in fb  # never started by itself
    assert one(fb["Service"], "ExecStart") == f"{FALLBACK_EXEC} -m device.fallback"
    assert one(fb["Service"], "User") == "rearguard"
    assert values(fb["Service"], "DeviceAllow") == ["char-gpiochip rw"]
    assert "REARGUARD_CONFIG=/etc/rearguard/config.toml" in values(fb["Service"], "Environment")


def test_starts_at_boot(unit: dict[str, list[tuple[str, str]]]) -> None:
    assert one(unit["Install"], "WantedBy") == "multi-user.target"
