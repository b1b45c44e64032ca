#!/usr/bin/env bash
# Install (or update, or remove) Rearguard as a service on Raspberry Pi OS
# Bookworm or later, 64-bit. Run it from a checkout, as root:
#
#   sudo scripts/install-pi.sh [--model PATH]     install or update
#   sudo scripts/install-pi.sh --uninstall [--purge]
#   scripts/install-pi.sh --dry-run [...]          show what it would do
#
# What it makes, and each step is skipped when already done (idempotent):
#   apt packages   python3-picamera2 python3-lgpio python3-venv (OS packages:
#                  the camera stack and GPIO come from the OS, not pip)
#   /opt/rearguard a copy of this checkout's package files (the checkout may
#                  then be moved or updated; `git pull` + this script updates)
#                  and .venv (--system-site-packages) with rearguard installed
#   /usr/local/share/rearguard/models  the detector model (--model PATH, else
#                  fetched), owned by root: read-only to the service, which
#                  must never be able to replace its own model
#   /etc/rearguard/config.toml the default config, only if there is none,
#                  with the detector model and input size for the board
#                  /proc/device-tree/model names (device/perception/boards.toml),
#                  recording on within a small budget (RECORDING_SETS below:
#                  incident clips around every WARN/DANGER to review after a run);
#                  and that model built, if it is a derived one
#   user rearguard (system, no login) in groups gpio, video and i2c (i2c
#                  always, not only with power.fuel_gauge set: the config may
#                  gain a gauge later without the installer running again); the login
#                  user who ran sudo ($SUDO_USER) in group rearguard, so the
#                  recordings in /var/lib/rearguard are readable to them
#   /usr/local/bin/rearguard  a link to the venv's, so `rearguard` is on PATH
#   /etc/systemd/journald.conf.d/rearguard.conf  Storage=persistent, so
#                  `journalctl -u rearguard -b -1` has the run before a power-cycle
#   /etc/systemd/system/rearguard.service, enabled and started
#   (in a chroot, e.g. building an SD-card image, where systemd is not
#   running: enabled offline with `systemctl --root`, started on first boot)
# --uninstall stops and removes the service, /opt/rearguard, the link and the
# journald drop-in; the config,
# the models and /var/lib/rearguard (recordings) stay unless --purge, which
# also removes them and the user. Apt packages are never removed.
#
# For tests: --root DIR prefixes every file path with DIR, and every
# external program runs through `cmd` (found on PATH), so stub programs can
# stand in for apt-get, systemctl and the rest. --root does NOT confine the
# programs: without stubs they act on the running system.
set -euo pipefail

PROG=install-pi
NAME=rearguard
APT_PACKAGES=(python3-picamera2 python3-lgpio python3-venv)
# gpio: /dev/gpiochip*; video: the camera; i2c: /dev/i2c-N, a UPS HAT's fuel
# gauge (the unit has DeviceAllow=char-i2c and SupplementaryGroups= the same)
GROUPS_NEEDED=(gpio video i2c)
# What is copied from the checkout to /opt/rearguard (and hashed to see
# whether the installed copy is current).
SOURCE_ITEMS=(pyproject.toml constraints.txt README.md LICENSE CHANGELOG.md hardware.md device models docs systemd scripts)

usage() {
    cat <<'EOF'
usage: install-pi.sh [--model PATH] [--dry-run] [--root DIR]
       install-pi.sh --uninstall [--purge] [--dry-run] [--root DIR]

Install or update Rearguard as a systemd service (Raspberry Pi OS Bookworm+).
  --model PATH  install this yolox_nano.onnx (offline) instead of fetching it
  --uninstall   stop and remove the service and /opt/rearguard; keep the
                config (/etc/rearguard), the models
                (/usr/local/share/rearguard) and data (/var/lib/rearguard)
  --purge       with --uninstall: also remove config, data and the user
  --dry-run     print what would change, change nothing
  --root DIR    prefix all file paths with DIR (for tests; programs still
                run on this system)
EOF
}

die() { echo "$PROG: error: $*" >&2; exit 1; }
say() { echo "$PROG: $*"; }

