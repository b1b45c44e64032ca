#!/usr/bin/env bash
# The service under a real systemd: boots a minimal Debian Bookworm in a
# systemd-nspawn container and checks, with the unmodified
# scripts/install-pi.sh, what unit tests with stub programs cannot:
#
#   install (twice: the second changes nothing), READY with a STATUS line,
#   the watchdog restarting a stalled (SIGSTOPped) loop, a clean stop,
#   the sandbox (a probe run by systemd as ExecStartPost= under the same
#   settings), `systemd-analyze security` <= 2.0, no onnxruntime files in
#   the state directory, the maker's path (issue 22: a login user's bare
#   `rearguard` on PATH finding the installed config and model, "stop
#   rearguard.service first" when the service holds the pins, recordings
#   readable through group rearguard, a persistent journal, `rearguard runs`,
#   `rearguard aim` serving the preview to another host on a local network
#   for its minutes only), the fuel gauge's I2C bus in the unit's device
#   list and the service user's groups, a config typo ending in the
#   not-protecting fallback with its rhythm on the (simulated) pins, one
#   crash (SIGSEGV after READY) restarted, a crash loop reaching the
#   fallback through the start limit within 60 s, uninstall and purge,
#   and last the button's hold (exit 75) powering the container off.
#
#   sudo scripts/check-systemd.sh [--first-install chroot|booted]
#
# The first install runs in a plain container with no systemd running (as
# when building an SD-card image: the unit is enabled offline), then the
# container boots and the service must start by itself; the second install
# runs on the booted system. `--first-install booted` runs both on the
# booted system instead (the first then enables and starts the service).
# CI (.ci/run) runs the default, as root.
#
#   sudo scripts/check-systemd.sh --prepare-root DIR
#
# (a hook for scripts/check-gpio-vm.sh) builds or reuses the cached pieces,
# fills DIR with a fresh copy of the base root, the stand-in packages and
# the looped video (/var/lib/rearguard-check/loop.avi), and exits: no
# container, no check.
#
# Needs root, debootstrap and systemd-container (installed with apt-get if
# missing), and a kernel that lets systemd-nspawn boot a container; where it
# cannot, the check fails and says why. The container shares this machine's
# network (pip fetches the Python packages from PyPI, the installer's
# normal way); the sandbox probe's network test connects only to a test host
# this script makes in a network namespace of its own, behind a veth pair.
#
# Cached under .cache/check-systemd/ (gitignored): the debootstrapped root
# as a tarball, pip's wheel cache, a looped video. The first run builds
# them (debootstrap: about 2 min); a cached run takes about a minute.
# What the Pi has and a container has not: python3-picamera2 and
# python3-lgpio are empty stand-in packages, and a drop-in gives the service
# simulated pins (GPIOZERO_PIN_FACTORY=mock) and a video file as its camera.
set -euo pipefail

PROG=check-systemd
FIRST=chroot
PREPARE=""
while [ $# -gt 0 ]; do
    case "$1" in
        --first-install) FIRST="${2-}"; shift 2 || { echo "$PROG: --first-install needs chroot or booted" >&2; exit 2; } ;;
        --first-install=*) FIRST="${1#*=}"; shift ;;
        --prepare-root) PREPARE="${2-}"; shift 2 || { echo "$PROG: --prepare-root needs a directory" >&2; exit 2; } ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "$PROG: unknown option: $1" >&2; exit 2 ;;
    esac
done
case "$FIRST" in chroot|booted) ;; *) echo "$PROG: --first-install: chroot or booted, not '$FIRST'" >&2; exit 2 ;; esac
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHARED="${REARGUARD_SHARED:-$REPO/../shared}"
CACHE="$REPO/.cache/check-systemd"
SUITE=bookworm
INCLUDE=systemd,systemd-sysv,dbus,python3,python3-venv,python3-pip,python3-numpy,ca-certificates
ROOT="$CACHE/root"
LOG="$CACHE/container.log"
MODEL="$SHARED/models/yolox_nano.onnx"
VIDEO_SRC="$SHARED/footage/vtest.avi"
NETNS="rgcheck$$"
VETH_HOST="rgc$$h"
VETH_PEER="rgc$$p"
TEST_HOST_IP=10.213.7.2
HOST_IP=10.213.7.1
TEST_PORT=8765
T0=$(date +%s.%N)

say() { echo "$PROG: $*"; }
ok() { echo "$PROG: ok: $*"; }
fail() {
    echo "$PROG: FAIL: $*" >&2
    if [ -n "${PID1:-}" ] && [ -e "/proc/$PID1" ]; then
        echo "---- journal of rearguard.service (last 40 lines)" >&2
        inside journalctl -u rearguard --no-pager -n 40 -o short-monotonic >&2 || true
    fi
    exit 1
}
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

[ "$(id -u)" -eq 0 ] || fail "needs root (it boots a container): sudo $0"
[ -f "$MODEL" ] || fail "no model at $MODEL (the shared materials belong beside the repo)"
[ -f "$VIDEO_SRC" ] || fail "no video at $VIDEO_SRC"

# ---------------------------------------------------------------- tools
need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v systemd-nspawn >/dev/null || need+=(systemd-container)
command -v ip >/dev/null || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The Debian mirror as apt is configured here (deb822 .sources or one-line
# .list files): the URI of a source that carries $SUITE, else the first
# non-security Debian source.
debian_mirror() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*; do
        [ -f "$f" ] || continue
        case "$f" in
            *.sources) awk -v suite="$SUITE" '
                /^[[:space:]]*$/ { if (u != "") print (s ~ ("(^| )" suite "( |$)") ? "1 " : "2 ") u; u = ""; s = ""; next }
                /^URIs:/ { u = $2 } /^Suites:/ { $1 = ""; s = $0 }
                END { if (u != "") print (s ~ ("(^| )" suite "( |$)") ? "1 " : "2 ") u }' "$f" ;;
            *) awk -v suite="$SUITE" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) while ($i !~ /\]$/) i++; if ($2 ~ /^\[/) i++;
                print ($(i + 1) == suite ? "1 " : "2 ") $i }' "$f" ;;
        esac
    done | grep -v security | sort -s -k1,1 | awk 'NR == 1 { print $2 }'
}

