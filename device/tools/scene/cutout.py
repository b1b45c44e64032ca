"""Real objects from photos, cut out of their detector box with GrabCut.

The box (found once by YOLOX-Nano on the shared COCO photos, written into
the suite) seeds GrabCut: outside the box is background, inside probably
foreground. The cut-out is the box's crop with an alpha mask; the renderer
stands it upright at the class's true height.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

GRABCUT_ITERATIONS = 4
MARGIN = 0.12  # of the box size: background seeds around it
MIN_COVER = 0.15  # an object covers at least this much of its box, else GrabCut has failed


class CutoutError(Exception):
    pass


@lru_cache(maxsize=16)  # GrabCut takes a while; scenes share photos
def cut_out(path: Path, box: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(crop, alpha) of the object inside `box` (x1, y1, x2, y2) in the photo.
    The crop is the box itself: its bottom is where the object stands.
    The arrays are shared between callers: never write to them."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise CutoutError(f"cannot read photo {path}")
    h, w = img.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if x2 - x1 < 8 or y2 - y1 < 8:
        raise CutoutError(f"{path.name}: box {box} is too small to cut out")
    mx, my = int(MARGIN * (x2 - x1)) + 4, int(MARGIN * (y2 - y1)) + 4
    cx1, cy1, cx2, cy2 = max(x1 - mx, 0), max(y1 - my, 0), min(x2 + mx, w), min(y2 + my, h)
    roi = img[cy1:cy2, cx1:cx2]
    mask = np.zeros(roi.shape[:2], np.uint8)
    rect = (x1 - cx1, y1 - cy1, x2 - x1, y2 - y1)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(roi, mask, rect, bgd, fgd, GRABCUT_ITERATIONS, cv2.GC_INIT_WITH_RECT)
    fg8 = np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
    # Keep the largest blob only (GrabCut leaves specks of background).
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg8, connectivity=8)
    if n <= 1:
        raise CutoutError(f"{path.name}: GrabCut found nothing inside {box}")
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    fg = (labels == biggest).astype(np.float32)
    fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    crop = roi[rect[1]:rect[1] + rect[3], rect[0]:rect[0] + rect[2]].copy()
    alpha = fg[rect[1]:rect[1] + rect[3], rect[0]:rect[0] + rect[2]]
    cover = float((alpha >= 0.5).mean())
    if cover < MIN_COVER:  # an invisible obstacle would be a scene that lies
        raise CutoutError(f"{path.name}: GrabCut kept only {cover:.0%} of box {box}; choose another box or photo")
    return crop, alpha
