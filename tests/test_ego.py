"""The camera's own motion between detector frames, from the background
(device.perception.ego), and the tracker keeping one identity through the
runner's sway with it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from device.perception.ego import CameraMotion, moved
from device.perception.tracking import IouTracker
from fakes import dets, ns

W, H = 640, 360


def _texture(seed: int = 1) -> np.ndarray:
    """A background with corners everywhere: smoothed noise, BGR."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (H // 8, W // 8), dtype=np.uint8)
    grey = cv2.resize(small, (W, H), interpolation=cv2.INTER_CUBIC)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)


def _shifted(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    m = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])
    return cv2.warpAffine(img, m, (W, H), borderMode=cv2.BORDER_REFLECT)


def test_the_background_shift_is_measured_and_a_box_moving_on_its_own_is_left_out() -> None:
    bg = _texture()
    cm = CameraMotion()
    assert cm.update(bg, []) is None  # no previous frame
    nxt = _shifted(bg, 14.0, -6.0)  # the camera turned: everything moved 14 px right, 6 up
    # ... except an object of its own inside this box, which moved the other way.
    box = (250.0, 100.0, 390.0, 300.0)
    own = _shifted(_texture(7), -20.0, 0.0)
    x1, y1, x2, y2 = (int(v) for v in box)
    nxt[y1:y2, x1:x2] = own[y1:y2, x1:x2]
    m = cm.update(nxt, [box])
    assert m is not None
    cx, cy = moved((300.0, 180.0, 340.0, 220.0), m)[:2]
    assert (cx - 300.0, cy - 180.0) == (pytest.approx(14.0, abs=1.0), pytest.approx(-6.0, abs=1.0))
    assert m[0, 0] == pytest.approx(1.0, abs=0.01) and m[1, 0] == pytest.approx(0.0, abs=0.01)


def test_no_estimate_without_background_to_follow() -> None:
    flat = np.full((H, W, 3), 128, np.uint8)
    cm = CameraMotion()
    cm.update(flat, [])
    assert cm.update(flat, []) is None  # no corners: the tracker matches as before


def test_moved_keeps_the_size_and_maps_the_centre() -> None:
    m = np.array([[1.0, 0.0, 5.0], [0.0, 1.0, -3.0]])
    assert moved((10.0, 20.0, 30.0, 60.0), m) == (15.0, 17.0, 35.0, 57.0)


def test_a_far_box_swung_by_the_sway_keeps_its_track_with_the_camera_motion() -> None:
    # A person 30 m off (box ~27 x 8 px) while the sway swings the image 22 px
    # each way between detections: more than the box's width and its height
    # (the centre pass's gate), so without the camera's motion each swing
    # starts or wakes another track; with it, one track.
    def box_at(i: int) -> tuple[float, float, float, float]:
        cx = W / 2 + (22.0 if i % 2 else -22.0)
        return (cx - 4.0, 160.0 - 0.1 * i, cx + 4.0, 187.0 + 0.1 * i)

    plain, steady = IouTracker(), IouTracker()
    ids_plain, ids_steady = set(), set()
    for i in range(12):
        t = ns(i / 15)
        ids_plain |= {tr.track_id for tr in plain.update(t, dets(box_at(i)))}
        shift = 0.0 if i == 0 else (box_at(i)[0] - box_at(i - 1)[0])
        motion = None if i == 0 else np.array([[1.0, 0.0, shift], [0.0, 1.0, 0.0]])
        ids_steady |= {tr.track_id for tr in steady.update(t, dets(box_at(i)), motion)}
    assert len(ids_plain) > 1
    assert ids_steady == {1}
    assert steady.tracks[0].hits == 12