# ---------------------------------------------------------------- the cached base root
mkdir -p "$CACHE/pip"
BASE="$CACHE/base-$SUITE-$(echo "$INCLUDE" | sha256sum | cut -c1-8).tar"
if [ ! -f "$BASE" ]; then
    mirror="$(debian_mirror)"
    [ -n "$mirror" ] || fail "no Debian source in /etc/apt/sources.list*: cannot debootstrap"
    say "building the base root with debootstrap ($SUITE, minbase; once, then cached in $BASE)"
    t=$(date +%s.%N)
    rm -rf "$CACHE/base.new"
    debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$CACHE/base.new" "$mirror" \
        > "$CACHE/debootstrap.log" 2>&1 || { tail -20 "$CACHE/debootstrap.log" >&2; fail "debootstrap failed"; }
    tar -C "$CACHE/base.new" -cf "$BASE.tmp" .
    mv "$BASE.tmp" "$BASE"
    rm -rf "$CACHE/base.new"
    ok "base root built in $(elapsed "$t") s"
fi

# A looped video as the camera (a file source stops at its end; the check
# must not see that as a restart): vtest three times, half size.
LOOP="$CACHE/loop.avi"
if [ ! -f "$LOOP" ]; then
    [ -x "$REPO/.venv/bin/python" ] || bash "$REPO/scripts/bootstrap.sh"
    "$REPO/.venv/bin/python" - "$VIDEO_SRC" "$LOOP.tmp.avi" <<'EOF'
