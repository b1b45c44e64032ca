"""Recording on a real, small filesystem: a tmpfs with an inode limit or a
size limit (issue 13 items 1 and 5). Mounting needs root: CI runs as root
and sets REARGUARD_REQUIRE_TMPFS=1, so there these tests cannot be skipped;
elsewhere they are skipped with the reason."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from device.camera_path import DetectStage
from device.core.clock import NS_PER_S, ReplayClock
from device.core.config import Config
from device.core.types import Detections, Frame
from device.record.format import Recording
from device.record.incidents import DeviceRecording
from device.record.segments import SegmentedRecorder
from device.record.worker import RecorderThread
from fakes import SlotFrames, threaded_camera

SENSORS = Config().ranging.sensors


@contextmanager
def tmpfs(where: Path, options: str) -> Iterator[Path]:
    where.mkdir()
    why = None
    if os.geteuid() != 0:
        why = "mounting a tmpfs needs root"
    else:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                              check=False, capture_output=True, text=True)
        if done.returncode:
            why = f"mount -t tmpfs failed: {done.stderr.strip()}"
    if why is not None:
        if os.environ.get("REARGUARD_REQUIRE_TMPFS") == "1":
            pytest.fail(f"REARGUARD_REQUIRE_TMPFS=1 but {why}")
        pytest.skip(why)
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


def frame(i: int) -> Frame:
    rng = np.random.default_rng(i)
    return Frame(i, round(i / 10 * NS_PER_S), rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))


def segments(d: Path, *, segment_s: float = 5.0, min_free_mb: float = 0.1) -> SegmentedRecorder:
    return SegmentedRecorder(d, width=64, height=48, fps=10, hfov_deg=66.0, sensors=SENSORS, source="test",
                             segment_s=segment_s, budget_mb=100.0, min_free_mb=min_free_mb)


class CountingDetector:
    def __init__(self) -> None:
        self.seen: list[int] = []
        self.done = threading.Event()

    def detect(self, image: np.ndarray) -> Detections:
        self.seen.append(int(image[0, 0, 0]))
        self.done.set()
        return Detections.empty()

    def close(self) -> None:
        pass


@pytest.mark.parametrize("inodes, fails_at", [(9, "seg-000002"), (4, "seg-000001")])
def test_no_inode_left_for_a_segment_never_stops_the_camera(tmp_path: Path, inodes: int, fails_at: str) -> None:
    # Before: RecordingError from the next segment's writer, raised in the
    # detector thread -> "camera: detector stopped", no frame detected after.
    with tmpfs(tmp_path / "disk", f"size=20m,nr_inodes={inodes}") as disk:
        rec = RecorderThread(DeviceRecording(segments(disk / "rec")))
        frames, det = SlotFrames(), CountingDetector()
        camera = threaded_camera(frames, DetectStage(det, Config().camera), ReplayClock(0), rec)
        try:
            for i in range(200):  # 20 s: the segment changes at 5 s, retries at 15 s
                det.done.clear()
                f = frame(i)
                frames.slot.put(f)
                assert det.done.wait(5.0), f"frame {i} was never detected; camera error {camera.runner.error!r}"
            assert len(det.seen) == 200
            assert camera.runner.error is None
        finally:
            camera.close()
            rec.close()
        assert rec.fault is not None
        assert rec.fault.startswith("recording: no free inodes on the disk (cannot start segment")
        # Half-made segments are removed, so what is left is complete.
        names = [s.name for s in rec.sink.segments.segments()]  # type: ignore[attr-defined]
        assert fails_at not in names
        assert all(Recording.open(s).frame_count == 50 for s in rec.sink.segments.segments())  # type: ignore[attr-defined]


def test_disk_full_keeps_the_current_segment_and_says_disk_full(tmp_path: Path) -> None:
    # Before: another process fills the disk -> "deleting seg-000001" (the
    # only one, the one being written) -> "disk full", no footage left.
    with tmpfs(tmp_path / "disk", "size=4m") as disk:
        seg = segments(disk / "rec", segment_s=600, min_free_mb=0.5)
        for i in range(30):
            seg.write_frame(frame(i))
        with (disk / "filler").open("wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
            except OSError:
                pass
        for i in range(30, 60):  # the free-space check runs every 2 s of frames
            seg.write_frame(frame(i))
        seg.close()
        assert seg.fault == "recording: disk full (0 MB free): recording stopped, footage kept"
        assert [s.name for s in seg.segments()] == ["seg-000001"]
        # Readable; the frames in OpenCV's write buffer when the disk filled are lost.
        assert Recording.open(seg.segments()[0]).frame_count > 0
        # Space back: recording resumes within the retry period.
        (disk / "filler").unlink()
        for i in range(60, 200):
            seg.write_frame(frame(i))
        seg.close()
        assert seg.fault is None
        assert [s.name for s in seg.segments()][:2] == ["seg-000001", "seg-000002"]
