"""Issue 24, the contract: the same footage through the CPU model and through
a stand-in accelerator that replays tensors in the accelerator's own output
layout gives the same detections, and so the same threats and alerts.

The tensors are the CPU model's detections of each frame, encoded in the
vendor's layout (tests/accel_tensors.py): the IMX500's flat, Fortran-order
`CnnOutputTensor` of a post-processed network, and `Hailo.run`'s per-class
NMS lists. The stand-in decodes them with the backends' decoders, so what is
held here is the whole path from the accelerator's bytes to a warning. It
does not say the vendors' networks see what YOLOX-Nano sees: only that a
result in their format reaches the runner unchanged (docs/accelerators.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from device.app.replay import replay
from device.core.config import Config
from device.core.ports import Detector
from device.core.types import Detections
from device.perception.backends.hailo_decode import decode_nms_by_class
from device.perception.backends.imx500_decode import Geometry, PpLayout, decode_pp, detections, unpack_outputs
from tests.accel_tensors import hailo_nms, imx500_metadata

pytestmark = pytest.mark.real_model


def key(image: np.ndarray) -> str:
    return hashlib.sha1(image.tobytes()).hexdigest()


def geometry(image: np.ndarray) -> Geometry:
    # An AI Camera whose main stream is the footage's size, from the 2028x1520
    # binned mode through a centred crop of the sensor at the frame's aspect
    # ratio (as libcamera picks a ScalerCrop for a 16:9 stream).
    h, w = image.shape[:2]
    ch = min(3040, 4056 * h // w)
    cw = min(4056, 3040 * w // h)
    return Geometry((w, h), (2028, 1520), ((4056 - cw) // 2, (3040 - ch) // 2, cw, ch))


class Encoding:
    """The CPU detector, writing down each frame's result in a vendor's layout."""

    def __init__(self, cpu: Detector, encode: Callable[[Detections, np.ndarray], Any]) -> None:
        self.cpu, self.encode = cpu, encode
        self.tensors: dict[str, Any] = {}
        self.results: list[Detections] = []

    def detect(self, image: np.ndarray) -> Detections:
        dets = self.cpu.detect(image)
        self.tensors[key(image)] = self.encode(dets, image)
        self.results.append(dets)
        return dets

    def close(self) -> None:
        pass


class ReplayedAccelerator:
    """The accelerator's stand-in: the recorded tensors for each image, decoded."""

    def __init__(self, tensors: dict[str, Any], decode: Callable[[Any, np.ndarray], Detections]) -> None:
        self.tensors, self.decode = tensors, decode
        self.results: list[Detections] = []

    def detect(self, image: np.ndarray) -> Detections:
        dets = self.decode(self.tensors[key(image)], image)
        self.results.append(dets)
        return dets

    def close(self) -> None:
        pass


def imx500_encode(dets: Detections, image: np.ndarray) -> dict[str, Any]:
    return imx500_metadata(dets, geometry(image))


def imx500_decode(md: dict[str, Any], image: np.ndarray) -> Detections:
    outs = unpack_outputs(md["CnnOutputTensor"], md["_shapes"])
    # threshold 0: the CPU model has already applied its own
    boxes, scores, classes = decode_pp(outs, PpLayout(), 0.0)
    return detections(boxes, scores, classes, geometry(image))


def hailo_encode(dets: Detections, image: np.ndarray) -> list[np.ndarray]:
    return hailo_nms(dets, image.shape[1], image.shape[0])


def hailo_decode(out: list[np.ndarray], image: np.ndarray) -> Detections:
    return decode_nms_by_class(out, image.shape[1], image.shape[0], 0.0)


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory, shared: Path) -> Path:
    """A person running up at 3 m/s from 14 m with the ultrasonic sensor
    silent: every warning comes from the camera (the scenario suite's
    person-3mps-silent, from the shared photos)."""
    from device.cli.main import main

    root = tmp_path_factory.mktemp("accel") / "suite"
    assert main(["scenario", "make", str(root), "--images", str(shared / "images" / "coco"),
                 "--only", "person-3mps-silent"]) == 0
    return root / "person-3mps-silent"