import sys
import cv2
src, dst = sys.argv[1], sys.argv[2]
out = None
for _ in range(3):
    cap = cv2.VideoCapture(src)
    fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frame = cv2.resize(frame, (frame.shape[1] // 2, frame.shape[0] // 2), interpolation=cv2.INTER_AREA)
        if out is None:
            out = cv2.VideoWriter(dst, cv2.VideoWriter_fourcc(*"MJPG"), fps, (frame.shape[1], frame.shape[0]))
        out.write(frame)
    cap.release()
out.release()
EOF
    mv "$LOOP.tmp.avi" "$LOOP"
fi

# ---- hook: --prepare-root DIR (scripts/check-gpio-vm.sh): a fresh copy of
# the base root with the stand-ins and the video, then stop here
if [ -n "$PREPARE" ]; then
    rm -rf "$PREPARE"
    mkdir -p "$PREPARE"
    tar -C "$PREPARE" -xf "$BASE"
    ROOT="$PREPARE"
fi

# everything this run sets up goes again when it ends, pass or fail
cleanup() {
    set +e
    if [ -n "${NSPAWN:-}" ] && kill -0 "$NSPAWN" 2>/dev/null; then
        kill "$NSPAWN" 2>/dev/null  # nspawn shuts the container down cleanly
        for _ in $(seq 50); do kill -0 "$NSPAWN" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$NSPAWN" 2>/dev/null
    fi
    if [ -n "${LISTENER:-}" ]; then kill "$LISTENER" 2>/dev/null; fi
    ip link del "$VETH_HOST" 2>/dev/null
    ip netns del "$NETNS" 2>/dev/null
    if [ "${OVERLAY:-0}" = 1 ]; then umount "$ROOT" 2>/dev/null || umount -l "$ROOT"; fi
}
trap cleanup EXIT

# ---------------------------------------------------------------- a fresh root for this run
# An overlay on the unpacked base (seconds), else a fresh copy of it.
t=$(date +%s.%N)
if [ -z "$PREPARE" ]; then
LOWER="${BASE%.tar}"
if [ ! -d "$LOWER" ]; then
    rm -rf "$LOWER.new"
    mkdir -p "$LOWER.new"
    tar -C "$LOWER.new" -xf "$BASE"
    mv "$LOWER.new" "$LOWER"
fi
if mountpoint -q "$ROOT"; then umount -l "$ROOT"; fi
rm -rf "$ROOT" "$CACHE/upper" "$CACHE/work"
mkdir -p "$ROOT" "$CACHE/upper" "$CACHE/work"
if mount -t overlay overlay -o "lowerdir=$LOWER,upperdir=$CACHE/upper,workdir=$CACHE/work" "$ROOT" 2>/dev/null; then
    OVERLAY=1
else
    OVERLAY=0
    cp -a "$LOWER/." "$ROOT/"
fi
fi  # not --prepare-root
# pip inside trusts what this machine trusts (local CAs included)
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
echo rearguard-check > "$ROOT/etc/hostname"
# Empty stand-ins for the Pi-only OS packages, so the installer finds them
# installed (picamera2 pulls in the OS's numpy, as on the Pi).
standin() {
    local pkg="$1" depends="$2" dir="$CACHE/standin/$1"
    rm -rf "$dir"
    mkdir -p "$dir/DEBIAN"
    cat > "$dir/DEBIAN/control" <<EOF
Package: $pkg
Version: 0~rearguard.check
Architecture: all
Maintainer: Rearguard check <nobody@invalid>
${depends:+Depends: $depends
}Description: empty stand-in for scripts/check-systemd.sh
 The Raspberry Pi OS package is not available in this container.
EOF
    dpkg-deb --build --root-owner-group "$dir" "$ROOT/var/cache/$pkg.deb" >/dev/null
    chroot "$ROOT" dpkg -i "/var/cache/$pkg.deb" >/dev/null
    rm -f "$ROOT/var/cache/$pkg.deb"
}
standin python3-picamera2 python3-numpy
standin python3-lgpio ""
# the check's own files, readable by the service
mkdir -p "$ROOT/var/lib/rearguard-check"
cp "$LOOP" "$ROOT/var/lib/rearguard-check/loop.avi"
cp "$REPO/scripts/check-systemd-probe.py" "$ROOT/var/lib/rearguard-check/probe.py"
chmod -R a+rX "$ROOT/var/lib/rearguard-check"
if [ -n "$PREPARE" ]; then trap - EXIT; ok "prepared $PREPARE in $(elapsed "$t") s"; exit 0; fi
# The check's drop-in: simulated pins, the video as camera, the probe. It
# changes nothing of the sandbox (systemd-analyze security sees the same).
mkdir -p "$ROOT/etc/systemd/system/rearguard.service.d"
cat > "$ROOT/etc/systemd/system/rearguard.service.d/check.conf" <<EOF
[Service]
Environment=GPIOZERO_PIN_FACTORY=mock
ExecStart=
ExecStart=/opt/rearguard/.venv/bin/rearguard run --source /var/lib/rearguard-check/loop.avi --quiet
ExecStartPost=/usr/bin/python3 /var/lib/rearguard-check/probe.py $TEST_HOST_IP $TEST_PORT
EOF
# the not-protecting fallback on simulated pins too: it prints their levels
mkdir -p "$ROOT/etc/systemd/system/rearguard-fallback.service.d"
cat > "$ROOT/etc/systemd/system/rearguard-fallback.service.d/check.conf" <<EOF
[Service]
Environment=GPIOZERO_PIN_FACTORY=mock
EOF
# visible to root in the container, but never to the service's private /tmp
echo marker > "$ROOT/tmp/rearguard-check-marker"
ok "fresh root ($([ "$OVERLAY" = 1 ] && echo overlay || echo copy)) in $(elapsed "$t") s"

# ---------------------------------------------------------------- the test host (its own netns)
ip netns add "$NETNS" || fail "cannot create a network namespace (ip netns add)"
ip link add "$VETH_HOST" type veth peer name "$VETH_PEER" || fail "cannot create a veth pair"
ip link set "$VETH_PEER" netns "$NETNS"
ip addr add "$HOST_IP/30" dev "$VETH_HOST"
ip link set "$VETH_HOST" up
ip netns exec "$NETNS" ip addr add "$TEST_HOST_IP/30" dev "$VETH_PEER"
ip netns exec "$NETNS" ip link set "$VETH_PEER" up
ip netns exec "$NETNS" ip link set lo up
ip netns exec "$NETNS" python3 -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(8)
while True:
    c, _ = s.accept()
    c.sendall(b"test host\n")
    c.close()
' "$TEST_HOST_IP" "$TEST_PORT" &
LISTENER=$!

# The installer runs from a snapshot of this checkout's package files (the
# ones it copies: its SOURCE_ITEMS), so an edit made meanwhile cannot make
# the second run see a new version.
SNAPSHOT="$CACHE/src"
rm -rf "$SNAPSHOT"
mkdir -p "$SNAPSHOT"
eval "$(grep -m1 '^SOURCE_ITEMS=' "$REPO/scripts/install-pi.sh")"
for item in "${SOURCE_ITEMS[@]}"; do
    if [ -e "$REPO/$item" ]; then cp -R "$REPO/$item" "$SNAPSHOT/$item"; fi
done
find "$SNAPSHOT" -name __pycache__ -prune -exec rm -rf {} +
INSTALL_ARGS=(bash /mnt/rearguard/scripts/install-pi.sh --model /mnt/shared/models/yolox_nano.onnx)
CLEAN_ENV=(env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb)
BINDS=(--bind-ro="$SNAPSHOT:/mnt/rearguard" --bind-ro="$SHARED:/mnt/shared" --bind="$CACHE/pip:/root/.cache/pip")

# ---------------------------------------------------------------- install 1 in a chroot
# systemd-nspawn without -b: the installer is the container's only process,
# no systemd runs (like a chroot, with /proc, /dev and DNS set up).
if [ "$FIRST" = chroot ]; then
    t=$(date +%s.%N)
    systemd-nspawn -q -D "$ROOT" -M rearguard-chroot --register=no --keep-unit --console=pipe "${BINDS[@]}" \
        "${CLEAN_ENV[@]}" "${INSTALL_ARGS[@]}" < /dev/null > "$CACHE/install1.log" 2>&1 \
        || { cat "$CACHE/install1.log" >&2; fail "the installer failed in a chroot (no systemd running)"; }
    grep -q "installed: " "$CACHE/install1.log" || { cat "$CACHE/install1.log" >&2; fail "the installer did not say it installed"; }
    grep -q "offline" "$CACHE/install1.log" || { cat "$CACHE/install1.log" >&2; fail "the installer did not enable the unit offline"; }
    [ -L "$ROOT/etc/systemd/system/multi-user.target.wants/rearguard.service" ] \
        || fail "after the chroot install the unit is not enabled (no multi-user.target.wants link)"
    ok "installer run 1 in a chroot, no systemd running: $(elapsed "$t") s ($(grep -o 'installed: .*' "$CACHE/install1.log")), unit enabled offline"
fi

# ---------------------------------------------------------------- boot
# --register=no --keep-unit: no host systemd/D-Bus needed; the unified
# hierarchy: cgroup v2 as on the Pi; --system-call-filter=bpf: nspawn's own
# seccomp filter would block bpf(), and IPAddressDeny=/DevicePolicy= would
# then silently not be enforced.
t=$(date +%s.%N)
SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 systemd-nspawn -b -D "$ROOT" -M rearguard-check \
    --register=no --keep-unit --console=pipe --system-call-filter=bpf \
    "${BINDS[@]}" < /dev/null > "$LOG" 2>&1 &
NSPAWN=$!
PID1=""
for _ in $(seq 100); do
    kill -0 "$NSPAWN" 2>/dev/null || break
    # the container's init: a systemd that is PID 1 in its own namespace,
    # a child (or grandchild) of this nspawn
    for c in $(pgrep -x systemd || true); do
        grep -qE '^NSpid:.*[[:space:]]1$' "/proc/$c/status" 2>/dev/null || continue
        parent="$(awk '/^PPid:/ { print $2 }' "/proc/$c/status" 2>/dev/null || true)"
        grand="$(awk '/^PPid:/ { print $2 }' "/proc/$parent/status" 2>/dev/null || true)"
        if [ "$parent" = "$NSPAWN" ] || [ "$grand" = "$NSPAWN" ]; then PID1=$c; fi
    done
    [ -z "$PID1" ] || break
    sleep 0.1
done
if [ -z "$PID1" ]; then
    tail -20 "$LOG" >&2
    fail "this machine cannot boot a systemd container (systemd-nspawn exited or never started systemd; see above and $LOG): the check needs root with namespaces, cgroups and seccomp available"
fi
# A clean environment inside: the host's variables (pip's among them) stay out.
inside() { nsenter -t "$PID1" -a -- "${CLEAN_ENV[@]}" "$@"; }
state=""
for _ in $(seq 300); do
    state="$(inside systemctl is-system-running 2>/dev/null || true)"
    case "$state" in running|degraded) break ;; esac
    kill -0 "$NSPAWN" 2>/dev/null || { tail -20 "$LOG" >&2; fail "the container died while booting (see $LOG)"; }
    sleep 0.1
done
case "$state" in
    running) ;;
    degraded) say "note: the container is degraded: $(inside systemctl --failed --no-legend --plain | tr '\n' ' ')" ;;
    *) tail -20 "$LOG" >&2; fail "the container did not finish booting in 30 s (state: ${state:-none})" ;;