# ---------------------------------------------------------------- options
ROOT=""
MODEL=""
DRY_RUN=0
UNINSTALL=0
PURGE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --model) [ $# -ge 2 ] || { usage >&2; exit 2; }; MODEL="$2"; shift 2 ;;
        --model=*) MODEL="${1#*=}"; shift ;;
        --root) [ $# -ge 2 ] || { usage >&2; exit 2; }; ROOT="$2"; shift 2 ;;
        --root=*) ROOT="${1#*=}"; shift ;;
        --dry-run) DRY_RUN=1; shift ;;
        --uninstall) UNINSTALL=1; shift ;;
        --purge) PURGE=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "$PROG: unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
done
[ "$PURGE" = 0 ] || [ "$UNINSTALL" = 1 ] || { echo "$PROG: --purge goes with --uninstall" >&2; exit 2; }
[ -z "$MODEL" ] || [ "$UNINSTALL" = 0 ] || { echo "$PROG: --model makes no sense with --uninstall" >&2; exit 2; }
if [ -n "$ROOT" ]; then
    [ -d "$ROOT" ] || die "--root $ROOT: no such directory"
    ROOT="$(cd "$ROOT" && pwd)"
    [ "$ROOT" != / ] || ROOT=""
fi
if [ -n "$MODEL" ]; then
    [ -f "$MODEL" ] || die "--model $MODEL: no such file"
    MODEL="$(cd "$(dirname "$MODEL")" && pwd)/$(basename "$MODEL")"
fi

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OPT="$ROOT/opt/$NAME"
VENV="$OPT/.venv"
STAMP="$VENV/.rearguard-source"
ETC="$ROOT/etc/$NAME"
CONFIG="$ETC/config.toml"
STATE="$ROOT/var/lib/$NAME"
# Root-owned and outside the service's StateDirectory= (which systemd hands
# to the service user): the service reads its model and cannot change it.
SHARE="$ROOT/usr/local/share/$NAME"
MODELS="$SHARE/models"
# where versions before 0.1 kept them (moved on update)
OLD_MODELS="$STATE/models"
# The maker's path (issue 22): `rearguard` on PATH, a journal that survives
# a power-cycle, recordings to review.
LINK="$ROOT/usr/local/bin/$NAME"
LINK_TARGET="/opt/$NAME/.venv/bin/$NAME"
JOURNALD_DROPIN="$ROOT/etc/systemd/journald.conf.d/$NAME.conf"
JOURNALD_CONF=$'# written by rearguard\'s scripts/install-pi.sh: keep the journal across reboots,\n# so `journalctl -u rearguard -b -1` shows the last run after a power-cycle\n[Journal]\nStorage=persistent\n'
LOGIN_USER="${SUDO_USER:-}"
[ "$LOGIN_USER" != root ] || LOGIN_USER=""
# Incident clips on by default: a 60 s ring of ~270 MB at the default camera
# (two segments, as the config requires) and up to ~20 clips of 15 s.
RECORDING_SETS=(--set "recording.directory=/var/lib/$NAME/recordings" --set recording.segment_s=60
                --set recording.budget_mb=300 --set recording.incident_budget_mb=300)
UNIT_SRC="$SRC/systemd/$NAME.service"
UNIT="$ROOT/etc/systemd/system/$NAME.service"
# started by the service's OnFailure= (never enabled): the not-protecting
# signal, and the power-off when the button was held
FALLBACK_SRC="$SRC/systemd/$NAME-fallback.service"
FALLBACK="$ROOT/etc/systemd/system/$NAME-fallback.service"
POWEROFF_SRC="$SRC/systemd/$NAME-poweroff.service"
POWEROFF="$ROOT/etc/systemd/system/$NAME-poweroff.service"
# The model commands below act on the installed models directory.
export REARGUARD_MODELS="$MODELS"
unset REARGUARD_CONFIG

# ---------------------------------------------------------------- helpers
# Every external program runs through here: tests put stubs first on PATH.
cmd() {
    "$@"
}

CHANGES=0
# act DESCRIPTION COMMAND...: one changing step. A dry run only says it.
act() {
    local what="$1"
    shift
    CHANGES=$((CHANGES + 1))
    if [ "$DRY_RUN" = 1 ]; then
        say "would $what"
        return 0
    fi
    say "$what"
    "$@"
}

