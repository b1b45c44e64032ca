#!/usr/bin/env bash
# What would break on the newest releases? Installs every dependency of
# pyproject.toml (and the test extra) at its NEWEST release, ignoring both
# the lock (constraints.txt) and pyproject's upper bounds, into a throwaway
# venv (.cache/check-latest), lists what differs from the lock, then runs
# the lint and the suite there and says which failed. Run by hand before
# moving a bound or regenerating the lock (scripts/lock.sh); not part of CI,
# whose result must not change with a release on PyPI.
#
#   bash scripts/check-latest.sh [PYTEST ARGS...]
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo" || exit 1
venv="$repo/.cache/check-latest"
rm -rf "$venv"
python3 -m venv "$venv" || exit 1
quiet() { grep -v "is ignored: it is neither" >&2; }
"$venv/bin/python" -m pip install --quiet --upgrade pip 2> >(quiet)
# every requirement by name only: no lower or upper bound, no lock
names="$("$venv/bin/python" - <<'EOF'
import re
import tomllib

meta = tomllib.load(open("pyproject.toml", "rb"))["project"]
reqs = meta["dependencies"] + meta["optional-dependencies"]["test"]
print(" ".join(sorted({re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0] for r in reqs})))
EOF
)"
echo "check-latest: installing the newest $names" >&2
# shellcheck disable=SC2086
"$venv/bin/python" -m pip install --quiet --upgrade $names 2> >(quiet) || { echo "check-latest: FAIL: install" >&2; exit 1; }
"$venv/bin/python" -m pip install --quiet --no-deps -e . 2> >(quiet) || exit 1
echo "check-latest: newer than the lock:" >&2
"$venv/bin/python" - <<'EOF'
import importlib.metadata as md
import re

lock = {}
for line in open("constraints.txt"):
    m = re.match(r"([A-Za-z0-9_.-]+)==([^ ;]+)", line.strip())
    if m:
        lock.setdefault(m[1].lower().replace("_", "-"), []).append(m[2])
for dist in sorted(md.distributions(), key=lambda d: d.metadata["Name"].lower()):
    name = dist.metadata["Name"].lower().replace("_", "-")
    if name in lock and dist.version not in lock[name]:
        print(f"  {name}: {dist.version} (lock: {', '.join(lock[name])})")
EOF
status=0
echo "check-latest: ruff" >&2
"$venv/bin/ruff" check --no-cache . || { echo "check-latest: BREAKS: ruff" >&2; status=1; }
echo "check-latest: mypy" >&2
"$venv/bin/mypy" --cache-dir "$venv/mypy-cache" || { echo "check-latest: BREAKS: mypy" >&2; status=1; }
echo "check-latest: the suite" >&2
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$@" || { echo "check-latest: BREAKS: the suite" >&2; status=1; }
[ "$status" = 0 ] && echo "check-latest: the newest releases pass" >&2
exit "$status"