esac
ok "container booted (systemd $(inside systemctl --version | awk 'NR == 1 { print $2 }'), state $state) in $(elapsed "$t") s"
[ "$(inside stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] || fail "the container has no cgroup v2"

# ---------------------------------------------------------------- install, twice
show() { inside systemctl show rearguard.service -p "$1" --value; }
# the unit's journal, whole (no `journalctl | grep -q`: under pipefail an
# early grep exit would fail the pipeline with SIGPIPE)
journal() { inside journalctl -u rearguard.service -o cat --no-pager > "$CACHE/journal.txt"; cat "$CACHE/journal.txt"; }
journal_has() { journal > /dev/null; grep -q -- "$1" "$CACHE/journal.txt"; }
run_installer() { inside "${INSTALL_ARGS[@]}"; }
digest() {
    inside sh -c 'find /opt/rearguard /etc/rearguard /usr/local/share/rearguard /etc/systemd/system -type f \
        -print0 | sort -z | xargs -0 sha256sum | sha256sum' | cut -c1-16
}
if [ "$FIRST" = booted ]; then
    t=$(date +%s.%N)
    run_installer > "$CACHE/install1.log" 2>&1 || { cat "$CACHE/install1.log" >&2; fail "the installer failed"; }
    grep -q "installed: " "$CACHE/install1.log" || { cat "$CACHE/install1.log" >&2; fail "the installer did not say it installed"; }
    ok "installer run 1 on the booted system: $(elapsed "$t") s ($(grep -o 'installed: .*' "$CACHE/install1.log"))"
fi

wait_ready() {  # wait_ready SECONDS: active (READY=1 received) with a STATUS text
    for _ in $(seq $(( $1 * 10 ))); do
        if [ "$(show ActiveState)" = active ] && [ -n "$(show StatusText)" ]; then return 0; fi
        sleep 0.1
    done
    return 1
}
wait_ready 90 || fail "rearguard.service not READY after 90 s (state $(show ActiveState)/$(show SubState))"
ready_s=$(awk -v a="$(show ExecMainStartTimestampMonotonic)" -v b="$(show ActiveEnterTimestampMonotonic)" \
    'BEGIN { printf "%.2f", (b - a) / 1e6 }')
ok "READY ${ready_s} s after $([ "$FIRST" = chroot ] && echo "systemd started it at boot" || echo start), STATUS: $(show StatusText)"
# from the container's systemd starting (the Pi's power-on, less its
# firmware and kernel boot) to the service starting, and to READY (the
# ready cue plays then: the journal says so)
userspace_us="$(inside systemctl show -p UserspaceTimestampMonotonic --value)"
boot_start_s=$(awk -v a="$userspace_us" -v b="$(show ExecMainStartTimestampMonotonic)" 'BEGIN { printf "%.2f", (b - a) / 1e6 }')
if [ "$FIRST" = chroot ]; then
    journal_has "ready: self-test done, loop running; the ready cue plays" || fail "no ready cue in the journal"
    ok "power-on to ready: $(awk -v s="$boot_start_s" -v r="$ready_s" 'BEGIN { printf "%.2f", s + r }') s after the container's systemd started (${boot_start_s} s to the service's start, then ${ready_s} s); the ready cue played"
fi
[ "$(inside systemctl is-enabled rearguard.service)" = enabled ] || fail "the unit is not enabled"

before="$(digest)"
pid_before="$(show MainPID)"
t=$(date +%s.%N)
run_installer > "$CACHE/install2.log" 2>&1 || { cat "$CACHE/install2.log" >&2; fail "the second installer run failed"; }
grep -q "nothing to do" "$CACHE/install2.log" || { cat "$CACHE/install2.log" >&2; fail "the second run changed something"; }
[ "$(digest)" = "$before" ] || fail "the second run changed files"
if [ "$(show MainPID)" != "$pid_before" ]; then
    journal_has "Watchdog timeout" && fail "the service restarted by itself (its watchdog fired) during the second run"
    fail "the second run restarted the service"
fi
ok "installer run 2 (booted) changed nothing (files, service) in $(elapsed "$t") s"

# ---------------------------------------------------------------- sandbox
# The probe ran as ExecStartPost= under the unit's own sandbox.
probe="$(journal | grep '^PROBE ' || true)"
[ -n "$probe" ] || fail "the sandbox probe printed nothing"
expect() {  # expect NAME allowed|denied
    local line
    line="$(echo "$probe" | grep "^PROBE $1 " | tail -1)"
    [ -n "$line" ] || fail "probe: no result for $1"
    [ "$(echo "$line" | awk '{ print $3 }')" = "$2" ] || fail "probe: $1: expected $2, got: ${line#PROBE }"
}
for n in write-state read-model read-config connect-localhost group-gpio group-video group-i2c; do expect "$n" allowed; done
for n in write-model replace-model write-config write-etc write-opt write-usr read-root see-host-tmp \
    raw-socket packet-socket connect-test-host capabilities open-device; do expect "$n" denied; done
# ... and the test host answers anyone outside the sandbox: the denial is the sandbox's
inside python3 -c "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 3).close()" \
    "$TEST_HOST_IP" "$TEST_PORT" || fail "the test host does not answer outside the sandbox: the network probe proves nothing"
ok "sandbox: $(echo "$probe" | grep -c ' allowed ') allowed, $(echo "$probe" | grep -c ' denied ') denied as expected (test host $TEST_HOST_IP reachable outside it)"
# The fuel gauge's bus (a UPS HAT, smbus2): systemd resolves char-i2c from
# /proc/devices at start, and this machine's kernel may have no I2C at all, so
# the check reads what the unit asks for; the node opened through the sandbox
# is scripts/check-gpio-vm.sh's (an i2c-stub bus in its VM).
device_allow="$(show DeviceAllow | tr '\n' ' ')"
case " $device_allow " in *" char-i2c rw "*) ;; *) fail "DeviceAllow= has no char-i2c rw: $device_allow" ;; esac
[ "$(show DevicePolicy)" = closed ] || fail "DevicePolicy= is $(show DevicePolicy), not closed"
inside id -nG rearguard | tr ' ' '\n' | grep -qx i2c || fail "the service user is not in group i2c: $(inside id -nG rearguard)"
ok "fuel gauge's bus: DevicePolicy=closed with DeviceAllow=char-i2c rw; the service runs in group i2c ($(echo "$probe" | grep '^PROBE group-i2c ' | tail -1 | cut -d' ' -f4-)); /proc/devices here $(grep -q ' i2c$' /proc/devices && echo has || echo 'has no') i2c"

