#!/usr/bin/env bash
# Does Rearguard's dependency set install on a 64-bit Raspberry Pi (aarch64)?
# Resolves it with pip, from PyPI, as binary wheels only (a Pi must never
# have to compile onnxruntime or opencv), for each Raspberry Pi OS release:
#
#   Bookworm: Python 3.11, glibc 2.36, numpy pinned to the OS's 1.24.2
#   Trixie:   Python 3.13, glibc 2.41, numpy pinned to the OS's 2.2.4
#
# with the project's lock (constraints.txt) and the numpy pin install-pi.sh
# applies (the OS's numpy, which python3-picamera2 is built against) and the
# [pi] extra's markers. It
# fails if anything does not resolve, if a placeholder wheel slips in (the
# bare `lgpio` name resolves to an empty 0.0.0.2 wheel), or if a wheel is not
# for aarch64. Prints the versions pip picked.
#
#   bash scripts/check-arm64.sh
#
# Wheels are kept in .cache/check-arm64/ (gitignored): a second run
# downloads nothing. It needs a Python >= 3.11 with pip (the repo's .venv,
# else python3).
set -euo pipefail

PROG=check-arm64
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$REPO/.cache/check-arm64"
PY="$REPO/.venv/bin/python"
[ -x "$PY" ] || PY=python3
T0=$(date +%s.%N)

fail() { echo "$PROG: FAIL: $*" >&2; exit 1; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# platform tags a glibc 2.MAX aarch64 system accepts
platforms() {
    local max="$1" v
    echo "--platform manylinux2014_aarch64"
    for v in $(seq 17 "$max"); do echo "--platform manylinux_2_${v}_aarch64"; done
}

# the requirements of pyproject.toml (+ the [pi] extra) for one Python
requirements() {
    "$PY" - "$REPO/pyproject.toml" "$1" <<'EOF'
import sys
import tomllib
from packaging.requirements import Requirement

meta = tomllib.load(open(sys.argv[1], "rb"))["project"]
env = {"python_version": sys.argv[2], "platform_machine": "aarch64", "sys_platform": "linux",
       "platform_system": "Linux", "implementation_name": "cpython", "extra": "pi"}
for text in meta["dependencies"] + meta["optional-dependencies"]["pi"]:
    r = Requirement(text)
    if r.marker is None or r.marker.evaluate(env):
        r.marker = None
        print(r)
EOF
}

# the lock's lines for an aarch64 Pi with this Python, markers evaluated
# there (pip evaluates them on this machine: platform_machine would be x86_64)
lock_for() {
    "$PY" - "$REPO/constraints.txt" "$1" <<'EOF'
import sys
from packaging.requirements import Requirement

env = {"python_version": sys.argv[2], "python_full_version": sys.argv[2] + ".0", "platform_machine": "aarch64",
       "sys_platform": "linux", "platform_system": "Linux", "implementation_name": "cpython",
       "platform_python_implementation": "CPython"}
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if line:
        r = Requirement(line)
        if r.marker is None or r.marker.evaluate(env):
            r.marker = None
            print(r)
EOF
}

check() {  # check NAME PYTHON GLIBC_MINOR NUMPY
    local name="$1" python="$2" glibc="$3" numpy="$4" dir="$CACHE/$1" t
    t=$(date +%s.%N)
    mkdir -p "$dir"
    requirements "$python" > "$dir/requirements.txt"
    # the project's lock, with the OS's numpy as install-pi.sh uses it
    { lock_for "$python" | grep -v '^numpy=='; echo "numpy==$numpy"; } > "$dir/constraints.txt"
    # shellcheck disable=SC2046
    if ! env -u PIP_FIND_LINKS -u PIP_NO_INDEX "$PY" -m pip download --quiet --disable-pip-version-check \
        --only-binary=:all: --implementation cp --python-version "$python" $(platforms "$glibc") \
        --dest "$dir" -r "$dir/requirements.txt" -c "$dir/constraints.txt" > "$dir/pip.log" 2>&1; then
        cat "$dir/pip.log" >&2
        fail "$name (Python $python, aarch64): the dependencies do not resolve as binary wheels"
    fi
    # the wheels this resolution needs (the dir may hold older ones): ask pip for the report
    # shellcheck disable=SC2046
    env -u PIP_FIND_LINKS -u PIP_NO_INDEX "$PY" -m pip install --quiet --disable-pip-version-check --dry-run \
        --ignore-installed --no-index --find-links "$dir" --only-binary=:all: --implementation cp \
        --python-version "$python" $(platforms "$glibc") --target "$dir/.none" --report "$dir/report.json" \
        -r "$dir/requirements.txt" -c "$dir/constraints.txt" > "$dir/report.log" 2>&1 \
        || { cat "$dir/report.log" >&2; fail "$name: pip could not re-resolve from the downloaded wheels"; }
    "$PY" - "$dir/report.json" "$name" "$python" "$numpy" <<'EOF' || exit 1
import json
import sys

report, name, python, numpy = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
picked = {}
for item in json.load(open(report))["install"]:
    meta, url = item["metadata"], item["download_info"]["url"]
    wheel = url.rsplit("/", 1)[-1]
    picked[meta["name"].lower()] = (meta["version"], wheel)
bad = []
for pkg, (version, wheel) in sorted(picked.items()):
    if not wheel.endswith(".whl"):
        bad.append(f"{pkg}: not a wheel: {wheel}")
    elif not (wheel.endswith("-none-any.whl") or "aarch64" in wheel):
        bad.append(f"{pkg}: not an aarch64 wheel: {wheel}")
    if version.startswith("0.0.0"):
        bad.append(f"{pkg} {version}: a placeholder wheel ({wheel})")
if picked.get("onnxruntime", ("",))[0] == "1.21.0":
    bad.append("onnxruntime 1.21.0 dies with 'Illegal instruction' on ARMv8.0 cores (Pi 4, Zero 2 W)")
if picked.get("numpy", ("",))[0] != numpy:
    bad.append(f"numpy {picked.get('numpy')} is not the OS's {numpy}")
if python < "3.13" and "lgpio" not in picked:
    bad.append("the [pi] extra's lgpio is missing")
if python >= "3.13" and "lgpio" in picked:
    bad.append("lgpio from pip on 3.13: it has no cp313 wheel")
for b in bad:
    print(f"check-arm64: FAIL: {name}: {b}", file=sys.stderr)
if bad:
    sys.exit(1)
top = ("onnxruntime", "opencv-python-headless", "numpy", "onnx", "pydantic", "gpiozero", "lgpio")
print(f"check-arm64: ok: {name} (Python {python}, aarch64): {len(picked)} wheels; "
      + ", ".join(f"{p} {picked[p][0]}" for p in top if p in picked))
EOF
    echo "$PROG: ($name: $(elapsed "$t") s)"
}

check bookworm 3.11 36 1.24.2
check trixie 3.13 41 2.2.4
echo "$PROG: PASS in $(elapsed "$T0") s"
