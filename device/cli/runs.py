"""`rearguard runs`: what happened on each run of the service, from its
journal: when it ran, every alert it gave (time, level, what, which side,
how near), its faults and the Pi's power warnings.

The journal is the one record every installed device keeps (the installer
makes it persistent, so the run before a power-cycle is there too); the
lines read are the ones the device prints anyway: its start line, the
status line it prints on every change of level (`device.view.terminal`),
its faults and the Pi health warnings. A run is one invocation of the unit.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from device.view.terminal import fault_kinds

UNIT = "rearguard.service"
LEVELS = ("CLEAR", "CAUTION", "WARN", "DANGER", "FAULT")
# StatusLine's line off a terminal: "LEVEL   what  camera  8.0 fps  [pace]  FAULT a; b"
_STATUS = re.compile(r"^(?P<level>CLEAR|CAUTION|WARN|DANGER|FAULT) +(?P<what>.*?)  camera +[\d.]+ fps"
                     r"(?:  \[(?P<pace>[^\]]*)\])?(?:  FAULT (?P<faults>.*))?$")
_START = re.compile(r"^rearguard \S+: source ")
_POWER = re.compile(r"under-voltage|throttl|frequency capped|temperature limit", re.IGNORECASE)
_WARNING = re.compile(r"^\S+ \S+ (WARNING|ERROR|CRITICAL) (?P<name>[\w.]+): (?P<msg>.*)$")


@dataclass(frozen=True)
class Alert:
    time: str
    level: str
    what: str


@dataclass
class Run:
    id: str
    boot: str
    start: str
    end: str
    alerts: list[Alert] = field(default_factory=list)
    faults: list[tuple[str, str]] = field(default_factory=list)  # (first time, fault)
    power: list[tuple[str, str]] = field(default_factory=list)  # (time, warning)
    stopped: str | None = None  # the device's own closing line, if it got to say it

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "alerts": [asdict(a) for a in self.alerts],
                "faults": [{"time": t, "fault": f} for t, f in self.faults],
                "power": [{"time": t, "warning": w} for t, w in self.power]}


def _message(entry: dict[str, Any]) -> str:
    m = entry.get("MESSAGE", "")
    if isinstance(m, list):  # journald gives non-UTF-8 messages as a byte array
        m = bytes(m).decode("utf-8", "replace")
    return str(m)


def _time(entry: dict[str, Any]) -> str:
    us = int(entry.get("__REALTIME_TIMESTAMP", 0))
    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%S")


def parse_runs(entries: Iterable[dict[str, Any]]) -> list[Run]:
    """The runs in journal entries (journalctl -o json), oldest first."""
    runs: dict[str, Run] = {}
    state: dict[str, dict[str, Any]] = {}
    for entry in entries:
        msg, t = _message(entry).rstrip(), _time(entry)
        key = str(entry.get("_SYSTEMD_INVOCATION_ID") or entry.get("_BOOT_ID") or "run")
        if _START.match(msg) and key in runs and runs[key].alerts:
            key = f"{key}-{len(runs)}"  # no invocation ids (a file of plain lines): a start line starts a run
        run = runs.get(key)
        if run is None:
            run = runs[key] = Run(id=key, boot=str(entry.get("_BOOT_ID", "")), start=t, end=t)
            state[key] = {"level": "CLEAR", "faults": set()}
        run.end = t
        st = state[key]
        if (m := _STATUS.match(msg)) is not None:
            level = m.group("level")
            if level != st["level"] and level not in ("CLEAR", "FAULT"):
                run.alerts.append(Alert(t, level, m.group("what")))
            st["level"] = level
            for f in (m.group("faults") or "").split("; "):
                if f and (k := fault_kinds((f,))[0]) not in st["faults"]:
                    st["faults"].add(k)
                    run.faults.append((t, f))
            if m.group("pace") and _POWER.search(m.group("pace")) and not (run.power and run.power[-1][1]
                                                                             == m.group("pace")):
                run.power.append((t, m.group("pace")))
        elif msg.startswith("fault: "):
            f = msg.removeprefix("fault: ")
            if (k := fault_kinds((f,))[0]) not in st["faults"]:
                st["faults"].add(k)
                run.faults.append((t, f))
        elif (w := _WARNING.match(msg)) is not None and _POWER.search(w.group("msg")):
            run.power.append((t, w.group("msg")))
        elif msg.startswith("stopped after "):
            run.stopped = msg
    return list(runs.values())


def journal_entries(unit: str) -> tuple[list[dict[str, Any]], str]:
    """The unit's journal entries (every boot the journal keeps) and what journalctl said."""
    try:
        done = subprocess.run(["journalctl", "-u", unit, "-o", "json", "--no-pager"], capture_output=True,
                              text=True, timeout=60, check=False)
    except FileNotFoundError:
        return [], "journalctl is not installed here"
    except subprocess.TimeoutExpired:
        return [], "journalctl took too long"
    return _lines(done.stdout.splitlines()), done.stderr.strip()


def _lines(lines: Iterable[str]) -> list[dict[str, Any]]:
    out = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            out.append({"MESSAGE": line})  # a plain log line
    return out


def cmd_runs(args: argparse.Namespace) -> int:
    if args.journal:
        try:
            entries = _lines(Path(args.journal).read_text(encoding="utf-8", errors="replace").splitlines())
        except OSError as err:
            print(f"rearguard: cannot read {args.journal}: {err.strerror or err}", file=sys.stderr)
            return 1
        said = ""
    else:
        entries, said = journal_entries(args.unit)
    runs = parse_runs(entries)[-args.last:] if args.last else parse_runs(entries)
    if args.json:
        print(json.dumps([r.to_json() for r in runs], indent=2))
        return 0
    if not runs:
        print(f"no runs of {args.unit} in the journal" + (f" ({said})" if said else "")
              + "; reading the system journal needs group adm or systemd-journal (`sudo rearguard runs`)")
        return 0
    boots = list(dict.fromkeys(r.boot for r in runs))
    for n, r in enumerate(runs, 1):
        boot = boots.index(r.boot) - len(boots) + 1 if r.boot else None
        where = f", boot {boot}" if boot is not None else ""
        print(f"run {n}: {r.start} - {r.end[11:]} UTC{where}: {len(r.alerts)} alert(s), {len(r.faults)} fault(s)"
              + (f", {len(r.power)} power warning(s)" if r.power else ""))
        for a in r.alerts:
            print(f"  {a.time[11:]}  {a.level:<7}  {a.what}")
        for t, f in r.faults:
            print(f"  {t[11:]}  fault    {f}")
        for t, w in r.power:
            print(f"  {t[11:]}  power    {w}")
        if r.stopped:
            print(f"  {r.end[11:]}  {r.stopped}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help="each run of the service: its alerts, faults and power warnings (journal)",
                       description="List the service's runs from its journal (every boot the journal keeps: "
                       "the installer makes it persistent): start and end, every alert (time, level, what, "
                       "which side, how near), faults and the Pi's power warnings.")
    p.add_argument("--unit", default=UNIT, help="the systemd unit (default: %(default)s)")
    p.add_argument("--last", type=int, default=10, metavar="N", help="the last N runs (default 10; 0 = all)")
    p.add_argument("--journal", metavar="FILE", help="read `journalctl -u rearguard -o json` output (or plain "
                   "log lines) from FILE instead of asking journalctl")
    p.add_argument("--json", action="store_true", help="one JSON list of runs")
    p.set_defaults(func=cmd_runs)
