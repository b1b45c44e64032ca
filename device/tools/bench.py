"""Detector benchmark: how close the detection path is to the model's own limit.

Every case (a model at an input size with a thread setting) sees the same
frames, side by side: for each frame every case runs once, in an order that
rotates, so a noisy shared machine slows all cases alike and the ratios
between them hold even when the absolute figures wander.

Per case and frame three things are timed:
- `detect()` from outside: the total a caller pays;
- its own stages (`last_timings`): preprocess, inference, postprocess;
- `infer()` on the same frame's prepared input, in a pass of its own:
  session.run alone, the model's own limit.
`overhead_ratio` = median total / median inference.

With `load`, the rest of the device loop runs meanwhile on simulated pins
(gpiozero's ultrasonic pinging threads and an alert loop at 50 Hz), so a
thread setting is judged with the company it has on the device.

Agreement: each case's person boxes are matched (IoU >= 0.5, greedy by
score) to the first case's on the same frames, giving recall and precision
against that reference (e.g. int8 against fp32).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from device.core.camera import CameraResult, CameraTrack
from device.core.types import Detections, Frame
from device.perception.boards import size_label
from device.perception.detector import YoloxDetector, choose_spin
from device.perception.tracking import IouTracker, iou_matrix

PERSON = 0  # COCO class id
DEFAULT_BLOCK = 10


class BenchError(Exception):
    """A benchmark that cannot run as asked (no video, unreadable file...)."""


# --- frames -----------------------------------------------------------------------


def video_frames(path: str | Path, count: int) -> Iterator[np.ndarray]:
    """Up to `count` frames of a video, decoded one at a time (not timed)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise BenchError(f"no such video: {p}")
    cap = cv2.VideoCapture(str(p))
    try:
        if not cap.isOpened():
            raise BenchError(f"cannot open {p} as a video")
        for i in range(count):
            ok, frame = cap.read()
            if not ok:
                if i == 0:
                    raise BenchError(f"{p} has no readable frames")
                return
            yield frame
    finally:
        cap.release()


def image_frames(paths: Iterable[Path]) -> Iterator[np.ndarray]:
    for p in paths:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise BenchError(f"cannot read {p} as an image")
        yield img


# --- agreement ---------------------------------------------------------------------


def match_count(ref: Detections, test: Detections, class_id: int = PERSON, iou: float = 0.5) -> tuple[int, int, int]:
    """(matched, reference boxes, test boxes) of one class: each reference box,
    best score first, takes the unmatched test box it overlaps most if that
    IoU is >= `iou`."""
    r = ref[ref.class_id == class_id]
    t = test[test.class_id == class_id]
    if len(r) == 0 or len(t) == 0:
        return 0, len(r), len(t)
    m = iou_matrix(r.xyxy, t.xyxy)
    free = np.ones(len(t), bool)
    matched = 0
    for i in np.argsort(-r.confidence, kind="stable"):
        cand = np.where(free, m[i], -1.0)
        j = int(np.argmax(cand))
        if cand[j] >= iou:
            free[j] = False
            matched += 1
    return matched, len(r), len(t)


@dataclass
class Agreement:
    """Person detections of a case against the reference case's."""

    matched: int = 0
    reference: int = 0
    test: int = 0

    def add(self, counts: tuple[int, int, int]) -> None:
        self.matched += counts[0]
        self.reference += counts[1]
        self.test += counts[2]

    @property
    def recall(self) -> float | None:
        return self.matched / self.reference if self.reference else None

    @property
    def precision(self) -> float | None:
        return self.matched / self.test if self.test else None

    def to_json(self) -> dict[str, Any]:
        r, p = self.recall, self.precision
        return {
            "recall": None if r is None else round(r, 4),
            "precision": None if p is None else round(p, 4),
            "matched": self.matched,
            "reference_boxes": self.reference,
            "test_boxes": self.test,
        }


