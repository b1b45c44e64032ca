"""Real footage with hand-labelled truth: the labels kept in the repository,
and clips cut from a video into recordings `evaluate` scores."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.record.format import Recording
from device.tools.footage import MARKET_STREET, load_labels, make_footage
from device.tools.scenario import ScenarioError


def test_the_market_street_labels_are_whole_and_inside_their_clips() -> None:
    data = load_labels(MARKET_STREET)
    assert data["video"] == "market_street_1906_part2.mp4"
    clips = {c["name"]: c for c in data["clips"]}
    car = clips["market-street-car-crossing"]
    assert car["start_s"] < car["contact_s"] < car["end_s"]
    # nothing clear overlaps the hazard's own 4 s before contact
    assert all(b <= car["contact_s"] - 1.0 for _, b in car["clear"])
    assert sum(b - a for c in clips.values() for a, b in c["clear"]) > 15.0
    assert all(c["events"] for c in clips.values())


def _video(path: Path, n: int = 40, fps: float = 20.0) -> Path:
    wr = cv2.VideoWriter(str(path), cv2.CAP_OPENCV_MJPEG, cv2.VideoWriter.fourcc(*"MJPG"), fps, (160, 120))
    for i in range(n):
        wr.write(np.full((120, 160, 3), 4 * i, np.uint8))
    wr.release()
    return path


def test_clips_become_recordings_with_truth_in_their_own_time(tmp_path: Path) -> None:
    labels = tmp_path / "l.json"
    labels.write_text(json.dumps({"video": "v.avi", "fps": 10.0, "hfov_deg": 50.0, "clips": [
        {"name": "a", "start_s": 0.5, "end_s": 1.5, "contact_s": 1.2, "clear": [[0.5, 0.7]], "events": ["x"]},
        {"name": "b", "start_s": 0.0, "end_s": 1.0, "contact_s": None, "clear": [[0.0, 1.0]]},
    ]}))
    a, b = make_footage(_video(tmp_path / "v.avi"), tmp_path / "out", labels)
    ra = Recording.open(a)
    assert ra.frame_count == 10 and ra.meta.camera.hfov_deg == 50.0
    assert ra.truth is not None and ra.truth.contact_s == pytest.approx(0.7)
    assert ra.truth.clear == ((0.0, pytest.approx(0.2)),)
    # frame i of clip a is the video's frame at 0.5 s + i / 10 s (20 fps: every other frame from 10)
    first = next(iter(ra.frames()))
    assert int(first.image.mean()) == pytest.approx(4 * 10, abs=3)
    meta = json.loads((a / "scenario.json").read_text())
    assert meta["suite"] == "footage" and meta["kind"] == "crossing"
    assert Recording.open(b).truth.contact_s is None  # type: ignore[union-attr]
    assert all(r.metres is None for r in ra.ranges)  # an open street: nothing in the beam


def test_bad_labels_are_refused_with_the_clip_named(tmp_path: Path) -> None:
    labels = tmp_path / "l.json"
    labels.write_text(json.dumps({"clips": [{"name": "late", "start_s": 0.0, "end_s": 1.0, "contact_s": 3.0}]}))
    with pytest.raises(ScenarioError, match="'late' has a time outside"):
        make_footage(_video(tmp_path / "v.avi"), tmp_path / "out", labels)
    assert not (tmp_path / "out").exists()
