"""`rearguard run --source VIDEO` with a video that cannot be played is a
usage error (exit 2, one clear line), not a FAULT played until exit 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GPIOZERO_PIN_FACTORY", "NOTIFY_SOCKET")}
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[detector]\nmodel = "{tmp_path / "missing.onnx"}"\n')  # no model: fast
    env.update(REARGUARD_CONFIG=str(cfg), GPIOZERO_PIN_FACTORY="mock")
    return subprocess.run([sys.executable, "-m", "device", "run", "--quiet", "--no-self-test", *args],
                          env=env, capture_output=True, text=True, timeout=60, check=False)


def tiny_video(path: Path, frames: int = 5) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for i in range(frames):
        w.write(np.full((120, 160, 3), 40 * i, np.uint8))
    w.release()
    return path


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda d: d / "nosuchfile.mp4", "video file not found: {}"),
        (lambda d: d, "not a video file: {}"),
        (lambda d: (d / "notes.mp4").write_text("not a video") and d / "notes.mp4",
         "cannot read video file {}: not a video OpenCV can decode"),
    ],
)
def test_a_video_source_that_cannot_play_is_a_clear_error(tmp_path: Path, make, says) -> None:  # type: ignore[no-untyped-def]
    source = make(tmp_path)
    done = _run(tmp_path, "--source", str(source), "--duration", "5")
    assert done.returncode == 2, done.stderr
    # (FFmpeg may say why first, on a line of its own)
    assert done.stderr.strip().splitlines()[-1] == f"rearguard: --source: {says.format(source)}"
    assert "Traceback" not in done.stderr and "FAULT" not in done.stderr


def test_a_video_that_plays_still_runs_to_its_end(tmp_path: Path) -> None:
    done = _run(tmp_path, "--source", str(tiny_video(tmp_path / "walk.avi")), "--duration", "20")
    assert done.returncode == 0, done.stderr
    assert "stopped after" in done.stderr
