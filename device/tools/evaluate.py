"""Score the device's alerts on recordings with ground truth (truth.json).

Each recording is replayed through the device's own pipeline (`replay`),
and the threat is sampled at every loop pass. Against the truth:

- lead_s: contact_s minus the time of the first WARN or higher before
  contact; `sustained_lead_s` is the same for the last unbroken WARN-or-higher
  stretch that lasts to contact (it differs when the alarm dropped out);
- missed: a contact with no WARN or higher before it;
- false_alarm_s: time at WARN or higher inside the `clear` windows;
- flicker: changes of the threat level (CLEAR/CAUTION/WARN/DANGER) per minute.

WARN or higher means the threat level WARN or DANGER. A FAULT (a sensor or
the camera down) is not an alarm about an obstacle and is reported apart,
as fault_s.

Recordings made by `rearguard scenario make` also hold scenario.json (the
runner's speed, start distance, obstacle): used for the per-speed targets
and for the true distance and time to collision in the plot.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

from device.camera_path import DetectorPace
from device.core.clock import NS_PER_S
from device.core.config import Config
from device.core.ports import Detector
from device.core.types import AlertLevel
from device.perception.lookahead import LookaheadDetector
from device.record.format import META, Recording, RecordingError

SCENARIO_META = "scenario.json"
TARGET_LEAD_S = 2.0
TARGET_MAX_SPEED_MPS = 3.0
TARGET_FALSE_ALARM_FRACTION = 0.01


class EvaluationError(Exception):
    """Something that cannot be evaluated, said for a person."""


@dataclass(frozen=True)
class Sample:
    t_s: float
    level: AlertLevel  # the threat level, before faults
    fault: bool
    distance_m: float | None
    ttc_s: float | None
    source: str
    direction: str | None
    # An in-path camera track counts as a candidate now (see `camera_candidate`).
    camera_candidate: bool = False


@dataclass(frozen=True)
class Score:
    name: str
    path: str
    duration_s: float
    contact_s: float | None
    speed_mps: float | None
    first_warn_s: float | None
    lead_s: float | None
    sustained_lead_s: float | None
    missed: bool
    false_alarm_s: float
    clear_s: float
    flicker_per_min: float
    level_changes: int
    fault_s: float
    direction_at_warn: str | None
    note: str
    # Acquisition (see `acquisition`): the true distance, m, when the object
    # first became an in-path camera candidate, and when WARN first came.
    label: str | None = None
    first_candidate_m: float | None = None
    first_warn_m: float | None = None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in d.items()}


def recordings_in(paths: Sequence[str | Path]) -> list[Path]:
    """Each path is a recording, or a directory of recordings (a suite)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if (p / META).is_file():
            out.append(p)
        elif p.is_dir():
            found = sorted(d for d in p.iterdir() if (d / META).is_file())
            if not found:
                raise EvaluationError(f"{p} is neither a recording nor a directory of recordings")
            out += found
        else:
            raise EvaluationError(f"recording not found: {p}")
    return out


def trace(directory: Path, config: Config, detector: Detector | None = None,
          pace: DetectorPace | None = None) -> tuple[Recording, list[Sample]]:
    """Replay one recording and sample the threat at every loop pass (the
    detector inline, or modelled at `pace`)."""
    from device.app.replay import replay

    rec = Recording.open(directory)
    if rec.truth is None:
        raise EvaluationError(f"{directory}: no truth.json (see docs/recording-format.md)")
    samples: list[Sample] = []

    def on_step(pipeline: Any) -> None:
        th = pipeline.threat
        samples.append(Sample(
            t_s=(th.t_ns - rec.start_ns) / NS_PER_S,
            level=th.level,
            fault=bool(th.faults),
            distance_m=th.distance_m,
            ttc_s=th.ttc_s,
            source=th.source,
            direction=th.direction,
            camera_candidate=camera_candidate(pipeline, th.t_ns),
        ))

    result = replay(directory, config, detector=detector, on_step=on_step, pace=pace)
    if result.static_faults:
        raise EvaluationError(f"{directory}: cannot evaluate, {'; '.join(result.static_faults)}")
    return rec, samples


