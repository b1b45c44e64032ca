"""The composition root: a late camera is swapped in through the pipeline,
typed faults drive decisions, and the parts are built from the config."""

from __future__ import annotations

import numpy as np
import pytest

from device.app import compose
from device.core.clock import NS_PER_S, ReplayClock
from device.core.config import Config
from device.core.faults import Fault, Kind, Part
from device.core.types import Frame
from device.pipeline import InlineCamera, Pipeline
from device.sensing.simulated import mock_factory
from device.sensing.ultrasonic import RecordedRanges
from fakes import LateCamera, NoDetections, SlotFrames

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


def test_a_camera_that_comes_up_late_is_swapped_in(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = ReplayClock(0)
    late = LateCamera(Frames)  # the first attempt fails, the retry finds it
    opened = late.opened
    monkeypatch.setattr(compose, "open_camera", late)
    keeper = compose.CameraKeeper(CFG, "pi", clock, NoDetections(), None)
    assert keeper.faults() == (Fault(Part.CAMERA, Kind.UNAVAILABLE, "no camera on the ribbon"),)
    assert str(keeper.faults()[0]) == "camera: no camera on the ribbon"  # the text as before
    pipe, alerter = pipeline(clock, keeper.feed(keeper.frames))
    try:
        assert pipe.camera is None
        keeper.retry(pipe, clock.now_ns() + round(compose.CAMERA_RETRY_S * NS_PER_S) - 1)
        assert not opened  # not due yet
        keeper.retry(pipe, clock.now_ns() + round(compose.CAMERA_RETRY_S * NS_PER_S))
        assert len(opened) == 1 and pipe.camera is not None and keeper.faults() == ()
        # looming comes in with the camera, on its own branch of the new frames
        assert pipe.looming is not None and pipe.looming is keeper.looming
    finally:
        if pipe.camera is not None:
            pipe.camera.close()
        # Closing the camera's frames does not stop the looming thread (the
        # device closes both): left running, it polls its closed branch.
        if pipe.looming is not None:
            pipe.looming.close()
        alerter.close()  # type: ignore[attr-defined]
    assert opened[0].closed


def test_set_camera_returns_the_old_feed_and_an_ended_file_is_typed() -> None:
    clock = ReplayClock(0)
    first = InlineCamera(Frames(), compose.camera_stage(NoDetections(), CFG))
    pipe, alerter = pipeline(clock, first)
    try:
        ended = InlineCamera(Frames(ended=True), compose.camera_stage(NoDetections(), CFG))
        assert pipe.set_camera(ended) is first
        [fault] = pipe.camera_faults(clock.now_ns())
        assert (fault.part, fault.kind) == (Part.CAMERA, Kind.ENDED) and ended.ended
        assert pipe.step().faults == ("camera: end of video",)
    finally:
        alerter.close()  # type: ignore[attr-defined]


def test_the_stage_geometry_is_the_configured_camera() -> None:
    cam = CFG.camera.model_copy(update={"mount_height_m": 0.9, "pitch_deg": 7.0})
    stage = compose.camera_stage(NoDetections(), CFG.model_copy(update={"camera": cam}))
    stage.process(Frame(0, 0, np.zeros((120, 160, 3), np.uint8)))
    g = stage._geometry
    assert g is not None and (g.width, g.height, g.hfov_deg, g.mount_height_m, g.pitch_deg) == (
        160, 120, cam.hfov_deg, 0.9, 7.0)
