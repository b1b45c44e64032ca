"""The composition root: a late camera is opened by the camera path's own thread,
typed faults drive decisions, and the parts are built from the config."""

from __future__ import annotations

import numpy as np
import pytest

from device.app import compose
from device.camera_path import ThreadedRunner
from device.core.clock import ReplayClock
from device.core.config import Config
from device.core.faults import Fault, Kind, Part, texts
from device.core.types import Frame
from device.pipeline import Pipeline
from device.sensing.simulated import mock_factory
from device.sensing.ultrasonic import RecordedRanges
from fakes import LateCamera, NoDetections, SlotFrames, inline_camera, wait_until

CFG = Config()


class Frames(SlotFrames):
    """A test-fed camera that may report the end of its video."""

    def __init__(self, ended: bool = False) -> None:
        super().__init__()
        self.error = "end of video" if ended else None
        self.ended = ended


def pipeline(clock: ReplayClock, camera=None) -> tuple[Pipeline, object]:
    from device.output.alerts import Alerter

    alerter = Alerter(CFG.outputs, pin_factory=mock_factory())
    return Pipeline(CFG, clock, RecordedRanges([]), alerter, camera), alerter



def test_a_camera_that_comes_up_late_is_opened_off_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    clock = ReplayClock(0)
    late = LateCamera(Frames)  # the first attempt fails, the retry finds it
    opened = late.opened
    monkeypatch.setattr(compose, "open_camera", late)
    monkeypatch.setattr(compose, "CAMERA_RETRY_S", 0.05)
    camera = compose.live_camera(CFG, "pi", clock, NoDetections(), None)
    assert camera.unavailable() == (Fault(Part.CAMERA, Kind.UNAVAILABLE, "no camera on the ribbon"),)
    assert str(camera.unavailable()[0]) == "camera: no camera on the ribbon"  # the text as before
    pipe, alerter = pipeline(clock, camera)
    try:
        assert texts(pipe.step().faults) == ("camera: no camera on the ribbon",)
        assert not opened  # the loop's pass opened nothing
        camera.start()
        assert wait_until(lambda: len(opened) == 1)
        assert late.attempts == 2
        opener = [t for t in threading.enumerate() if t.name == "rearguard-frames"]
        assert opener, "the retry runs in the camera path's frames thread"
        assert wait_until(lambda: camera.faults(clock.now_ns()) == ())
        assert pipe.step().faults == ()
        # looming comes in with the camera, on its own thread beside the detector
        runner = camera.runner
        assert isinstance(runner, ThreadedRunner) and [s.slot for s in runner._stages] == ["camera", "looming"]
    finally:
        camera.close()  # its threads and its frames
        alerter.close()  # type: ignore[attr-defined]
    assert opened[0].closed


def test_an_ended_file_is_typed() -> None:
    clock = ReplayClock(0)
    ended = inline_camera(Frames(ended=True), compose.camera_stage(NoDetections(), CFG), clock)
    pipe, alerter = pipeline(clock, ended)
    try:
        [fault] = ended.faults(clock.now_ns())
        assert (fault.part, fault.kind) == (Part.CAMERA, Kind.ENDED) and ended.ended
        assert texts(pipe.step().faults) == ("camera: end of video",)
    finally:
        alerter.close()  # type: ignore[attr-defined]


def test_the_stage_geometry_is_the_configured_camera() -> None:
    cam = CFG.camera.model_copy(update={"mount_height_m": 0.9, "pitch_deg": 7.0})
    stage = compose.camera_stage(NoDetections(), CFG.model_copy(update={"camera": cam}))
    stage.process(Frame(0, 0, np.zeros((120, 160, 3), np.uint8)))
    g = stage._geometry
    assert g is not None and (g.width, g.height, g.hfov_deg, g.mount_height_m, g.pitch_deg) == (
        160, 120, cam.hfov_deg, 0.9, 7.0)