def camera_candidate(pipeline: Any, now_ns: int) -> bool:
    """Whether the camera offers the threat estimator a candidate in the
    runner's path now: a fresh track with the hits the estimator asks of it,
    its lateral offset inside the corridor (as `ThreatEstimator.candidates`
    judges it, read without running the fusion again)."""
    from device.decision.threat import CAMERA_MIN_HITS

    est = getattr(pipeline, "estimator", None)
    cam = getattr(est, "camera", None)
    if est is None or cam is None or not est.camera_fresh(now_ns):
        return False
    half = est.cfg.corridor_half_width_m
    return any(tr.hits >= CAMERA_MIN_HITS and abs(tr.distance_m * math.sin(math.radians(tr.bearing_deg))) <= half
               for tr in cam.tracks)


def true_distance_m(t_s: float, contact_s: float, closing_mps: float) -> float:
    """The true gap at t: the closing speed times the time left to contact
    (the scenes' runner varies his pace by a few per cent about the mean)."""
    return max(0.0, closing_mps * (contact_s - t_s))


def acquisition(samples: Sequence[Sample], contact_s: float | None,
                closing_mps: float | None) -> tuple[float | None, float | None]:
    """(true distance at the first in-path camera candidate, at the first
    WARN or higher) before contact, m; None where it never came (or the
    recording has no approach)."""
    if contact_s is None or not closing_mps:
        return None, None
    before = [s for s in samples if s.t_s < contact_s]
    cand = next((s.t_s for s in before if s.camera_candidate), None)
    warn = next((s.t_s for s in before if s.level >= AlertLevel.WARN), None)
    return (None if cand is None else round(true_distance_m(cand, contact_s, closing_mps), 2),
            None if warn is None else round(true_distance_m(warn, contact_s, closing_mps), 2))


def with_acquisition(sc: Score, samples: Sequence[Sample], meta: dict[str, Any]) -> Score:
    from dataclasses import replace

    cand_m, warn_m = acquisition(samples, sc.contact_s, sc.speed_mps)
    label = meta.get("label") or meta.get("obstacle") or None
    return replace(sc, label=None if label is None else str(label), first_candidate_m=cand_m, first_warn_m=warn_m)


def scenario_meta(directory: Path) -> dict[str, Any]:
    p = directory / SCENARIO_META
    if not p.is_file():
        return {}
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise EvaluationError(f"{p}: not readable JSON ({err})") from None
    return data if isinstance(data, dict) else {}


def score(name: str, path: Path, rec: Recording, samples: list[Sample], meta: dict[str, Any]) -> Score:
    truth = rec.truth
    assert truth is not None
    duration = rec.duration_s
    contact = truth.contact_s

    def alarm(s: Sample) -> bool:
        return s.level >= AlertLevel.WARN

    # Each sample holds until the next one.
    spans = [(s, s.t_s, nxt.t_s) for s, nxt in pairwise(samples)]
    clear_windows = [(max(0.0, a), min(b, duration)) for a, b in truth.clear if min(b, duration) > max(0.0, a)]
    clear_s = sum(b - a for a, b in clear_windows)
    false_alarm = sum(
        max(0.0, min(t1, b) - max(t0, a)) for s, t0, t1 in spans if alarm(s) for a, b in clear_windows
    )
    fault_s = sum(t1 - t0 for s, t0, t1 in spans if s.fault)
    changes = sum(1 for a, b in pairwise(samples) if a.level != b.level)
    first = sustained = None
    direction = None
    if contact is not None:
        before = [s for s in samples if s.t_s < contact]
        first_s = next((s for s in before if alarm(s)), None)
        if first_s is not None:
            first, direction = first_s.t_s, first_s.direction
        for s in reversed(before):
            if not alarm(s):
                break
            sustained = s.t_s
    return Score(
        name=name,
        path=str(path),
        duration_s=duration,
        contact_s=contact,
        speed_mps=meta.get("speed_mps"),
        first_warn_s=first,
        lead_s=None if first is None or contact is None else contact - first,
        sustained_lead_s=None if sustained is None or contact is None else contact - sustained,
        missed=contact is not None and first is None,
        false_alarm_s=false_alarm,
        clear_s=clear_s,
        flicker_per_min=changes / (duration / 60) if duration > 0 else 0.0,
        level_changes=changes,
        fault_s=fault_s,
        direction_at_warn=direction,
        note=str(meta.get("note", "")),
    )


