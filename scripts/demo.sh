#!/usr/bin/env bash
# The main job for a newcomer: replay a recording through the full pipeline
# (detector, ultrasonic, fusion, alert patterns on simulated pins) and show
# the alerts. With no argument it first builds a recording from the shared
# pedestrian footage and the real HC-SR04 log; give a recording directory to
# replay your own. Extra arguments after it go to `rearguard replay`.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$repo/scripts/bootstrap.sh"
cd "$repo"
rec="${1:-}"
if [ -z "$rec" ]; then
    rec=recordings/vtest-hcsr04
    if [ ! -f "$rec/meta.json" ]; then
        shared="$repo/../shared"
        for f in footage/vtest.avi ultrasonic/hcsr04_log.csv; do
            [ -f "$shared/$f" ] || { echo "demo: $shared/$f not found; give a recording directory instead" >&2; exit 1; }
        done
        rm -rf "$rec"
        mkdir -p recordings
        # The sensor log starts 20 s into the walk, when people are about.
        .venv/bin/rearguard recording from-video "$shared/footage/vtest.avi" "$rec" \
            --ranges "$shared/ultrasonic/hcsr04_log.csv" --ranges-offset 20 --hfov 60
    fi
else
    shift
fi
exec .venv/bin/rearguard replay "$rec" "$@"
