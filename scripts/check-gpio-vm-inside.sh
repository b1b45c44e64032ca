#!/bin/bash
# Runs inside scripts/check-gpio-vm.sh's VM (as root, from systemd units the
# host script installs), in two roles:
#   setup  (before rearguard.service) load gpio-sim, make a 54-line chip
#          through configfs, write a /proc/cpuinfo that shows gpiozero a Pi 4
#   check  (after it) measure the pins, answer the echo, print "GPIOVM ..."
#          result lines on the serial console for the host to judge, power off
# The setup also makes an i2c-stub bus with a MAX1704x fuel gauge's two
# registers (80 %, 4.16 V) at 0x36, and puts it in the check's config: the
# service reads it through its sandbox (DeviceAllow=char-i2c, group i2c).
set -uo pipefail
DIR=/var/lib/rearguard-check
RUN=/run/rearguard-check
HELPER=$DIR/helper
# the pins of the default config (device/core/config.py)
HAPTIC=12 BUZZER=25 TRIGGER=23 ECHO=24
WARN_DISTANCE_M=1.40
# beyond caution_distance_m (3 m), within max_distance_m (4 m): CLEAR, and
# the self-test's sensor answers, so the ready cue plays (a start fault's
# FAULT would drop it)
CLEAR_DISTANCE_M=3.60
GAUGE_ADDR=0x36 GAUGE_PCT=80
# the responder rests this long after each trigger's rise: less than the
# default ping cycle (ranging.cycle_s, 60 ms), so it never misses one
QUIET_S=0.045

setup() {
    mkdir -p "$RUN"
    modprobe gpio-sim || { echo "GPIOVM FAIL modprobe gpio-sim"; exit 1; }
    mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
    local c=/sys/kernel/config/gpio-sim/rearguard
    mkdir "$c" "$c/bank0"
    echo 54 > "$c/bank0/num_lines"  # as many as a BCM2835's
    echo 1 > "$c/live"
    udevadm settle
    local sim
    sim="/sys/devices/platform/$(cat "$c/dev_name")/$(cat "$c/bank0/chip_name")"
    echo "$sim" > "$RUN/sim"
    # gpiozero reads the board from the Revision line (c03114: a Pi 4 B,
    # whose lgpio chip is gpiochip0); onnxruntime still reads the real CPU.
    # The unit's drop-in binds it over the service's /proc/cpuinfo.
    { cat /proc/cpuinfo; printf 'Hardware\t: BCM2835\nRevision\t: c03114\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n'; } \
        > "$RUN/cpuinfo"
    echo "GPIOVM setup chip=$(cat "$c/bank0/chip_name") dev=$(stat -c '%A %U %G' /dev/gpiochip0) sim=$sim"
    # the fuel gauge: an i2c-stub bus answering at GAUGE_ADDR, its SOC and
    # VCELL registers set as a MAX1704x's (big-endian: whole % then 1/256 %;
    # 78.125 uV a bit)
    if modprobe i2c-dev && modprobe i2c-stub chip_addr=$GAUGE_ADDR; then
        udevadm settle
        local bus="" n
        for n in /sys/bus/i2c/devices/i2c-*; do
            [ "$(cat "$n/name" 2>/dev/null)" = "SMBus stub driver" ] && bus="${n##*/i2c-}"
        done
        /opt/rearguard/.venv/bin/python -c '
import sys
from smbus2 import SMBus
bus, addr, pct = int(sys.argv[1]), int(sys.argv[2], 0), int(sys.argv[3])
with SMBus(bus) as b:
    for reg, value in ((0x04, pct), (0x05, 0), (0x02, 0xD0), (0x03, 0x00)):  # SOC, VCELL 0xD000 = 4.16 V
        b.write_byte_data(addr, reg, value)
' "$bus" "$GAUGE_ADDR" "$GAUGE_PCT" || echo "GPIOVM gauge_setup failed"
        printf '\n[power]\nfuel_gauge = "max1704x"\ni2c_bus = %s\ni2c_address = %s\n' "$bus" "$GAUGE_ADDR" >> "$DIR/config.toml"
        echo "GPIOVM gauge_setup bus=$bus dev=$(stat -c '%A_%U_%G' "/dev/i2c-$bus")"
    else
        echo "GPIOVM gauge_setup none (no i2c-stub module)"
    fi
}

