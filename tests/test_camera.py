from __future__ import annotations

import sys
import threading
import types
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np
import pytest

from device.core.clock import MonotonicClock, ReplayClock
from device.sensing.camera import (
    PICAMERA2_MISSING,
    CameraError,
    FrameSource,
    GrabberThread,
    LatestSlot,
    OpenCVSource,
    Picamera2Source,
)

TIMEOUT = 10.0  # generous: only reached if something is broken


def _pattern(i: int, w: int = 64, h: int = 48) -> np.ndarray:
    """Smooth (JPEG-friendly) and left/right asymmetric, so a rotation shows."""
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (20 + 10 * i) % 256
    img[:, w // 2 :] = 200
    img[: h // 4, :, 2] = 255
    return img


def _write_video(path: Path, fps: float) -> Path:
    w = cv2.VideoWriter(str(path), cv2.CAP_OPENCV_MJPEG, cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    assert w.isOpened()
    for i in range(15):
        w.write(_pattern(i))
    w.release()
    return path


@pytest.fixture
def small_video(tmp_path: Path) -> Path:
    return _write_video(tmp_path / "small.avi", 25.0)


def _drain(src: OpenCVSource) -> list:
    """Every frame the source hands out until it reports an error."""
    frames = []
    while True:
        assert src.wait(TIMEOUT), "source neither delivered nor stopped"
        f = src.latest()
        if f is not None:
            frames.append(f)
        elif src.error is not None:
            return frames


# --- LatestSlot: pure, no threads -------------------------------------------


def test_latest_slot_newest_wins_and_counts_drops() -> None:
    slot: LatestSlot[int] = LatestSlot()
    assert slot.take() is None
    slot.put(1)
    slot.put(2)
    slot.put(3)
    assert slot.take() == 3
    assert slot.dropped == 2
    assert slot.take() is None
    slot.put(4)
    assert slot.take() == 4
    assert slot.dropped == 2


def test_latest_slot_wait() -> None:
    slot: LatestSlot[int] = LatestSlot()
    assert slot.wait(0) is False
    slot.put(7)
    assert slot.wait(0) is True
    assert slot.take() == 7
    slot.close()
    assert slot.closed
    assert slot.wait(0) is True  # closed wakes waiters even when empty
    assert slot.take() is None


# --- GrabberThread ----------------------------------------------------------


def test_grabber_stamps_and_numbers_frames_then_reports_stop() -> None:
    clock = ReplayClock(1_000)
    images = [np.full((4, 4, 3), i, np.uint8) for i in range(3)]
    gate = threading.Semaphore(0)

    def grab():
        gate.acquire()
        return images.pop(0) if images else None

    g = GrabberThread(grab, clock, max_none=1, none_error="camera stopped delivering").start()
    got = []
    for t in (1_000, 2_000, 3_000):
        clock.set(t)
        gate.release()
        assert g.slot.wait(TIMEOUT)
        got.append(g.slot.take())
    assert [f.seq for f in got] == [0, 1, 2]
    assert [f.t_ns for f in got] == [1_000, 2_000, 3_000]
    assert [int(f.image[0, 0, 0]) for f in got] == [0, 1, 2]
    assert g.error is None
    gate.release()
    assert g.slot.wait(TIMEOUT)
    assert g.error == "camera stopped delivering"
    g.close()


def test_grabber_exception_sets_error() -> None:
    def grab():
        raise OSError("device unplugged")

    g = GrabberThread(grab, MonotonicClock()).start()
    assert g.slot.wait(TIMEOUT)
    assert g.error == "camera error: device unplugged"
    assert g.slot.take() is None
    g.close()


# --- OpenCVSource -----------------------------------------------------------


def test_file_source_delivers_frames_then_end_of_video(small_video: Path) -> None:
    with OpenCVSource(str(small_video), MonotonicClock(), realtime_file=False) as src:
        assert isinstance(src, FrameSource)
        assert (src.width, src.height) == (64, 48)
        frames = _drain(src)
        assert src.error == "end of video"
        assert frames, "no frame delivered"
        seqs = [f.seq for f in frames]
        assert seqs == sorted(set(seqs)) and seqs[-1] <= 14
        # Newest wins: every frame delivered or counted as dropped, none invented.
        assert len(frames) + src.dropped == 15
        ts = [f.t_ns for f in frames]
        assert ts == sorted(ts)
        last = frames[-1]
        assert last.image.shape == (48, 64, 3) and last.image.dtype == np.uint8
        assert abs(int(last.image[40, 10, 0]) - int(_pattern(last.seq)[40, 10, 0])) < 12
        assert src.latest() is None


def test_file_source_realtime_paced_still_delivers(tmp_path: Path) -> None:
    # A 500 fps file keeps the test quick; the pacing path itself is what is exercised.
    fast = _write_video(tmp_path / "fast.avi", 500.0)
    # The camera's requests (size, rate) do not apply to a file: it keeps its own.
    with OpenCVSource(str(fast), ReplayClock(5), width=640, height=360, fps=15, realtime_file=True) as src:
        assert (src.width, src.height, src.fps) == (64, 48, 500.0)
        frames = _drain(src)
    assert src.error == "end of video"
    assert frames and all(f.t_ns == 5 for f in frames)


def test_file_source_rotate_180(small_video: Path) -> None:
    plain = OpenCVSource(str(small_video), MonotonicClock(), realtime_file=False)
    rotated = OpenCVSource(str(small_video), MonotonicClock(), realtime_file=False, rotate_180=True)
    try:
        a = _drain(plain)[-1]
        b = _drain(rotated)[-1]
        assert a.seq == b.seq == 14  # the last frame is always delivered (nothing newer replaces it)
        assert np.array_equal(cv2.rotate(a.image, cv2.ROTATE_180), b.image)
        assert not np.array_equal(a.image, b.image)
    finally:
        plain.close()
        rotated.close()


def test_close_is_idempotent(small_video: Path) -> None:
    src = OpenCVSource(str(small_video), MonotonicClock(), realtime_file=True)
    src.close()
    src.close()


def test_missing_file_is_camera_error(tmp_path: Path) -> None:
    with pytest.raises(CameraError, match="video file not found: .*nope.avi"):
        OpenCVSource(str(tmp_path / "nope.avi"), MonotonicClock())


def test_unreadable_file_is_camera_error(tmp_path: Path) -> None:
    bad = tmp_path / "notes.avi"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(CameraError, match="cannot read video file .*notes.avi"):
        OpenCVSource(str(bad), MonotonicClock())
    with pytest.raises(CameraError, match="not a video file"):
        OpenCVSource(str(tmp_path), MonotonicClock())


def test_bad_webcam_index_is_camera_error() -> None:
    with pytest.raises(CameraError, match="no camera at webcam index 97"):
        OpenCVSource(97, MonotonicClock())
    with pytest.raises(CameraError, match="0 or more"):
        OpenCVSource(-1, MonotonicClock())


# --- Picamera2Source --------------------------------------------------------


def test_picamera2_missing_gives_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # makes `import picamera2` fail
    with pytest.raises(CameraError) as info:
        Picamera2Source(MonotonicClock(), width=640, height=480, fps=15)
    assert str(info.value) == PICAMERA2_MISSING


class _FakePicamera2:
    """Stands in for picamera2.Picamera2: records calls; frames are released one by one."""

    instances: ClassVar[list[_FakePicamera2]] = []
    fail_open = False

    def __init__(self, camera_num: int = 0) -> None:
        if self.fail_open:
            raise RuntimeError("Camera(s) not found")
        self.camera_num = camera_num
        self.calls: list[str] = []
        self.gate = threading.Semaphore(0)
        self.free_run = threading.Event()
        self.n = 0
        self.config: dict | None = None
        _FakePicamera2.instances.append(self)

    def create_video_configuration(self, **kwargs):
        self.calls.append("create_video_configuration")
        self.video_kwargs = kwargs
        return {"use_case": "video", **kwargs}

    def configure(self, config):
        self.calls.append("configure")
        self.config = config

    def camera_configuration(self):
        return self.config

    def start(self):
        self.calls.append("start")

    def capture_array(self, name="main"):
        assert name == "main"
        if not self.free_run.is_set() and not self.gate.acquire(timeout=TIMEOUT):
            raise RuntimeError("test never released a frame")
        w, h = self.config["main"]["size"]
        img = np.zeros((h, w, 3), np.uint8)
        img[:, : w // 2] = self.n % 256  # left half carries the frame number
        self.n += 1
        return img

    def run_free(self) -> None:
        """Deliver frames without waiting from now on (also wakes a capture already waiting)."""
        self.free_run.set()
        self.gate.release()

    def stop(self):
        self.calls.append("stop")

    def close(self):
        self.calls.append("close")


@pytest.fixture
def fake_picamera2(monkeypatch: pytest.MonkeyPatch):
    mod = types.ModuleType("picamera2")
    mod.Picamera2 = _FakePicamera2  # type: ignore[attr-defined]
    _FakePicamera2.instances = []
    _FakePicamera2.fail_open = False
    monkeypatch.setitem(sys.modules, "picamera2", mod)
    return _FakePicamera2


def test_picamera2_configures_and_frames_flow(fake_picamera2) -> None:
    clock = ReplayClock(0)
    src = Picamera2Source(clock, width=640, height=480, fps=15)
    cam = fake_picamera2.instances[0]
    try:
        assert cam.calls == ["create_video_configuration", "configure", "start"]
        kw = cam.video_kwargs
        assert kw["main"] == {"size": (640, 480), "format": "RGB888"}
        assert kw["controls"] == {"FrameDurationLimits": (66667, 66667)}
        assert 2 <= kw["buffer_count"] <= 4
        assert kw["queue"] is False
        assert (src.width, src.height) == (640, 480)
        assert src.latest() is None and src.error is None
        for i, t in enumerate((10, 20)):
            clock.set(t)
            cam.gate.release()
            assert src.wait(TIMEOUT)
            f = src.latest()
            assert f is not None
            assert (f.seq, f.t_ns, f.image.shape, int(f.image[0, 0, 0])) == (i, t, (480, 640, 3), i)
    finally:
        cam.run_free()
        src.close()
    assert cam.calls[-2:] == ["stop", "close"]
    src.close()
    assert cam.calls.count("close") == 1


def test_picamera2_rotate_180(fake_picamera2) -> None:
    src = Picamera2Source(MonotonicClock(), width=64, height=48, fps=30, rotate_180=True)
    cam = fake_picamera2.instances[0]
    try:
        for _ in range(2):  # frame 0 is all black: frame 1's marked left half shows the rotation
            cam.gate.release()
            assert src.wait(TIMEOUT)
            f = src.latest()
            assert f is not None
        assert f.seq == 1
        assert f.image[0, -1, 0] == 1 and f.image[0, 0, 0] == 0  # the marked half moved to the right
    finally:
        cam.run_free()
        src.close()


def test_picamera2_no_camera_is_camera_error(fake_picamera2) -> None:
    fake_picamera2.fail_open = True
    with pytest.raises(CameraError, match="no Raspberry Pi camera 0 .*Camera\\(s\\) not found"):
        Picamera2Source(MonotonicClock(), width=640, height=480, fps=15)


def test_a_capture_still_grabbing_at_close_is_not_released_under_it() -> None:
    """close() released the capture even when its thread was still inside a
    grab past the bound (a loaded machine): freed under the reader, and a
    thread left in OpenCV at exit (issue 23, the native abort)."""
    from device.sensing.camera import GrabberThread, _ThreadedSource

    inside, leave = threading.Event(), threading.Event()
    released: list[bool] = []

    def grab():
        inside.set()
        leave.wait(30)
        return None

    class Stuck(_ThreadedSource):
        def __init__(self) -> None:
            self._grabber = GrabberThread(grab, MonotonicClock(), name="stuck").start()

        def _release(self) -> None:
            released.append(True)

    src = Stuck()
    assert inside.wait(10)
    src._grabber.close = lambda timeout=0.1: GrabberThread.close(src._grabber, timeout)  # type: ignore[method-assign]
    src.close()
    assert released == []
    leave.set()
    src._grabber._thread.join(10)
