"""What the camera path runs on a frame: one stage each, independent of how
it is run (`device.camera_path.runners`).

A stage has a `slot` (the field of `Seen` its results fill), a thread name
for when it runs in a thread of its own, and `process(frame)`. The first
stage of a path is its main one (detect, or frames-only with no model): the
frames it takes are the ones watched for a stall or a frozen image and
recorded. Any further stage (looming) sees every frame at its own pace.

A stage that follows the detector's tracks (flow) has `see_camera(result)`:
the runner hands it each camera result when the loop would have it (inline:
at once; threaded: when the inference ends; paced: when its latency is up).

Adding a stage: a class here, a field of `Seen` for its results, and the
line in `Pipeline.step` that hands them to the decision.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Any, Protocol

from device.camera_path.distance import CameraDistances
from device.core.camera import CameraResult
from device.core.config import CameraConfig
from device.core.faults import Part
from device.core.ports import Detector
from device.core.types import Frame
from device.perception.ego import CameraMotion
from device.perception.flow import FlowEstimator, FlowResult
from device.perception.geometry import CameraGeometry
from device.perception.looming import LoomingEstimator, LoomingResult
from device.perception.motion import GroundTracks
from device.perception.tracking import IouTracker, box_offset_px


class Stage(Protocol):
    slot: str  # the field of `Seen` its results fill
    thread_name: str  # when it runs in a thread of its own
    part: Part  # the part a crash of its thread is a fault of
    crash_prefix: str  # the fault text is f"{crash_prefix}stopped: {error}"

    def process(self, frame: Frame) -> Any: ...


class MainStage(Stage, Protocol):
    def process(self, frame: Frame) -> CameraResult: ...


class DetectStage:
    """Detector, tracker, geometry and the decided distances for one frame."""

    slot = "camera"
    thread_name = "rearguard-detect"
    part = Part.CAMERA
    crash_prefix = "detector "

    def __init__(self, detector: Detector, camera: CameraConfig) -> None:
        self.detector = detector
        self.camera = camera
        self.tracker = IouTracker()
        self.ego = CameraMotion()
        self.distances = CameraDistances(camera)
        self.ground = GroundTracks()
        self._geometry: CameraGeometry | None = None

    def process(self, frame: Frame) -> CameraResult:
        h, w = frame.image.shape[:2]
        if self._geometry is None or (self._geometry.width, self._geometry.height) != (w, h):
            # The configured camera (mount height, pitch) at the frames' real size.
            self._geometry = CameraGeometry.for_camera(self.camera, w, h)
        t0 = time.perf_counter()  # measurement only; never steers a decision
        dets = self.detector.detect(frame.image)
        detect_ms = (time.perf_counter() - t0) * 1e3
        # The camera's own turn since the previous detection, from the background
        # (what the tracked boxes and these detections leave): the tracker moves
        # its boxes by it, so the sway does not rename a far object's track.
        boxes = [tr.box for tr in self.tracker.tracks] + [tuple(float(v) for v in b) for b in dets.xyxy]
        motion = self.ego.update(frame.image, boxes)  # type: ignore[arg-type]
        # A look-ahead result detected on the crop alone is at the crop's scale.
        crop = getattr(self.detector, "last_crop", None) if getattr(self.detector, "instead", False) else None
        tracks = self.tracker.update(frame.t_ns, dets, motion, box_offset_px(self.detector, w, h, crop))
        decided = self.distances.tracks(tracks, self._geometry, self.tracker.interval_ns())
        # Each track's ground position and velocity, filtered on the decided distances.
        # A box the frame's side cuts is no measurement: its centre stays pinned at
        # the edge while its object moves on, which reads as sideways motion into
        # the path (a man stood beside the track as the camera passes him, a car
        # overtaking: false crossings on the Market Street footage).
        geo = self._geometry
        states = self.ground.update(frame.t_ns, [
            (tr.track_id, tr.label, math.nan if geo.cut_at_side(tr.box) else tr.distance_m, tr.bearing_deg)
            for tr in decided])
        focal = self._geometry.focal_px
        decided = tuple(replace(tr, ground=states.get(tr.track_id),
                                half_width_m=tr.distance_m * (tr.box[2] - tr.box[0]) / (2 * focal))
                        for tr in decided)
        return CameraResult(
            t_ns=frame.t_ns,
            seq=frame.seq,
            tracks=decided,
            detect_ms=detect_ms,
            frame=frame,
            interval_ns=self.tracker.interval_ns(),
        )


class FramesOnlyStage:
    """No detector (the model is missing or broken): each frame still gives
    a result, with no tracks, so the camera is still watched (a stall or a
    frozen image is a fault), recorded and shown, and looming reads the
    same frames. No inference, no detect time."""

    slot = "camera"
    thread_name = "rearguard-camera-watch"
    part = Part.CAMERA
    crash_prefix = "frame reader "

    def process(self, frame: Frame) -> CameraResult:
        return CameraResult(t_ns=frame.t_ns, seq=frame.seq, tracks=(), frame=frame)


class LoomingStage:
    """Looming (any upright surface, no class) on every frame it is given."""

    slot = "looming"
    thread_name = "rearguard-looming"
    part = Part.LOOMING
    crash_prefix = ""

    def __init__(self, estimator: LoomingEstimator) -> None:
        self.estimator = estimator

    def process(self, frame: Frame) -> LoomingResult:
        return self.estimator.update(frame.t_ns, frame.seq, frame.image)


class FlowStage:
    """Each camera track's box followed by flow on every frame it is given
    (device.perception.flow), from the newest camera result handed to it."""

    slot = "flow"
    thread_name = "rearguard-flow"
    part = Part.CAMERA
    crash_prefix = "flow "

    def __init__(self, estimator: FlowEstimator) -> None:
        self.estimator = estimator
        # Set by the main stage's thread, read by this one: one reference,
        # swapped whole (a frozen result), so no lock is needed.
        self._camera: CameraResult | None = None

    def see_camera(self, result: CameraResult) -> None:
        self._camera = result

    def process(self, frame: Frame) -> FlowResult:
        return self.estimator.process(frame, self._camera)


def share_camera(sides: tuple[Stage, ...], result: CameraResult) -> None:
    """Hand a camera result to the stages that follow its tracks."""
    for stage in sides:
        see = getattr(stage, "see_camera", None)
        if see is not None:
            see(result)