exposure="$(inside systemd-analyze security rearguard.service --no-pager | sed -n 's/.*Overall exposure level for rearguard.service: \([0-9.]*\).*/\1/p')"
[ -n "$exposure" ] || fail "systemd-analyze security gave no exposure level"
awk -v e="$exposure" 'BEGIN { exit !(e <= 2.0) }' || fail "systemd-analyze security: exposure $exposure > 2.0"
ok "systemd-analyze security: exposure $exposure (<= 2.0)"

cache_files="$(inside find /var/lib/rearguard -path '*/.cache*' | head -5)"
[ -z "$cache_files" ] || fail "files under the state directory nobody asked for: $cache_files"
[ "$(inside stat -c %U /usr/local/share/rearguard/models/yolox_nano.onnx)" = root ] || fail "the model is not root's"
ok "no ~/.cache in /var/lib/rearguard; the model is root's"

# ---------------------------------------------------------------- the maker's path (issue 22)
t=$(date +%s.%N)
inside useradd --create-home --shell /bin/bash maker
inside env SUDO_USER=maker bash /mnt/rearguard/scripts/install-pi.sh > "$CACHE/install-maker.log" 2>&1 \
    || { cat "$CACHE/install-maker.log" >&2; fail "the installer run for the login user failed"; }
grep -q "add maker to group rearguard" "$CACHE/install-maker.log" \
    || { cat "$CACHE/install-maker.log" >&2; fail "the installer did not add the login user to group rearguard"; }
as_maker() { inside runuser -u maker -- "$@"; }
[ "$(as_maker sh -c 'command -v rearguard')" = /usr/local/bin/rearguard ] || fail "a bare rearguard is not on the login user's PATH"
as_maker rearguard config show > "$CACHE/maker-config.txt" 2>&1 || { cat "$CACHE/maker-config.txt" >&2; fail "rearguard config show as the login user"; }
head -1 "$CACHE/maker-config.txt" | grep -q "^# read from /etc/rearguard/config.toml" || fail "config show does not say it read /etc/rearguard/config.toml"
grep -q "^directory = \"/var/lib/rearguard/recordings\"" "$CACHE/maker-config.txt" || fail "the installed config does not record"
as_maker rearguard models verify > "$CACHE/maker-models.txt" 2>&1 || { cat "$CACHE/maker-models.txt" >&2; fail "the login user's rearguard does not find the installed model"; }
grep -q "yolox_nano: ok /usr/local/share/rearguard/models/yolox_nano.onnx" "$CACHE/maker-models.txt" || fail "models verify: $(cat "$CACHE/maker-models.txt")"
as_maker rearguard check ranging --duration 1 > "$CACHE/maker-check.txt" 2>&1 && fail "check ranging ran beside the service"
grep -q "rearguard.service is running and holds the GPIO pins and the camera: stop it first (sudo systemctl stop rearguard)" \
    "$CACHE/maker-check.txt" || { cat "$CACHE/maker-check.txt" >&2; fail "check ranging did not say to stop the service first"; }