status() { systemctl show rearguard.service -p "$1" --value; }
fallback() { systemctl show rearguard-fallback.service -p "$1" --value; }
# the preview's numbers (the unit's drop-in runs it on localhost)
status_json() { python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen("http://127.0.0.1:8088/status.json", timeout=10).read().decode())'; }
wait_level() {  # wait_level LEVEL SECONDS (of the VM's clock: a python3 start alone can
    # take seconds under a loaded host's emulation)
    local end=$(( SECONDS + $2 ))
    while [ "$SECONDS" -lt "$end" ]; do
        status_json 2>/dev/null | python3 -c 'import json, sys; sys.exit(json.load(sys.stdin).get("level") != sys.argv[1])' "$1" \
            && return 0
        sleep 1
    done
    return 1
}
# duty cycles of the haptic and buzzer lines over SECONDS, sampled every 2 ms,
# and the level and the loop's rate over the same window (the preview's
# rate counts the loop's passes between two status reads)
duty() {  # duty NAME SECONDS
    status_json > /dev/null
    chrt -f 20 "$HELPER" sample "$2" 2000 "$SIM/sim_gpio$HAPTIC/value" "$SIM/sim_gpio$BUZZER/value" \
        | sed "s|$SIM/sim_gpio$HAPTIC/value|haptic|; s|$SIM/sim_gpio$BUZZER/value|buzzer|; s|^sample|GPIOVM duty $1|"
    echo "GPIOVM window $1 $(status_json | python3 -c 'import json, sys; s = json.load(sys.stdin); print("loop_hz=%s level=%s" % (s.get("loop_hz"), s.get("level")))')"
}

check() {
    SIM="$(cat "$RUN/sim")"
    local t0
    t0=$(date +%s)
    for _ in $(seq 600); do
        [ "$(status ActiveState)" = active ] && break
        if [ "$(status NRestarts)" -ge 2 ]; then
            echo "GPIOVM FAIL rearguard.service restarted $(status NRestarts) times:"
            journalctl -u rearguard.service -o cat --no-pager | tail -40 | sed 's/^/GPIOVM journal /'
            break
        fi
        if systemctl -q is-failed rearguard-check-gpiosim.service; then
            echo "GPIOVM FAIL the gpio-sim setup failed:"
            journalctl -u rearguard-check-gpiosim.service -o cat --no-pager | tail -20 | sed 's/^/GPIOVM setup-journal /'
            break
        fi
        sleep 1
    done
    echo "GPIOVM ready active=$(status ActiveState) after_s=$(( $(date +%s) - t0 )) status=$(status StatusText | tr ' ' '_')"
    # the patterns' nominal on-fractions, from the installed code itself
    /opt/rearguard/.venv/bin/python -c '
from device.output.alerts import PATTERNS
from device.core.types import AlertLevel
for lv in (AlertLevel.FAULT, AlertLevel.WARN):
    p = PATTERNS[lv]
    per = sum(s.duration_s for s in p.segments)
    on_h = sum(s.duration_s for s in p.segments if s.haptic > 0) / per
    on_b = sum(s.duration_s for s in p.segments if s.buzzer) / per
    print(f"GPIOVM nominal {lv.name} haptic={on_h:.4f} buzzer={on_b:.4f} period_s={per:.3f}")
'
    # the not-protecting fallback and the start's cues first: they are judged on
    # their own, and on a loaded host the WARN phase's windows can outlast the VM
    not_protecting
    ready_at_start
    # the fuel gauge, read by the service through its sandbox with its health
    # (every pace.health_period_s, 5 s)
    local pct=None end=$(( SECONDS + 90 ))
    while [ "$pct" = None ] && [ "$SECONDS" -lt "$end" ]; do
        pct="$(status_json 2>/dev/null | python3 -c 'import json, sys; h = (json.load(sys.stdin).get("pace") or {}).get("health") or {}; print(h.get("battery_pct"))' 2>/dev/null || echo None)"
        [ "$pct" = None ] && sleep 2
    done
    echo "GPIOVM gauge status=$pct journal_unavailable=$(journalctl -u rearguard.service -o cat --no-pager | grep -c 'running without the battery gauge')"
    # 1. nothing answers the echo: FAULT, echo-never-rises
    wait_level FAULT 120 || echo "GPIOVM note no FAULT level seen in 120 s"
    echo "GPIOVM status_fault $(status_json | tr -d ' ')"
    chrt -f 10 "$HELPER" respond 8 "$SIM/sim_gpio$TRIGGER/value" "$SIM/sim_gpio$ECHO/pull" 0 "$QUIET_S" | sed 's/^/GPIOVM fault /' &
    duty FAULT#1 7.8  # four FAULT periods (1.95 s): the fraction does not depend on the phase
    wait
    echo "GPIOVM journal_echo_never_rises $(journalctl -u rearguard.service -o cat --no-pager | grep -c echo-never-rises)"
    # 2. the responder answers as an object at WARN_DISTANCE_M would: WARN
    chrt -f 10 "$HELPER" respond 600 "$SIM/sim_gpio$TRIGGER/value" "$SIM/sim_gpio$ECHO/pull" "$WARN_DISTANCE_M" "$QUIET_S" > "$RUN/warn.out" &
    local responder=$!
    if wait_level WARN 120; then
        echo "GPIOVM warn_level seen"
        # sixteen WARN periods (0.25 s) a window; five windows, as a
        # stall of the emulator's host can spoil one
        for w in 1 2 3 4 5; do duty "WARN#$w" 4.0; done
        for _ in $(seq 10); do
            echo "GPIOVM status_warn $(status_json | tr -d ' ')"
            sleep 0.5
        done
    else
        echo "GPIOVM warn_level none status=$(status_json | tr -d ' ')"
    fi
    kill -TERM "$responder"
    wait "$responder"
    sed 's/^/GPIOVM warn /' "$RUN/warn.out"
    journalctl -u rearguard.service -o cat --no-pager | tail -15 | sed 's/^/GPIOVM journal /'
    echo "GPIOVM done"
}

