"""`rearguard check ...`: checks a person runs on the device, one subcommand each.

`check ranging` prints live readings per ultrasonic sensor (raw, filtered,
pings per second, fault) for checking the wiring on a Pi; with
`--mock-pins` it runs on simulated sensors. With `--trace CSV` or
`--simulated` it measures the range filter against gpiozero's default
queue instead (no pins involved).

More checks register next to `ranging` in `register()`: each adds its own
subparser to `csub` and sets `func`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from device.cli.main import _duration
from device.core.clock import NS_PER_S

EXIT_OK = 0
EXIT_FAILURE = 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="check the hardware (ranging: the ultrasonic sensors; outputs: every rhythm)",
                       description="Checks to run on the device after wiring it up.")
    csub = p.add_subparsers(dest="check_command", required=True, metavar="CHECK")
    _register_ranging(csub)
    _register_outputs(csub)


# ---------------------------------------------------------------- outputs


def _register_outputs(csub: argparse._SubParsersAction) -> None:
    p = csub.add_parser(
        "outputs", help="play every alert rhythm and cue once on the motor and buzzer, naming each",
        description="Play each level's rhythm (CAUTION, WARN, DANGER, FAULT) and each cue once on the "
        "configured motor and buzzer, naming it and saying what it means, so the runner can feel every "
        "one before a run. The same table is docs/runners-card.md. With --mock-pins the pin levels are "
        "printed at each change.",
    )
    p.add_argument("--config", metavar="PATH", help="config file (default: as for `run`)")
    p.add_argument("--mock-pins", action="store_true", help="simulated pins; print their levels over time")
    p.add_argument("--each", type=float, default=3.0, metavar="S",
                   help="play each level at least S seconds (default 3; at least two of its periods)")
    p.set_defaults(func=cmd_check_outputs)


def cmd_check_outputs(args: argparse.Namespace) -> int:
    from device.app.compose import make_pin_factory
    from device.core.clock import MonotonicClock
    from device.core.config import load
    from device.output.alerts import Alerter, AlertError
    from device.tools.outputs_check import play_all

    cfg = load(args.config)
    if args.each <= 0:
        print("rearguard: --each must be more than 0 s", file=sys.stderr)
        return EXIT_FAILURE
    factory = make_pin_factory("mock" if args.mock_pins else None, cfg)
    try:
        alerter = Alerter(cfg.outputs, pin_factory=factory)
    except AlertError as err:
        print(f"rearguard: {err}", file=sys.stderr)
        return EXIT_FAILURE
    o = cfg.outputs
    pins = None
    if factory is not None:  # simulated pins: their levels are printed
        named = [("motor", o.haptic_pin)] + ([("buzzer", o.buzzer_pin)] if o.buzzer else [])
        if o.haptic_left_pin is not None and o.haptic_right_pin is not None:
            named += [("left", o.haptic_left_pin), ("right", o.haptic_right_pin)]

        def levels() -> str:
            return "  ".join(f"{n} GPIO{p}={float(factory.pin(p).state):.2f}" for n, p in named)

        pins = levels

    try:
        play_all(alerter, MonotonicClock(), time.sleep, sys.stdout, each_s=args.each, pins=pins)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        alerter.close()
    return EXIT_OK


# ---------------------------------------------------------------- ranging


def _register_ranging(csub: argparse._SubParsersAction) -> None:
    p = csub.add_parser(
        "ranging",
        help="live readings per ultrasonic sensor with rate and faults; or measure the range filter",
        description="Live: ping every configured sensor in turn and print, about twice a second, each "
        "one's newest reading, the filtered distance the device would act on, the pings per second it "
        "gets and any fault. Exit status 1 if a sensor is faulty at the end or never answered. "
        "--trace CSV / --simulated: compare the range filter with gpiozero's default queue "
        "(median of 9 pings) on a recorded log or on simulated traces.",
    )
    p.add_argument("--config", metavar="PATH", help="config file (default: as for `run`)")
    p.add_argument("--mock-pins", action="store_true", help="simulated sensors (same as GPIOZERO_PIN_FACTORY=mock)")
    p.add_argument("--duration", type=_duration, metavar="S", help="stop after S seconds (default: until Ctrl-C)")
    p.add_argument("--trace", metavar="CSV", help="measure the filter on a log: an HC-SR04 log "
                   "(Timestamp,Distance_cm) or a recording's ranges.csv")
    p.add_argument("--simulated", action="store_true", help="measure the filter on simulated traces")
    p.add_argument("--seeds", type=int, default=20, metavar="N", help="simulated runs per scenario (default 20)")
    p.set_defaults(func=cmd_check_ranging)


def _m(x: float | None, unit: str = "m", nd: int = 2) -> str:
    return "-" if x is None else f"{x:.{nd}f} {unit}"


def cmd_check_ranging(args: argparse.Namespace) -> int:
    from device.core.config import load

    cfg = load(args.config)  # a ConfigError is reported by cli.main, exit status 2
    if args.trace:
        return _trace(Path(args.trace), cfg)
    if args.simulated:
        return _simulated(args.seeds, cfg.ranging.sample_wait_s)
    return _live(args, cfg)


def _live(args: argparse.Namespace, cfg) -> int:
    from device.app.compose import compose_ranging
    from device.decision.threat import SensorTrack
    from device.sensing.ultrasonic import RangingError, planned_rate_hz

    sensors = cfg.ranging.sensors
    try:
        parts = compose_ranging(cfg, mock_pins=args.mock_pins)
    except RangingError as err:
        from device.app.service_hint import hint

        print(f"rearguard: {err}", file=sys.stderr)
        if not args.mock_pins and (h := hint(str(err))):
            print(f"rearguard: {h}", file=sys.stderr)
        return EXIT_FAILURE
    clock, factory, ranger = parts.clock, parts.factory, parts.ranger
    tracks = {s.name: SensorTrack(s) for s in sensors}
    planned = planned_rate_hz(len(sensors), cfg.ranging.sample_wait_s)
    max_age = round(cfg.ranging.max_age_s * NS_PER_S)
    seen: dict[str, Counter[str]] = {s.name: Counter() for s in sensors}
    print(f"{len(sensors)} sensor(s) taking turns, one ping every {cfg.ranging.sample_wait_s * 1000:.0f} ms: "
          f"{planned:.1f} pings/s each at best; pins {'simulated' if factory else 'gpiozero default'}. "
          "Ctrl-C to stop.")
    for s in sensors:
        print(f"  {s.name}: {s.type}, trigger GPIO{s.trigger_pin}, echo GPIO{s.echo_pin}, "
              f"{s.min_distance_m:.2f}-{s.max_distance_m:.1f} m, bearing {s.bearing_deg:+.0f} deg")
    start = clock.now_ns()
    end = start + round(args.duration * NS_PER_S) if args.duration else None
    next_print = start + NS_PER_S // 2
    try:
        while end is None or clock.now_ns() < end:
            now = clock.now_ns()
            for r in ranger.poll(now):
                tracks[r.sensor].add(r)
                seen[r.sensor]["fault " + r.fault if r.fault else "echo" if r.metres is not None else "no echo"] += 1
            if now >= next_print:
                next_print = now + NS_PER_S // 2
                print(_status_line(ranger.status(now), tracks, now, start, max_age), flush=True)
            time.sleep(0.02)  # the device loop's 50 Hz
    except KeyboardInterrupt:
        pass
    finally:
        now = clock.now_ns()
        status = ranger.status(now)
        ranger.close()
    print("summary:")
    ok = True
    for st in status:
        kinds = ", ".join(f"{k} x{n}" for k, n in sorted(seen[st.name].items())) or "no readings"
        verdict = "ok"
        if st.fault:
            verdict, ok = f"FAULT {st.fault}", False
        elif not any(k in seen[st.name] for k in ("echo", "no echo")):
            verdict, ok = "FAULT never answered", False
        print(f"  {st.name}: {verdict}; {st.rate_hz:.1f} pings/s (best {planned:.1f}); {kinds}")
    return EXIT_OK if ok else EXIT_FAILURE


def _status_line(status, tracks, now: int, start: int, max_age: int) -> str:
    parts = []
    for st in status:
        if st.fault:
            what = f"FAULT {st.fault}"
        elif st.last is None:
            what = "waiting"
        else:
            raw = "no echo" if st.last.metres is None else f"{st.last.metres:.2f} m"
            cand = tracks[st.name].candidate(now, max_age, 0.0)
            what = f"{raw:>8}  filtered {_m(cand.distance_m if cand else None):>6}"
        parts.append(f"{st.name}: {what}  {st.rate_hz:4.1f}/s")
    return f"{(now - start) / NS_PER_S:6.1f} s  " + "  |  ".join(parts)


def _trace(path: Path, cfg) -> int:
    from device.record.format import RecordingError, read_ranges_csv
    from device.tools.range_eval import compare_trace

    try:
        ranges = read_ranges_csv(path, cfg.ranging.sensors)
    except RecordingError as err:
        print(f"rearguard: {err}", file=sys.stderr)
        return EXIT_FAILURE
    by_sensor: dict[str, list] = {}
    for r in ranges:
        by_sensor.setdefault(r.sensor, []).append(r)
    if not by_sensor:
        print(f"rearguard: {path} holds no readings", file=sys.stderr)
        return EXIT_FAILURE
    max_m = {s.name: s.max_distance_m for s in cfg.ranging.sensors}
    for name, rs in by_sensor.items():
        span = (rs[-1].t_ns - rs[0].t_ns) / NS_PER_S
        print(f"{path.name}, sensor {name}: {len(rs)} pings over {span:.1f} s "
              f"({sum(r.metres is None and r.fault is None for r in rs)} no echo, {sum(r.fault is not None for r in rs)} faults)")
        print(f"  {'method':<22} {'first < 2 m':>12} {'first < 0.8 m':>14} {'near lost':>10} {'isolated passed':>16} {'reported':>9}")
        for row in compare_trace(rs, max_m.get(name, 4.0)):
            near = "-" if row.near_lost_pct is None else f"{row.near_lost_pct:.1f} %"
            print(f"  {row.method:<22} {_m(row.first_below[2.0], 's', 3):>12} {_m(row.first_below[0.8], 's', 3):>14} "
                  f"{near:>10} {row.isolated_passed:>16} {row.reported_pct:>7.1f} %")
    print("first < X: seconds from the log's start until the method reports something nearer than X; "
          "near lost: after the first reading under 0.8 m, share of time reported as >= 0.8 m or nothing; "
          "isolated passed: readings unlike every echo within 0.5 s either side that became the output.")
    return EXIT_OK


def _simulated(seeds: int, cycle_s: float) -> int:
    from device.tools.range_eval import compare_simulated

    if seeds < 1:
        print("rearguard: --seeds must be at least 1", file=sys.stderr)
        return EXIT_FAILURE
    for n in (1, 2, 3):
        rows = compare_simulated(seeds=seeds, n_sensors=n, cycle_s=cycle_s)
        sched = ("gpiozero on its own schedule (60 ms after each ping), Rearguard one ping per "
                 f"{cycle_s * 1000:.0f} ms cycle") if n == 1 else f"both on Rearguard's schedule, {n} sensors taking turns"
        print(f"\n{n} sensor(s): {sched}; {seeds} runs per scenario")
        print(f"  {'scenario':<42} {'method':<21} {'pings/s':>7} {'lag':>7} {'WARN late':>9} {'DANGER late':>11} "
              f"{'step':>7} {'spikes/1000':>11} {'hidden':>7}")
        for r in rows:
            hidden = "-" if r.hidden_pct is None else f"{r.hidden_pct:.1f} %"
            print(f"  {r.scenario:<42} {r.method:<21} {r.rate_hz:>7.1f} {_m(r.lag_s, 's', 3):>7} "
                  f"{_m(r.warn_lag_s, 's', 3):>9} {_m(r.danger_lag_s, 's', 3):>11} {_m(r.step_lag_s, 's', 3):>7} "
                  f"{r.spikes_per_1000:>11.2f} {hidden:>7}")
    print("\nlag: median of how late each reported distance is on a steady approach; WARN/DANGER late: first "
          "report under 2 m / 0.8 m after the truth got there; step: until an object stepping into the "
          "beam is reported within 0.15 m; spikes/1000: reports further than 0.3 m from every true "
          "distance of the last second, per 1000 pings; hidden: share of time something was in range and "
          "nothing was reported.")
    return EXIT_OK
