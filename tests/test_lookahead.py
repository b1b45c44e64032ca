"""The look-ahead stage: a magnified crop where the path meets the horizon,
its boxes mapped back to the frame and merged with the full frame's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device.core.config import CameraConfig
from device.core.ports import Detector
from device.core.types import Detections
from device.perception.lookahead import LookaheadDetector, crop_box, horizon_row

CAM = CameraConfig()  # 640 x 360, 66 degrees, level


class Scripted:
    """Answers each call by the image size: the full frame or the crop."""

    def __init__(self, full: list[tuple[float, ...]], crop: list[tuple[float, ...]]) -> None:
        self.full, self.crop, self.sizes = full, crop, []

    def detect(self, image: np.ndarray) -> Detections:
        self.sizes.append(image.shape[:2])
        rows = self.full if image.shape[:2] == (360, 640) else self.crop
        if not rows:
            return Detections.empty()
        a = np.array(rows, np.float32)
        return Detections(a[:, :4].copy(), a[:, 4].copy(), a[:, 5].astype(np.int32))

    def close(self) -> None:
        pass


def test_the_crop_sits_on_the_horizon_in_the_middle() -> None:
    assert horizon_row(640, 360, CAM) == 180
    x0, y0, x1, y1 = crop_box(640, 360, CAM, 0.5, 416 / 256)
    assert (x0, x1) == (160, 480) and y1 - y0 == round(320 / (416 / 256))
    assert y0 < 180 < y1 and (180 - y0) == pytest.approx(0.4 * (y1 - y0), abs=1)
    down = CAM.model_copy(update={"pitch_deg": 10.0})  # looking down: the horizon rises
    assert horizon_row(640, 360, down) < 180
    assert crop_box(640, 360, down, 0.5, 16 / 9)[1] < y0
    steep = CAM.model_copy(update={"pitch_deg": 40.0})  # horizon above the frame: the crop stays inside
    assert crop_box(640, 360, steep, 0.5, 16 / 9)[1] == 0


def test_crop_boxes_come_back_in_frame_pixels_and_merge() -> None:
    # a far person only the crop sees; a near one both see (one box kept)
    inner = Scripted(full=[(10, 100, 110, 350, 0.9, 0)],
                     crop=[(100, 50, 110, 80, 0.6, 0), (0, 0, 3, 3, 0.9, 0)])  # second: cut by the crop edge
    det = LookaheadDetector(inner, CAM, every=1, width_frac=0.5, aspect=16 / 9)
    assert isinstance(det, Detector)
    d = det.detect(np.zeros((360, 640, 3), np.uint8))
    x0, y0, _, _ = det.last_crop  # type: ignore[misc]
    assert len(d) == 2
    np.testing.assert_allclose(d.xyxy[1], [100 + x0, 50 + y0, 110 + x0, 80 + y0])
    assert inner.sizes == [(360, 640), (180, 320)]


def test_duplicates_across_views_merge_and_every_n_skips() -> None:
    cam_box = crop_box(640, 360, CAM, 0.5, 16 / 9)
    x0, y0 = cam_box[:2]
    inner = Scripted(full=[(300, 180, 340, 260, 0.5, 0)], crop=[(300 - x0, 180 - y0, 340 - x0, 260 - y0, 0.8, 0)])
    det = LookaheadDetector(inner, CAM, every=2)
    img = np.zeros((360, 640, 3), np.uint8)
    first = det.detect(img)
    assert len(first) == 1 and first.confidence[0] == pytest.approx(0.8)  # the crop's (better) box
    assert len(det.detect(img)) == 1 and det.last_crop is None  # second call: the full frame only
    assert len(inner.sizes) == 3
    with pytest.raises(ValueError, match="every"):
        LookaheadDetector(inner, CAM, every=0)


def test_instead_the_crop_replaces_every_nth_full_frame() -> None:
    # one inference per call: crop, full, crop...; a box beside the crop is
    # absent on the crop's calls, a far one only the crop sees present
    inner = Scripted(full=[(10, 150, 40, 230, 0.9, 0)], crop=[(100, 50, 110, 80, 0.6, 0)])
    det = LookaheadDetector(inner, CAM, every=2, instead=True)
    img = np.zeros((360, 640, 3), np.uint8)
    first, second, third = det.detect(img), det.detect(img), det.detect(img)
    assert inner.sizes == [(180, 320), (360, 640), (180, 320)]
    x0, y0, _, _ = det.last_crop  # type: ignore[misc]
    assert len(first) == 1 and len(third) == 1
    np.testing.assert_allclose(first.xyxy[0], [100 + x0, 50 + y0, 110 + x0, 80 + y0])
    assert len(second) == 1 and second.confidence[0] == pytest.approx(0.9)
    with pytest.raises(ValueError, match="every >= 2"):
        LookaheadDetector(inner, CAM, every=1, instead=True)


def test_instead_runs_the_full_frame_while_something_is_nearer_than_the_crop() -> None:
    # a person whose feet are below the crop's bottom edge: every call looks
    # at the whole frame until the full frame no longer sees it
    inner = Scripted(full=[(10, 100, 110, 350, 0.9, 0)], crop=[])
    det = LookaheadDetector(inner, CAM, every=2, instead=True)
    y1 = det.crop_for(640, 360)[3]
    assert y1 < 350
    img = np.zeros((360, 640, 3), np.uint8)
    for _ in range(4):
        det.detect(img)
    assert inner.sizes == [(180, 320), (360, 640), (360, 640), (360, 640)]  # the 3rd call's crop gave way
    inner.full = [(10, 100, 110, y1 - 5, 0.9, 0)]  # now within the crop's reach: crops resume
    for _ in range(3):
        det.detect(img)
    assert inner.sizes[4:] == [(360, 640), (360, 640), (180, 320)]


def test_reset_starts_the_schedule_over() -> None:
    inner = Scripted(full=[(10, 100, 110, 350, 0.9, 0)], crop=[])
    det = LookaheadDetector(inner, CAM, every=3, instead=True)
    img = np.zeros((360, 640, 3), np.uint8)
    det.detect(img), det.detect(img)  # crop, then a full frame that sees something near
    det.reset()
    det.detect(img)
    assert inner.sizes[-1] == (180, 320) and det.last_crop is not None  # a crop first again, near forgotten


def test_evaluate_scores_each_recording_from_the_start_of_the_crop_schedule(tmp_path: Path) -> None:
    """One detector serves a whole suite: each recording must see the crop's
    schedule from its start, or its score depends on the recordings before it."""
    from device.core.config import Config
    from device.tools.evaluate import evaluate
    from test_faults import _recording

    suite = tmp_path / "suite"
    for name, seconds in (("a", 0.5), ("b", 0.5)):  # 5 frames each: not a multiple of every=3
        _recording(suite / name, seconds=seconds)
        (suite / name / "truth.json").write_text('{"contact_s": null, "clear": [[0.0, 0.4]]}')

    inner = Scripted(full=[], crop=[])
    det = LookaheadDetector(inner, CAM, every=3, instead=True)
    seen: list[bool] = []
    real_detect = det.detect

    def detect(image: np.ndarray) -> Detections:
        out = real_detect(image)
        seen.append(det.last_crop is not None)
        return out

    det.detect = detect  # type: ignore[method-assign]
    ev = evaluate([suite], Config(), detector=det)
    assert [s.name for s in ev.scores] == ["a", "b"]
    per = len(seen) // 2
    assert len(seen) == 2 * per and per % 3 != 0
    assert seen[:per] == seen[per:]  # both recordings: the same schedule from its start
