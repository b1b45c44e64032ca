"""The camera side of the device, from a frame source to the results the
loop takes: stages (what runs on a frame: `stages.py`) and runners (how:
inline, threaded, paced: `runners.py`) chosen independently, behind one
`CameraPath` (`path.py`) that the loop polls and asks for faults.
"""

from device.camera_path.path import NOTHING, CameraPath, ResultMeter, Seen
from device.camera_path.runners import (
    DetectorPace,
    InlineRunner,
    PacedRunner,
    Runner,
    ThreadedRunner,
    TimedFrameSource,
)
from device.camera_path.stages import DetectStage, FlowStage, FramesOnlyStage, LoomingStage, MainStage, Stage

__all__ = [
    "NOTHING", "CameraPath", "DetectStage", "DetectorPace", "FlowStage", "FramesOnlyStage", "InlineRunner", "LoomingStage",
    "MainStage", "PacedRunner", "ResultMeter", "Runner", "Seen", "Stage", "ThreadedRunner", "TimedFrameSource",
]
