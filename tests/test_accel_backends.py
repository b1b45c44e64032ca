"""Issue 24: choosing a detector backend, and the IMX500 and Hailo backends'
wiring against fake `picamera2.devices` modules (put in sys.modules): the
device missing, the network upload failing, dropped results, a failure at
run time becoming a named fault with the CPU model taking over."""

from __future__ import annotations

import os
import sys
import time
import types
from collections import deque
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from device.core.clock import ReplayClock
from device.core.config import Config
from device.core.faults import Kind, Part
from device.core.types import Detections
from device.perception.backends import (
    Choice,
    FallbackDetector,
    Presence,
    Probe,
    choose_backend,
    open_backend,
    probe,
)
from device.perception.backends.choose import HAILO_DEFAULT_MODEL, IMX500_DEFAULT_MODEL
from device.perception.backends.imx500_decode import Geometry
from tests.accel_tensors import hailo_nms, imx500_metadata

W, H = 640, 480
GEOM = Geometry((W, H), (2028, 1520), (0, 0, 4056, 3040))
PERSON = Detections(np.array([[100, 60, 220, 400]], np.float32), np.array([0.9], np.float32),
                    np.array([0], np.int32))
CAR = Detections(np.array([[300, 200, 600, 470]], np.float32), np.array([0.8], np.float32),
                 np.array([2], np.int32))


class CpuStub:
    """The CPU detector's stand-in: counts calls, returns one person."""

    def __init__(self) -> None:
        self.calls = 0
        self.closed = False

    def detect(self, image: np.ndarray) -> Detections:
        self.calls += 1
        return PERSON

    def close(self) -> None:
        self.closed = True


# ------------------------------------------------------------------- choosing

ABSENT = Presence(False, "no such thing")


def test_choose_backend_named_auto_and_fallback_with_reasons() -> None:
    both = Probe(imx500=Presence(True, "AI Camera"), hailo=Presence(True, "Hailo"))
    none = Probe(imx500=ABSENT, hailo=ABSENT)
    assert choose_backend("cpu", both).backend == "cpu"
    assert choose_backend("imx500", both) == Choice("imx500", "detector.backend = imx500: AI Camera")
    assert choose_backend("auto", both).backend == "hailo"  # the bigger network at the higher rate
    assert choose_backend("auto", Probe(imx500=Presence(True, "cam"), hailo=ABSENT)).backend == "imx500"
    auto = choose_backend("auto", none)
    assert auto.backend == "cpu" and not auto.fell_back and "no accelerator" in auto.reason
    named = choose_backend("hailo", none)
    assert named.backend == "cpu" and named.fell_back and "no such thing" in named.reason
    with pytest.raises(ValueError, match="detector.backend"):
        choose_backend("tpu", none)


def test_config_takes_the_backend_and_names_a_bad_one() -> None:
    from device.core.config import ConfigError, from_dict

    cfg = from_dict({"detector": {"backend": "imx500", "accelerator_model": "/x.rpk"}})
    assert (cfg.detector.backend, cfg.detector.accelerator_model) == ("imx500", "/x.rpk")
    assert Config().detector.backend == "auto"
    with pytest.raises(ConfigError, match=r"detector\.backend"):
        from_dict({"detector": {"backend": "coral"}})