for _ in $(seq 100); do inside test -d /var/lib/rearguard/recordings && break; sleep 0.1; done
as_maker ls /var/lib/rearguard/recordings > /dev/null || fail "the login user cannot read the recordings (group rearguard)"
inside test -d "/var/log/journal/$(inside cat /etc/machine-id)" || fail "the journal is not persistent (/var/log/journal)"
inside rearguard runs > "$CACHE/runs.txt" 2>&1 || { cat "$CACHE/runs.txt" >&2; fail "rearguard runs failed"; }
grep -q "^run 1: " "$CACHE/runs.txt" || { cat "$CACHE/runs.txt" >&2; fail "rearguard runs lists no run"; }
ok "maker's path: bare rearguard on PATH, config and model found, 'stop it first', recordings readable, persistent journal, runs: $(grep -c '^run ' "$CACHE/runs.txt") run(s) in $(elapsed "$t") s"

# aim: the preview reaches the test host (another address on a local
# network) while aiming, and not before or after
reach() { ip netns exec "$NETNS" python3 -c "import socket,sys; socket.create_connection((sys.argv[1], 8080), 2).close()" "$HOST_IP" 2>/dev/null; }
reach && fail "something answers on $HOST_IP:8080 before aiming"
t=$(date +%s.%N)
inside rearguard aim --minutes 0.75 > "$CACHE/aim.log" 2>&1 &
AIM=$!
reached=""
for _ in $(seq 400); do if reach; then reached=$(elapsed "$t"); break; fi; sleep 0.1; done
[ -n "$reached" ] || { cat "$CACHE/aim.log" >&2; fail "aim: the preview never answered the test host"; }
ip netns exec "$NETNS" python3 -c "import urllib.request,sys; r = urllib.request.urlopen(f'http://{sys.argv[1]}:8080/status.json', timeout=5); assert r.status == 200" "$HOST_IP" \
    || fail "aim: status.json did not answer the test host"
wait "$AIM" || { cat "$CACHE/aim.log" >&2; fail "aim failed"; }
inside test ! -e /run/systemd/system/rearguard.service.d/zz-aim.conf || fail "aim left its drop-in behind"
wait_ready 90 || fail "not READY after aiming"
reach && fail "the preview still answers the test host after aiming"
ok "aim: the preview answered $TEST_HOST_IP after ${reached} s, for the minutes asked only; the drop-in is gone and the service READY as installed"

# ---------------------------------------------------------------- watchdog
restarts="$(show NRestarts)"
pid="$(show MainPID)"
t=$(date +%s.%N)
# shellcheck disable=SC2016
inside sh -c 'kill -STOP "$1"' sh "$pid" || fail "could not SIGSTOP the service (pid $pid)"
restarted=""
for _ in $(seq 300); do
    if [ "$(show NRestarts)" != "$restarts" ] && [ "$(show MainPID)" != "$pid" ]; then restarted=$(elapsed "$t"); break; fi
    sleep 0.1
done
[ -n "$restarted" ] || fail "no restart within 30 s of SIGSTOP"
journal_has "Watchdog timeout" || fail "restarted, but not by the watchdog"
wait_ready 90 || fail "not READY again after the watchdog restart"
ok "SIGSTOP: watchdog timeout and restart after ${restarted} s, READY again after $(elapsed "$t") s"

# ---------------------------------------------------------------- clean stop
t=$(date +%s.%N)
inside systemctl stop rearguard.service
stop_s=$(elapsed "$t")
[ "$(show Result)" = success ] || fail "stop: result $(show Result)"
[ "$(show ExecMainStatus)" = 0 ] || fail "stop: exit status $(show ExecMainStatus)"
# "stopped after" is printed after the shutdown path closed the alerter
# (outputs off), the sensors and the camera
journal > /dev/null
tail -20 "$CACHE/journal.txt" | grep "stopped after" > /dev/null \
    || fail "stop: the shutdown path (outputs off) did not finish"
ok "stop in ${stop_s} s: exit 0 through the shutdown path (outputs off)"

