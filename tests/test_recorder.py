"""Recording within a disk budget: segments, deletion of the oldest, disk
full and write failures become a fault without stopping the device."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device.core.clock import NS_PER_S
from device.core.config import Config, ConfigError, from_dict
from device.core.types import Frame, Range
from device.record.format import Recording, RecordingError, RecordingWriter
from device.record.segments import MB, SegmentedRecorder

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


def test_low_disk_cuts_the_segment_keeps_it_and_resumes(tmp_path: Path) -> None:
    free = {"bytes": 10_000 * MB}
    rec = recorder(tmp_path, segment_s=600, min_free_mb=100, free=lambda p: free["bytes"])
    for i in range(50):
        rec.write_frame(frame(i))
    free["bytes"] = 50 * MB  # something else filled the card
    for i in range(50, 80):
        rec.write_frame(frame(i))
    # The segment was cut and nothing older could go: recording stopped,
    # named for what it is (not "disk full": 50 MB are free), footage kept.
    assert rec.fault == (
        "recording: low disk space (50 MB free, recording keeps 100 MB spare): recording stopped, footage kept"
    )
    assert [s.name for s in rec.segments()] == ["seg-000001"]
    assert Recording.open(rec.segments()[0]).frame_count >= 50
    rec.write_frame(frame(81))  # no exception: the device keeps running
    # Space comes back: within the retry period recording resumes, fault cleared.
    free["bytes"] = 10_000 * MB
    for i in range(82, 200):
        rec.write_frame(frame(i))
    assert rec.fault is None
    assert [s.name for s in rec.segments()] == ["seg-000001", "seg-000002"]
    assert Recording.open(rec.segments()[1]).frame_count > 0
    rec.close()


def test_disk_full_only_when_it_is(tmp_path: Path) -> None:
    free = {"bytes": 10_000 * MB}
    rec = recorder(tmp_path, segment_s=600, min_free_mb=100, free=lambda p: free["bytes"])
    for i in range(30):
        rec.write_frame(frame(i))
    free["bytes"] = 0
    for i in range(30, 60):
        rec.write_frame(frame(i))
    assert rec.fault == "recording: disk full (0 MB free): recording stopped, footage kept"
    assert [s.name for s in rec.segments()] == ["seg-000001"]
    rec.close()


def test_budget_below_two_segments_never_deletes_the_newest_nor_says_disk_full(tmp_path: Path) -> None:
    # The case in small: segments of 40 s, a budget of less than two
    # of them, a disk with plenty of space. Before: seg-000001 deleted at
    # 40 s and a false "disk full (72454 MB free ...)". The config refuses such
    # a budget (test_config); should segments still come out bigger than it
    # estimates, a segment is cut at half the budget and no fault is raised.
    probe = recorder(tmp_path / "probe", segment_s=40)
    for i in range(100):
        probe.write_frame(frame(i))
    probe.close()
    ten_s = sum(f.stat().st_size for f in probe.segments()[0].iterdir())
    rec = recorder(tmp_path, segment_s=40, budget_mb=1.5 * ten_s / MB, min_free_mb=10)
    seen: set[str] = set()
    for i in range(450):  # 45 s
        rec.write_frame(frame(i))
        current = rec.current
        assert current is not None and current.is_dir()  # the segment being written is never deleted
        seen.add(current.name)
    rec.close()
    assert rec.fault is None
    names = [s.name for s in rec.segments()]
    assert len(seen) > 2 and names[-1] == max(seen)
    assert len(names) == 2  # the newest finished segment and the last one written
    assert all(Recording.open(s).frame_count > 0 for s in rec.segments())


def test_any_writer_error_is_a_named_fault(tmp_path: Path) -> None:
    class Odd(RecordingWriter):
        def write_frame(self, frame: Frame) -> None:
            if frame.seq >= 3:
                raise ValueError("frame 3 is odd")
            super().write_frame(frame)

    rec = recorder(tmp_path, writer=Odd)
    for i in range(6):
        rec.write_frame(frame(i))  # never raises
    assert rec.fault == "recording: write failed: frame 3 is odd"
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


def test_budget_too_small_for_the_camera_is_a_config_error_saying_what_fits() -> None:
    with pytest.raises(ConfigError) as err:
        from_dict({"recording": {"segment_s": 40, "budget_mb": 50}})
    assert str(err.value).splitlines()[1] == (
        "  recording.budget_mb: 50 MB holds less than two 40 s segments at 640x360, 15 fps "
        "(~2.25 MB/s for a busy scene): set budget_mb to at least 180 or segment_s to at most 11"
    )
    # What it says fits, fits.
    from_dict({"recording": {"segment_s": 40, "budget_mb": 180}})
    from_dict({"recording": {"segment_s": 11, "budget_mb": 50}})
    with pytest.raises(ConfigError, match="recording.incident_budget_mb: 10 MB holds less than one 15 s"):
        from_dict({"camera": {"width": 1280, "height": 720},
                   "recording": {"budget_mb": 6000, "incident_budget_mb": 10}})
    from_dict({"recording": {"incidents": False, "incident_budget_mb": 10}})
    assert from_dict({}).recording == Config().recording  # the defaults fit


def test_a_recording_directory_belongs_to_one_run(tmp_path: Path) -> None:
    """Two runs recording into one directory deleted each other's segments
    (issue 23): the second is refused, naming the directory, until the first
    has closed."""
    first = recorder(tmp_path)
    first.write_frame(frame(0))
    with pytest.raises(RecordingError, match=r"in use by another run.*rec"):
        recorder(tmp_path)
    first.write_frame(frame(1))
    first.close()
    second = recorder(tmp_path)  # free again
    second.write_frame(frame(2))
    second.close()
    assert [Recording.open(s).frame_count for s in second.segments()] == [2, 1]


def test_a_segment_this_run_did_not_make_is_never_deleted(tmp_path: Path) -> None:
    """A seg-N that appears after the numbering was chosen (another writer)
    was taken for a half-made segment of ours and removed with all it held."""
    rec = recorder(tmp_path)
    theirs = tmp_path / "rec" / "seg-000001"
    theirs.mkdir()
    (theirs / "video.avi").write_bytes(b"their footage")
    rec.write_frame(frame(0))
    rec.close()
    assert (theirs / "video.avi").read_bytes() == b"their footage"
    assert rec.fault is None
    assert Recording.open(tmp_path / "rec" / "seg-000002").frame_count == 1


def test_a_small_empty_disk_is_low_on_space_not_full(tmp_path: Path) -> None:
    """An empty 3 MB filesystem said "disk full (3 MB free)" where the README
    promises "low disk space" (issue 23): full is a disk that is nearly all used."""
    rec = recorder(tmp_path, min_free_mb=500, free=lambda p: 3 * MB, total=lambda p: 3 * MB)
    rec.write_frame(frame(0))
    assert rec.fault is not None and rec.fault.startswith("recording: low disk space (3 MB free"), rec.fault
    rec.close()
    rec = recorder(tmp_path / "b", min_free_mb=500, free=lambda p: 3 * MB, total=lambda p: 32_000 * MB)
    rec.write_frame(frame(0))
    assert rec.fault == "recording: disk full (3 MB free): recording stopped, footage kept"
    rec.close()