# --- cases and results -----------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    model: str  # as given: a model name or a path
    path: Path
    input_size: int | tuple[int, int]  # square, or (width, height)
    threads: int
    spin: bool | None  # None = the detector's own choice (choose_spin)
    fill: str = "letterbox"

    @property
    def label(self) -> str:
        on = choose_spin(self.threads, self.spin)
        spin = ("on" if on else "off") if self.spin is not None else f"auto({'on' if on else 'off'})"
        fill = "" if self.fill == "letterbox" else f" {self.fill}"
        return f"{self.model} @{size_label(self.input_size)}{fill} threads={self.threads} spin={spin}"


def _spread(samples: Sequence[float]) -> dict[str, float | None]:
    if not samples:
        return {"median": None, "p90": None, "p99": None, "max": None}
    a = np.asarray(samples)
    return {
        "median": round(float(np.median(a)), 3),
        "p90": round(float(np.percentile(a, 90)), 3),
        "p99": round(float(np.percentile(a, 99)), 3),
        "max": round(float(a.max()), 3),
    }


def stats(samples: Sequence[float]) -> dict[str, float | None]:
    if not samples:
        return {"median": None, "p90": None}
    a = np.asarray(samples)
    return {"median": round(float(np.median(a)), 3), "p90": round(float(np.percentile(a, 90)), 3)}


@dataclass
class CaseResult:
    case: Case
    preprocess: list[float] = field(default_factory=list)
    inference_in_detect: list[float] = field(default_factory=list)
    postprocess: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    inference: list[float] = field(default_factory=list)  # session.run alone
    frames_agreement: Agreement = field(default_factory=Agreement)
    images_agreement: Agreement = field(default_factory=Agreement)
    detections: int = 0
    windows: list[tuple[int, int]] = field(default_factory=list)  # monotonic ns this case ran
    load: dict[str, Any] | None = None  # how the rest of the loop fared meanwhile
    input_layout: str | None = None  # what the model takes (YoloxDetector.input_layout)

    @property
    def overhead_ratio(self) -> float | None:
        if not self.total or not self.inference:
            return None
        return float(np.median(self.total) / np.median(self.inference))

    def to_json(self, reference: CaseResult | None = None) -> dict[str, Any]:
        overhead = self.overhead_ratio
        out: dict[str, Any] = {
            "model": self.case.model,
            "model_path": str(self.case.path),
            "input_size": self.case.input_size if isinstance(self.case.input_size, int)
            else size_label(self.case.input_size),
            "fill": self.case.fill,
            "threads": self.case.threads,
            "spin": choose_spin(self.case.threads, self.case.spin),
            "input_layout": self.input_layout,
            "frames": len(self.total),
            "preprocess_ms": stats(self.preprocess),
            "inference_ms": stats(self.inference),
            "postprocess_ms": stats(self.postprocess),
            "total_ms": stats(self.total),
            "inference_in_detect_ms": stats(self.inference_in_detect),
            "overhead_ratio": None if overhead is None else round(overhead, 4),
            "detections_per_frame": round(self.detections / len(self.total), 2) if self.total else None,
        }
        if self.load is not None:
            out["load"] = self.load
        if reference is not None and reference is not self:
            out["vs_reference"] = {
                "reference": reference.case.label,
                "total_ratio": ratio(self.total, reference.total),
                "inference_ratio": ratio(self.inference, reference.inference),
                "person_agreement_frames": self.frames_agreement.to_json(),
                "person_agreement_images": (
                    self.images_agreement.to_json() if self.images_agreement.reference or self.images_agreement.test
                    else None
                ),
            }
        return out


def ratio(a: Sequence[float], b: Sequence[float]) -> float | None:
    if not a or not b:
        return None
    return round(float(np.median(a) / np.median(b)), 4)


# --- the load: the rest of the device loop ---------------------------------------------------


