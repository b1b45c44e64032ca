#!/usr/bin/env bash
# The test command: sets itself up, then runs the whole suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -k replay).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$repo/scripts/bootstrap.sh"
cd "$repo"
exec .venv/bin/python -m pytest "$@"