@dataclass(frozen=True)
class Evaluation:
    scores: tuple[Score, ...]
    traces: dict[str, list[Sample]]
    metas: dict[str, dict[str, Any]]
    failed: tuple[tuple[str, str], ...] = ()  # (recording, why): not scored; the rest still are

    def summary(self) -> dict[str, Any]:
        leads = [s.lead_s for s in self.scores if s.lead_s is not None]
        total_min = sum(s.duration_s for s in self.scores) / 60
        fa = sum(s.false_alarm_s for s in self.scores)
        clear = sum(s.clear_s for s in self.scores)
        # The targets: every contact at <= 3 m/s warned >= 2 s ahead, no miss,
        # false alarms <= 1 % of clear time.
        slow = [s for s in self.scores if s.contact_s is not None
                and (s.speed_mps is None or s.speed_mps <= TARGET_MAX_SPEED_MPS)]
        short = [s.name for s in slow if s.lead_s is None or s.lead_s < TARGET_LEAD_S]
        missed = [s.name for s in self.scores if s.missed]
        return {
            "scenarios": len(self.scores),
            "contacts": sum(1 for s in self.scores if s.contact_s is not None),
            "min_lead_s": round(min(leads), 3) if leads else None,
            "median_lead_s": round(statistics.median(leads), 3) if leads else None,
            "missed": len(missed),
            "false_alarm_s": round(fa, 3),
            "clear_s": round(clear, 3),
            "flicker_per_min": round(sum(s.level_changes for s in self.scores) / total_min, 3) if total_min else 0.0,
            "targets": {
                "lead_at_or_below_3mps_ok": not short,
                "short_lead": short,
                "no_missed_contact": not missed,
                "missed_contacts": missed,
                "false_alarm_fraction": round(fa / clear, 4) if clear else None,
                "false_alarm_ok": (fa <= TARGET_FALSE_ALARM_FRACTION * clear) if clear else True,
            },
        }

    def to_json(self) -> dict[str, Any]:
        out = {"scenarios": [s.to_json() for s in self.scores], "summary": self.summary()}
        if self.failed:
            out["failed"] = [{"recording": name, "error": why} for name, why in self.failed]
        return out


def evaluate(
    paths: Sequence[str | Path],
    config: Config,
    *,
    detector: Detector | None = None,
    progress: Callable[[str], None] | None = None,
    pace: DetectorPace | None = None,
) -> Evaluation:
    """Replay and score every recording under `paths`. With no detector
    given, the configured model is loaded once and shared. With `pace`, the
    detector is modelled at that speed (a board profile) instead of
    detecting every frame inline."""
    dirs = recordings_in(paths)
    if detector is None:
        from device.app.compose import build_detector

        detector, faults = build_detector(config)
        if detector is None:
            raise EvaluationError("cannot evaluate without the detector: " + "; ".join(map(str, faults)))
    scores, traces, metas, failed = [], {}, {}, []
    for d in dirs:
        name = d.name
        if progress is not None:
            progress(name)
        if isinstance(detector, LookaheadDetector):
            detector.reset()  # one detector for the suite, each recording its own schedule
        try:
            rec, samples = trace(d, config, detector, pace)
        except (RecordingError, EvaluationError) as err:
            # One unreadable recording must not cost the suite's other scores.
            failed.append((str(d), str(err)))
            continue
        meta = scenario_meta(d)
        scores.append(with_acquisition(score(name, d, rec, samples, meta), samples, meta))
        traces[name], metas[name] = samples, meta
    return Evaluation(tuple(scores), traces, metas, tuple(failed))


