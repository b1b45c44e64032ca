"""scripts/install-pi.sh, run for real against stub system programs.

Every program the installer changes the system with (apt-get, useradd,
systemctl, python3 -m venv, pip, rearguard models ...) is a stub found first
on PATH. The stubs keep state the way the real system would - a package
counts as installed after apt-get installed it, the user exists after
useradd made it, systemctl refuses a unit that was changed on disk without a
daemon-reload - so "the second run changes nothing" is a real property of
the script, not of the stubs. Every file path goes under --root.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from device.core.config import load

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "install-pi.sh"
CHECKOUT_ITEMS = [
    "pyproject.toml", "constraints.txt", "README.md", "LICENSE", "CHANGELOG.md", "hardware.md", "device", "models",
    "docs", "systemd", "scripts",
]

# Each stub logs its argv (one line per call) to $STUB_STATE/calls.log.
LOG = 'printf "%s" "$(basename "$0")" >> "$STUB_STATE/calls.log"; printf " %s" "$@" >> "$STUB_STATE/calls.log"; echo >> "$STUB_STATE/calls.log"\n'
HEAD = "#!/usr/bin/env bash\nset -eu\n" + LOG + 'S="$STUB_STATE"\n'

STUBS = {
    "apt-get": r'''
case "${1-}" in
  update) ;;
  install)
    shift
    for a in "$@"; do
      case "$a" in
        -*) ;;
        *) echo "1.0-1" > "$S/dpkg/$a"
           # python3-picamera2 pulls in the OS's numpy
           if [ "$a" = python3-picamera2 ]; then echo "1:1.24.2-1+deb12u1" > "$S/dpkg/python3-numpy"; fi ;;
      esac
    done ;;
  *) echo "apt-get stub: unexpected $*" >&2; exit 100 ;;
esac
''',
    "dpkg-query": r'''
fmt=""; pkg=""
for a in "$@"; do
  case "$a" in -W) ;; -f=*) fmt="${a#-f=}" ;; *) pkg="$a" ;; esac
done
if [ ! -e "$S/dpkg/$pkg" ]; then echo "dpkg-query: no packages found matching $pkg" >&2; exit 1; fi
case "$fmt" in
  '${Status}') printf 'install ok installed' ;;
  '${Version}') printf '%s' "$(cat "$S/dpkg/$pkg")" ;;
  *) echo "dpkg-query stub: format $fmt" >&2; exit 2 ;;
esac
''',
    "getent": r'''
case "$1" in
  passwd) [ -e "$S/users/$2" ] && echo "$2:x:990:990::/var/lib/$2:/usr/sbin/nologin" ;;
  group) [ -e "$S/groups/$2" ] && echo "$2:x:991:" ;;
  *) exit 1 ;;
esac
''',
    "id": r'''
[ "$1" = -nG ] || { echo "id stub: unexpected $*" >&2; exit 1; }
[ -e "$S/users/$2" ] || { echo "id: '$2': no such user" >&2; exit 1; }
echo "$2 $(cat "$S/users/$2")"
''',
    "useradd": r'''
groups=""; name=""; usergroup=0
while [ $# -gt 0 ]; do
  case "$1" in
    --groups|-G) groups="$2"; shift 2 ;;
    --home-dir|--shell|-d|-s) shift 2 ;;
    --user-group|-U) usergroup=1; shift ;;
    -*) shift ;;
    *) name="$1"; shift ;;
  esac
done
[ ! -e "$S/users/$name" ] || { echo "useradd: user '$name' already exists" >&2; exit 9; }
for g in ${groups//,/ }; do [ -e "$S/groups/$g" ] || { echo "useradd: group '$g' does not exist" >&2; exit 6; }; done
echo "${groups//,/ }" > "$S/users/$name"
if [ "$usergroup" = 1 ]; then touch "$S/groups/$name"; fi
''',
    "usermod": r'''
[ "$1 $2" = "-a -G" ] || { echo "usermod stub: unexpected $*" >&2; exit 2; }
[ -e "$S/groups/$3" ] || { echo "usermod: group '$3' does not exist" >&2; exit 6; }
echo "$(cat "$S/users/$4") $3" > "$S/users/$4"
''',
    "groupadd": r'''
[ ! -e "$S/groups/${@: -1}" ] || exit 9
touch "$S/groups/${@: -1}"
''',
    "userdel": r'''
[ -e "$S/users/$1" ] || exit 6
rm "$S/users/$1"
''',
    # systemctl --root=DIR works on the unit files alone (as in a chroot);
    # without it, it needs a running systemd (run/systemd/system exists).
    "systemctl": r'''
unit_file="$STUB_ROOT/etc/systemd/system/rearguard.service"
wants="$STUB_ROOT/etc/systemd/system/multi-user.target.wants/rearguard.service"
loaded() { [ -e "$unit_file" ] && cmp -s "$unit_file" "$S/systemd/loaded"; }
case "$1" in
  --root=*)
    [ "${1#--root=}" = "$STUB_ROOT" ] || { echo "systemctl stub: wrong root $1" >&2; exit 1; }
    shift
    [ "$1" = is-enabled ] || [ "$2" != --now ] || { echo "systemctl stub: --now with --root" >&2; exit 1; }
    case "$1" in
      is-enabled) [ -L "$wants" ] ;;
      enable) [ -e "$unit_file" ] || { echo "Failed to enable unit: Unit file rearguard.service does not exist." >&2; exit 1; }
              mkdir -p "$(dirname "$wants")"; ln -sf /etc/systemd/system/rearguard.service "$wants"; touch "$S/systemd/enabled" ;;
      disable) rm -f "$wants" "$S/systemd/enabled" ;;
      *) echo "systemctl stub: unexpected offline $*" >&2; exit 1 ;;
    esac
    exit 0 ;;
esac
if [ ! -d "$STUB_ROOT/run/systemd/system" ]; then
  echo "System has not been booted with systemd as init system (PID 1). Can't operate." >&2
  echo "Failed to connect to bus: Host is down" >&2
  exit 1
fi
case "$1" in
  is-enabled) [ -e "$S/systemd/enabled" ] ;;
  is-active) [ -e "$S/systemd/active" ] ;;
  daemon-reload) if [ -e "$unit_file" ]; then cp "$unit_file" "$S/systemd/loaded"; else rm -f "$S/systemd/loaded"; fi ;;
  enable)
    loaded || { echo "systemctl stub: unit missing or changed on disk without daemon-reload" >&2; exit 1; }
    touch "$S/systemd/enabled"
    if [ "$2" = --now ]; then touch "$S/systemd/active"; echo x >> "$S/systemd/starts"; fi ;;
  restart)
    if [ "${2-}" = systemd-journald ]; then echo x >> "$S/systemd/journald-restarts"; exit 0; fi
    loaded || { echo "systemctl stub: unit changed on disk without daemon-reload" >&2; exit 1; }
    touch "$S/systemd/active"; echo x >> "$S/systemd/starts" ;;
  disable) rm -f "$S/systemd/enabled"; if [ "$2" = --now ]; then rm -f "$S/systemd/active"; fi ;;
  stop) [ "$2" = rearguard-fallback.service ] || { echo "systemctl stub: unexpected $*" >&2; exit 1; } ;;
  *) echo "systemctl stub: unexpected $*" >&2; exit 1 ;;
esac
''',
    # python3 -m venv makes a venv whose python is the venv-python stub;
    # anything else goes to the real interpreter.
    "python3": r'''
if [ "${1-}" = -m ] && [ "${2-}" = venv ]; then
  shift 2; sys=false; clear=0; dir=""
  for a in "$@"; do
    case "$a" in --system-site-packages) sys=true ;; --clear) clear=1 ;; -*) ;; *) dir="$a" ;; esac
  done
  if [ "$clear" = 1 ]; then rm -rf "$dir"; fi
  mkdir -p "$dir/bin"
  printf 'home = /usr/bin\ninclude-system-site-packages = %s\nversion = 3.11.2\n' "$sys" > "$dir/pyvenv.cfg"
  cp "$STUB_LIB/venv-python" "$dir/bin/python"
  exit 0
fi
exec "$REAL_PYTHON" "$@"
''',
}

# Installed into the venv by the stubs, so called by path, not via PATH.
VENV_STUBS = {
    # pip install puts the rearguard entry point into the venv
    "venv-python": r'''
[ "$1 $2 $3" = "-m pip install" ] || { echo "venv python stub: unexpected $*" >&2; exit 1; }
src="${@: -1}"; constraints=""
prev=""
for a in "$@"; do if [ "$prev" = --constraint ]; then constraints="$a"; fi; prev="$a"; done
[ -f "$src/pyproject.toml" ] || { echo "pip: $src is not a project" >&2; exit 1; }
cp "$STUB_LIB/venv-rearguard" "$(dirname "$0")/rearguard"
cat "$constraints" > "$S/pip-constraints"
echo "$src" >> "$S/pip-installs"
''',
    # models are stubbed; `config show` is the real CLI
    "venv-rearguard": r'''
case "$1 ${2-}" in
  "models verify") [ -e "$REARGUARD_MODELS/yolox_nano.onnx" ] ;;
  "models install") mkdir -p "$REARGUARD_MODELS"; cp "$3" "$REARGUARD_MODELS/yolox_nano.onnx" ;;
  "models fetch") mkdir -p "$REARGUARD_MODELS"; echo fetched > "$REARGUARD_MODELS/yolox_nano.onnx" ;;
  "models dynamic") [ -e "$REARGUARD_MODELS/yolox_nano.onnx" ] || exit 1; echo built > "$REARGUARD_MODELS/yolox_nano_dynamic.onnx" ;;
  "config show") exec "$REAL_PYTHON" -m device "$@" ;;
  *) echo "rearguard stub: unexpected $*" >&2; exit 2 ;;
esac
''',
}

# Calls that change the system; everything else the installer runs must be a query.
CHANGING = (
    "apt-get", "useradd", "usermod", "groupadd", "userdel", "python3 -m venv",
    "python -m pip", "rearguard models install", "rearguard models fetch", "rearguard models dynamic",
    "systemctl enable", "systemctl disable", "systemctl restart", "systemctl daemon-reload",
    "systemctl restart systemd-journald",
    "systemctl start", "systemctl stop", "rearguard config show",
    "systemctl --root=ROOT enable", "systemctl --root=ROOT disable",
)
# ... and the calls that only look. Every call must be one or the other.
QUERIES = (
    "dpkg-query -W", "getent passwd", "getent group", "id -nG", "systemctl is-enabled",
    "systemctl is-active", "rearguard models verify", "python3 -c", "systemctl --root=ROOT is-enabled",
)


def _write_exe(path: Path, body: str) -> None:
    path.write_text(HEAD + body)
    path.chmod(0o755)


@dataclass
class Pi:
    """A fresh "Raspberry Pi": an empty root, stub programs, a checkout."""

    root: Path
    state: Path
    checkout: Path
    env: dict[str, str]

    def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        log = self.state / "calls.log"
        log.write_text("")
        r = subprocess.run(
            ["bash", str(self.checkout / "scripts" / "install-pi.sh"), "--root", str(self.root), *args],
            env=self.env, capture_output=True, text=True, timeout=120,
        )
        if ok:
            assert r.returncode == 0, f"installer failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
        return r

    def calls(self) -> list[str]:
        lines = (self.state / "calls.log").read_text().replace(f"--root={self.root}", "--root=ROOT")
        return [c for c in lines.splitlines() if c]

    def changing_calls(self) -> list[str]:
        calls = self.calls()
        unknown = [c for c in calls if not c.startswith(CHANGING + QUERIES)]
        assert not unknown, f"calls neither changing nor query: {unknown}"
        return [c for c in calls if c.startswith(CHANGING)]

    def snapshot(self) -> dict[str, str]:
        """Every file and directory under the root and the stub state (minus the
        call log) with its mode and content digest."""
        out: dict[str, str] = {}
        for base in (self.root, self.state):
            for dirpath, dirnames, filenames in os.walk(base):
                for name in dirnames + filenames:
                    p = Path(dirpath) / name
                    if p == self.state / "calls.log":
                        continue
                    st = p.lstat()
                    digest = hashlib.sha256(p.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else "-"
                    out[str(p)] = f"{stat.filemode(st.st_mode)} {digest}"
        return out

    @property
    def user_groups(self) -> set[str] | None:
        f = self.state / "users" / "rearguard"
        return set(f.read_text().split()) if f.exists() else None

    def systemd(self, what: str) -> bool:
        return (self.state / "systemd" / what).exists()

    def stop_systemd(self) -> None:
        """Make this a chroot (an SD-card image being built): no systemd runs."""
        (self.root / "run/systemd/system").rmdir()


@pytest.fixture
def pi(tmp_path: Path) -> Pi:
    root, state, bin_dir, lib = (tmp_path / d for d in ("root", "state", "bin", "lib"))
    for d in (root, bin_dir, lib, state / "dpkg", state / "users", state / "groups", state / "systemd"):
        d.mkdir(parents=True)
    # a booted system: systemd is running (sd_booted()'s test)
    (root / "run/systemd/system").mkdir(parents=True)
    # Raspberry Pi OS has these groups (its udev rules give them the devices)
    for g in ("gpio", "video", "i2c"):
        (state / "groups" / g).touch()
    for name, body in STUBS.items():
        _write_exe(bin_dir / name, body)
    for name, body in VENV_STUBS.items():
        _write_exe(lib / name, body)
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for item in CHECKOUT_ITEMS:
        src = REPO / item
        if src.is_dir():
            shutil.copytree(src, checkout / item, ignore=shutil.ignore_patterns("__pycache__", "*.onnx"))
        else:
            shutil.copy2(src, checkout / item)
    env = {
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "STUB_STATE": str(state),
        "STUB_ROOT": str(root),
        "STUB_LIB": str(lib),
        "REAL_PYTHON": sys.executable,
        "HOME": str(tmp_path),
        "LC_ALL": "C.UTF-8",
    }
    return Pi(root, state, checkout, env)


def test_script_is_valid_bash() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_script_passes_shellcheck() -> None:
    r = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


def test_install_performs_every_step(pi: Pi) -> None:
    r = pi.run()
    calls = pi.calls()
    changing = pi.changing_calls()
    # apt: only what was missing, after an update, without the GUI recommends
    assert "apt-get update" in calls
    assert any(c.startswith("apt-get install -y --no-install-recommends python3-picamera2 python3-lgpio python3-venv")
               for c in calls), calls
    # the user, in the device groups, with no login
    assert pi.user_groups == {"gpio", "video", "i2c"}
    useradd = next(c for c in changing if c.startswith("useradd"))
    assert "--system" in useradd and "/usr/sbin/nologin" in useradd and useradd.endswith(" rearguard")
    # the code copied to /opt/rearguard, a venv that sees the OS's picamera2/lgpio
    opt = pi.root / "opt" / "rearguard"
    assert (opt / "pyproject.toml").read_bytes() == (REPO / "pyproject.toml").read_bytes()
    assert (opt / "device" / "cli" / "main.py").is_file()
    assert not list(opt.rglob("__pycache__"))
    assert "include-system-site-packages = true" in (opt / ".venv" / "pyvenv.cfg").read_text()
    assert (pi.state / "pip-installs").read_text().split() == [str(opt)]
    # every version from the project's lock, but numpy stays the OS's
    # (picamera2's simplejpeg is built against it)
    lock = (REPO / "constraints.txt").read_text().splitlines()
    used = (pi.state / "pip-constraints").read_text().splitlines()
    assert used == [line for line in lock if not line.startswith("numpy==")] + ["numpy==1.24.2"]
    assert any(line.startswith("onnxruntime==") for line in used)
    # the model, fetched since no --model was given
    assert "rearguard models fetch" in calls
    assert (pi.root / "usr/local/share/rearguard/models/yolox_nano.onnx").is_file()
    # the default config, from the real `rearguard config show`, loads back
    config = pi.root / "etc/rearguard/config.toml"
    tomllib.loads(config.read_text())
    # ... with recording on within a small budget: incident clips to review after a run
    cfg = load(config)
    assert cfg.recording.model_dump() == {
        **load("/dev/null").recording.model_dump(), "directory": "/var/lib/rearguard/recordings",
        "segment_s": 60.0, "budget_mb": 300.0, "incident_budget_mb": 300.0}
    assert cfg.model_copy(update={"recording": load("/dev/null").recording}) == load("/dev/null")
    # rearguard on PATH; the journal kept across a power-cycle
    assert os.readlink(pi.root / "usr/local/bin/rearguard") == "/opt/rearguard/.venv/bin/rearguard"
    dropin = pi.root / "etc/systemd/journald.conf.d/rearguard.conf"
    assert "[Journal]\nStorage=persistent\n" in dropin.read_text()
    assert (pi.state / "systemd" / "journald-restarts").read_text().count("x") == 1
    # the unit exactly as in the repository, loaded, enabled and started once
    unit = pi.root / "etc/systemd/system/rearguard.service"
    assert unit.read_bytes() == (REPO / "systemd" / "rearguard.service").read_bytes()
    fallback = pi.root / "etc/systemd/system/rearguard-fallback.service"  # OnFailure=, never enabled
    assert fallback.read_bytes() == (REPO / "systemd" / "rearguard-fallback.service").read_bytes()
    poweroff = pi.root / "etc/systemd/system/rearguard-poweroff.service"  # the button's hold
    assert poweroff.read_bytes() == (REPO / "systemd" / "rearguard-poweroff.service").read_bytes()
    assert oct(unit.stat().st_mode & 0o777) == "0o644"
    assert calls.index("systemctl daemon-reload") < calls.index("systemctl enable --now rearguard.service")
    assert pi.systemd("enabled") and pi.systemd("active")
    assert (pi.state / "systemd" / "starts").read_text().count("x") == 1
    assert "installed:" in r.stdout


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_installed_tree_satisfies_the_unit(pi: Pi) -> None:
    # the unit verifies against what the installer laid out (its ExecStart
    # is the venv's entry point), given the system's own targets
    pi.run()
    units = next((d for d in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))
                  if (d / "multi-user.target").exists()), None)
    if units is None:
        pytest.skip("no systemd unit directory with multi-user.target on this machine")
    shutil.copytree(units, pi.root / "usr/lib/systemd/system", symlinks=True)
    r = subprocess.run(["systemd-analyze", "verify", f"--root={pi.root}", "rearguard.service"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), r.stdout + r.stderr


def test_second_run_changes_nothing(pi: Pi) -> None:
    pi.run()
    first = pi.changing_calls()
    before = pi.snapshot()
    r = pi.run()
    assert len(first) >= 8  # the first run did the work ...
    assert pi.changing_calls() == []  # ... the second only looked
    assert pi.calls(), "the second run must still check the system"
    assert pi.snapshot() == before
    assert "nothing to do" in r.stdout
    assert "would" not in r.stdout


def test_dry_run_on_a_fresh_system_changes_nothing(pi: Pi) -> None:
    before = pi.snapshot()
    r = pi.run("--dry-run")
    assert pi.changing_calls() == []
    assert pi.snapshot() == before
    assert list(pi.root.iterdir()) == [pi.root / "run"]
    for step in ("would install python3-picamera2 python3-lgpio python3-venv", "would create system user rearguard",
                 "would create the venv", "would pip install", "would install the model",
                 "would write the default config", "would enable and start rearguard.service"):
        assert step in r.stdout, r.stdout
    assert "none made" in r.stdout


def test_dry_run_after_install_reports_nothing_to_do(pi: Pi) -> None:
    pi.run()
    before = pi.snapshot()
    r = pi.run("--dry-run")
    assert pi.changing_calls() == []
    assert pi.snapshot() == before
    assert "nothing to do" in r.stdout


def test_update_after_a_code_change_reinstalls_and_restarts(pi: Pi) -> None:
    pi.run()
    config = pi.root / "etc/rearguard/config.toml"
    config.write_text(config.read_text() + "\n# my pins\n")
    edited = config.read_bytes()
    with open(pi.checkout / "device" / "core" / "clock.py", "a") as f:
        f.write("\n# a new version\n")
    r = pi.run()
    changing = pi.changing_calls()
    assert [c.split()[0] for c in changing] == ["python", "systemctl"], changing
    assert changing[-1] == "systemctl restart rearguard.service"
    assert "a new version" in (pi.root / "opt/rearguard/device/core/clock.py").read_text()
    assert config.read_bytes() == edited  # the config is never overwritten
    assert (pi.state / "systemd" / "starts").read_text().count("x") == 2
    assert "copy " in r.stdout


def test_changed_unit_is_reloaded_before_restart(pi: Pi) -> None:
    pi.run()
    unit = pi.checkout / "systemd" / "rearguard.service"
    unit.write_text(unit.read_text().replace("RestartSec=2", "RestartSec=3"))
    pi.run()
    changing = pi.changing_calls()
    assert changing.index("systemctl daemon-reload") < changing.index("systemctl restart rearguard.service")
    assert "RestartSec=3" in (pi.root / "etc/systemd/system/rearguard.service").read_text()


def test_offline_model(pi: Pi, tmp_path: Path) -> None:
    model = tmp_path / "yolox_nano.onnx"
    model.write_bytes(b"weights")
    pi.run("--model", str(model))
    assert f"rearguard models install {model}" in pi.calls()
    assert not any("models fetch" in c for c in pi.calls())
    assert (pi.root / "usr/local/share/rearguard/models/yolox_nano.onnx").read_bytes() == b"weights"
    pi.run("--model", str(model))
    assert pi.changing_calls() == []


def test_existing_user_gets_missing_group_and_missing_group_is_created(pi: Pi) -> None:
    (pi.state / "users" / "rearguard").write_text("video\n")
    (pi.state / "groups" / "gpio").unlink()
    pi.run()
    changing = pi.changing_calls()
    assert "groupadd --system gpio" in changing
    assert "usermod -a -G gpio rearguard" in changing
    assert not any(c.startswith("useradd") for c in changing)
    assert pi.user_groups == {"gpio", "video", "i2c"}


def test_an_older_install_gets_the_i2c_group_for_the_fuel_gauge(pi: Pi) -> None:
    # installed before the gauge (user in gpio and video), on a system without
    # group i2c (I2C never enabled): the update makes the group and adds the user,
    # so a gauge set later in the config is readable by the service
    (pi.state / "users" / "rearguard").write_text("gpio video\n")
    (pi.state / "groups" / "i2c").unlink()
    pi.run()
    changing = pi.changing_calls()
    assert "groupadd --system i2c" in changing
    assert "usermod -a -G i2c rearguard" in changing
    assert pi.user_groups == {"gpio", "video", "i2c"}
    pi.run()
    assert not any("i2c" in c for c in pi.changing_calls())


def test_uninstall_removes_what_install_made_and_keeps_config_and_data(pi: Pi) -> None:
    pi.run()
    config = pi.root / "etc/rearguard/config.toml"
    model = pi.root / "usr/local/share/rearguard/models/yolox_nano.onnx"
    recording = pi.root / "var/lib/rearguard/recordings/run1/meta.json"
    recording.parent.mkdir(parents=True)
    recording.write_text("{}")
    r = pi.run("--uninstall")
    assert "systemctl disable --now rearguard.service" in pi.changing_calls()
    assert not pi.systemd("enabled") and not pi.systemd("active") and not pi.systemd("loaded")
    assert not (pi.root / "etc/systemd/system/rearguard.service").exists()
    # the not-protecting fallback goes too, stopped first (it may be playing)
    assert "systemctl stop rearguard-fallback.service" in pi.changing_calls()
    assert not (pi.root / "etc/systemd/system/rearguard-fallback.service").exists()
    assert not (pi.root / "etc/systemd/system/rearguard-poweroff.service").exists()
    assert not (pi.root / "opt/rearguard").exists()
    assert config.is_file() and model.is_file() and recording.is_file()
    assert pi.user_groups == {"gpio", "video", "i2c"}
    assert "kept" in r.stdout and "--purge" in r.stdout
    # uninstalling again finds nothing to do
    before = pi.snapshot()
    r = pi.run("--uninstall")
    assert pi.changing_calls() == []
    assert pi.snapshot() == before
    assert "nothing to remove" in r.stdout
    # and a reinstall keeps the old config and model
    edited = config.read_bytes()
    pi.run()
    assert config.read_bytes() == edited
    assert not any("models" in c for c in pi.changing_calls())


def test_uninstall_dry_run_changes_nothing(pi: Pi) -> None:
    pi.run()
    before = pi.snapshot()
    r = pi.run("--uninstall", "--dry-run")
    assert pi.changing_calls() == []
    assert pi.snapshot() == before
    assert "would stop and disable rearguard.service" in r.stdout


def test_purge_removes_config_data_and_user(pi: Pi) -> None:
    pi.run()
    pi.run("--uninstall", "--purge")
    assert "userdel rearguard" in pi.changing_calls()
    assert pi.user_groups is None
    assert not (pi.root / "etc/rearguard").exists()
    assert not (pi.root / "var/lib/rearguard").exists()
    assert not (pi.root / "usr/local/share/rearguard").exists()
    assert not (pi.root / "opt/rearguard").exists()
    # the OS packages stay: other software may use them
    assert (pi.state / "dpkg" / "python3-picamera2").exists()
    pi.run("--uninstall", "--purge")
    assert pi.changing_calls() == []


def test_refuses_32_bit_arm(pi: Pi) -> None:
    stub_bin = Path(pi.env["PATH"].split(":")[0])
    (stub_bin / "uname").write_text("#!/bin/sh\necho armv7l\n")
    (stub_bin / "uname").chmod(0o755)
    before = pi.snapshot()
    r = pi.run(ok=False)
    assert r.returncode == 1
    assert "64-bit" in r.stderr
    assert pi.snapshot() == before


@pytest.mark.parametrize("args", [["--bogus"], ["--purge"], ["--uninstall", "--model", "x"]])
def test_bad_arguments_are_usage_errors(pi: Pi, args: list[str]) -> None:
    r = pi.run(*args, ok=False)
    assert r.returncode == 2
    assert r.stderr.strip()
    assert pi.calls() == []


def test_needs_root_for_a_real_install(pi: Pi) -> None:
    argv = ["bash", str(SCRIPT)]
    if os.geteuid() == 0:  # drop to nobody to see the refusal
        if shutil.which("setpriv") is None:
            pytest.skip("running as root and setpriv is missing")
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
    r = subprocess.run(argv, env=pi.env, capture_output=True, text=True, cwd="/")
    assert r.returncode == 1 and "run as root" in r.stderr
    assert not (pi.state / "calls.log").exists()  # refused before running anything


# ---------------------------------------------------------------- a chroot (image build): no systemd running


def test_installs_in_a_chroot_without_a_running_systemd(pi: Pi) -> None:
    pi.stop_systemd()
    r = pi.run()
    calls = pi.calls()
    # nothing that needs a running systemd: it would fail with "System has not been booted with systemd"
    assert not [c for c in calls if c.startswith("systemctl ") and "--root=ROOT" not in c], calls
    assert "systemctl --root=ROOT enable rearguard.service" in pi.changing_calls()
    wants = pi.root / "etc/systemd/system/multi-user.target.wants/rearguard.service"
    assert wants.is_symlink() and os.readlink(wants) == "/etc/systemd/system/rearguard.service"
    assert not pi.systemd("active") and not (pi.state / "systemd" / "starts").exists()
    assert "next boot" in r.stdout
    # the rest is installed as on a running system
    assert (pi.root / "etc/systemd/system/rearguard.service").is_file()
    assert (pi.root / "usr/local/share/rearguard/models/yolox_nano.onnx").is_file()
    # and a second run in the chroot changes nothing
    before = pi.snapshot()
    r = pi.run()
    assert pi.changing_calls() == []
    assert pi.snapshot() == before
    assert "nothing to do" in r.stdout


def test_chroot_install_then_boot_needs_no_second_install(pi: Pi) -> None:
    pi.stop_systemd()
    pi.run()
    # first boot: systemd starts the enabled unit itself
    (pi.root / "run/systemd/system").mkdir()
    shutil.copy(pi.root / "etc/systemd/system/rearguard.service", pi.state / "systemd/loaded")
    (pi.state / "systemd/active").touch()
    r = pi.run()
    assert pi.changing_calls() == []
    assert "nothing to do" in r.stdout


def test_uninstall_in_a_chroot(pi: Pi) -> None:
    pi.stop_systemd()
    pi.run()
    pi.run("--uninstall", "--purge")
    calls = pi.calls()
    assert not [c for c in calls if c.startswith("systemctl ") and "--root=ROOT" not in c], calls
    assert "systemctl --root=ROOT disable rearguard.service" in pi.changing_calls()
    assert not (pi.root / "etc/systemd/system/multi-user.target.wants/rearguard.service").exists()
    assert not (pi.root / "etc/systemd/system/rearguard.service").exists()
    pi.run("--uninstall", "--purge")
    assert pi.changing_calls() == []


@pytest.mark.skipif(shutil.which("systemctl") is None, reason="systemctl not installed")
def test_real_offline_systemctl_enables_the_unit(tmp_path: Path) -> None:
    # The command the installer runs in a chroot, with the real systemctl,
    # on a throwaway root: it must need no running systemd.
    root = tmp_path / "root"
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(REPO / "systemd" / "rearguard.service", root / "etc/systemd/system/rearguard.service")
    subprocess.run(["systemctl", f"--root={root}", "enable", "rearguard.service"],
                   check=True, capture_output=True, timeout=60)
    wants = root / "etc/systemd/system/multi-user.target.wants/rearguard.service"
    assert wants.is_symlink() and os.readlink(wants) == "/etc/systemd/system/rearguard.service"
    r = subprocess.run(["systemctl", f"--root={root}", "is-enabled", "rearguard.service"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "enabled"
    subprocess.run(["systemctl", f"--root={root}", "disable", "rearguard.service"],
                   check=True, capture_output=True, timeout=60)
    assert not wants.exists()


# ---------------------------------------------------------------- the model is read-only to the service


def test_models_are_outside_the_services_writable_state(pi: Pi) -> None:
    # systemd gives the StateDirectory= (/var/lib/rearguard) to the service
    # user; the model must live where the service cannot write.
    pi.run()
    assert not (pi.root / "var/lib/rearguard/models").exists()
    unit = (pi.root / "etc/systemd/system/rearguard.service").read_text()
    models = "/usr/local/share/rearguard/models"
    assert f"Environment=REARGUARD_MODELS={models}\n" in unit
    assert (pi.root / models.lstrip("/") / "yolox_nano.onnx").is_file()


def test_update_moves_models_from_the_old_state_directory(pi: Pi) -> None:
    old = pi.root / "var/lib/rearguard/models"
    old.mkdir(parents=True)
    (old / "yolox_nano.onnx").write_bytes(b"weights")
    (old / "yolox_nano.onnx").chmod(0o660)
    recording = pi.root / "var/lib/rearguard/recordings/r1.json"
    recording.parent.mkdir(parents=True)
    recording.write_text("{}")
    r = pi.run()
    new = pi.root / "usr/local/share/rearguard/models/yolox_nano.onnx"
    assert new.read_bytes() == b"weights"
    assert stat.S_IMODE(new.stat().st_mode) == 0o644
    assert not old.exists() and recording.is_file()
    assert not any("models fetch" in c for c in pi.calls())  # no download needed
    assert "move the models" in r.stdout


# ---------------------------------------------------------------- defaults per board (issue 11 item 5)


def _as_pi(pi: Pi, model_line: str) -> None:
    tree = pi.root / "proc" / "device-tree"
    tree.mkdir(parents=True)
    (tree / "model").write_bytes(model_line.encode() + b"\0")  # as the kernel writes it


@pytest.mark.parametrize("line,board", [("Raspberry Pi 4 Model B Rev 1.4", "pi4"),
                                        ("Raspberry Pi Zero 2 W Rev 1.0", "zero2w"),
                                        ("Raspberry Pi 5 Model B Rev 1.0", "pi5")])
def test_install_writes_the_boards_detector_defaults(pi: Pi, line: str, board: str) -> None:
    from device.perception import boards

    want = boards.load().get(board)
    assert want.default_model is not None
    _as_pi(pi, line)
    r = pi.run()
    assert line in r.stdout  # says which board the config is for
    config = pi.root / "etc/rearguard/config.toml"
    cfg = load(config)
    assert (cfg.detector.model, cfg.detector.input_geometry) == (want.default_model, want.default_input_size)
    assert cfg.detector.fill == want.default_fill
    plain = load("/dev/null")
    # the board's flow default (boards.toml default_flow), the rest of [flow] as built in
    flow_on = want.default_flow if want.default_flow is not None else plain.flow.enabled
    assert cfg.flow == plain.flow.model_copy(update={"enabled": flow_on})
    # the board's pace floor (boards.toml default_min_rate_hz), the rest of [pace] as built in
    floor = want.default_min_rate_hz if want.default_min_rate_hz is not None else plain.pace.min_rate_hz
    assert cfg.pace == plain.pace.model_copy(update={"min_rate_hz": floor})
    # nothing else but the installer's recording defaults
    assert cfg.model_copy(update={"detector": plain.detector, "recording": plain.recording,
                                  "flow": plain.flow, "pace": plain.pace}) == plain
    assert config.read_text().startswith(f"# the built-in defaults\n# {want.title}: ")
    derived = want.default_model == "yolox_nano_dynamic"
    assert ("rearguard models dynamic" in pi.calls()) is derived
    assert (pi.root / "usr/local/share/rearguard/models/yolox_nano_dynamic.onnx").is_file() is derived
    before = pi.snapshot()
    pi.run()
    assert pi.changing_calls() == [] and pi.snapshot() == before  # a second run changes nothing


def test_the_builders_config_wins_over_the_boards_defaults(pi: Pi) -> None:
    _as_pi(pi, "Raspberry Pi 4 Model B Rev 1.4")
    config = pi.root / "etc/rearguard/config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('[detector]\ninput_size = 416\n')
    pi.run()
    assert config.read_text() == '[detector]\ninput_size = 416\n'
    assert "rearguard models dynamic" not in pi.calls()


def test_a_builders_config_naming_the_derived_model_gets_it_built(pi: Pi) -> None:
    config = pi.root / "etc/rearguard/config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("[detector]\nmodel = 'yolox_nano_dynamic'\ninput_size = 320\n")
    pi.run()
    assert "rearguard models dynamic" in pi.changing_calls()
    assert (pi.root / "usr/local/share/rearguard/models/yolox_nano_dynamic.onnx").is_file()


def test_the_makers_path_link_group_and_journal(pi: Pi) -> None:
    """`rearguard` on PATH, the login user who ran sudo in group rearguard
    (the recordings are theirs to read), a journal that survives a power-cycle;
    each once, and gone again with --uninstall."""
    (pi.state / "users" / "pi").write_text("sudo video\n")
    pi.env["SUDO_USER"] = "pi"
    r = pi.run()
    assert "usermod -a -G rearguard pi" in pi.changing_calls()
    assert set((pi.state / "users" / "pi").read_text().split()) == {"sudo", "video", "rearguard"}
    assert "link " in r.stdout and "Storage=persistent" in r.stdout
    link = pi.root / "usr/local/bin/rearguard"
    assert os.readlink(link) == "/opt/rearguard/.venv/bin/rearguard"
    # the unit lets the group read the state directory, and the service writes group-readable files
    unit = (REPO / "systemd" / "rearguard.service").read_text()
    assert "StateDirectoryMode=0750" in unit and "UMask=0027" in unit and "Group=rearguard" in unit
    pi.run()
    assert pi.changing_calls() == []
    pi.run("--uninstall")
    assert not link.exists() and not link.is_symlink()
    assert not (pi.root / "etc/systemd/journald.conf.d/rearguard.conf").exists()


def test_a_rearguard_that_is_not_our_link_is_left_alone(pi: Pi) -> None:
    mine = pi.root / "usr/local/bin/rearguard"
    mine.parent.mkdir(parents=True)
    mine.write_text("#!/bin/sh\necho my own\n")
    r = pi.run()
    assert mine.read_text() == "#!/bin/sh\necho my own\n"
    assert f"left {mine} alone" in r.stdout
    pi.run("--uninstall")
    assert mine.is_file()
