"""The AI Kit / AI HAT+ (Hailo-8L / Hailo-8) through picamera2's `Hailo`.

Frames are handed to it: ideally the camera's lores stream configured at the
network's input size (picamera2's examples/hailo/detect.py), so the ISP does
the scaling; any other size is resized here (a stretch, as the lores stream
is: no letterbox). Our frames are BGR; the networks take RGB. The output is
HailoRT's on-chip NMS, decoded by `hailo_decode`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from device.core.faults import Kind
from device.core.types import Detections

from .choose import HAILO_DEFAULT_MODEL
from .fallback import BackendError
from .hailo_decode import decode_nms_by_class
from .imx500_decode import TensorLayoutError


class HailoDetector:
    def __init__(self, model_path: str | None = None, *, threshold: float = 0.35,
                 allowed: Sequence[int] | None = None, devices: Any = None) -> None:
        path = model_path or HAILO_DEFAULT_MODEL
        try:
            if devices is None:
                from picamera2 import devices as picamera2_devices
                devices = picamera2_devices
            hailo_cls = devices.Hailo
        except (ImportError, AttributeError) as err:
            raise BackendError(f"picamera2 with Hailo support is not installed ({err})", Kind.UNAVAILABLE) from None
        try:
            self._hailo = hailo_cls(path)
            h, w, _ = self._hailo.get_input_shape()
        except Exception as err:  # no /dev/hailo0, a .hef for another chip, a driver/firmware mismatch
            raise BackendError(f"cannot load {path} on the Hailo: {err}", Kind.UNAVAILABLE) from None
        self.input_size = (int(w), int(h))
        self.threshold = threshold
        self.allowed = None if allowed is None else tuple(allowed)
        self._closed = False

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """The network input for a BGR frame: RGB at the network's size."""
        w, h = self.input_size
        if image.shape[1] != w or image.shape[0] != h:
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def detect(self, image: np.ndarray) -> Detections:
        if self._closed:
            raise RuntimeError("detector is closed")
        try:
            out = self._hailo.run(self.prepare(image))
        except Exception as err:
            raise BackendError(f"Hailo.run failed: {err}") from None
        try:
            return decode_nms_by_class(out, image.shape[1], image.shape[0], self.threshold, self.allowed)
        except TensorLayoutError as err:
            raise BackendError(f"the Hailo's output is not per-class NMS ({err}); is this an NMS .hef?") from None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._hailo.close()