class Load:
    """Ultrasonic ranging and an alert loop running on simulated pins.

    The ranger is the device's own (gpiozero DistanceSensor threads pinging
    through MockFactory pins that echo like an HC-SR04 seeing nothing); a
    thread polls it and drives the Alerter through all levels at 50 Hz, as
    the device's fast path does.
    """

    RATE_HZ = 50.0

    def __init__(self, config: Any) -> None:
        from device.app.compose import compose_ranging

        parts = compose_ranging(config, mock_pins=True, outputs=True)
        assert parts.alerter is not None  # outputs=True builds it
        self._clock, self._ranger, self._alerter = parts.clock, parts.ranger, parts.alerter
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-load", daemon=True)
        self.updates = 0
        self.ranges = 0
        self.late: list[tuple[int, float]] = []  # (woke at, ms after it was due)
        self.range_times: list[int] = []

    def _loop(self) -> None:
        from device.core.types import AlertLevel

        levels = list(AlertLevel)
        period_ns = round(1e9 / self.RATE_HZ)
        due = time.monotonic_ns() + period_ns
        while not self._stop.wait(max(0, due - time.monotonic_ns()) / 1e9):
            woke = time.monotonic_ns()
            self.late.append((woke, (woke - due) / 1e6))
            got = self._ranger.poll(self._clock.now_ns())
            self.ranges += len(got)
            self.range_times.extend(r.t_ns for r in got if r.fault is None)
            level = levels[(self.updates // int(self.RATE_HZ)) % len(levels)]  # a new level each second
            self._alerter.update(level, self._clock.now_ns())
            self.updates += 1
            due += period_ns
            if woke - due > period_ns:  # fell behind by more than a tick: skip, as a real loop would
                due = woke + period_ns

    def during(self, windows: Sequence[tuple[int, int]]) -> dict[str, Any]:
        """How the alert loop and the ranging fared while a case ran: how
        late the 50 Hz alert ticks woke, and the gaps between pings."""

        def inside(t: int) -> bool:
            return any(a <= t <= b for a, b in windows)

        late = [ms for t, ms in self.late if inside(t)]
        gaps: list[float] = []
        for a, b in windows:  # gaps between pings within one stretch of the case, not across others
            times = sorted(t for t in self.range_times if a <= t <= b)
            gaps += [(y - x) / 1e6 for x, y in itertools.pairwise(times)]
        return {"alert_tick_late_ms": _spread(late), "range_gap_ms": _spread(gaps), "ticks": len(late)}

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._alerter.close()
        self._ranger.close()


# --- looming beside the detector -------------------------------------------------------


@dataclass
class LoomingTiming:
    """Looming (`device.perception.looming`) timed on the same frames as the
    detector, one after another at the camera's rate as on the device."""

    estimator: Any  # LoomingEstimator
    fps: float = 15.0
    ms: list[float] = field(default_factory=list)
    _seq: int = 0

    def step(self, frame: np.ndarray, record: bool) -> None:
        t_ns = round(self._seq * 1e9 / self.fps)
        t = time.perf_counter()
        self.estimator.update(t_ns, self._seq, frame)
        if record:
            self.ms.append((time.perf_counter() - t) * 1e3)
        self._seq += 1

    def to_json(self, reference: CaseResult) -> dict[str, Any]:
        return {
            "width": self.estimator.p.width,
            "looming_ms": stats(self.ms),
            "vs_detector_total": ratio(self.ms, reference.total),
            "vs_inference": ratio(self.ms, reference.inference),
        }


@dataclass
class FlowTiming:
    """Flow (`device.perception.flow`) timed on the same frames as the
    detector, following the tracks of the first case's detections of those
    frames (tracking untimed: the detector's stage pays for it)."""

    estimator: Any  # FlowEstimator
    fps: float = 15.0
    ms: list[float] = field(default_factory=list)
    tracks: int = 0  # tracks followed, summed over the frames timed
    _seq: int = 0
    _tracker: Any = None

    def step(self, frame: np.ndarray, dets: Detections, record: bool) -> None:
        if self._tracker is None:
            self._tracker = IouTracker()
        t_ns = round(self._seq * 1e9 / self.fps)
        found = self._tracker.update(t_ns, dets)
        # Only the box and id matter to the flow; the rest is the detect stage's.
        camera = CameraResult(t_ns, self._seq, tuple(
            CameraTrack(tr.track_id, str(tr.class_id), tr.box, tr.confidence, tr.hits, 0.0, 0.0, None)
            for tr in found))
        t = time.perf_counter()
        self.estimator.process(Frame(self._seq, t_ns, frame), camera)
        if record:
            self.ms.append((time.perf_counter() - t) * 1e3)
            self.tracks += len(found)
        self._seq += 1

    def to_json(self, reference: CaseResult) -> dict[str, Any]:
        return {
            "width": self.estimator.p.width,
            "flow_ms": stats(self.ms),
            "tracks_per_frame": self.tracks / len(self.ms) if self.ms else None,
            "vs_detector_total": ratio(self.ms, reference.total),
            "vs_inference": ratio(self.ms, reference.inference),
        }


@dataclass
class EgoTiming:
    """The camera's motion between detector frames (`device.perception.ego`,
    part of the detect stage since issue 19) timed on the same frames, with
    the first case's detections masked out as the stage does."""

    estimator: Any  # CameraMotion
    ms: list[float] = field(default_factory=list)

    def step(self, frame: np.ndarray, dets: Detections, record: bool) -> None:
        boxes = [tuple(float(v) for v in b) for b in dets.xyxy]
        t = time.perf_counter()
        self.estimator.update(frame, boxes)
        if record:
            self.ms.append((time.perf_counter() - t) * 1e3)

    def to_json(self, reference: CaseResult) -> dict[str, Any]:
        return {
            "width": self.estimator.width,
            "ego_ms": stats(self.ms),
            "vs_detector_total": ratio(self.ms, reference.total),
            "vs_inference": ratio(self.ms, reference.inference),
        }


# --- running ---------------------------------------------------------------------------


@dataclass
class BenchResult:
    cases: list[CaseResult]
    video: str | None
    load: dict[str, int] | None = None
    looming: LoomingTiming | None = None
    flow: FlowTiming | None = None
    ego: EgoTiming | None = None

    def to_json(self) -> dict[str, Any]:
        ref = self.cases[0]
        items = [c.to_json(ref) for c in self.cases]
        extra = {"video": self.video, "load_totals": self.load,
                 "looming": self.looming.to_json(ref) if self.looming is not None else None,
                 "flow": self.flow.to_json(ref) if self.flow is not None else None,
                 "ego": self.ego.to_json(ref) if self.ego is not None else None}
        if len(items) == 1:
            return {**items[0], **extra}
        return {"cases": items, "reference": ref.case.label, **extra}


def run(
    cases: Sequence[Case],
    frames: Iterable[np.ndarray],
    *,
    score_threshold: float = 0.35,
    nms_iou: float = 0.45,
    class_ids: Sequence[int] | None = None,
    warmup: int = 5,
    block: int = DEFAULT_BLOCK,
    images: Iterable[np.ndarray] = (),
    progress: Callable[[int], None] | None = None,
    looming: LoomingTiming | None = None,
    flow: FlowTiming | None = None,
    ego: EgoTiming | None = None,
) -> list[CaseResult]:
    """Run every case on every frame (side by side) and, untimed, on `images`.

    Frames go in blocks of `block`: each case runs the whole block, then
    the next case, the order rotating from block to block. Small blocks
    spread machine noise evenly; blocks rather than single frames keep one
    case's idle spinning threads from landing on the next case's frame.
    Within a case's block, detect() runs on the frames one after another,
    as in the device loop, each frame freshly copied into place as from the
    capture thread; session.run alone is timed on the same frames' prepared
    inputs in a pass of its own, before or after (alternating by block).
    The first `warmup` frames run but are not recorded. Agreement is
    against the first case. `looming`, if given, runs on each block's frames
    too, in order, before the cases or after them (alternating by block);
    `flow` and `ego`, if given, after them, on the first case's detections.
    """
    if not cases:
        raise BenchError("nothing to benchmark: no cases")
    if block < 1:
        raise BenchError(f"block must be >= 1 (got {block})")
    dets = [
        YoloxDetector(
            c.path, input_size=c.input_size, score_threshold=score_threshold, nms_iou=nms_iou,
            class_ids=class_ids, threads=c.threads, spin=c.spin, fill=c.fill,
        )
        for c in cases
    ]
    results = [CaseResult(c, input_layout=d.input_layout) for c, d in zip(cases, dets, strict=True)]
    perf = time.perf_counter
    it = iter(frames)
    # The device's detector blocks on the camera and gets each frame just
    # after the capture thread wrote it; copying the frame into place right
    # before detect() (untimed) gives it the same cache state here.
    handover: dict[tuple[int, ...], np.ndarray] = {}
    seen = 0  # frames read so far
    n = 0  # frames measured

    def loom(chunk: list[np.ndarray], first: int) -> None:
        """Looming over one block; `first` is its first frame's index."""
        if looming is not None:
            for j, frame in enumerate(chunk):
                looming.step(frame, first + j >= warmup)

    try:
        for b in itertools.count():
            chunk = list(itertools.islice(it, block))
            if not chunk:
                break
            found: list[list[Detections]] = [[] for _ in cases]
            if b % 2:
                loom(chunk, seen)
            k0 = b % len(cases)
            for k in [*range(k0, len(cases)), *range(k0)]:  # rotate who goes first
                det, res = dets[k], results[k]
                w0 = time.monotonic_ns()
                for phase in ("detect", "alone") if b % 2 == 0 else ("alone", "detect"):
                    for j, frame in enumerate(chunk):
                        i = seen + j
                        if phase == "alone":
                            det.prepare(frame)
                            t = perf()
                            det.infer()  # session.run alone on this frame's prepared input
                            if i >= warmup:
                                res.inference.append((perf() - t) * 1e3)
                            continue
                        buf = handover.get(frame.shape)
                        if buf is None:
                            buf = handover[frame.shape] = np.empty_like(frame)
                        np.copyto(buf, frame)
                        t = perf()
                        d = det.detect(buf)
                        total = perf() - t
                        found[k].append(d)
                        if i < warmup:
                            continue
                        lt = det.last_timings
                        res.total.append(total * 1e3)
                        res.preprocess.append(lt["preprocess"])
                        res.inference_in_detect.append(lt["inference"])
                        res.postprocess.append(lt["postprocess"])
                        res.detections += len(d)
                if seen + len(chunk) > warmup:
                    res.windows.append((w0, time.monotonic_ns()))
            if b % 2 == 0:
                loom(chunk, seen)
            if flow is not None:
                for j, frame in enumerate(chunk):
                    flow.step(frame, found[0][j], seen + j >= warmup)
            if ego is not None:
                for j, frame in enumerate(chunk):
                    ego.step(frame, found[0][j], seen + j >= warmup)
            for j in range(len(chunk)):
                if seen + j < warmup:
                    continue
                n += 1
                for k in range(1, len(cases)):
                    results[k].frames_agreement.add(match_count(found[0][j], found[k][j]))
                if progress is not None:
                    progress(n)
            seen += len(chunk)
        for image in images:
            ref = dets[0].detect(image)
            for k in range(1, len(cases)):
                results[k].images_agreement.add(match_count(ref, dets[k].detect(image)))
    finally:
        for d in dets:
            d.close()
    if n == 0:
        raise BenchError(f"no frames measured: the video has no more than the {warmup} warm-up frames")
    return results