# the haptic and buzzer lines' changes, with their times, until SIGTERM
edges() {  # edges OUTFILE MAX_SECONDS (in the background; $! is the sampler)
    chrt -f 20 "$HELPER" edges "$2" 2000 "$SIM/sim_gpio$HAPTIC/value" "$SIM/sim_gpio$BUZZER/value" > "$1" &
}

# (run before the FAULT and WARN phases, numbered here as they are judged)
# 3. the service cannot start (a config typo, exit 2): OnFailure= starts
# the fallback, whose not-protecting rhythm goes on the lines
not_protecting() {
    sed -i 's/^\[camera\]$/[camera]\nmount_hieght_m = 1.2/' "$DIR/config.toml"
    edges "$RUN/np.out" 300
    local sampler=$!
    systemctl restart --no-block rearguard.service
    for _ in $(seq 600); do [ "$(fallback ActiveState)" = active ] && break; sleep 0.5; done
    sleep 13  # four rounds of the 3 s rhythm and a bit (two where the fallback itself starts slowly)
    kill -TERM "$sampler"
    wait "$sampler"
    echo "GPIOVM np_service start_us=$(status ExecMainStartTimestampMonotonic) exit=$(status ExecMainStatus) result=$(status Result)"
    echo "GPIOVM np_fallback active=$(fallback ActiveState) enter_us=$(fallback ActiveEnterTimestampMonotonic)"
    echo "GPIOVM np_journal_key $(journalctl -u rearguard.service -o cat --no-pager | grep -c 'mount_hieght_m: unknown key')"
    sed 's/^/GPIOVM np /' "$RUN/np.out"
}

# 4. the config fixed, started again (as at power-on): the fallback stops,
# the greeting, the self-test, READY and the ready cue on the lines
ready_at_start() {
    sed -i '/^mount_hieght_m = 1.2$/d' "$DIR/config.toml"
    chrt -f 10 "$HELPER" respond 600 "$SIM/sim_gpio$TRIGGER/value" "$SIM/sim_gpio$ECHO/pull" "$CLEAR_DISTANCE_M" "$QUIET_S" > /dev/null &
    local responder=$!
    edges "$RUN/ready.out" 900
    local sampler=$!
    systemctl start rearguard.service
    sleep 4  # the cue lasts 0.9 s; then CLEAR, the lines low
    kill -TERM "$sampler" "$responder"
    wait "$sampler" "$responder"
    echo "GPIOVM start_service start_us=$(status ExecMainStartTimestampMonotonic) ready_us=$(status ActiveEnterTimestampMonotonic) active=$(status ActiveState)"
    echo "GPIOVM start_fallback active=$(fallback ActiveState) stopped_us=$(fallback InactiveEnterTimestampMonotonic)"
    echo "GPIOVM start_journal $(journalctl -u rearguard.service -o cat --no-pager | grep '^ready: ' | tail -1 | tr ' ' '_')"
    sed 's/^/GPIOVM start /' "$RUN/ready.out"
}

case "${1-}" in
    setup) setup ;;
    check) check > /dev/ttyS0 2>&1 ;;
    *) echo "usage: $0 setup|check" >&2; exit 2 ;;
esac
