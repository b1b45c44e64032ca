#!/usr/bin/env bash
# Lint and type check: ruff (the rule set selected in pyproject.toml) over
# the repo, mypy (with the pydantic plugin) over device/; both configured in
# pyproject.toml.
# Runs both, then fails if either found anything.
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo" || exit 1
[ -x .venv/bin/ruff ] && [ -x .venv/bin/mypy ] || bash scripts/bootstrap.sh || exit 1
status=0
echo "lint: ruff check" >&2
.venv/bin/ruff check --no-cache . || status=1
echo "lint: mypy" >&2
.venv/bin/mypy --cache-dir .cache/mypy || status=1
exit $status
