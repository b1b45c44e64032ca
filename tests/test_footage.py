"""Real footage with hand-labelled truth: the labels kept in the repository,
and clips cut from a video into recordings `evaluate` scores."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.record.format import Recording
from device.tools.footage import MARKET_STREET, clip_mount, load_labels, make_footage, track_mount
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
    track = {"left_rail": [[60, 70], [20, 110]], "right_rail": [[100, 70], [140, 110]], "gauge_m": 1.1}
    labels.write_text(json.dumps({"video": "v.avi", "fps": 10.0, "hfov_deg": 50.0, "track": track, "clips": [
        {"name": "a", "start_s": 0.5, "end_s": 1.5, "contact_s": 1.2, "clear": [[0.5, 0.7]], "events": ["x"]},
        {"name": "b", "start_s": 0.0, "end_s": 1.0, "contact_s": None, "clear": [[0.0, 1.0]]},
    ]}))
    a, b = make_footage(_video(tmp_path / "v.avi"), tmp_path / "out", labels)
    ra = Recording.open(a)
    assert ra.frame_count == 10 and ra.meta.camera.hfov_deg == 50.0
    assert (ra.meta.camera.mount_height_m, ra.meta.camera.pitch_deg) == clip_mount(json.loads(labels.read_text()), 160, 120)
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


def _rail(x_m: float, h: float, pitch_deg: float, f: float, size: tuple[int, int]) -> tuple[tuple[float, float], ...]:
    """Two image points of a rail x_m beside the camera's line, 5 and 20 m out, seen by a
    pinhole camera h up and pitched down pitch_deg (principal point at the centre)."""
    th = math.radians(pitch_deg)
    out = []
    for d in (5.0, 20.0):
        z = d * math.cos(th) + h * math.sin(th)  # depth along the optical axis
        out.append((size[0] / 2 + f * x_m / z, size[1] / 2 + f * (h * math.cos(th) - d * math.sin(th)) / z))
    return tuple(out)


@pytest.mark.parametrize("h, pitch, hfov", [(1.4, 6.0, 45.0), (1.1, 0.0, 66.0), (2.2, 12.0, 60.0)])
def test_track_mount_finds_the_height_and_tilt_a_camera_sees_its_rails_with(h: float, pitch: float,
                                                                            hfov: float) -> None:
    size = (480, 360)
    f = size[0] / 2 / math.tan(math.radians(hfov / 2))
    left, right = _rail(-0.55, h, pitch, f, size), _rail(0.55, h, pitch, f, size)
    got_h, got_pitch = track_mount(left, right, 1.1, *size, hfov)  # type: ignore[arg-type]
    assert got_h == pytest.approx(h, rel=1e-6) and got_pitch == pytest.approx(pitch, abs=1e-6)


def test_a_track_that_cannot_be_a_track_is_refused() -> None:
    parallel = (((100.0, 200.0), (100.0, 300.0)), ((300.0, 200.0), (300.0, 300.0)))
    crossed = (((300.0, 200.0), (320.0, 300.0)), ((100.0, 200.0), (80.0, 300.0)))
    flat = (((100.0, 200.0), (150.0, 200.0)), ((300.0, 200.0), (300.0, 300.0)))
    for left, right in (parallel, crossed, flat):
        with pytest.raises(ScenarioError, match="track"):
            track_mount(left, right, 1.1, 480, 360, 45.0)  # type: ignore[arg-type]
    with pytest.raises(ScenarioError, match="gauge_m"):
        clip_mount({"track": {"left_rail": [[1, 2]], "right_rail": [[3, 4], [5, 6]]}}, 480, 360)


def test_the_market_street_camera_is_a_mount_a_replay_accepts() -> None:
    # 1.4 m up and 6 degrees down from its rails (the labels' note): inside the config's bounds,
    # so a replay can take them in place of the device's.
    from device.core.config import CameraConfig

    h, pitch = clip_mount(load_labels(MARKET_STREET), 480, 360)
    assert h is not None and pitch is not None
    CameraConfig.model_validate({"mount_height_m": h, "pitch_deg": pitch})
    assert 1.2 <= h <= 1.6 and 4.0 <= pitch <= 8.0
