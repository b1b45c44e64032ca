"""The AI Kit / AI HAT+'s (Hailo-8L / Hailo-8) output, decoded: pure functions.

The detection networks Raspberry Pi OS ships (`hailo-models`) and the Hailo
model zoo's NMS-terminated .hef files end in HailoRT's on-chip NMS. With
picamera2's `Hailo` (picamera2/devices/hailo/hailo.py, FLOAT32 outputs) one
`run(frame)` returns, per class, a list of detections, each
[y_min, x_min, y_max, x_max, score] normalised to [0, 1] of the network's
input: the layout picamera2's examples/hailo/detect.py reads in
`extract_detections`, which multiplies x by the frame's width and y by its
height. The input is the lores stream, which the ISP scales from the same
field of view as the main stream, so normalised input coordinates are
normalised frame coordinates.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from device.core.types import Detections

from .imx500_decode import TensorLayoutError


def decode_nms_by_class(output: Sequence[Sequence[Sequence[float]] | np.ndarray], width: int, height: int,
                        threshold: float, allowed: Sequence[int] | None = None,
                        class_map: np.ndarray | None = None) -> Detections:
    """Detections in a width x height frame from `Hailo.run`'s NMS output
    (index = class id). Scores >= threshold, as detect.py keeps them."""
    boxes: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    ids: list[np.ndarray] = []
    for cid, dets in enumerate(output):
        arr = np.asarray(dets, np.float32)
        if arr.size == 0:
            continue
        if arr.ndim != 2 or arr.shape[1] != 5:
            raise TensorLayoutError(f"class {cid}: detections of shape {arr.shape}; expected (k, 5) "
                                    "[y_min, x_min, y_max, x_max, score]")
        keep = arr[:, 4] >= threshold
        if keep.any():
            arr = arr[keep]
            boxes.append(arr[:, [1, 0, 3, 2]] * np.array([width, height, width, height], np.float32))
            scores.append(arr[:, 4])
            mapped = cid if class_map is None else (int(class_map[cid]) if cid < len(class_map) else -1)
            ids.append(np.full(len(arr), mapped, np.int32))
    if not boxes:
        return Detections.empty()
    xyxy = np.concatenate(boxes)
    np.clip(xyxy, 0, [width, height, width, height], out=xyxy)
    cls = np.concatenate(ids)
    det = Detections(xyxy=xyxy, confidence=np.concatenate(scores), class_id=cls)
    keep = (cls >= 0) & (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
    if allowed is not None:
        keep &= np.isin(cls, np.asarray(list(allowed), np.int32))
    return det if keep.all() else det[keep]
