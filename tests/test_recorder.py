"""Recording within a disk budget: segments, deletion of the oldest, disk
full and write failures become a fault without stopping the device."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device.core.clock import NS_PER_S
from device.core.config import Config
from device.record.segments import MB, SegmentedRecorder
from device.record.format import Recording, RecordingWriter
from device.core.types import Frame, Range

SENSORS = Config().ranging.sensors


def frame(i: int, fps: float = 10.0) -> Frame:
    rng = np.random.default_rng(i)
    return Frame(i, round(i / fps * NS_PER_S), rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))


def recorder(tmp_path: Path, **kw) -> SegmentedRecorder:
    args = dict(width=64, height=48, fps=10, hfov_deg=66.0, sensors=SENSORS, source="test", segment_s=5.0)
    args.update(kw)
    return SegmentedRecorder(tmp_path / "rec", **args)


def test_segments_are_complete_recordings(tmp_path: Path) -> None:
    rec = recorder(tmp_path)
    rec.write_ranges([Range(0, "centre", 1.0)])  # before the first frame: kept
    for i in range(120):  # 12 s at 10 fps -> 3 segments of 5 s
        rec.write_frame(frame(i))
        rec.write_ranges([Range(frame(i).t_ns, "centre", None)])
    rec.close()
    segs = rec.segments()
    assert [s.name for s in segs] == ["seg-000001", "seg-000002", "seg-000003"]
    counts = [Recording.open(s).frame_count for s in segs]
    assert counts == [50, 50, 20]
    assert Recording.open(segs[0]).ranges[0].metres == 1.0
    assert rec.fault is None


def test_budget_deletes_the_oldest(tmp_path: Path) -> None:
    # Measure one 5 s segment, then allow a bit more than two of them.
    probe = recorder(tmp_path / "probe")
    for i in range(50):
        probe.write_frame(frame(i))
    probe.close()
    seg_bytes = sum(f.stat().st_size for f in probe.segments()[0].iterdir())
    rec = recorder(tmp_path, budget_mb=2.5 * seg_bytes / MB, min_free_mb=10)
    for i in range(300):  # 30 s -> 6 segments written
        rec.write_frame(frame(i))
    rec.close()
    names = [s.name for s in rec.segments()]
    assert names[-1] == "seg-000006"
    assert len(names) <= 3
    used = sum(f.stat().st_size for s in rec.segments() for f in s.iterdir())
    assert used <= 2.5 * seg_bytes + seg_bytes  # the open segment may overshoot by one
    assert rec.fault is None


def test_low_disk_cuts_the_segment_and_frees_space(tmp_path: Path) -> None:
    free = {"bytes": 10_000 * MB}
    rec = recorder(tmp_path, segment_s=600, min_free_mb=100, free=lambda p: free["bytes"])
    for i in range(50):
        rec.write_frame(frame(i))
    free["bytes"] = 50 * MB  # something else filled the card
    for i in range(50, 80):
        rec.write_frame(frame(i))
    # The first segment was cut, deleted to make room, and then there was
    # still too little space and nothing left to delete: recording stopped.
    assert rec.fault is not None and "disk full" in rec.fault
    assert rec.segments() == []
    rec.write_frame(frame(81))  # no exception: the device keeps running
    # Space comes back: within the retry period recording resumes, fault cleared.
    free["bytes"] = 10_000 * MB
    for i in range(82, 200):
        rec.write_frame(frame(i))
    assert rec.fault is None
    assert len(rec.segments()) == 1 and Recording.open(rec.segments()[0]).frame_count > 0
    rec.close()


def test_write_failure_is_a_fault_not_a_crash(tmp_path: Path) -> None:
    class FullDisk(RecordingWriter):
        def write_frame(self, frame: Frame) -> None:
            if frame.seq >= 3:
                raise OSError(28, "No space left on device")
            super().write_frame(frame)

    rec = recorder(tmp_path, writer=FullDisk)
    for i in range(6):
        rec.write_frame(frame(i))
    assert rec.fault == "recording: write failed: No space left on device"
    rec.close()
    assert Recording.open(rec.segments()[0]).frame_count == 3  # what was written stays readable


def test_numbering_continues_after_restart(tmp_path: Path) -> None:
    rec = recorder(tmp_path)
    rec.write_frame(frame(0))
    rec.close()
    rec2 = recorder(tmp_path)
    rec2.write_frame(frame(0))
    rec2.close()
    assert [s.name for s in rec2.segments()] == ["seg-000001", "seg-000002"]


def test_recording_config_keys() -> None:
    cfg = Config()
    assert cfg.recording.budget_mb > cfg.recording.min_free_mb / 10
    with pytest.raises(ValueError):
        Config.model_validate({"recording": {"segment_s": 1}})
