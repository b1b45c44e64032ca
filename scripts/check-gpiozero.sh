#!/usr/bin/env bash
# The ranging and alert tests (the code that uses gpiozero) against the lowest and the highest gpiozero
# that pyproject.toml allows. device/sensing/ultrasonic.py subclasses
# gpiozero's DistanceSensor and reaches into it (_queue, _echo_rise,
# _echo_fall, _read), so the range is bounded and both ends are tested.
# Each version goes into a throwaway directory put first on PYTHONPATH;
# .venv is left as it is. pip's cache keeps the downloads to the first run.
# --skip-installed: skip an end that is the version in .venv (CI runs this
# right after the whole suite ran on it). Other arguments go to pytest.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
# These files hold no real-model test: CI's "real-model tests must have run"
# rule is for the whole suite, not this check.
unset REARGUARD_REQUIRE_MODEL
[ -x .venv/bin/python ] || bash scripts/bootstrap.sh
py=.venv/bin/python
skip_installed=0
if [ "${1:-}" = --skip-installed ]; then
    skip_installed=1
    shift
fi
installed="$("$py" -c 'from importlib.metadata import version; print(version("gpiozero"))')"

# The requirement as installed, e.g. "gpiozero<2.1,>=2.0".
spec="$("$py" - <<'EOF'
import re
from importlib.metadata import requires
(req,) = [r for r in requires("rearguard") if re.match(r"gpiozero\b", r)]
print(req.split(";")[0].replace(" ", ""))
EOF
)"
lowest="$(sed -nE 's/.*>=([0-9][0-9a-z.]*).*/\1/p' <<<"$spec")"
if [ -z "$lowest" ] || ! grep -q '<' <<<"$spec"; then
    echo "check-gpiozero: $spec needs a lower (>=) and an upper (<) bound" >&2
    exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
status=0
for want in "gpiozero==$lowest" "$spec"; do
    dir="$work/$(tr -c 'a-z0-9.\n' _ <<<"$want")"
    # --no-deps: gpiozero's one dependency (colorzero) is already in .venv.
    "$py" -m pip install --quiet --no-deps --target "$dir" "$want" \
        2> >(grep -v "is ignored: it is neither" >&2)
    got="$(PYTHONPATH="$dir" "$py" -c '
import gpiozero, sys
from importlib.metadata import version
assert gpiozero.__file__.startswith(sys.argv[1]), gpiozero.__file__
print(version("gpiozero"))' "$dir")"
    if [ "$skip_installed" = 1 ] && [ "$got" = "$installed" ]; then
        echo "check-gpiozero: $want -> gpiozero $got, as in .venv: tested by the suite" >&2
        continue
    fi
    echo "check-gpiozero: $want -> gpiozero $got" >&2
    if ! PYTHONPATH="$dir" "$py" -m pytest -q -p no:cacheprovider tests/test_ranging.py tests/test_alerts.py "$@"; then
        echo "check-gpiozero: FAILED with gpiozero $got" >&2
        status=1
    fi
done
exit $status
