"""A frame as a small grey image, the one input looming, the flow and the
camera's motion each follow corners on."""

from __future__ import annotations

import cv2
import numpy as np


def small_grey(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """`image` (BGR or grey) as a `width` x `height` grey image. Halved with
    the Gaussian pyramid while that stays at or above the target (cheap,
    alias-free), then one bilinear step to the exact size: INTER_AREA at a
    non-integer ratio costs as much as an inference, and an odd frame height
    (640x361 halves to 181 rows, not 180) must still give the size the
    caller's masks and scale assume (issue 23's cv2.error)."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    while grey.shape[1] >= 2 * width and grey.shape[0] >= 2 * height:
        grey = cv2.pyrDown(grey)
    if grey.shape[:2] != (height, width):
        grey = cv2.resize(grey, (width, height), interpolation=cv2.INTER_LINEAR)
    return grey
