from __future__ import annotations

import argparse
import itertools
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.cli import recording as cli_recording
from device.core.config import UltrasonicSensorConfig
from device.core.types import Frame, Range
from device.record.format import (
    FORMAT,
    Recording,
    RecordingError,
    RecordingWriter,
    SensorMeta,
    Truth,
    from_video,
    read_ranges_csv,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
VTEST = SHARED / "footage" / "vtest.avi"
HCSR04 = SHARED / "ultrasonic" / "hcsr04_log.csv"
needs_shared = pytest.mark.skipif(not (VTEST.is_file() and HCSR04.is_file()), reason="../shared test materials missing")

W, H = 64, 48
T0 = 5_000_000_000_000  # a device monotonic clock is far from zero
SENSORS = [
    UltrasonicSensorConfig(name="centre", trigger_pin=23, echo_pin=24),
    {"name": "left", "bearing_deg": -30.0, "beam_deg": 15.0, "max_distance_m": 4.5, "trigger_pin": 5},
]


def image(i: int, w: int = W, h: int = H) -> np.ndarray:
    """Smooth, so MJPG keeps it close: a vertical ramp plus a per-frame level."""
    img = np.empty((h, w, 3), np.uint8)
    img[..., 0] = (10 * i) % 200
    img[..., 1] = np.linspace(0, 200, w, dtype=np.uint8)[None, :]
    img[..., 2] = 128
    return img


def noisy(i: int, w: int = 320, h: int = 240) -> np.ndarray:
    """Big JPEGs, so OpenCV's write buffer reaches the disk after a few frames."""
    rng = np.random.default_rng(i)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


SEQS = [0, 1, 3, 4, 7, 8, 9, 10, 12, 13]  # gaps: frames the detector loop dropped
TIMES = [T0 + k * 66_666_667 for k in range(len(SEQS))]
RANGES = [
    Range(T0 - 10_000_000, "centre", 1.25),  # a reading before the first frame: start_ns comes from it
    Range(T0 + 50_000_000, "left", None),  # no echo
    Range(T0 + 60_000_000, "centre", 0.5),
    Range(T0 + 110_000_000, "left", None, "no-echo-line"),  # broken sensor
    Range(T0 + 120_000_000, "centre", 0.123456789),
]


def write_basic(d: Path, **kw) -> Path:
    with RecordingWriter(d, width=W, height=H, fps=15, hfov_deg=66.0, sensors=SENSORS, source="test", **kw) as w:
        for k, (seq, t) in enumerate(zip(SEQS, TIMES, strict=True)):
            w.write_frame(Frame(seq=seq, t_ns=t, image=image(k)))
        w.write_ranges(RANGES[:2])
        w.write_ranges(RANGES[2:])
    return d


@pytest.fixture
def rec_dir(tmp_path: Path) -> Path:
    return write_basic(tmp_path / "rec")


# --- round trip -------------------------------------------------------------


def test_round_trip(rec_dir: Path) -> None:
    rec = Recording.open(rec_dir)
    assert rec.warnings == ()
    assert rec.meta.format == FORMAT and rec.meta.version == 1
    assert (rec.meta.camera.width, rec.meta.camera.height, rec.meta.camera.fps) == (W, H, 15)
    assert rec.meta.sensors == (
        SensorMeta("centre", 0.0, 15.0, 4.0),
        SensorMeta("left", -30.0, 15.0, 4.5),
    )
    assert rec.meta.source == "test"
    assert rec.frame_count == len(SEQS)
    assert list(rec.frame_seqs) == SEQS
    assert list(rec.frame_times) == TIMES
    assert list(rec.ranges) == RANGES  # None, faults and full float precision survive
    assert rec.truth is None
    assert rec.start_ns == T0 - 10_000_000
    assert rec.duration_s == pytest.approx((TIMES[-1] - (T0 - 10_000_000)) / 1e9)
    frames = list(rec.frames())
    assert [f.seq for f in frames] == SEQS
    assert [f.t_ns for f in frames] == TIMES
    for k, f in enumerate(frames):
        assert f.image.shape == (H, W, 3) and f.image.dtype == np.uint8
        diff = np.abs(f.image.astype(int) - image(k).astype(int))
        assert diff.mean() < 3, f"frame {k} differs by {diff.mean():.1f} on average"
    # Frames are distinguishable: frame 3 is not frame 2 re-read.
    assert abs(int(frames[3].image[..., 0].mean()) - 30) <= 3


def test_video_is_plain_mjpg_avi_for_any_player(rec_dir: Path) -> None:
    cap = cv2.VideoCapture(str(rec_dir / "video.avi"))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    assert n == len(SEQS)


def test_meta_and_csv_files_are_as_documented(rec_dir: Path) -> None:
    meta = json.loads((rec_dir / "meta.json").read_text())
    assert set(meta) == {"format", "version", "camera", "sensors", "created", "source"}
    assert meta["camera"] == {"width": W, "height": H, "hfov_deg": 66.0, "fps": 15.0}
    assert meta["sensors"][1] == {"name": "left", "bearing_deg": -30.0, "beam_deg": 15.0, "max_distance_m": 4.5}
    frames = (rec_dir / "frames.csv").read_text().splitlines()
    assert frames[0] == "seq,t_ns" and frames[1] == f"0,{T0}"
    ranges = (rec_dir / "ranges.csv").read_text().splitlines()
    assert ranges[0] == "t_ns,sensor,metres,fault"
    assert ranges[2] == f"{T0 + 50_000_000},left,,"
    assert ranges[4] == f"{T0 + 110_000_000},left,,no-echo-line"


def test_truth_is_read_when_present(rec_dir: Path) -> None:
    (rec_dir / "truth.json").write_text(json.dumps({"contact_s": 0.4, "clear": [[0, 0.2], [0.5, 0.6]]}))
    assert Recording.open(rec_dir).truth == Truth(contact_s=0.4, clear=((0.0, 0.2), (0.5, 0.6)))
    (rec_dir / "truth.json").write_text(json.dumps({"contact_s": None, "clear": []}))
    assert Recording.open(rec_dir).truth == Truth(contact_s=None, clear=())


@pytest.mark.parametrize(
    ("truth", "match"),
    [
        ({"contact_s": "soon", "clear": []}, "contact_s"),
        ({"contact_s": 1.0}, "clear"),
        ({"contact_s": None, "clear": [[2.0, 1.0]]}, r"clear interval \[2.0, 1.0\] ends before it starts"),
        ({"contact_s": -1, "clear": []}, "greater than or equal to 0"),
    ],
)
def test_bad_truth(rec_dir: Path, truth: dict, match: str) -> None:
    (rec_dir / "truth.json").write_text(json.dumps(truth))
    with pytest.raises(RecordingError, match=match):
        Recording.open(rec_dir)


# --- writer refusals --------------------------------------------------------


def test_writer_refuses_non_empty_directory(rec_dir: Path) -> None:
    with pytest.raises(RecordingError, match="already exists and is not empty"):
        write_basic(rec_dir)
    assert Recording.open(rec_dir).frame_count == len(SEQS)  # untouched


def test_writer_accepts_empty_existing_directory(tmp_path: Path) -> None:
    d = tmp_path / "empty"
    d.mkdir()
    assert Recording.open(write_basic(d)).frame_count == len(SEQS)


def test_writer_rejects_what_the_reader_would_reject(tmp_path: Path) -> None:
    w = RecordingWriter(tmp_path / "r", width=W, height=H, fps=15, hfov_deg=66, sensors=SENSORS, source="t")
    with pytest.raises(ValueError, match="uint8"):
        w.write_frame(Frame(0, T0, np.zeros((H, W + 2, 3), np.uint8)))
    w.write_frame(Frame(5, T0, image(0)))
    with pytest.raises(ValueError, match="does not increase"):
        w.write_frame(Frame(5, T0 + 1, image(0)))
    with pytest.raises(ValueError, match="backwards"):
        w.write_frame(Frame(6, T0 - 1, image(0)))
    with pytest.raises(ValueError, match="unknown sensor 'right'"):
        w.write_ranges([Range(T0, "right", 1.0)])
    with pytest.raises(ValueError, match="carries no distance"):
        w.write_ranges([Range(T0, "centre", 1.0, "stuck")])
    w.write_ranges([Range(T0, "centre", 1.0)])
    with pytest.raises(ValueError, match="backwards for 'centre'"):
        w.write_ranges([Range(T0 - 1, "centre", 1.0)])
    w.close()
    w.close()
    with pytest.raises(ValueError, match="closed"):
        w.write_frame(Frame(9, T0 + 9, image(0)))
    rec = Recording.open(tmp_path / "r")
    assert rec.frame_count == 1 and len(rec.ranges) == 1 and rec.warnings == ()


def test_writer_rejects_bad_settings(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="hfov_deg"):
        RecordingWriter(tmp_path / "a", width=W, height=H, fps=15, hfov_deg=200, sensors=[], source="t")
    with pytest.raises(RecordingError, match="repeated: centre"):
        RecordingWriter(tmp_path / "b", width=W, height=H, fps=15, hfov_deg=66,
                        sensors=[SensorMeta("centre"), {"name": "centre"}], source="t")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# --- every RecordingError ---------------------------------------------------


def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="recording not found"):
        Recording.open(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(RecordingError, match="is not a recording directory"):
        Recording.open(tmp_path / "file")


def test_missing_meta(rec_dir: Path) -> None:
    (rec_dir / "meta.json").unlink()
    with pytest.raises(RecordingError, match="missing meta.json"):
        Recording.open(rec_dir)


def test_meta_not_json(rec_dir: Path) -> None:
    (rec_dir / "meta.json").write_text('{"format": ')
    with pytest.raises(RecordingError, match="meta.json is not valid JSON"):
        Recording.open(rec_dir)


def test_wrong_format(rec_dir: Path) -> None:
    _edit_json(rec_dir / "meta.json", format="something-else")
    with pytest.raises(RecordingError, match="format is 'something-else', expected 'rearguard-recording'"):
        Recording.open(rec_dir)


def test_unsupported_version(rec_dir: Path) -> None:
    _edit_json(rec_dir / "meta.json", version=2)
    with pytest.raises(RecordingError, match="version 2 is not supported"):
        Recording.open(rec_dir)


def test_bad_meta_field(rec_dir: Path) -> None:
    _edit_json(rec_dir / "meta.json", camera={"width": "64", "height": H, "hfov_deg": 66, "fps": 15})
    with pytest.raises(RecordingError, match=r"camera.width: Input should be a valid integer \(got '64'\)"):
        Recording.open(rec_dir)


def test_unknown_meta_keys_are_ignored(rec_dir: Path) -> None:
    _edit_json(rec_dir / "meta.json", operator="alice")
    assert Recording.open(rec_dir).frame_count == len(SEQS)


def test_missing_video(rec_dir: Path) -> None:
    (rec_dir / "video.avi").unlink()
    with pytest.raises(RecordingError, match="missing video.avi"):
        Recording.open(rec_dir)


def test_corrupt_video_random_bytes(rec_dir: Path) -> None:
    (rec_dir / "video.avi").write_bytes(np.random.default_rng(1).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    with pytest.raises(RecordingError, match="is not an AVI video"):
        Recording.open(rec_dir)


def test_corrupt_frame_data(rec_dir: Path) -> None:
    data = bytearray((rec_dir / "video.avi").read_bytes())
    first = data.find(b"00dc") + 8
    data[first : first + 200] = bytes(200)  # wipe frame 0's JPEG header
    (rec_dir / "video.avi").write_bytes(bytes(data))
    with pytest.raises(RecordingError, match="video.avi frame 0 cannot be decoded"):
        Recording.open(rec_dir)


def test_video_size_disagrees_with_meta(rec_dir: Path) -> None:
    _edit_json(rec_dir / "meta.json", camera={"width": 640, "height": 480, "hfov_deg": 66, "fps": 15})
    with pytest.raises(RecordingError, match="frame 0 is 64x48 but meta.json says 640x480"):
        Recording.open(rec_dir)


def test_missing_frames_csv(rec_dir: Path) -> None:
    (rec_dir / "frames.csv").unlink()
    with pytest.raises(RecordingError, match="missing frames.csv"):
        Recording.open(rec_dir)


def _replace_line(path: Path, lineno: int, text: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[lineno - 1] = text + "\n"
    path.write_text("".join(lines))


@pytest.mark.parametrize(
    ("lineno", "text", "match"),
    [
        (1, "seq,time", "frames.csv line 1: header is 'seq,time', expected 'seq,t_ns'"),
        (5, "3,12.5", "frames.csv line 5: t_ns is not an integer"),
        (5, "x,1", "frames.csv line 5: seq is not an integer"),
        (5, "3", r"frames.csv line 5: expected 2 fields \(seq,t_ns\), found 1"),
        (5, f"4,{T0}", f"frames.csv line 5: t_ns {T0} goes backwards"),
        (5, f"1,{TIMES[3]}", "frames.csv line 5: seq 1 does not increase"),
    ],
)
def test_bad_frames_csv(rec_dir: Path, lineno: int, text: str, match: str) -> None:
    _replace_line(rec_dir / "frames.csv", lineno, text)
    with pytest.raises(RecordingError, match=match):
        Recording.open(rec_dir)


def test_empty_frames_csv(rec_dir: Path) -> None:
    (rec_dir / "frames.csv").write_text("")
    with pytest.raises(RecordingError, match="frames.csv is empty"):
        Recording.open(rec_dir)


@pytest.mark.parametrize(
    ("lineno", "text", "match"),
    [
        (1, "time,sensor,metres", "ranges.csv line 1: header is 'time,sensor,metres'"),
        (3, f"{T0},right,1.0,", "ranges.csv line 3: unknown sensor 'right' .*centre, left"),
        (3, f"{T0},centre,far,", "ranges.csv line 3: metres is not a number"),
        (3, f"{T0},centre,-1,", "ranges.csv line 3: metres must be a distance of 0 or more"),
        (3, f"{T0},centre,1.0,stuck", r"ranges.csv line 3: a reading with a fault \('stuck'\) must have empty metres"),
        (3, "soon,centre,1.0,", "ranges.csv line 3: t_ns is not an integer"),
        (4, f"{T0 - 20_000_000},centre,1.0,", "ranges.csv line 4: t_ns .* goes backwards for sensor 'centre'"),
        (3, f"{T0},centre,1.0", "ranges.csv line 3: expected 4 fields, found 3"),
    ],
)
def test_bad_ranges_csv(rec_dir: Path, lineno: int, text: str, match: str) -> None:
    _replace_line(rec_dir / "ranges.csv", lineno, text)
    with pytest.raises(RecordingError, match=match):
        Recording.open(rec_dir)


def test_missing_ranges_csv(rec_dir: Path) -> None:
    (rec_dir / "ranges.csv").unlink()
    with pytest.raises(RecordingError, match="missing ranges.csv"):
        Recording.open(rec_dir)


def test_three_column_ranges_csv_is_accepted(rec_dir: Path) -> None:
    (rec_dir / "ranges.csv").write_text(f"t_ns,sensor,metres\n{T0},centre,2.5\n{T0 + 1},left,\n")
    rec = Recording.open(rec_dir)
    assert list(rec.ranges) == [Range(T0, "centre", 2.5), Range(T0 + 1, "left", None)]


# --- recordings cut short ---------------------------------------------------


def _write_noisy(d: Path, n: int, *, close: bool) -> RecordingWriter:
    w = RecordingWriter(d, width=320, height=240, fps=15, hfov_deg=66, sensors=SENSORS[:1], source="cut")
    for i in range(n):
        w.write_frame(Frame(seq=i, t_ns=T0 + i * 66_666_667, image=noisy(i)))
        w.write_ranges([Range(T0 + i * 66_666_667 + 1, "centre", 1.0 + i / 100)])
    if close:
        w.close()
    return w


def test_killed_writer_leaves_a_readable_prefix(tmp_path: Path) -> None:
    """A copy taken while the writer is still open is what a kill -9 or a power cut leaves."""
    w = _write_noisy(tmp_path / "live", 30, close=False)
    shutil.copytree(tmp_path / "live", tmp_path / "snapshot")
    w.close()
    rec = Recording.open(tmp_path / "snapshot")
    assert 0 < rec.frame_count < 30  # OpenCV's write buffer still held the last frames
    assert any("was not closed" in m for m in rec.warnings)
    assert any(f"holds {rec.frame_count} complete frames but frames.csv lists 30" in m for m in rec.warnings)
    assert len(rec.ranges) == 30  # CSV lines are flushed as written
    frames = list(rec.frames())
    assert [f.t_ns for f in frames] == [T0 + i * 66_666_667 for i in range(rec.frame_count)]
    last = frames[-1]
    own = np.abs(last.image.astype(int) - noisy(last.seq).astype(int)).mean()
    other = np.abs(last.image.astype(int) - noisy(last.seq - 1).astype(int)).mean()
    assert own < 0.7 * other  # JPEG blurs pure noise a lot, but it is still this frame


@pytest.mark.parametrize("fraction", [0.25, 0.5, 0.93])
def test_truncated_video_is_readable_up_to_the_cut(tmp_path: Path, fraction: float) -> None:
    d = tmp_path / "rec"
    _write_noisy(d, 20, close=True)
    video = d / "video.avi"
    data = video.read_bytes()
    video.write_bytes(data[: int(len(data) * fraction)])
    rec = Recording.open(d)
    assert 0 < rec.frame_count < 20
    assert rec.frame_count == pytest.approx(20 * fraction, abs=2)
    assert any("the file was cut" in m for m in rec.warnings)
    assert any("using the first" in m for m in rec.warnings)
    frames = list(rec.frames())
    assert len(frames) == rec.frame_count
    assert [f.seq for f in frames] == list(range(rec.frame_count))


def test_video_killed_before_first_write(rec_dir: Path) -> None:
    (rec_dir / "video.avi").write_bytes(b"")
    rec = Recording.open(rec_dir)
    assert rec.frame_count == 0 and list(rec.frames()) == []
    assert len(rec.ranges) == len(RANGES)
    assert any("video.avi is empty" in m for m in rec.warnings)


def test_cut_csv_line_is_ignored_with_a_warning(rec_dir: Path) -> None:
    with (rec_dir / "frames.csv").open("a") as f:
        f.write("14,50")  # a kill in the middle of a line
    with (rec_dir / "ranges.csv").open("a") as f:
        f.write(f"{T0 + 200_000_000},cen")
    rec = Recording.open(rec_dir)
    assert rec.frame_count == len(SEQS) and len(rec.ranges) == len(RANGES)
    assert any("frames.csv: the last line '14,50' is incomplete" in m for m in rec.warnings)
    assert any("ranges.csv: the last line" in m for m in rec.warnings)


def test_more_video_frames_than_rows_uses_the_common_prefix(rec_dir: Path) -> None:
    lines = (rec_dir / "frames.csv").read_text().splitlines(keepends=True)
    (rec_dir / "frames.csv").write_text("".join(lines[:-2]))
    rec = Recording.open(rec_dir)
    assert rec.frame_count == len(SEQS) - 2
    assert len(list(rec.frames())) == len(SEQS) - 2
    assert any(f"holds {len(SEQS)} complete frames but frames.csv lists {len(SEQS) - 2}" in m for m in rec.warnings)


# --- from_video -------------------------------------------------------------


@needs_shared
def test_from_video_with_hcsr04_log(tmp_path: Path) -> None:
    calls: list[tuple[int, int | None]] = []
    out = from_video(VTEST, tmp_path / "rec", ranges_csv=HCSR04, max_frames=40,
                     progress=lambda done, total: calls.append((done, total)))
    rec = Recording.open(out)
    assert rec.warnings == ()
    assert rec.frame_count == 40
    assert list(rec.frame_times) == [i * 100_000_000 for i in range(40)]  # vtest is 10 fps
    assert (rec.meta.camera.width, rec.meta.camera.height, rec.meta.camera.fps) == (768, 576, 10.0)
    assert rec.meta.sensors == (SensorMeta("centre", 0.0, 15.0, 4.0),)
    assert calls[-1] == (40, 40) and len(calls) == 40
    assert len(rec.ranges) == 110
    none = [r for r in rec.ranges if r.metres is None]
    assert len(none) == 26
    metres = [r.metres for r in rec.ranges if r.metres is not None]
    assert min(metres) == pytest.approx(0.06) and max(metres) == pytest.approx(1.03)
    times = [r.t_ns for r in rec.ranges]
    assert times[0] == 0 and all(b > a for a, b in itertools.pairwise(times))
    assert times[1] == 107_000_000  # 22:58:21.896 -> 22:58:22.003
    assert all(r.fault is None and r.sensor == "centre" for r in rec.ranges)
    # The frames are vtest's, re-encoded.
    cap = cv2.VideoCapture(str(VTEST))
    ok, original = cap.read()
    cap.release()
    first = next(rec.frames())
    assert ok and np.abs(first.image.astype(int) - original.astype(int)).mean() < 4


@needs_shared
def test_from_video_ranges_offset_and_fps_override(tmp_path: Path) -> None:
    rec = Recording.open(from_video(VTEST, tmp_path / "r", ranges_csv=HCSR04, fps=20, max_frames=3,
                                    start_offset_s=1.5, hfov_deg=70))
    assert list(rec.frame_times) == [0, 50_000_000, 100_000_000]
    assert rec.meta.camera.fps == 20 and rec.meta.camera.hfov_deg == 70
    assert rec.ranges[0].t_ns == 1_500_000_000


def _tiny_video(path: Path, n: int = 3) -> Path:
    w = cv2.VideoWriter(str(path), cv2.CAP_OPENCV_MJPEG, cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (W, H))
    for i in range(n):
        w.write(image(i))
    w.release()
    return path


def test_hcsr04_log_crossing_midnight(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    log.write_text("Timestamp,Distance_cm\n23:59:59.900,120\n00:00:00.100,400\n00:00:01,87.5\n")
    ranges = read_ranges_csv(log, [SensorMeta("centre")])
    assert ranges == [
        Range(0, "centre", 1.2),
        Range(200_000_000, "centre", None),
        Range(1_100_000_000, "centre", 0.875),
    ]


def test_hcsr04_no_echo_threshold_follows_the_sensor(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    log.write_text("timestamp,distance_cm\n10:00:00.000,250\n10:00:00.100,199.9\n")
    assert [r.metres for r in read_ranges_csv(log, [SensorMeta("s", max_distance_m=2.5)])] == [None, 1.999]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (
            "Timestamp,Distance_cm\n10:00:01.000,50\n10:00:00.000,50\n",
            "log.csv line 3: Timestamp 10:00:00.000 goes backwards",
        ),
        ("Timestamp,Distance_cm\n10:00:01.000,near\n", "log.csv line 2: Distance_cm is not a number"),
        ("Timestamp,Distance_cm\n10:00:01.000,-5\n", "log.csv line 2: Distance_cm must be 0 or more"),
        ("Timestamp,Distance_cm\n25:00:01.000,5\n", "log.csv line 2: Timestamp '25:00:01.000' is not a valid time"),
        ("Timestamp,Distance_cm\nyesterday,5\n", "log.csv line 2: Timestamp 'yesterday' is not a time of day"),
    ],
)
def test_bad_hcsr04_log(tmp_path: Path, text: str, match: str) -> None:
    log = tmp_path / "log.csv"
    log.write_text(text)
    with pytest.raises(RecordingError, match=match):
        read_ranges_csv(log, [SensorMeta("centre")])


def test_from_video_with_project_format_ranges(tmp_path: Path) -> None:
    csv = tmp_path / "r.csv"
    csv.write_text(f"t_ns,sensor,metres,fault\n{T0},centre,2.0,\n{T0 + 5},left,,broken\n")
    out = from_video(_tiny_video(tmp_path / "v.avi"), tmp_path / "rec", ranges_csv=csv,
                     sensor=[SensorMeta("centre"), SensorMeta("left", bearing_deg=-30)], start_offset_s=0.1)
    rec = Recording.open(out)
    assert list(rec.ranges) == [Range(100_000_000, "centre", 2.0), Range(100_000_005, "left", None, "broken")]
    assert rec.frame_count == 3 and list(rec.frame_times) == [0, 200_000_000, 400_000_000]


def test_from_video_unknown_header_writes_nothing(tmp_path: Path) -> None:
    csv = tmp_path / "r.csv"
    csv.write_text("when,how_far\n1,2\n")
    with pytest.raises(RecordingError, match="unknown CSV header 'when,how_far'; accepted: .*Timestamp,Distance_cm"):
        from_video(_tiny_video(tmp_path / "v.avi"), tmp_path / "rec", ranges_csv=csv)
    assert not (tmp_path / "rec").exists()


def test_from_video_unknown_sensor_in_project_format(tmp_path: Path) -> None:
    csv = tmp_path / "r.csv"
    csv.write_text(f"t_ns,sensor,metres\n{T0},left,2.0\n")
    with pytest.raises(RecordingError, match="r.csv line 2: unknown sensor 'left'"):
        from_video(_tiny_video(tmp_path / "v.avi"), tmp_path / "rec", ranges_csv=csv)


def test_from_video_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="video not found"):
        from_video(tmp_path / "none.avi", tmp_path / "rec")
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"not a video at all" * 100)
    with pytest.raises(RecordingError, match="cannot read video"):
        from_video(junk, tmp_path / "rec")
    with pytest.raises(RecordingError, match="ranges file not found"):
        from_video(_tiny_video(tmp_path / "v.avi"), tmp_path / "rec", ranges_csv=tmp_path / "nope.csv")
    assert not (tmp_path / "rec").exists()


def test_from_video_refuses_an_existing_recording(rec_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="already exists and is not empty"):
        from_video(_tiny_video(tmp_path / "v.avi"), rec_dir)
    assert Recording.open(rec_dir).frame_count == len(SEQS)  # not deleted by the failed conversion


# --- CLI --------------------------------------------------------------------


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="rearguard")
    cli_recording.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


