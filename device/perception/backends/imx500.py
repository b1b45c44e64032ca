"""The AI Camera (IMX500): a camera whose frames arrive with detections.

The network runs on the sensor; each completed request carries the frame
and, in its metadata, the network's output for it (`CnnOutputTensor`). So
this backend owns the camera: `Imx500Source` is a `FrameSource` (frames
in, as `Picamera2Source`), and `AttachedDetector` is the `Detector` that
hands back the detections that came with the very image it is given,
decoded and mapped to the frame by `imx500_decode` (what picamera2's
`imx500_object_detection_demo.py` does with `get_outputs` and
`convert_inference_coords`).

picamera2 is imported lazily, or injected (`devices`, `picamera2_cls`) so
tests drive the wiring with fakes.

A frame whose request lacks the output tensor (the network's result
dropped) gets the previous frame's detections, as the vendor demo keeps its
`last_detections`; `max_missing` such frames in a row is a failure
(`BackendError`), which `FallbackDetector` turns into a fault and a switch
to the CPU model on the same frames.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from device.core.clock import Clock
from device.core.faults import Kind
from device.core.types import Detections
from device.sensing.camera import GrabberThread, _ThreadedSource

from .choose import IMX500_DEFAULT_MODEL
from .fallback import BackendError
from .imx500_decode import Geometry, PpLayout, TensorLayoutError, coco80_map, decode_pp, detections, unpack_outputs

KEEP = 8  # frames whose detections are kept for the detector thread to collect


def _rect(r: Any) -> tuple[int, int, int, int]:
    """A libcamera Rectangle (or a 4-tuple) as (x, y, w, h)."""
    if hasattr(r, "to_tuple"):
        r = r.to_tuple()
    elif hasattr(r, "width"):
        r = (r.x, r.y, r.width, r.height)
    x, y, w, h = (int(v) for v in r)
    return x, y, w, h


class Imx500Source(_ThreadedSource):
    """Frames from the AI Camera, each with the detections its network made."""

    BUFFER_COUNT = 4

    def __init__(
        self,
        clock: Clock,
        *,
        width: int,
        height: int,
        fps: float,
        model_path: str | None = None,
        threshold: float = 0.35,
        allowed: Sequence[int] | None = None,
        coco80: Sequence[str] = (),
        rotate_180: bool = False,
        devices: Any = None,
        picamera2_cls: Any = None,
        start: bool = True,
    ) -> None:
        path = model_path or IMX500_DEFAULT_MODEL
        try:
            if devices is None or picamera2_cls is None:
                from picamera2 import Picamera2
                from picamera2 import devices as picamera2_devices
                devices = devices or picamera2_devices
                picamera2_cls = picamera2_cls or Picamera2
        except ImportError as err:
            raise BackendError(f"picamera2 with IMX500 support is not installed ({err})", Kind.UNAVAILABLE) from None
        try:
            # Must come before Picamera2 is made: it uploads the network firmware.
            self._imx = devices.IMX500(path)
        except Exception as err:  # no sensor node, the file missing, the upload refused: all RuntimeError there
            raise BackendError(f"cannot load {path} onto the AI Camera: {err}", Kind.UNAVAILABLE) from None
        intr = getattr(self._imx, "network_intrinsics", None)
        task = getattr(intr, "task", None) if intr is not None else None
        if task not in (None, "object detection"):
            raise BackendError(f"{path} is a {task} network, not object detection", Kind.UNAVAILABLE)
        self._layout = PpLayout(
            bbox_order=getattr(intr, "bbox_order", None) or "yx",
            bbox_normalization=bool(getattr(intr, "bbox_normalization", None)),
            input_height=self._input_height(),
        )
        labels = getattr(intr, "labels", None)
        self._class_map = (coco80_map(labels, bool(getattr(intr, "ignore_dash_labels", None)), coco80)
                           if labels and coco80 else None)
        self._threshold = threshold
        self._allowed = None if allowed is None else tuple(allowed)
        self._rotate = rotate_180
        try:
            cam = picamera2_cls(getattr(self._imx, "camera_num", 0))
        except Exception as err:
            raise BackendError(f"the AI Camera did not open: {err}", Kind.UNAVAILABLE) from None
        self._cam = cam
        try:
            config = cam.create_video_configuration(
                main={"size": (width, height), "format": "RGB888"},
                buffer_count=self.BUFFER_COUNT,
                controls={"FrameRate": fps},
                queue=False,
            )
            cam.configure(config)
            cfg = cam.camera_configuration()
            self.width, self.height = (int(v) for v in cfg["main"]["size"])
            self._sensor = tuple(int(v) for v in cfg["raw"]["size"])
            cam.start()
            if getattr(intr, "preserve_aspect_ratio", None):
                self._imx.set_auto_aspect_ratio()
        except Exception as err:
            cam.close()
            raise BackendError(f"cannot start the AI Camera at {width}x{height} {fps} fps: {err}",
                               Kind.UNAVAILABLE) from None
        self.fps = fps
        self._lock = threading.Lock()
        self._attached: OrderedDict[int, tuple[np.ndarray, Detections | None]] = OrderedDict()
        self.missing = 0  # frames that came without the network's output, in all
        self._grabber = GrabberThread(self._capture, clock, name="imx500")
        if start:
            self._grabber.start()

    def _input_height(self) -> int:
        try:
            return int(self._imx.get_input_size()[1])
        except Exception:  # only boxes in input pixels need it; 416 is NanoDet-Plus's
            return 416

    def geometry(self, metadata: dict[str, Any]) -> Geometry:
        roi = self._imx.config.get("roi") if isinstance(getattr(self._imx, "config", None), dict) else None
        return Geometry(
            isp_output=(self.width, self.height),
            sensor_output=(int(self._sensor[0]), int(self._sensor[1])),
            scaler_crop=_rect(metadata["ScalerCrop"]),
            roi=_rect(roi) if roi is not None else (0, 0, 0, 0),
        )

    def decode(self, metadata: dict[str, Any]) -> Detections | None:
        """The detections in one request's metadata, in the main stream's
        pixels; None when the request carries no output tensor."""
        flat = metadata.get("CnnOutputTensor")
        if not flat or "ScalerCrop" not in metadata:
            return None
        shapes = self._imx.get_output_shapes(metadata)
        if not shapes:
            return None
        outputs = unpack_outputs(flat, shapes)
        boxes, scores, classes = decode_pp(outputs, self._layout, self._threshold)
        return detections(boxes, scores, classes, self.geometry(metadata), self._class_map, self._allowed)

    def capture(self) -> tuple[np.ndarray, Detections | None] | None:
        """One request: its BGR image and its detections (None: no tensor)."""
        request = self._cam.capture_request()
        if request is None:
            return None
        try:
            image = request.make_array("main")
            metadata = request.get_metadata()
        finally:
            request.release()
        if image is None:
            return None
        if image.ndim == 3 and image.shape[2] == 4:  # XBGR8888: drop the padding byte
            image = np.ascontiguousarray(image[:, :, :3])
        try:
            dets = self.decode(metadata)
        except TensorLayoutError as err:
            raise BackendError(f"the AI Camera's output does not fit the network's layout: {err}") from None
        if self._rotate:
            image = cv2.rotate(image, cv2.ROTATE_180)
            if dets is not None and len(dets):
                h, w = image.shape[:2]
                x = dets.xyxy
                flipped = np.stack([w - x[:, 2], h - x[:, 3], w - x[:, 0], h - x[:, 1]], axis=1)
                dets = Detections(flipped.astype(np.float32), dets.confidence, dets.class_id)
        return image, dets

    def _capture(self) -> np.ndarray | None:
        got = self.capture()
        if got is None:
            return None
        image, dets = got
        self.attach(image, dets)
        return image

    def attach(self, image: np.ndarray, dets: Detections | None) -> None:
        """Keep `dets` for `image` until the detector collects them (the last KEEP frames)."""
        with self._lock:
            if dets is None:
                self.missing += 1
            # Keyed by id(); the entry holds the image, so the id cannot be reused while it is kept.
            self._attached[id(image)] = (image, dets)
            while len(self._attached) > KEEP:
                self._attached.popitem(last=False)

    def detections_for(self, image: np.ndarray) -> tuple[bool, Detections | None]:
        """(known, detections) for an image this source delivered."""
        with self._lock:
            entry = self._attached.get(id(image))
        if entry is None or entry[0] is not image:
            return False, None
        return True, entry[1]

    def _release(self) -> None:
        try:
            self._cam.stop()
        finally:
            self._cam.close()


class AttachedDetector:
    """The `Detector` for an `Imx500Source`'s frames: no inference, only the
    detections that arrived with the image."""

    def __init__(self, source: Imx500Source, max_missing: int = 15, max_waiting: int = 3600) -> None:
        self.max_missing = max_missing  # ~0.5-0.7 s at 23-30 frames/s
        # Frames come before the network's first output while its firmware is
        # still being uploaded to the sensor (picamera2 shows a progress bar
        # for it; a first upload is said to take minutes): that is no failure
        # until ~2 min at 30 frames/s. Not measured here: no hardware.
        self.max_waiting = max_waiting
        self.follow(source)

    def follow(self, source: Imx500Source) -> None:
        """Detect on `source`'s frames from now on (the AI Camera reopened: its network uploads again)."""
        self.source = source
        self._last = Detections.empty()
        self._missing_run = 0
        self._started = False  # the network has sent an output

    def detect(self, image: np.ndarray) -> Detections:
        known, dets = self.source.detections_for(image)
        if not known:
            raise BackendError("a frame that did not come from the AI Camera (or came too long ago)")
        if dets is None:
            self._missing_run += 1
            if self._missing_run >= (self.max_missing if self._started else self.max_waiting):
                raise BackendError(f"no network output with the last {self._missing_run} frames" if self._started
                                   else f"no network output in the first {self._missing_run} frames")
            return self._last
        self._missing_run = 0
        self._started = True
        self._last = dets
        return dets

    def close(self) -> None:
        pass  # the source owns the camera; the composition root closes it