def test_probe_finds_the_devices_the_way_the_vendors_do(tmp_path: Path) -> None:
    root = tmp_path
    assert not probe(root, has_module=lambda m: True).imx500.present
    dev = root / "sys/class/video4linux/v4l-subdev3/device/driver"
    dev.mkdir(parents=True)
    os.symlink("../../../../module/imx500", dev / "module")
    seen = probe(root, has_module=lambda m: True)
    assert not seen.imx500.present and "apt install imx500-all" in seen.imx500.detail
    for f in (IMX500_DEFAULT_MODEL, HAILO_DEFAULT_MODEL):
        (root / f.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (root / f.lstrip("/")).write_bytes(b"net")
    seen = probe(root, has_module=lambda m: True)
    assert seen.imx500.present and "/dev/v4l-subdev3" in seen.imx500.detail
    assert not seen.hailo.present and seen.hailo.detail == "no Hailo accelerator"
    (root / "dev").mkdir()
    (root / "dev/hailo0").write_bytes(b"")
    seen = probe(root, has_module=lambda m: m != "hailo_platform")
    assert not seen.hailo.present and "cannot import hailo_platform" in seen.hailo.detail
    assert probe(root, has_module=lambda m: True).hailo.present


# ---------------------------------------------------------- fake picamera2


class FakeRequest:
    def __init__(self, image: np.ndarray, metadata: dict[str, Any]) -> None:
        self.image, self.metadata, self.released = image, metadata, False

    def make_array(self, stream: str) -> np.ndarray:
        assert stream == "main"
        return self.image

    def get_metadata(self) -> dict[str, Any]:
        return self.metadata

    def release(self) -> None:
        self.released = True


def make_fakes(script: list[Any], *, imx_error: str | None = None, hailo_error: str | None = None,
               run_error: str | None = None, frame_interval: float = 0.0) -> SimpleNamespace:
    """picamera2 and picamera2.devices as modules, driven by `script`: what
    each capture_request returns (a (metadata | None) for a frame, or an
    exception to raise). `frame_interval` > 0 makes capture_request wait
    for its frame as a real camera does; 0 hands them out at once."""
    state = SimpleNamespace(requests=deque(script), configured=None, started=False, closed=False,
                            hailo_inputs=[], hailo_closed=False, hailo_out=None)

    class IMX500:
        def __init__(self, network_file: str) -> None:
            if imx_error:
                raise RuntimeError(imx_error)
            self.network_file = network_file
            self.camera_num = 0
            self.network_intrinsics = SimpleNamespace(task="object detection", bbox_order="yx",
                                                      bbox_normalization=None, labels=None,
                                                      ignore_dash_labels=True, preserve_aspect_ratio=None)
            self.config = {"roi": (0, 0, 4056, 3040)}

        def get_input_size(self) -> tuple[int, int]:
            return 416, 416

        def get_output_shapes(self, metadata: dict[str, Any]) -> list[list[int]]:
            return metadata.get("CnnOutputTensorInfo", [])

    class Picamera2:
        def __init__(self, num: int = 0) -> None:
            pass

        def create_video_configuration(self, **kw: Any) -> dict[str, Any]:
            return kw

        def configure(self, cfg: dict[str, Any]) -> None:
            state.configured = cfg

        def camera_configuration(self) -> dict[str, Any]:
            return {"main": {"size": state.configured["main"]["size"]}, "raw": {"size": GEOM.sensor_output}}

        def start(self) -> None:
            state.started = True

        def stop(self) -> None:
            state.started = False

        def close(self) -> None:
            state.closed = True

        def capture_request(self) -> FakeRequest | None:
            if frame_interval:
                time.sleep(frame_interval)
            if not state.requests:
                return None
            item = state.requests.popleft()
            if isinstance(item, Exception):
                raise item
            image = np.full((H, W, 3), 100, np.uint8)
            return FakeRequest(image, item if item is not None else {"ScalerCrop": GEOM.scaler_crop})

    class Hailo:
        def __init__(self, hef: str) -> None:
            if hailo_error:
                raise RuntimeError(hailo_error)

        def get_input_shape(self) -> tuple[int, int, int]:
            return 640, 640, 3

        def run(self, frame: np.ndarray) -> Any:
            if run_error:
                raise RuntimeError(run_error)
            state.hailo_inputs.append(frame)
            return state.hailo_out

        def close(self) -> None:
            state.hailo_closed = True

    devices = types.ModuleType("picamera2.devices")
    devices.IMX500 = IMX500  # type: ignore[attr-defined]
    devices.Hailo = Hailo  # type: ignore[attr-defined]
    pkg = types.ModuleType("picamera2")
    pkg.Picamera2 = Picamera2  # type: ignore[attr-defined]
    pkg.devices = devices  # type: ignore[attr-defined]
    state.pkg, state.devices = pkg, devices
    return state


def tensors(dets: Detections) -> dict[str, Any]:
    md = imx500_metadata(dets, GEOM)
    md["CnnOutputTensorInfo"] = md.pop("_shapes")
    return md


@pytest.fixture
def fake_picamera2(monkeypatch: pytest.MonkeyPatch) -> Any:
    def install(script: list[Any], **kw: Any) -> SimpleNamespace:
        state = make_fakes(script, **kw)
        monkeypatch.setitem(sys.modules, "picamera2", state.pkg)
        monkeypatch.setitem(sys.modules, "picamera2.devices", state.devices)
        return state
    return install


def config(backend: str = "imx500", **camera: Any) -> Config:
    cfg = Config()
    return cfg.model_copy(update={
        "detector": cfg.detector.model_copy(update={"backend": backend, "classes": ("person", "car")}),
        "camera": cfg.camera.model_copy(update={"width": W, "height": H, **camera})})


@pytest.fixture
def open_imx500(monkeypatch: pytest.MonkeyPatch) -> Any:
    """open_backend for the AI Camera with its grabber thread left unstarted:
    the test takes each frame itself (source._capture), no thread, no waiting."""
    import device.perception.backends.imx500 as imx

    class Unstarted(imx.GrabberThread):
        def start(self) -> Any:
            return self

    monkeypatch.setattr(imx, "GrabberThread", Unstarted)
    return lambda cfg, cpu: open_backend(Choice("imx500", "test"), cfg, lambda: cpu, ReplayClock(0))


# --------------------------------------------------------------------- IMX500


def test_imx500_frames_arrive_with_their_detections(fake_picamera2: Any, open_imx500: Any) -> None:
    both = Detections(np.concatenate([PERSON.xyxy, CAR.xyxy]), np.array([0.9, 0.8], np.float32),
                      np.array([0, 2], np.int32))
    state = fake_picamera2([tensors(both), tensors(CAR)])
    cpu = CpuStub()
    opened = open_imx500(config(), cpu)
    assert opened.backend == "imx500" and opened.faults == () and state.started
    assert state.configured["main"] == {"size": (W, H), "format": "RGB888"}
    src = opened.source
    first, second = src._capture(), src._capture()
    d1 = opened.detector.detect(first)
    assert d1.class_id.tolist() == [0, 2]
    assert np.all(np.abs(d1.xyxy - both.xyxy) <= 2)  # picamera2's integer mapping
    assert opened.detector.detect(second).class_id.tolist() == [2]
    assert cpu.calls == 0
    src.close()
    assert state.closed


def test_imx500_upside_down_turns_the_boxes_with_the_image(fake_picamera2: Any, open_imx500: Any) -> None:
    fake_picamera2([tensors(PERSON)])
    opened = open_imx500(config(rotate_180=True), CpuStub())
    image = opened.source._capture()
    d = opened.detector.detect(image)
    x0, y0, x1, y1 = d.xyxy[0]
    assert abs(x0 - (W - 220)) <= 2 and abs(y1 - (H - 60)) <= 2 and x1 > x0 and y1 > y0
    opened.source.close()


def test_imx500_dropped_results_keep_the_last_then_the_cpu_takes_over(fake_picamera2: Any, open_imx500: Any) -> None:
    fake_picamera2([tensors(CAR)] + [None] * 20)
    cpu = CpuStub()
    opened = open_imx500(config(), cpu)
    det: FallbackDetector = opened.detector
    src = opened.source
    assert det.detect(src._capture()).class_id.tolist() == [2]
    for _ in range(14):  # a dropped result: the previous frame's, as picamera2's demo keeps them
        assert det.detect(src._capture()).class_id.tolist() == [2]
    assert det.fault is None and cpu.calls == 0 and src.missing == 14
    got = det.detect(src._capture())  # the 15th in a row: the backend has failed
    assert got is PERSON and cpu.calls == 1 and det.active == "cpu"
    assert det.fault is not None and det.fault.part is Part.ACCELERATOR and det.fault.kind is Kind.FAILED
    assert "no network output with the last 15 frames" in str(det.fault)
    src.close()


@pytest.mark.parametrize("error", [
    "IMX500: Requested camera dev-node not found",  # no AI Camera on the cable
    "IMX500: Unable to set network firmware /usr/share/imx500-models/x.rpk: [Errno 5]",  # upload failed
])
def test_imx500_missing_or_refusing_its_network_falls_back_to_the_cpu(fake_picamera2: Any, error: str) -> None:
    state = fake_picamera2([], imx_error=error)
    cpu = CpuStub()
    opened = open_backend(Choice("imx500", "test"), config(), lambda: cpu, ReplayClock(0))
    assert opened.backend == "cpu" and opened.detector is cpu and opened.source is None
    (fault,) = opened.faults
    assert fault.part is Part.ACCELERATOR and fault.kind is Kind.UNAVAILABLE and error in str(fault)
    assert state.configured is None  # the camera was never opened: the ordinary one can be


def test_imx500_without_picamera2_is_a_clear_fault(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)
    opened = open_backend(Choice("imx500", "test"), config(), CpuStub, ReplayClock(0))
    assert opened.backend == "cpu" and "picamera2 with IMX500 support is not installed" in str(opened.faults[0])


def test_imx500_source_runs_as_a_frame_source(fake_picamera2: Any) -> None:
    fake_picamera2([tensors(PERSON)])
    opened = open_backend(Choice("imx500", "test"), config(), CpuStub, ReplayClock(5))
    src = opened.source
    try:
        assert src.wait(5.0)
        frame = src.latest()
        assert frame is not None and frame.seq == 0 and frame.image.shape == (H, W, 3)
        assert opened.detector.detect(frame.image).class_id.tolist() == [0]
    finally:
        src.close()
    assert src.error == "camera stopped delivering"  # the fake ran out of requests


def test_a_frame_from_elsewhere_is_a_backend_failure(fake_picamera2: Any, open_imx500: Any) -> None:
    fake_picamera2([tensors(PERSON)])
    cpu = CpuStub()
    opened = open_imx500(config(), cpu)
    assert opened.detector.detect(np.zeros((H, W, 3), np.uint8)) is PERSON
    assert "did not come from the AI Camera" in str(opened.detector.fault)
    opened.source.close()


# ---------------------------------------------------------------------- Hailo


def test_hailo_runs_on_the_frames_handed_to_it(fake_picamera2: Any) -> None:
    state = fake_picamera2([])
    both = Detections(np.concatenate([PERSON.xyxy, CAR.xyxy]), np.array([0.9, 0.8], np.float32),
                      np.array([0, 2], np.int32))
    state.hailo_out = hailo_nms(both, W, H)
    opened = open_backend(Choice("hailo", "test"), config("hailo"), CpuStub, ReplayClock(0))
    assert opened.backend == "hailo" and opened.source is None
    image = np.zeros((H, W, 3), np.uint8)
    image[..., 0] = 255  # blue, in BGR
    d = opened.detector.detect(image)
    assert np.allclose(d.xyxy, both.xyxy, atol=1e-3) and d.class_id.tolist() == [0, 2]
    (given,) = state.hailo_inputs
    assert given.shape == (640, 640, 3) and given[0, 0].tolist() == [0, 0, 255]  # resized, and RGB
    opened.detector.close()
    assert state.hailo_closed


def test_hailo_failing_at_run_time_is_a_fault_and_the_cpu_takes_over(fake_picamera2: Any) -> None:
    state = fake_picamera2([], run_error="HAILO_TIMEOUT")
    cpu = CpuStub()
    opened = open_backend(Choice("hailo", "test"), config("hailo"), lambda: cpu, ReplayClock(0))
    got = opened.detector.detect(np.zeros((H, W, 3), np.uint8))
    assert got is PERSON and opened.detector.active == "cpu" and state.hailo_closed
    fault = opened.detector.fault
    assert fault.part is Part.ACCELERATOR and "Hailo.run failed: HAILO_TIMEOUT" in str(fault)
    opened.detector.detect(np.zeros((H, W, 3), np.uint8))
    assert cpu.calls == 2


def test_hailo_missing_falls_back_to_the_cpu(fake_picamera2: Any) -> None:
    fake_picamera2([], hailo_error="HAILO_OUT_OF_PHYSICAL_DEVICES")
    cpu = CpuStub()
    opened = open_backend(Choice("hailo", "test"), config("hailo"), lambda: cpu, ReplayClock(0))
    assert opened.backend == "cpu" and opened.detector is cpu
    assert opened.faults[0].kind is Kind.UNAVAILABLE and "HAILO_OUT_OF_PHYSICAL_DEVICES" in str(opened.faults[0])


def test_the_cpu_choice_builds_only_the_cpu_detector() -> None:
    cpu = CpuStub()
    opened = open_backend(Choice("cpu", "detector.backend = cpu"), config("cpu"), lambda: cpu, ReplayClock(0))
    assert opened.detector is cpu and opened.faults == () and opened.source is None
