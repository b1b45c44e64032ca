"""Detector benchmark: how close the detection path is to the model's own limit.

Every case (a model at an input size with a thread setting) sees the same
frames, side by side: for each frame every case runs once, in an order that
rotates, so a noisy shared machine slows all cases alike and the ratios
between them hold even when the absolute figures wander.

Per case and frame three things are timed:
- `detect()` from outside: the total a caller pays;
- its own stages (`last_timings`): preprocess, inference, postprocess;
- `infer()` again on the same prepared input: session.run alone, the
  model's own limit. `overhead_ratio` = median total / median inference.

With `load`, the rest of the device loop runs meanwhile on simulated pins
(gpiozero's ultrasonic pinging threads and an alert loop at 50 Hz), so a
thread setting is judged with the company it has on the device.

Agreement: each case's person boxes are matched (IoU >= 0.5, greedy by
score) to the first case's on the same frames, giving recall and precision
against that reference (e.g. int8 against fp32).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from device.detector import YoloxDetector
from device.types import Detections

REPO = Path(__file__).resolve().parents[1]
PERSON = 0  # COCO class id


class BenchError(Exception):
    """A benchmark that cannot run as asked (no video, unreadable file...)."""


def shared_file(*parts: str) -> Path | None:
    """A file in the development materials (../shared), looked for next to
    the working directory and next to this checkout; None if absent."""
    for root in (Path.cwd().parent, REPO.parent):
        p = root.joinpath("shared", *parts)
        if p.exists():
            return p
    return None


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


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a (N, 4) with every box in b (M, 4), xyxy."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


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
    input_size: int
    threads: int
    spin: bool

    @property
    def label(self) -> str:
        return f"{self.model} @{self.input_size} threads={self.threads} spin={'on' if self.spin else 'off'}"


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

    @property
    def overhead_ratio(self) -> float | None:
        if not self.total or not self.inference:
            return None
        return float(np.median(self.total) / np.median(self.inference))

    def to_json(self, reference: CaseResult | None = None) -> dict[str, Any]:
        ratio = self.overhead_ratio
        out: dict[str, Any] = {
            "model": self.case.model,
            "model_path": str(self.case.path),
            "input_size": self.case.input_size,
            "threads": self.case.threads,
            "spin": self.case.spin,
            "frames": len(self.total),
            "preprocess_ms": stats(self.preprocess),
            "inference_ms": stats(self.inference),
            "postprocess_ms": stats(self.postprocess),
            "total_ms": stats(self.total),
            "inference_in_detect_ms": stats(self.inference_in_detect),
            "overhead_ratio": None if ratio is None else round(ratio, 4),
            "detections_per_frame": round(self.detections / len(self.total), 2) if self.total else None,
        }
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
        from device.alerts import Alerter
        from device.app import make_pin_factory
        from device.clock import MonotonicClock
        from device.ranging import UltrasonicRanger

        self._clock = MonotonicClock()
        factory = make_pin_factory("mock", config)
        self._ranger = UltrasonicRanger(
            config.ranging.sensors, self._clock, pin_factory=factory, sample_wait_s=config.ranging.sample_wait_s
        )
        self._alerter = Alerter(config.outputs, pin_factory=factory)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-load", daemon=True)
        self.updates = 0
        self.ranges = 0

    def _loop(self) -> None:
        from device.types import AlertLevel

        levels = list(AlertLevel)
        period = 1.0 / self.RATE_HZ
        while not self._stop.wait(period):
            now = self._clock.now_ns()
            self.ranges += len(self._ranger.poll(now))
            level = levels[(self.updates // int(self.RATE_HZ)) % len(levels)]  # a new level each second
            self._alerter.update(level, now)
            self.updates += 1

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._alerter.close()
        self._ranger.close()


# --- running ---------------------------------------------------------------------------


@dataclass
class BenchResult:
    cases: list[CaseResult]
    video: str | None
    load: dict[str, int] | None = None

    def to_json(self) -> dict[str, Any]:
        ref = self.cases[0]
        items = [c.to_json(ref) for c in self.cases]
        extra = {"video": self.video, "load": self.load}
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
    images: Iterable[np.ndarray] = (),
    progress: Callable[[int], None] | None = None,
) -> list[CaseResult]:
    """Run every case on every frame (side by side) and, untimed, on `images`.

    The first `warmup` frames run but are not recorded (allocator and
    thread pool warm-up). Agreement is against the first case.
    """
    if not cases:
        raise BenchError("nothing to benchmark: no cases")
    dets = [
        YoloxDetector(
            c.path, input_size=c.input_size, score_threshold=score_threshold, nms_iou=nms_iou,
            class_ids=class_ids, threads=c.threads, spin=c.spin,
        )
        for c in cases
    ]
    results = [CaseResult(c) for c in cases]
    perf = time.perf_counter
    n = 0
    try:
        for i, frame in enumerate(frames):
            found: list[Detections | None] = [None] * len(cases)
            k0 = i % len(cases)
            for k in [*range(k0, len(cases)), *range(k0)]:  # rotate who goes first
                det, res = dets[k], results[k]
                t0 = perf()
                d = det.detect(frame)
                t1 = perf()
                det.infer()  # the same prepared input again: session.run alone
                t2 = perf()
                found[k] = d
                if i < warmup:
                    continue
                lt = det.last_timings
                res.total.append((t1 - t0) * 1e3)
                res.inference.append((t2 - t1) * 1e3)
                res.preprocess.append(lt["preprocess"])
                res.inference_in_detect.append(lt["inference"])
                res.postprocess.append(lt["postprocess"])
                res.detections += len(d)
            if i >= warmup:
                n += 1
                ref = found[0]
                assert ref is not None
                for k in range(1, len(cases)):
                    results[k].frames_agreement.add(match_count(ref, found[k]))  # type: ignore[arg-type]
                if progress is not None:
                    progress(n)
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