@pytest.fixture(scope="module")
def cpu_run(walk: Path, model_path: Path) -> dict[str, Any]:
    from device.perception.backends.cpu_onnx import cpu_detector

    cfg = Config()
    cfg = cfg.model_copy(update={"detector": cfg.detector.model_copy(update={"model": str(model_path)})})
    cpu = cpu_detector(model_path, cfg.detector)
    runs: dict[str, Any] = {}
    encoders = {"imx500": Encoding(cpu, imx500_encode), "hailo": Encoding(cpu, hailo_encode)}

    class Both:  # one CPU pass writes both layouts
        def detect(self, image: np.ndarray) -> Detections:
            dets = encoders["imx500"].detect(image)
            encoders["hailo"].tensors[key(image)] = hailo_encode(dets, image)
            return dets

        def close(self) -> None:
            pass

    threats: list[Any] = []
    result = replay(walk, cfg, detector=Both(), on_step=lambda p: threats.append(p.threat))
    cpu.close()
    runs.update(cfg=cfg, result=result, threats=threats, encoders=encoders)
    return runs


def accelerator_run(cpu_run: dict[str, Any], walk: Path, backend: str) -> tuple[ReplayedAccelerator, Any, list[Any]]:
    decode = {"imx500": imx500_decode, "hailo": hailo_decode}[backend]
    stub = ReplayedAccelerator(cpu_run["encoders"][backend].tensors, decode)
    threats: list[Any] = []
    result = replay(walk, cpu_run["cfg"], detector=stub, on_step=lambda p: threats.append(p.threat))
    return stub, result, threats


def test_the_footage_gives_the_cpu_model_something_to_see(cpu_run: dict[str, Any]) -> None:
    results = cpu_run["encoders"]["imx500"].results
    assert len(results) >= 50 and sum(len(d) for d in results) >= 40  # the person, most of the way
    assert any(t is not None and t.source == "camera" and t.distance_m is not None for t in cpu_run["threats"])


def test_hailo_layout_gives_the_same_detections_threats_and_alerts(cpu_run: dict[str, Any], walk: Path) -> None:
    stub, result, threats = accelerator_run(cpu_run, walk, "hailo")
    cpu = cpu_run["encoders"]["imx500"].results
    assert len(stub.results) == len(cpu)
    # the NMS output is grouped by class, so the order within a frame differs
    for a, b in zip(map(canon, cpu), map(canon, stub.results), strict=True):
        assert a.class_id.tolist() == b.class_id.tolist()
        assert np.allclose(a.xyxy, b.xyxy, atol=1e-3) and np.allclose(a.confidence, b.confidence)
    same_events(cpu_run["result"].events, result.events, rel=1e-4)  # float32 round trip: 1e-7 apart
    same_threats(cpu_run["threats"], threats, rel=1e-4)


def test_imx500_layout_gives_the_same_detections_threats_and_alerts(cpu_run: dict[str, Any], walk: Path) -> None:
    stub, result, threats = accelerator_run(cpu_run, walk, "imx500")
    cpu = cpu_run["encoders"]["imx500"].results
    assert len(stub.results) == len(cpu)
    for a, b in zip(cpu, stub.results, strict=True):
        assert a.class_id.tolist() == b.class_id.tolist()
        assert np.allclose(a.confidence, b.confidence)
        # float32 normalised coordinates on a 4056 px sensor: ~1e-4 px here
        assert np.allclose(a.xyxy, b.xyxy, atol=1e-2)
    same_events(cpu_run["result"].events, result.events, rel=0.01)
    same_threats(cpu_run["threats"], threats, rel=0.01)


def canon(d: Detections) -> Detections:
    """The same detections in one order: by class, then box."""
    k = np.lexsort((d.xyxy[:, 3], d.xyxy[:, 2], d.xyxy[:, 1], d.xyxy[:, 0], d.class_id))
    return d[k]


def same_events(a: tuple[Any, ...], b: tuple[Any, ...], rel: float) -> None:
    """The same alerts: every level change at the same instant, from the same source."""
    assert len(a) >= 2  # the person is warned of
    assert [(e.t_ns, e.level, e.source, e.faults) for e in a] == [(e.t_ns, e.level, e.source, e.faults) for e in b]
    for x, y in zip(a, b, strict=True):
        for f in ("distance_m", "ttc_s"):
            u, v = getattr(x, f), getattr(y, f)
            assert (u is None) == (v is None) and (u is None or v == pytest.approx(u, rel=rel, abs=0.05)), f


def same_threats(a: list[Any], b: list[Any], rel: float) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert (x is None) == (y is None)
        if x is None:
            continue
        assert (x.level, x.source, x.label, x.direction) == (y.level, y.source, y.label, y.direction)
        for f in ("distance_m", "ttc_s", "closing_mps", "bearing_deg"):
            u, v = getattr(x, f), getattr(y, f)
            assert (u is None) == (v is None), f
            if u is not None:
                assert v == pytest.approx(u, rel=rel, abs=0.05), f