@needs_shared
def test_cli_from_video_and_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rec"
    assert _cli("recording", "from-video", str(VTEST), str(out), "--ranges", str(HCSR04),
                "--max-frames", "12", "--hfov", "62") == 0
    assert "12 frames, 110 ranges" in capsys.readouterr().out
    (out / "truth.json").write_text('{"contact_s": null, "clear": [[0, 1]]}')
    assert _cli("recording", "info", str(out)) == 0
    text = capsys.readouterr().out
    assert "frames     12" in text
    assert "hfov 62 deg" in text
    assert "sensor     centre: bearing 0 deg, beam 15 deg, max 4 m" in text
    assert "ranges     110 (84 echo, 26 no echo)" in text
    assert "truth      contact none, 1 clear interval(s)" in text
    assert "warning" not in text
    assert "mount" not in text  # none given: a replay uses its config's


@needs_shared
def test_cli_from_video_keeps_a_given_mount(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rec"
    assert _cli("recording", "from-video", str(VTEST), str(out), "--max-frames", "2",
                "--mount-height", "2.2", "--pitch", "12") == 0
    cam = Recording.open(out).meta.camera
    assert (cam.mount_height_m, cam.pitch_deg) == (2.2, 12.0)
    assert _cli("recording", "info", str(out)) == 0
    assert "mount      height m 2.2, pitch deg 12" in capsys.readouterr().out
    assert _cli("recording", "from-video", str(VTEST), str(tmp_path / "bad"), "--mount-height", "3") == 1
    assert "mount_height_m" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_cli_info_reports_warnings(rec_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with (rec_dir / "frames.csv").open("a") as f:
        f.write("99,1")
    assert _cli("recording", "info", str(rec_dir)) == 0
    text = capsys.readouterr().out
    assert "ranges     5 (3 echo, 1 no echo, 1 fault)" in text
    assert "warning    frames.csv: the last line '99,1' is incomplete" in text


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli("recording", "info", str(tmp_path)) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rearguard: ") and "missing meta.json" in err
    assert _cli("recording", "from-video", str(tmp_path / "none.avi"), str(tmp_path / "r")) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"rearguard: video not found: {tmp_path / 'none.avi'}"


def test_the_jpeg_copying_avi_writer_reads_back_closed_or_cut(tmp_path: Path) -> None:
    """device/record/avi.py (incident clips): the JPEGs come back byte for
    byte, through our reader and OpenCV's; a file whose writer never closed
    it (a kill) still gives its complete frames, like OpenCV's writer's."""
    from device.record.avi import MjpegAviWriter
    from device.record.format import _index_avi

    jpegs = [bytes(cv2.imencode(".jpg", np.full((48, 64, 3), 40 * i, np.uint8))[1]) for i in range(4)]
    jpegs[1] += b"\0"  # an odd size: the chunk is padded, the frame is not

    def frames_of(path: Path) -> list[bytes]:
        index = _index_avi(path)
        data = path.read_bytes()
        return [data[off:off + size] for off, size in index.chunks]

    closed = MjpegAviWriter(tmp_path / "a.avi", width=64, height=48, fps=10)
    for j in jpegs:
        closed.write(j)
    closed.close()
    assert frames_of(tmp_path / "a.avi") == jpegs and _index_avi(tmp_path / "a.avi").notes == ()
    cap = cv2.VideoCapture(str(tmp_path / "a.avi"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 4 and cap.get(cv2.CAP_PROP_FPS) == 10
    assert sum(1 for _ in iter(lambda: cap.read()[0], False)) == 4
    cap.release()

    cut = MjpegAviWriter(tmp_path / "b.avi", width=64, height=48, fps=10)
    for j in jpegs[:3]:
        cut.write(j)
    cut._f.flush()  # what a kill leaves: the frames written, no index, sizes 0
    assert frames_of(tmp_path / "b.avi") == jpegs[:3]
    assert any("not closed" in n for n in _index_avi(tmp_path / "b.avi").notes)
    cut.close()


def test_the_camera_mount_is_kept_when_given_and_absent_when_not(tmp_path: Path) -> None:
    # A recording says how high and how tilted its camera was: replays turn box edges into
    # distances with it. One that does not (older, or from any video) says nothing at all.
    d = tmp_path / "m"
    with RecordingWriter(d, width=W, height=H, fps=15, hfov_deg=66.0, sensors=SENSORS, source="t",
                         mount_height_m=1.3, pitch_deg=6.5) as w:
        w.write_frame(Frame(0, T0, image(0)))
    assert json.loads((d / "meta.json").read_text())["camera"] == {
        "width": W, "height": H, "hfov_deg": 66.0, "fps": 15.0, "mount_height_m": 1.3, "pitch_deg": 6.5}
    cam = Recording.open(d).meta.camera
    assert (cam.mount_height_m, cam.pitch_deg) == (1.3, 6.5)
    cam = Recording.open(write_basic(tmp_path / "plain")).meta.camera
    assert (cam.mount_height_m, cam.pitch_deg) == (None, None)


@pytest.mark.parametrize("key, value", [("mount_height_m", 3.0), ("mount_height_m", "1.1"), ("pitch_deg", 50.0)])
def test_a_bad_camera_mount_is_refused_naming_it(rec_dir: Path, key: str, value: object) -> None:
    _edit_json(rec_dir / "meta.json", camera={"width": W, "height": H, "hfov_deg": 66, "fps": 15, key: value})
    with pytest.raises(RecordingError, match=f"camera.{key}"):
        Recording.open(rec_dir)


@pytest.mark.parametrize("key, value", [("mount_height_m", 0.1), ("mount_height_m", 0.1001), ("mount_height_m", 2.5),
                                        ("mount_height_m", 2.5001), ("pitch_deg", -30.0), ("pitch_deg", -30.01),
                                        ("pitch_deg", 45.0), ("pitch_deg", 45.01)])
def test_a_recorded_mount_has_the_configs_bounds(tmp_path: Path, key: str, value: float) -> None:
    # A replay puts the recorded mount into the config without validating it again.
    from pydantic import ValidationError

    from device.core.config import CameraConfig

    try:
        CameraConfig.model_validate({key: value})
        config_ok = True
    except ValidationError:
        config_ok = False
    try:
        RecordingWriter(tmp_path / "r", width=W, height=H, fps=15, hfov_deg=66, sensors=SENSORS, source="t",
                        **{key: value}).close()
        recording_ok = True
    except RecordingError:
        recording_ok = False
    assert recording_ok == config_ok
