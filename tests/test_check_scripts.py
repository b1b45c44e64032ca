"""The project's machine checks (scripts/check-systemd.sh, check-arm64.sh, lint.sh)
are run by CI, not by pytest (they boot a container, ask PyPI): here only
that they parse, pass shellcheck, are wired into .ci/run, and that the
sandbox probe and the check agree on what is probed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = [REPO / "scripts" / "check-systemd.sh", REPO / "scripts" / "check-arm64.sh", REPO / "scripts" / "lint.sh"]
# scripts/check-gpio-vm.sh boots a VM (3-6 minutes): not in CI, so here
# only that its scripts parse and pass shellcheck, that CI does not run it,
# and that its line sampler measures what the lines show.
GPIO_VM = [REPO / "scripts" / "check-gpio-vm.sh", REPO / "scripts" / "check-gpio-vm-inside.sh"]
# Run by hand, never by CI: the lock's generator, the newest-releases check and
# the thread-heavy tests under stress-ng (most of an hour).
BY_HAND = [REPO / "scripts" / "lock.sh", REPO / "scripts" / "check-latest.sh", REPO / "scripts" / "stress-rounds.sh"]


@pytest.mark.parametrize("script", SCRIPTS + GPIO_VM + BY_HAND, ids=lambda p: p.name)
def test_check_script_is_valid_bash(script: Path) -> None:
    subprocess.run(["bash", "-n", str(script)], check=True)


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
@pytest.mark.parametrize("script", SCRIPTS + GPIO_VM + BY_HAND, ids=lambda p: p.name)
def test_check_script_passes_shellcheck(script: Path) -> None:
    r = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


def test_ci_runs_the_checks() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    for script in SCRIPTS:
        assert re.search(rf"^bash scripts/{script.name}$", ci, re.M), script.name


def test_probe_and_check_agree_on_what_is_probed() -> None:
    probe = (REPO / "scripts" / "check-systemd-probe.py").read_text()
    check = (REPO / "scripts" / "check-systemd.sh").read_text()
    probed = set(re.findall(r'report\("([a-z0-9-]+)"', probe))
    loops = re.findall(r"^for n in ([a-z0-9 \\\n-]+?); do expect \"\$n\" (allowed|denied)", check, re.M)
    expected = {name for names, _ in loops for name in names.replace("\\", " ").split()}
    assert len(loops) == 2 and probed and probed == expected


def test_probe_compiles() -> None:
    path = REPO / "scripts" / "check-systemd-probe.py"
    compile(path.read_text(), str(path), "exec")  # (no .pyc left in scripts/)


@pytest.mark.parametrize("args", [["--first-install", "bogus"], ["--bogus"]])
def test_check_systemd_refuses_bad_arguments_before_doing_anything(args: list[str]) -> None:
    r = subprocess.run(["bash", str(SCRIPTS[0]), *args], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and r.stderr.strip() and not r.stdout


def test_ci_does_not_run_the_gpio_vm_check() -> None:
    assert "check-gpio-vm" not in (REPO / ".ci" / "run").read_text()


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_gpio_vm_helper_samples_lines(tmp_path: Path) -> None:
    helper = tmp_path / "helper"
    subprocess.run(["gcc", "-O2", "-Wall", "-Werror", "-o", str(helper),
                    str(REPO / "scripts" / "check-gpio-vm-helper.c")], check=True)
    high, low = tmp_path / "high", tmp_path / "low"
    high.write_text("1\n")
    low.write_text("0\n")
    r = subprocess.run([str(helper), "sample", "0.05", "5000", str(high), str(low)],
                       capture_output=True, text=True, check=True)
    got = dict(re.findall(r"^sample (\S+) high=([0-9.]+)", r.stdout, re.M))
    assert float(got[str(high)]) == 1.0 and float(got[str(low)]) == 0.0
    bad = subprocess.run([str(helper), "bogus"], capture_output=True, text=True)
    assert bad.returncode == 2 and "usage" in bad.stderr


def test_check_systemd_prepare_root_needs_a_directory() -> None:
    r = subprocess.run(["bash", str(SCRIPTS[0]), "--prepare-root"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "--prepare-root" in r.stderr


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_gpio_vm_helper_prints_each_lines_changes_with_their_times(tmp_path: Path) -> None:
    # the fallback's and the start's rhythms are judged from these (check-gpio-vm.sh)
    helper = tmp_path / "helper"
    subprocess.run(["gcc", "-O2", "-Wall", "-Werror", "-o", str(helper),
                    str(REPO / "scripts" / "check-gpio-vm-helper.c")], check=True)
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("0\n")
    b.write_text("1\n")
    proc = subprocess.Popen([str(helper), "edges", "30", "1000", str(a), str(b)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    first = [proc.stdout.readline(), proc.stdout.readline()]  # the levels at the start: it is sampling
    with a.open("r+") as f:  # in place, as sysfs changes: a truncation first would be an empty read
        f.write("1\n")
    lines: list[str] = []
    while not any(line.startswith("edge 0 ") for line in lines):
        line = proc.stdout.readline()
        assert line, f"the helper ended before the edge (exit {proc.wait(timeout=10)}): {lines}"
        lines.append(line)
    proc.terminate()  # SIGTERM: it stops and sums up
    rest = proc.stdout.read()
    assert proc.wait(timeout=10) == 0
    assert [line.split()[:2] + line.split()[3:] for line in first] == [["level", "0", "0"], ["level", "1", "1"]]
    edge = next(line for line in lines if line.startswith("edge 0 ")).split()
    assert edge[3] == "1" and float(edge[2]) >= float(first[0].split()[2])
    assert not any(line.startswith("edge 1 ") for line in lines + rest.splitlines())
    assert re.search(r"^edges seconds=[0-9.]+ samples=\d+ maxgap_ms=[0-9.]+$", rest, re.M)


def test_the_soak_scripts_arithmetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # scripts/soak.py (the memory soak, run by hand): its slope and the unit's
    # allocator settings it runs with; --help needs no OpenCV and no device.
    import importlib.util

    spec = importlib.util.spec_from_file_location("soak", REPO / "scripts" / "soak.py")
    assert spec is not None and spec.loader is not None
    soak = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "soak", soak)  # its dataclass looks its module up
    spec.loader.exec_module(soak)
    assert soak.fit_slope([0.0, 1.0, 2.0, 3.0], [200.0, 200.5, 201.0, 201.5]) == pytest.approx(0.5)
    unit = tmp_path / "u.service"
    unit.write_text("[Service]\nEnvironment=A=1 MALLOC_ARENA_MAX=2\n# Environment=MALLOC_X=1\n"
                    "Environment=MALLOC_TOP_PAD_=0\n")
    assert soak.unit_malloc_env(unit) == {"MALLOC_ARENA_MAX": "2", "MALLOC_TOP_PAD_": "0"}
    if sys.platform == "linux":  # all, private and file-backed: a step in the files is code paged in, not a leak
        rss, anon, files = soak.rss_mb(os.getpid())
        assert 0 < anon < rss and 0 < files < rss and abs(anon + files - rss) < 2
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "soak.py"), "--help"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "--variant" in r.stdout
