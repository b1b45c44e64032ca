"""`rearguard recall`: COCO-style matching, recall by height at a fixed precision, AP."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.core.coco import class_id
from device.tools import recall

PERSON, DOG = class_id("person"), class_id("dog")


def photo(*truths: tuple[tuple[float, float, float, float], int, bool]) -> recall.Photo:
    return recall.Photo(Path("x.jpg"), tuple(recall.Truth(np.array(b, float), c, crowd) for b, c, crowd in truths))


def found(*dets: tuple[tuple[float, float, float, float], float, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not dets:
        return np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64)
    return (np.array([d[0] for d in dets], float), np.array([d[1] for d in dets]),
            np.array([d[2] for d in dets], np.int64))


def test_recall_by_height_at_the_precision_operating_point() -> None:
    small = ((0, 0, 10, 20), PERSON, False)  # 20 px tall
    mid = ((50, 0, 70, 60), PERSON, False)  # 60 px
    big = ((100, 0, 160, 200), PERSON, False)  # 200 px
    photos = [photo(small, mid, big)]
    dets = [found(((100, 0, 160, 200), 0.9, PERSON),  # big: right
                  ((50, 0, 70, 60), 0.8, PERSON),  # mid: right
                  ((300, 300, 340, 380), 0.7, PERSON),  # wrong
                  ((400, 300, 440, 380), 0.6, PERSON),  # wrong: precision 2/4 from here
                  ((0, 0, 10, 20), 0.5, PERSON))]  # small: right, but precision 3/5 = 0.6
    thr, buckets = recall.recall_by_size(recall.match(photos, dets, PERSON, 0.5), 0.8)
    assert thr == pytest.approx(0.8)
    assert buckets == {"<32": (0, 1), "32-96": (1, 1), ">96": (1, 1)}
    thr, buckets = recall.recall_by_size(recall.match(photos, dets, PERSON, 0.5), 0.6)
    assert thr == pytest.approx(0.5) and buckets["<32"] == (1, 1)


def test_one_truth_matches_one_detection_and_crowds_are_ignored() -> None:
    p = photo(((0, 0, 100, 100), PERSON, False), ((200, 0, 400, 200), PERSON, True))
    dets = [found(((0, 0, 100, 100), 0.9, PERSON), ((2, 2, 100, 100), 0.8, PERSON),  # a duplicate: wrong
                  ((250, 50, 300, 150), 0.7, PERSON))]  # inside the crowd: neither
    m = recall.match([p], dets, PERSON, 0.5)
    assert m.true_positive.tolist() == [True, False, False]
    assert m.ignored.tolist() == [False, False, True]
    assert len(m.truth_heights) == 1  # the crowd is not a label to find


def test_average_precision_perfect_and_none() -> None:
    p = photo(((0, 0, 100, 100), PERSON, False))
    perfect = recall.match([p], [found(((0, 0, 100, 100), 0.9, PERSON))], PERSON, 0.5)
    assert recall.average_precision(perfect) == pytest.approx(1.0)
    nothing = recall.match([p], [found()], PERSON, 0.5)
    assert recall.average_precision(nothing) == 0.0
    assert recall.average_precision(recall.match([p], [found()], DOG, 0.5)) is None  # no dog labelled


def test_load_labels_reads_coco_json(tmp_path: Path) -> None:
    (tmp_path / "val2017").mkdir()
    cv2.imwrite(str(tmp_path / "val2017" / "1.jpg"), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "i.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "1.jpg"}],
        "annotations": [{"image_id": 1, "category_id": 18, "bbox": [1, 2, 3, 4], "iscrowd": 0}],
        "categories": [{"id": 18, "name": "dog"}],
    }))
    [p] = recall.load_labels(tmp_path)
    assert p.truths[0].class_id == DOG and p.truths[0].box.tolist() == [1, 2, 4, 6]
    (tmp_path / "i.json").write_text('{"images": []}')
    with pytest.raises(recall.LabelError, match="not a COCO instances file"):
        recall.load_labels(tmp_path)
