#!/usr/bin/env bash
# Set up what the newcomer commands need, idempotently: a venv in .venv with
# rearguard and its test tools installed (editable), and the YOLOX-Nano model
# installed and verified (from ../shared when present, else fetched).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
py="${PYTHON:-python3}"
if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "rearguard needs Python >= 3.11 (found: $("$py" --version 2>&1))" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    echo "bootstrap: creating .venv" >&2
    "$py" -m venv .venv
fi
# Reinstall only when pyproject.toml or the lock changed since the last install.
stamp=.venv/.rearguard-installed
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "bootstrap: installing rearguard and its dependencies into .venv" >&2
    # (grep drops one machine-specific pip notice about absent local indexes)
    .venv/bin/python -m pip install --quiet --upgrade pip 2> >(grep -v "is ignored: it is neither" >&2)
    # constraints.txt (scripts/lock.sh) decides every version a fresh machine gets
    .venv/bin/python -m pip install --quiet --constraint constraints.txt -e '.[test]' \
        2> >(grep -v "is ignored: it is neither" >&2)
    echo "$want" > "$stamp"
fi
if ! .venv/bin/rearguard models verify >/dev/null 2>&1; then
    shared_model="$repo/../shared/models/yolox_nano.onnx"
    if [ -f "$shared_model" ]; then
        echo "bootstrap: installing the model from $shared_model" >&2
        .venv/bin/rearguard models install "$shared_model"
    else
        echo "bootstrap: fetching the model" >&2
        .venv/bin/rearguard models fetch
    fi
fi
