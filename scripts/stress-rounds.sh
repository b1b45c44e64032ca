#!/usr/bin/env bash
# The thread-heavy test files, ROUNDS rounds, under stress-ng's CPU and disk
# load (issue 23: a native abort at exit, exit 134 "terminate called without
# an active exception", showed only under load). Prints one line a round:
# pytest's exit status and summary, whether the abort appeared, the load.
#
#   bash scripts/stress-rounds.sh [ROUNDS] [TMPDIR]        # default 5, /tmp/stress-rounds
#   STRESS="--cpu 8 --hdd 1" bash scripts/stress-rounds.sh  # the load (this is the default)
#
# stress-ng's files go under TMPDIR; it is started once for all the rounds
# and killed (by its pid) when they end, however they end. Not part of the
# suite: it takes minutes a round and loads the whole machine.
set -u
cd "$(dirname "$0")/.." || exit 2
ROUNDS=${1:-5}
TMP=${2:-/tmp/stress-rounds}
STRESS=${STRESS:---cpu 8 --hdd 1}
PY=${PY:-.venv/bin/python}
# The files whose tests start threads or live runs: the device in a
# subprocess (incidents, run_device, run_source, process_end), the recorder's
# writer thread, the preview's server, the camera's grabber and the paced
# and threaded camera paths.
FILES=(
  tests/test_incidents.py tests/test_run_device.py tests/test_run_source.py
  tests/test_process_end.py tests/test_recorder_thread.py tests/test_recorder_disk.py
  tests/test_preview.py tests/test_paced_camera.py tests/test_camera.py tests/test_camera_path.py
)
command -v stress-ng >/dev/null || { echo "stress-rounds: stress-ng is not installed" >&2; exit 2; }
mkdir -p "$TMP/stress"
# shellcheck disable=SC2086 # STRESS is a list of options
stress-ng $STRESS --hdd-bytes 256M --temp-path "$TMP/stress" --quiet &
STRESS_PID=$!
trap 'kill "$STRESS_PID" 2>/dev/null; wait "$STRESS_PID" 2>/dev/null' EXIT
sleep 5
echo "stress-rounds: stress-ng $STRESS (pid $STRESS_PID), $(nproc) CPUs, ${#FILES[@]} files"
aborts=0 failed=0
for i in $(seq 1 "$ROUNDS"); do
  log="$TMP/round-$i.log"
  start=$(date +%s)
  "$PY" -m pytest "${FILES[@]}" -q >"$log" 2>&1
  rc=$?
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  summary=$(grep -E '(passed|failed|error)' "$log" | tail -1)
  abort=no
  if [ "$rc" -eq 134 ] || grep -q "terminate called" "$log"; then abort=YES; aborts=$((aborts + 1)); fi
  [ "$rc" -ne 0 ] && failed=$((failed + 1))
  echo "round $i: exit $rc, abort $abort, $(( $(date +%s) - start )) s, load $load: $summary"
done
echo "stress-rounds: $ROUNDS rounds, $failed failed, $aborts aborted (logs in $TMP)"
[ "$failed" -eq 0 ]