# (the ${...} are dpkg-query's format fields, not shell expansions)
# shellcheck disable=SC2016
pkg_installed() {
    [ "$(cmd dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}
user_exists() { cmd getent passwd "$NAME" >/dev/null 2>&1; }
group_exists() { cmd getent group "$1" >/dev/null 2>&1; }
# Is systemd running here? sd_booted()'s test. Not in a chroot (building an
# SD-card image) or a container without it: then the unit is enabled
# offline and nothing is reloaded, started or stopped.
systemd_running() { [ -d "$ROOT/run/systemd/system" ]; }
# systemctl acting on the unit files only (no running systemd needed)
offline_systemctl() { cmd systemctl --root="${ROOT:-/}" "$@"; }
unit_enabled() {
    if systemd_running; then
        cmd systemctl is-enabled --quiet "$NAME.service" 2>/dev/null
    else
        offline_systemctl is-enabled --quiet "$NAME.service" 2>/dev/null
    fi
}
unit_active() { systemd_running && cmd systemctl is-active --quiet "$NAME.service" 2>/dev/null; }

# A digest of the package files in DIR, to tell whether /opt/rearguard and
# its venv are current.
source_digest() {
    local dir="$1" items=() i
    for i in "${SOURCE_ITEMS[@]}"; do
        if [ -e "$dir/$i" ]; then items+=("$i"); fi
    done
    (cd "$dir" && find "${items[@]}" -type f ! -path '*/__pycache__/*' ! -name '*.pyc' ! -name '*.onnx' -print0 \
        | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum | cut -d' ' -f1
}

copy_source() {
    local i
    mkdir -p "$OPT"
    for i in "${SOURCE_ITEMS[@]}"; do
        rm -rf "${OPT:?}/$i"
        if [ -e "$SRC/$i" ]; then cp -R "$SRC/$i" "$OPT/$i"; fi
    done
    find "$OPT" -path "$VENV" -prune -o \( -name __pycache__ -o -name '*.onnx' \) -prune -exec rm -rf {} +
}

# numpy must stay the OS's own: python3-picamera2's compiled helpers
# (simplejpeg) are built against it, and a pip numpy 2 in the venv breaks
# `import picamera2`. Pinning it makes pip pick an opencv that fits.
# shellcheck disable=SC2016
numpy_pin() {
    local v
    v="$(cmd dpkg-query -W -f='${Version}' python3-numpy 2>/dev/null || true)"
    v="${v#*:}"; v="${v%%-*}"; v="${v%%+*}"; v="${v%%~*}"
    if [ -n "$v" ]; then echo "numpy==$v"; fi
}

# pip_install NUMPY_PIN STAMP: install /opt/rearguard into the venv with the
# project's lock (constraints.txt: every version a fresh machine gets, so a
# new release of a dependency cannot change a Pi the day it is installed;
# it also keeps onnxruntime off 1.21.0, which dies with "Illegal
# instruction" on a Pi 4 or Zero 2 W, and the venv's own onnxruntime shadows
# any python3-onnxruntime of the OS). The OS's numpy, when there is one,
# replaces the lock's numpy line; then record STAMP so the next run knows
# it is current.
pip_install() {
    local numpy_pin="$1" stamp="$2"
    local cfile="$VENV/.rearguard-constraints.txt"
    if [ -n "$numpy_pin" ]; then
        { grep -v '^numpy==' "$OPT/constraints.txt"; printf '%s\n' "$numpy_pin"; } > "$cfile"
    else
        cp "$OPT/constraints.txt" "$cfile"
    fi
    # stale setuptools build output could carry deleted modules along
    rm -rf "$OPT/build" "$OPT"/*.egg-info
    cmd "$VENV/bin/python" -m pip install --quiet --constraint "$cfile" "$OPT"
    printf '%s\n' "$stamp" > "$STAMP"
}

write_unit() {
    mkdir -p "$(dirname "$UNIT")"
    local src dst
    for src in "$UNIT_SRC" "$FALLBACK_SRC" "$POWEROFF_SRC"; do
        dst="$ROOT/etc/systemd/system/$(basename "$src")"
        cp "$src" "$dst.tmp"
        chmod 0644 "$dst.tmp"
        mv "$dst.tmp" "$dst"
    done
}

write_config() {
    mkdir -p "$ETC"
    # The board's detector model and input size (boards.toml); on a machine
    # with no known board, the built-in defaults.
    cmd "$VENV/bin/rearguard" config show --config /dev/null --for-board auto \
        --device-tree "$ROOT/proc/device-tree/model" "${RECORDING_SETS[@]}" > "$CONFIG.tmp"
    chmod 0644 "$CONFIG.tmp"
    mv "$CONFIG.tmp" "$CONFIG"
}

# What the config is written for: the device tree's model line.
board_line() {
    local m="$ROOT/proc/device-tree/model"
    if [ -r "$m" ]; then tr -d '\0' < "$m"; else echo "no board: no $m"; fi
}

start_service() {
    if ! cmd systemctl enable --now "$NAME.service"; then
        die "the service did not start; see: journalctl -u $NAME -b"
    fi
}

# cp, not mv: a copy made by root is root's, whoever owned the old files
# (systemd had handed them to the service user).
move_old_models() {
    mkdir -p "$MODELS"
    cp -R "$OLD_MODELS/." "$MODELS/"
    chmod -R u=rwX,go=rX "$MODELS"
    rm -rf "$OLD_MODELS"
}

restart_service() {
    if ! cmd systemctl restart "$NAME.service"; then
        die "the service did not restart; see: journalctl -u $NAME -b"
    fi
}

link_command() {
    mkdir -p "$(dirname "$LINK")"
    ln -sfn "$LINK_TARGET" "$LINK"
}

write_journald_dropin() {
    mkdir -p "$(dirname "$JOURNALD_DROPIN")"
    printf '%s' "$JOURNALD_CONF" > "$JOURNALD_DROPIN.tmp"
    chmod 0644 "$JOURNALD_DROPIN.tmp"
    mv "$JOURNALD_DROPIN.tmp" "$JOURNALD_DROPIN"
}

# The maker's path: each step separate, idempotent.
install_maker_path() {
    if [ -L "$LINK" ] && [ "$(readlink "$LINK")" = "$LINK_TARGET" ]; then
        :
    elif [ -e "$LINK" ] && [ ! -L "$LINK" ]; then
        say "left $LINK alone: it is not a link (another rearguard?); use $LINK_TARGET"
    else
        act "link $LINK -> $LINK_TARGET (rearguard on PATH)" link_command
    fi
    if [ -n "$LOGIN_USER" ] && cmd getent passwd "$LOGIN_USER" >/dev/null 2>&1; then
        local have
        have=" $(cmd id -nG "$LOGIN_USER" 2>/dev/null || true) "
        if [[ "$have" != *" $NAME "* ]] && group_exists "$NAME"; then
            act "add $LOGIN_USER to group $NAME (recordings readable; takes effect at the next login)" \
                cmd usermod -a -G "$NAME" "$LOGIN_USER"
        fi
    fi
    if [ "$(cat "$JOURNALD_DROPIN" 2>/dev/null || true)" != "${JOURNALD_CONF%$'\n'}" ]; then
        act "write $JOURNALD_DROPIN (Storage=persistent: the journal survives a power-cycle)" write_journald_dropin
        if systemd_running; then
            act "restart systemd-journald (to keep the journal from now on)" cmd systemctl restart systemd-journald
        fi
    fi
}

# ---------------------------------------------------------------- uninstall
uninstall() {
    local in_place=0
    if [ "$SRC" = "$OPT" ]; then in_place=1; fi
    if systemd_running; then
        if unit_active || unit_enabled; then
            act "stop and disable $NAME.service" cmd systemctl disable --now "$NAME.service"
        fi
    elif unit_enabled; then
        act "disable $NAME.service (offline: systemd is not running here)" offline_systemctl disable "$NAME.service"
    fi
    if [ -e "$FALLBACK" ]; then
        if systemd_running; then act "stop $NAME-fallback.service" cmd systemctl stop "$NAME-fallback.service"; fi
        act "remove $FALLBACK" rm -f "$FALLBACK"
    fi
    if [ -e "$POWEROFF" ]; then act "remove $POWEROFF" rm -f "$POWEROFF"; fi
    if [ -e "$UNIT" ]; then
        act "remove $UNIT" rm -f "$UNIT"
        if systemd_running; then act "reload systemd" cmd systemctl daemon-reload; fi
    fi
    if [ "$in_place" = 1 ]; then
        # running from /opt/rearguard itself: keep the checkout, drop the venv
        if [ -e "$VENV" ]; then act "remove $VENV" rm -rf "$VENV"; fi
    elif [ -e "$OPT" ]; then
        act "remove $OPT" rm -rf "$OPT"
    fi
    if [ -L "$LINK" ] && [ "$(readlink "$LINK")" = "$LINK_TARGET" ]; then act "remove $LINK" rm -f "$LINK"; fi
    if [ -e "$JOURNALD_DROPIN" ]; then
        act "remove $JOURNALD_DROPIN (the journal is kept; back to volatile at the next boot)" rm -f "$JOURNALD_DROPIN"
    fi
    if [ "$PURGE" = 1 ]; then
        if [ -e "$ETC" ]; then act "remove $ETC (config)" rm -rf "$ETC"; fi
        if [ -e "$SHARE" ]; then act "remove $SHARE (models)" rm -rf "$SHARE"; fi
        if [ -e "$STATE" ]; then act "remove $STATE (recordings)" rm -rf "$STATE"; fi
        if user_exists; then
            act "remove user $NAME" cmd userdel "$NAME"
        fi
    fi
    finish "removed" "nothing to remove"
    if [ "$PURGE" = 0 ] && [ "$DRY_RUN" = 0 ]; then
        if [ -e "$ETC" ]; then say "kept $ETC (config)"; fi
        if [ -e "$SHARE" ]; then say "kept $SHARE (models)"; fi
        if [ -e "$STATE" ]; then say "kept $STATE (recordings)"; fi
        if [ -e "$ETC" ] || [ -e "$SHARE" ] || [ -e "$STATE" ]; then say "--uninstall --purge removes them"; fi
    fi
    return 0
}

finish() {
    local done_msg="$1" nothing_msg="$2"
    if [ "$CHANGES" = 0 ]; then
        say "$nothing_msg"
    elif [ "$DRY_RUN" = 1 ]; then
        say "dry run: $CHANGES change(s) would be made, none made"
    else
        say "$done_msg: $CHANGES change(s)"
    fi
}

# accelerator_packages: the OS packages the AI accelerators on this Pi need,
# one a line (docs/accelerators.md): imx500-all (firmware, the imx500-models
# networks, picamera2's IMX500 support) for an AI Camera, which
# `rpicam-hello --list-cameras` lists as imx500; hailo-all (driver, HailoRT,
# picamera2's Hailo support) and hailo-models (the .hef networks, named in
# case hailo-all does not pull them in) for an AI Kit / AI HAT+: /dev/hailo0,
# or a device that `hailortcli scan` lists. Prints nothing when neither is there.
accelerator_packages() {
    if cmd rpicam-hello --list-cameras 2>/dev/null | grep -qi 'imx500'; then
        echo imx500-all
    fi
    if [ -e "$ROOT/dev/hailo0" ] || cmd hailortcli scan 2>/dev/null | grep -q 'Device:'; then
        echo hailo-all
        echo hailo-models
    fi
}

# ---------------------------------------------------------------- install
install() {
    local missing=() accel=() p g digest pin want restart=0

    case "$(cmd uname -m)" in
        armv6l|armv7l) die "Rearguard needs 64-bit Raspberry Pi OS (onnxruntime has no 32-bit ARM build)" ;;
    esac
    [ -f "$UNIT_SRC" ] || die "$UNIT_SRC is missing: run this script from a Rearguard checkout"

    # 1. OS packages, with those of an AI Camera or a Hailo found on this Pi
    mapfile -t accel < <(accelerator_packages)
    for p in "${APT_PACKAGES[@]}" "${accel[@]}"; do
        pkg_installed "$p" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        act "update the apt package lists" cmd apt-get update
        # --no-install-recommends keeps Lite images free of picamera2's GUI extras
        act "install ${missing[*]}" cmd env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y --no-install-recommends "${missing[@]}"
    fi
    cmd python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || [ "$DRY_RUN" = 1 ] || die "Rearguard needs Python >= 3.11 (Raspberry Pi OS Bookworm or later)"

    # 2. the user, in the groups that own /dev/gpiochip* and the camera
    for g in "${GROUPS_NEEDED[@]}"; do
        if ! group_exists "$g"; then
            act "create group $g (Raspberry Pi OS has it: its udev rules give it the devices)" \
                cmd groupadd --system "$g"
        fi
    done
    if ! user_exists; then
        act "create system user $NAME (groups: ${GROUPS_NEEDED[*]})" cmd useradd --system \
            --home-dir "/var/lib/$NAME" --no-create-home --shell /usr/sbin/nologin \
            --user-group --groups "$(IFS=,; echo "${GROUPS_NEEDED[*]}")" "$NAME"
    else
        local have
        have=" $(cmd id -nG "$NAME" 2>/dev/null || true) "
        for g in "${GROUPS_NEEDED[@]}"; do
            if [[ "$have" != *" $g "* ]]; then
                act "add user $NAME to group $g" cmd usermod -a -G "$g" "$NAME"
            fi
        done
    fi

    # 3. the code in /opt/rearguard and its venv
    digest="$(source_digest "$SRC")"
    if [ "$SRC" != "$OPT" ]; then
        if [ ! -f "$OPT/pyproject.toml" ] || [ "$(source_digest "$OPT")" != "$digest" ]; then
            act "copy $SRC to $OPT" copy_source
            restart=1
        fi
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        act "create the venv $VENV (--system-site-packages)" \
            cmd python3 -m venv --system-site-packages "$VENV"
    elif ! grep -qs '^include-system-site-packages *= *true' "$VENV/pyvenv.cfg"; then
        act "recreate the venv $VENV with --system-site-packages" \
            cmd python3 -m venv --clear --system-site-packages "$VENV"
    fi
    pin="$(numpy_pin)"
    # (the digest covers constraints.txt: a new lock reinstalls)
    want="$digest ${pin:-numpy-unpinned}"
    local keep=""
    [ -z "$pin" ] || keep=" (keeping the system $pin)"
    if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$want" ]; then
        act "pip install rearguard into $VENV$keep" pip_install "$pin" "$want"
        restart=1
    fi

    # 4. the model and the config
    if [ -d "$OLD_MODELS" ] && [ ! -e "$MODELS" ]; then
        act "move the models from $OLD_MODELS to $MODELS (read-only to the service)" move_old_models
        restart=1
    fi
    if [ "$DRY_RUN" = 1 ] && [ ! -x "$VENV/bin/rearguard" ]; then
        act "install the model (--model, else fetch) into $REARGUARD_MODELS" true
    elif ! cmd "$VENV/bin/rearguard" models verify >/dev/null 2>&1; then
        if [ -n "$MODEL" ]; then
            act "install the model $MODEL into $REARGUARD_MODELS" \
                cmd "$VENV/bin/rearguard" models install "$MODEL"
        else
            act "fetch the model into $REARGUARD_MODELS" cmd "$VENV/bin/rearguard" models fetch
        fi
        restart=1
    fi
    if [ ! -e "$CONFIG" ]; then
        act "write the default config $CONFIG ($(board_line))" write_config
        restart=1
    fi
    # The config (written above, or the builder's own) may name the derived
    # any-size model: build it from the installed one if it is not there.
    if [ -e "$CONFIG" ] && grep -Eq "^[[:space:]]*model[[:space:]]*=[[:space:]]*[\"']yolox_nano_dynamic[\"']" "$CONFIG" \
        && [ ! -e "$MODELS/yolox_nano_dynamic.onnx" ]; then
        act "build yolox_nano_dynamic (the config's model) into $REARGUARD_MODELS" \
            cmd "$VENV/bin/rearguard" models dynamic
        restart=1
    fi

    # 5. the service
    if [ ! -f "$UNIT" ] || ! cmp -s "$UNIT_SRC" "$UNIT" || ! cmp -s "$FALLBACK_SRC" "$FALLBACK" \
        || ! cmp -s "$POWEROFF_SRC" "$POWEROFF"; then
        act "install $UNIT" write_unit
        if systemd_running; then act "reload systemd" cmd systemctl daemon-reload; fi
        restart=1
    fi
    if ! systemd_running; then
        # a chroot or an image build: enable it, it starts on the next boot
        if ! unit_enabled; then
            act "enable $NAME.service offline (systemd is not running here: it starts on the next boot)" \
                offline_systemctl enable "$NAME.service"
        fi
    elif ! unit_enabled || ! unit_active; then
        act "enable and start $NAME.service" start_service
    elif [ "$restart" = 1 ]; then
        act "restart $NAME.service" restart_service
    fi

    # 6. the maker's path: rearguard on PATH, recordings readable, a persistent journal
    install_maker_path

    finish "installed" "already installed and up to date: nothing to do"
    if [ "$DRY_RUN" = 0 ] && [ "$CHANGES" -gt 0 ]; then
        say "config: $CONFIG (then: sudo systemctl restart $NAME); log: journalctl -u $NAME -f"
    fi
}

if [ "$DRY_RUN" = 0 ] && [ -z "$ROOT" ] && [ "$EUID" -ne 0 ]; then
    die "run as root (sudo $0 ...), or add --dry-run to see what it would do"
fi
if [ "$UNINSTALL" = 1 ]; then
    uninstall
else
    install
fi