# the pin levels the fallback printed: every on and off as long as the
# rhythm's (0.3 on, 0.3 off, 0.3 on, 0.3 off, 0.3 on, 1.5 off), within 0.15 s
pins_rhythm() {  # pins_rhythm FILE (the fallback's journal, -o cat)
    python3 - "$1" <<'EOF'
import sys
rows = [line.split() for line in open(sys.argv[1]) if line.startswith("pins ")]
edges = [(float(r[1]), r[2].endswith("=1"), r[3].endswith("=1")) for r in rows]
if not edges or any(m != b for _, m, b in edges):
    sys.exit("motor and buzzer must go together: %s" % edges[:6])
want = [0.3, 0.3, 0.3, 0.3, 0.3, 1.5]
got = [round(b[0] - a[0], 3) for a, b in zip(edges, edges[1:])]
if len(got) < 12:
    sys.exit("fewer than two rounds: %s" % got)
bad = [(i, g, want[i % 6]) for i, g in enumerate(got) if abs(g - want[i % 6]) > 0.15]
if bad or not edges[0][1]:
    sys.exit("rhythm off (index, seconds, wanted): %s" % bad[:5])
print("%d edges on %s and %s, %d rounds of 3 s" % (len(edges), rows[0][2].split("=")[0],
      rows[0][3].split("=")[0], len(got) // 6))
EOF
}
# The fallback's pins moving: the journal's time (CLOCK_MONOTONIC, us) of the
# first "pins" line of the fallback's current run, once it is there.
first_pins_us() {
    local inv
    inv="$(fb InvocationID)"
    for _ in $(seq 100); do
        inside journalctl _SYSTEMD_INVOCATION_ID="$inv" -o json --no-pager > "$CACHE/fallback.json"
        python3 -c '
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    if str(e.get("MESSAGE", "")).startswith("pins "):
        print(e["__MONOTONIC_TIMESTAMP"])
        sys.exit(0)
sys.exit(1)' "$CACHE/fallback.json" && return 0
        sleep 0.1
    done
    return 1
}

# ---------------------------------------------------------------- not protecting: a config typo
# The service cannot start (exit 2, not retried): OnFailure= starts the
# fallback, which plays the not-protecting rhythm on the pins; fixing the
# config and starting the service hands the pins back.
fb() { inside systemctl show rearguard-fallback.service -p "$1" --value; }
inside cp /etc/rearguard/config.toml /etc/rearguard/config.toml.good
inside sed -i 's/^\[camera\]$/[camera]\nmount_hieght_m = 1.2/' /etc/rearguard/config.toml
inside grep -q '^mount_hieght_m = 1.2$' /etc/rearguard/config.toml || fail "typo case: could not put the typo in the config"
inside systemctl reset-failed rearguard.service 2>/dev/null || true
restarts_before="$(inside journalctl -u rearguard.service -o cat --no-pager | grep -c "Scheduled restart job" || true)"
inside systemctl start --no-block rearguard.service
for _ in $(seq 600); do [ "$(fb ActiveState)" = active ] && break; sleep 0.1; done
[ "$(fb ActiveState)" = active ] || fail "typo case: no fallback 60 s after the start (rearguard.service: $(show ActiveState)/$(show Result), exit $(show ExecMainStatus))"
[ "$(show ExecMainStatus)" = 2 ] || fail "typo case: the service exited $(show ExecMainStatus), not 2 (a config error)"
restarts_after="$(inside journalctl -u rearguard.service -o cat --no-pager | grep -c "Scheduled restart job" || true)"
[ "$restarts_after" = "$restarts_before" ] || fail "typo case: a config error was retried"
journal_has "mount_hieght_m: unknown key" || fail "typo case: the journal does not name the bad key"
np_s=$(awk -v a="$(show ExecMainStartTimestampMonotonic)" -v b="$(fb ActiveEnterTimestampMonotonic)" 'BEGIN { printf "%.2f", (b - a) / 1e6 }')
sleep 8  # more than two rounds of the 3 s rhythm
inside journalctl -u rearguard-fallback.service -o cat --no-pager > "$CACHE/fallback.txt"
grep -q "NOT PROTECTING" "$CACHE/fallback.txt" || { cat "$CACHE/fallback.txt" >&2; fail "typo case: the fallback did not say NOT PROTECTING"; }
rhythm="$(pins_rhythm "$CACHE/fallback.txt")" || { head -20 "$CACHE/fallback.txt" >&2; fail "typo case: the pins do not play the not-protecting rhythm"; }
pins_us="$(first_pins_us)" || fail "typo case: the fallback printed no pin levels"
pins_s=$(awk -v a="$(show ExecMainStartTimestampMonotonic)" -v b="$pins_us" 'BEGIN { printf "%.2f", (b - a) / 1e6 }')
ok "config typo: exit 2 naming the key, no retry; fallback active ${np_s} s and its pins moving ${pins_s} s after the service's start (power-on to not protecting: $(awk -v s="$boot_start_s" -v n="$pins_s" 'BEGIN { printf "%.2f", s + n }') s); pins: $rhythm"
inside mv /etc/rearguard/config.toml.good /etc/rearguard/config.toml
inside systemctl start rearguard.service
wait_ready 90 || fail "typo fixed: the service is not READY again"
[ "$(fb ActiveState)" = inactive ] || fail "typo fixed: the fallback still runs beside the service ($(fb ActiveState))"
ok "config fixed: the service is READY again and the fallback stopped (the pins are the device's)"

# ---------------------------------------------------------------- not protecting: a crash loop
# A crash after start: SIGSEGV to the main process 1 s after each READY, as a
# native library's segfault would end it (PYTHONFAULTHANDLER prints the
# traceback; Restart=always retries). One crash must restart; a loop must
# hit the start limit and reach the fallback within CRASH_LOOP_MAX_S. The
# sandbox probe (ExecStartPost=) is left out here by a runtime drop-in, so a
# start costs what it costs on the device.
CRASH_LOOP_MAX_S=60
segv_after_ready() {  # segv_after_ready PID: the crash, 1 s after READY
    sleep 1
    # shellcheck disable=SC2016
    inside sh -c 'kill -SEGV "$1"' sh "$1" || fail "could not SIGSEGV the service (pid $1)"
}
inside mkdir -p /run/systemd/system/rearguard.service.d
inside sh -c 'printf "[Service]\nExecStartPost=\n" > /run/systemd/system/rearguard.service.d/zz-check-noprobe.conf'
inside systemctl daemon-reload
inside systemctl reset-failed rearguard.service
inside systemctl restart rearguard.service
wait_ready 90 || fail "crash case: not READY without the probe"
pid="$(show MainPID)"
restarts="$(show NRestarts)"
t=$(date +%s.%N)
segv_after_ready "$pid"
for _ in $(seq 300); do [ "$(show MainPID)" != "$pid" ] && [ "$(show NRestarts)" != "$restarts" ] && break; sleep 0.1; done
wait_ready 90 || fail "one crash: not READY again ($(show ActiveState)/$(show Result))"
[ "$(show NRestarts)" = $(( restarts + 1 )) ] || fail "one crash: $(( $(show NRestarts) - restarts )) restarts, not 1"
[ "$(fb ActiveState)" = inactive ] || fail "one crash: the fallback started ($(fb ActiveState))"
journal > /dev/null
grep -q "status=11/SEGV" "$CACHE/journal.txt" || fail "one crash: the journal has no SIGSEGV exit"
ok "one crash (SIGSEGV 1 s after READY): restarted and READY again $(elapsed "$t") s after it; no fallback"

# the loop: the start count afresh, as at power-on; each start crashes 1 s after READY
inside systemctl stop rearguard.service
inside systemctl reset-failed rearguard.service
loop_t0_us="$(python3 -c 'import time; print(int(time.monotonic() * 1e6))')"  # the container's clock too
inside systemctl start --no-block rearguard.service
killed="" crashes=0 readies=""
for _ in $(seq 1500); do
    [ "$(fb ActiveState)" = active ] && break
    if [ "$(show ActiveState)" = active ]; then
        pid="$(show MainPID)"
        if [ "$pid" != 0 ] && [ "$pid" != "$killed" ]; then
            readies="$readies $(awk -v a="$loop_t0_us" -v b="$(show ActiveEnterTimestampMonotonic)" 'BEGIN { printf "%.1f", (b - a) / 1e6 }')"
            segv_after_ready "$pid"
            killed="$pid" crashes=$(( crashes + 1 ))
        fi
    fi
    sleep 0.1
done
[ "$(fb ActiveState)" = active ] || fail "crash loop: no fallback 150 s after the first start ($crashes crashes; $(show ActiveState)/$(show Result))"
# (systemd 252 keeps the last crash's result, "signal", for a refused auto-restart)
journal_has "Start request repeated too quickly" || fail "crash loop: the fallback started, but not by the start limit ($(show Result))"
pins_us="$(first_pins_us)" || fail "crash loop: the fallback printed no pin levels"
loop_s=$(awk -v a="$loop_t0_us" -v b="$pins_us" 'BEGIN { printf "%.2f", (b - a) / 1e6 }')
sleep 8  # more than two rounds of the 3 s rhythm
inside journalctl _SYSTEMD_INVOCATION_ID="$(fb InvocationID)" -o cat --no-pager > "$CACHE/fallback-loop.txt"
rhythm="$(pins_rhythm "$CACHE/fallback-loop.txt")" || { head -20 "$CACHE/fallback-loop.txt" >&2; fail "crash loop: the pins do not play the not-protecting rhythm"; }
awk -v l="$loop_s" -v m="$CRASH_LOOP_MAX_S" 'BEGIN { exit !(l <= m) }' \
    || fail "crash loop: not protecting ${loop_s} s after the first start, over ${CRASH_LOOP_MAX_S} s (StartLimitBurst=$(show StartLimitBurst), RestartUSec=$(show RestartUSec))"
ok "crash loop: $crashes crashes (READY at${readies} s), then the start limit (StartLimitBurst=$(show StartLimitBurst) in $(show StartLimitIntervalUSec)); not protecting (the fallback's pins moving) ${loop_s} s after the first start (power-on to not protecting: $(awk -v s="$boot_start_s" -v n="$loop_s" 'BEGIN { printf "%.2f", s + n }') s; at most ${CRASH_LOOP_MAX_S} s); pins: $rhythm"
inside rm /run/systemd/system/rearguard.service.d/zz-check-noprobe.conf
inside systemctl daemon-reload
inside systemctl start rearguard.service
wait_ready 90 || fail "after the crash loop: not READY on a start by hand"
[ "$(fb ActiveState)" = inactive ] || fail "after the crash loop: the fallback still runs beside the service"
ok "after the crash loop: a start by hand is READY and the fallback stopped"
inside systemctl stop rearguard.service

# ---------------------------------------------------------------- uninstall, purge
inside bash /mnt/rearguard/scripts/install-pi.sh --uninstall > "$CACHE/uninstall.log" 2>&1 \
    || { cat "$CACHE/uninstall.log" >&2; fail "uninstall failed"; }
[ "$(show LoadState)" = not-found ] || fail "uninstall: the unit is still loaded ($(show LoadState))"
inside test ! -e /opt/rearguard || fail "uninstall: /opt/rearguard is still there"
inside test -f /etc/rearguard/config.toml || fail "uninstall: the config went"
inside test -f /usr/local/share/rearguard/models/yolox_nano.onnx || fail "uninstall: the model went"
inside bash /mnt/rearguard/scripts/install-pi.sh --uninstall --purge > "$CACHE/purge.log" 2>&1 \
    || { cat "$CACHE/purge.log" >&2; fail "purge failed"; }
for p in /etc/rearguard /usr/local/share/rearguard /var/lib/rearguard; do
    inside test ! -e "$p" || fail "purge: $p is still there"
done
! inside getent passwd rearguard >/dev/null || fail "purge: the user is still there"
ok "uninstall kept config and model; purge removed them and the user"

# ---------------------------------------------------------------- the button's hold: exit 75 powers off
# Last, as it ends the container: a stand-in service that exits as the
# device does after a hold (75), with the device's OnFailure= units. The
# power-off unit acts only on MONITOR_EXIT_STATUS=75, so this proves
# systemd passes it; the container must power off by itself.
inside cp /mnt/rearguard/systemd/rearguard-fallback.service /mnt/rearguard/systemd/rearguard-poweroff.service \
    /etc/systemd/system/
inside sh -c 'printf "%s\n" "[Unit]" "OnFailure=rearguard-fallback.service rearguard-poweroff.service" \
    "[Service]" "ExecStart=/bin/sh -c \"exit 75\"" > /etc/systemd/system/rgcheck-hold.service'
inside systemctl daemon-reload
t=$(date +%s.%N)
inside systemctl start --no-block rgcheck-hold.service
for _ in $(seq 300); do kill -0 "$NSPAWN" 2>/dev/null || break; sleep 0.1; done
kill -0 "$NSPAWN" 2>/dev/null && fail "exit 75 (the button held): the container did not power off within 30 s"
NSPAWN=""
ok "button hold (exit 75): rearguard-poweroff.service powered the container off in $(elapsed "$t") s"

say "PASS in $(elapsed "$T0") s"