# ---------------------------------------------------------------- plot

LEVEL_COLOURS = {
    AlertLevel.CLEAR: None,
    AlertLevel.CAUTION: "#ffe08a",
    AlertLevel.WARN: "#ffa64d",
    AlertLevel.DANGER: "#ff5c5c",
}


def plot(ev: Evaluation, out: str | Path) -> Path:
    """Per scenario: estimated distance and TTC against the truth, and the
    alert level as a coloured band; contact as a black line, clear windows
    hatched."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
    except ImportError:
        raise EvaluationError(
            "--plot needs matplotlib: pip install 'rearguard[plot]' (or pip install matplotlib)"
        ) from None
    n = len(ev.scores)
    cols = 4 if n > 6 else max(1, min(n, 3))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.7 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, sc in zip(axes.flat, ev.scores, strict=False):
        samples = ev.traces[sc.name]
        meta = ev.metas.get(sc.name, {})
        t = [s.t_s for s in samples]
        # level bands
        start = 0
        for i in range(1, len(samples) + 1):
            if i == len(samples) or samples[i].level != samples[start].level:
                colour = LEVEL_COLOURS.get(samples[start].level)
                if colour:
                    ax.axvspan(samples[start].t_s, samples[i - 1].t_s, color=colour, alpha=0.6, lw=0)
                start = i
        truth_clear = [(a, b) for a, b in (Recording.open(sc.path).truth.clear or ())]  # type: ignore[union-attr]
        for a, b in truth_clear:
            ax.axvspan(a, min(b, sc.duration_s), fill=False, hatch="///", edgecolor="#9bb", lw=0)
        dist = [s.distance_m if s.distance_m is not None and s.level > AlertLevel.CLEAR else math.nan for s in samples]
        ttc = [s.ttc_s if s.ttc_s is not None else math.nan for s in samples]
        ax.plot(t, dist, color="tab:blue", lw=1.2, label="distance (m)")
        ax.plot(t, ttc, color="tab:purple", lw=1.0, label="TTC (s)")
        if sc.contact_s is not None:
            ax.axvline(sc.contact_s, color="k", lw=1.2)
            v, d0 = meta.get("speed_mps"), meta.get("d0_m")
            if v and d0:
                tt = [x for x in t if x <= sc.contact_s]
                ax.plot(tt, [d0 - v * x for x in tt], "--", color="tab:blue", lw=0.8)
                ax.plot(tt, [(d0 - v * x) / v for x in tt], "--", color="tab:purple", lw=0.8)
        ax.set_ylim(0, 12)
        ax.set_xlim(0, sc.duration_s)
        lead = f"lead {sc.lead_s:.1f} s" if sc.lead_s is not None else ("MISSED" if sc.missed else "no contact")
        fa = f", false {sc.false_alarm_s:.1f} s" if sc.false_alarm_s else ""
        ax.set_title(f"{sc.name}: {lead}{fa}", fontsize=8)
        ax.tick_params(labelsize=7)
    handles = [
        plt.Line2D([], [], color="tab:blue", label="distance, m (dashed: true)"),
        plt.Line2D([], [], color="tab:purple", label="time to collision, s (dashed: true)"),
        plt.Line2D([], [], color="k", label="contact"),
        Patch(facecolor=LEVEL_COLOURS[AlertLevel.CAUTION], label="CAUTION"),
        Patch(facecolor=LEVEL_COLOURS[AlertLevel.WARN], label="WARN"),
        Patch(facecolor=LEVEL_COLOURS[AlertLevel.DANGER], label="DANGER"),
        Patch(fill=False, hatch="///", edgecolor="#9bb", label="clear (no WARN is right)"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=7, fontsize=8, frameon=False)
    fig.supxlabel("seconds", fontsize=8, y=0.035)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    out = Path(out)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


# ---------------------------------------------------------------- hazards (crossings, passes, step-ins)

HAZARD_NEAR_DANGER_S = 0.3  # something close stepping into the path: DANGER within this
HAZARD_CROSSING_LEAD_S = 1.0  # a crossing seen for 2 s: warned this long before it enters the corridor
HAZARD_CROSSING_SEEN_S = 2.0
HAZARD_FAST_MPS = 8.0  # head on: 2 s lead up to this closing speed, 1.5 s above it
HAZARD_FAST_LEAD_S = 1.5


def hazard_rows(ev: Evaluation) -> list[dict[str, Any]]:
    """One row per recording of the `hazards` suite or of labelled footage
    (scenario.json "suite": "hazards" or "footage"), with the measure its kind is judged by: head on, the lead
    before contact; a crossing, the lead before its body enters the corridor
    (and whether it was in view 2 s before that); a clear crossing, a side
    pass or someone ahead going the same way, seconds at WARN or higher; a
    step-in, the delay from entering the corridor and the frame to DANGER."""
    rows: list[dict[str, Any]] = []
    for sc in ev.scores:
        meta = ev.metas.get(sc.name, {})
        if meta.get("suite") not in ("hazards", "footage"):
            continue
        kind = str(meta.get("kind", ""))
        samples = ev.traces[sc.name]
        top = max((s.level for s in samples), default=AlertLevel.CLEAR)
        row: dict[str, Any] = {"name": sc.name, "kind": kind, "label": meta.get("label"),
                               "speed_mps": meta.get("speed_mps"), "max_level": top.name,
                               "lead_s": None if sc.lead_s is None else round(sc.lead_s, 3),
                               "warn_s": round(sc.false_alarm_s, 3), "target": "", "ok": True}
        if kind == "approach":
            speed = float(meta.get("speed_mps") or sc.speed_mps or 0.0)
            need = TARGET_LEAD_S if speed <= HAZARD_FAST_MPS else HAZARD_FAST_LEAD_S
            row.update(target=f"lead >= {need:g} s", ok=sc.lead_s is not None and sc.lead_s >= need)
        elif kind == "crossing" and sc.contact_s is not None:
            seen = meta.get("in_view_s")
            danger = next((s.t_s for s in samples if s.t_s >= sc.contact_s and s.level >= AlertLevel.DANGER), None)
            row["in_view_s"] = seen
            row["danger_after_s"] = None if danger is None else round(danger - sc.contact_s, 3)
            if seen is not None and seen >= HAZARD_CROSSING_SEEN_S:
                row.update(target=f"lead >= {HAZARD_CROSSING_LEAD_S:g} s",
                           ok=sc.lead_s is not None and sc.lead_s >= HAZARD_CROSSING_LEAD_S)
            else:  # in view too briefly for a lead target: warned at all before it entered?
                row.update(target="warned (in view < 2 s)", ok=not sc.missed)
        elif kind == "step-in":
            start = meta.get("hazard_s")
            danger = next((s.t_s for s in samples if start is not None and s.t_s >= start
                           and s.level >= AlertLevel.DANGER), None)
            row["danger_after_s"] = None if danger is None or start is None else round(danger - float(start), 3)
            row.update(target=f"DANGER <= {HAZARD_NEAR_DANGER_S:g} s",
                       ok=row["danger_after_s"] is not None and row["danger_after_s"] <= HAZARD_NEAR_DANGER_S)
        else:  # a clear crossing, a side pass, someone ahead: no WARN at all
            row.update(target="no WARN", ok=sc.false_alarm_s == 0.0)
        rows.append(row)
    return rows
