"""The CPU backend: YOLOX on onnxruntime (device.perception.detector), as configured."""

from __future__ import annotations

import os

from device.core.coco import class_id
from device.core.config import DetectorConfig
from device.perception.detector import YoloxDetector


def cpu_detector(model_path: str | os.PathLike[str], d: DetectorConfig) -> YoloxDetector:
    """The onnxruntime detector for `detector.*`; the model path already
    resolved (device.model_store.resolve, in the composition root)."""
    return YoloxDetector(
        model_path,
        input_size=d.input_size,
        score_threshold=d.score_threshold,
        nms_iou=d.nms_iou,
        class_ids=[class_id(c) for c in d.classes],
        threads=d.threads,
    )
