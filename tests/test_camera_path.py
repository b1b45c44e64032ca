"""The camera path on the device: the camera is opened and reopened by its
own frames thread, never on the loop's pass, including a camera that dies
mid-run and comes back."""

from __future__ import annotations

import threading

from gpiozero.pins.mock import MockFactory, MockPWMPin

from device.camera_path import CameraPath, DetectStage, ThreadedRunner
from device.core.clock import ReplayClock
from device.core.config import Config
from device.core.faults import Fault, Kind, Part, texts
from device.core.types import Frame
from device.output.alerts import Alerter
from device.pipeline import Pipeline
from device.sensing.ultrasonic import RecordedRanges
from fakes import NoDetections, SlotFrames, wait_until

CFG = Config()


class FailsAfter(SlotFrames):
    """A camera that delivers `n` frames and then dies (its driver reports an error)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.left = n

    def latest(self) -> Frame | None:
        frame = super().latest()
        if frame is not None:
            self.left -= 1
            if self.left == 0:
                self.error = "camera stopped delivering"
        return frame



def test_a_camera_that_dies_mid_run_is_reopened_off_the_loop() -> None:
    clock = ReplayClock(0)
    first = FailsAfter(3)
    second = SlotFrames()
    allow = threading.Event()  # the reopen blocks (a slow driver) until the test lets it through
    calls: list[str] = []

    def opener() -> SlotFrames:
        calls.append(threading.current_thread().name)
        assert allow.wait(10)
        return second

    runner = ThreadedRunner(first, DetectStage(NoDetections(), CFG.camera), opener=opener, retry_s=0.01)
    camera = CameraPath(runner, clock, CFG.camera.max_age_s)
    alerter = Alerter(CFG.outputs, pin_factory=MockFactory(pin_class=MockPWMPin))
    pipe = Pipeline(CFG, clock, RecordedRanges([]), alerter, camera)
    camera.start()
    try:
        for seq in range(3):
            first.put(0, seq)
            assert wait_until(lambda seq=seq: (r := camera.poll().camera) is not None and r.seq == seq)
        # It died after its third frame: a typed fault, and the loop goes on
        # passing while the frames thread is stuck in the reopen.
        assert wait_until(lambda: bool(calls))
        assert camera.faults(0) == (Fault(Part.CAMERA, Kind.FAILED, "camera stopped delivering"),)
        assert texts(pipe.step().faults) == ("camera: camera stopped delivering",)
        assert calls == ["rearguard-frames"] and first.closed
        allow.set()
        assert wait_until(lambda: camera.faults(0) == ())
        assert pipe.step().faults == ()
        second.put(0, 100)  # the new camera's frames reach the detector
        assert wait_until(lambda: (r := camera.poll().camera) is not None and r.seq == 100)
        assert runner.generation == 2
    finally:
        allow.set()
        camera.close()
        alerter.close()
    assert second.closed


def test_a_video_file_that_ends_is_not_reopened() -> None:
    clock = ReplayClock(0)
    src = FailsAfter(1)
    src.ended = True  # type: ignore[attr-defined]
    runner = ThreadedRunner(src, DetectStage(NoDetections(), CFG.camera))  # no opener: a file
    camera = CameraPath(runner, clock, CFG.camera.max_age_s)
    camera.start()
    try:
        src.put(0, 0)
        assert wait_until(lambda: camera.faults(0) != ())
        [fault] = camera.faults(0)
        assert (fault.part, fault.kind) == (Part.CAMERA, Kind.ENDED) and camera.ended
        assert runner.generation == 1 and not src.closed
    finally:
        camera.close()
    assert src.closed


def test_the_detect_stage_takes_the_detectors_box_offset_off_before_the_fit() -> None:
    # A YOLOX-Nano at the built-in 416 letterbox draws each box BOX_OFFSET_INPUT_PX
    # input px (1.69 px of a 640x360 frame) taller than its object (measured:
    # scripts/box_offset.py). A person closing at 6.5 m/s from 22 m: the stage's
    # time to collision is the true one, not the 3-4 % longer a fit on the raw
    # heights reads.
    import numpy as np
    import pytest

    from device.core.types import Detections

    offset = 1.1 * 640 / 416
    d0, v, f = 22.0, 6.5, 480.0

    class Yolox416:
        input_width, input_height, fill = 416, 416, "letterbox"

        def __init__(self) -> None:
            self.t = 0.0

        def detect(self, image: np.ndarray) -> Detections:
            d = d0 - v * self.t
            h, w = f * 1.7 / d, f * 0.5 / d
            bottom = 180 + f * 1.1 / d
            box = (320 - w / 2, bottom - h - offset, 320 + w / 2, bottom)
            return Detections(np.array([box], np.float32), np.array([0.9], np.float32), np.array([0], np.int32))

        def close(self) -> None:
            pass

    det = Yolox416()
    stage = DetectStage(det, CFG.camera)
    image = np.zeros((360, 640, 3), np.uint8)
    for i in range(16):  # 1 s at 15 fps
        det.t = i / 15
        result = stage.process(Frame(i, round(det.t * 1e9), image))
    (track,) = result.tracks
    assert track.ttc_measure == "height"
    assert track.ttc_s == pytest.approx((d0 - v) / v, rel=0.01)  # 2.38 s
