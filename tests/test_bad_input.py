"""Bad input that gave a traceback, a hang or a MemoryError (issue 23,
items 8-14): each is a clear error naming what is wrong, and nothing else
is lost."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from device.cli.main import main
from device.core.config import Config
from device.record.format import Recording, RecordingError
from test_faults import _NoDetections, _recording


def _rearguard(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    """The command in a subprocess: a hang is a TimeoutExpired, not a stuck suite."""
    return subprocess.run([sys.executable, "-m", "device", *args], capture_output=True, text=True, timeout=timeout,
                          check=False, env=dict(os.environ, **env))


def _fail_cleanly(code: int, err: str, needle: str, want: int = 1) -> None:
    assert code == want, err
    assert "Traceback" not in err
    assert needle in err, err


# ---------------------------------------------------------------- 8: OS errors opening a recording


def test_replay_and_evaluate_name_an_os_error_in_a_recording(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    rec = _recording(tmp_path / "r")
    (rec / "truth.json").mkdir()  # a directory where a file should be
    assert main(["replay", str(rec)]) == 1
    _fail_cleanly(1, capsys.readouterr().err, "truth.json")
    long = tmp_path / ("x" * 300)  # a path component too long for the filesystem
    assert main(["replay", str(long)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "x" * 20 in err


def test_one_unreadable_recording_does_not_abort_evaluate(tmp_path: Path) -> None:
    from device.tools.evaluate import evaluate

    suite = tmp_path / "suite"
    for name in ("a-good", "b-broken"):
        _recording(suite / name)
        (suite / name / "truth.json").write_text('{"contact_s": null, "clear": [[0.0, 2.9]]}')
    (suite / "b-broken" / "truth.json").unlink()
    (suite / "b-broken" / "truth.json").mkdir()
    ev = evaluate([suite], Config(), detector=_NoDetections())  # type: ignore[arg-type]
    assert [s.name for s in ev.scores] == ["a-good"]
    assert len(ev.failed) == 1 and "truth.json" in ev.failed[0][1]


# ---------------------------------------------------------------- 9: deep nesting


def test_deep_nesting_is_a_clear_error_in_every_reader(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "deep.toml"
    cfg.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    assert main(["config", "show", "--config", str(cfg)]) == 2
    _fail_cleanly(2, capsys.readouterr().err, "deep.toml", want=2)

    rec = _recording(tmp_path / "r")
    meta = json.loads((rec / "meta.json").read_text())
    text = json.dumps(meta)[:-1] + ', "extra": ' + "[" * 5000 + "]" * 5000 + "}"
    (rec / "meta.json").write_text(text)
    with pytest.raises(RecordingError, match="meta.json"):
        Recording.open(rec)

    rec = _recording(tmp_path / "r2")
    (rec / "truth.json").write_text('{"contact_s": ' + "[" * 5000 + "]" * 5000 + "}")
    with pytest.raises(RecordingError, match="truth.json"):
        Recording.open(rec)

    from device.record.incidents import read_incident

    clip = tmp_path / "clip"
    clip.mkdir()
    (clip / "incident.json").write_text('{"time": ' + "[" * 5000 + "]" * 5000 + "}")
    with pytest.raises(RecordingError, match="incident.json"):
        read_incident(clip)


def test_thousands_of_nested_riff_lists_are_a_clear_note(tmp_path: Path) -> None:
    rec = _recording(tmp_path / "r")
    video = (rec / "video.avi").read_bytes()
    depth = 3000
    nest = b""
    for _ in range(depth):  # LIST size counts what follows
        nest = b"LIST" + struct.pack("<I", 4 + len(nest)) + b"junk" + nest
    (rec / "video.avi").write_bytes(video + nest)
    r = Recording.open(rec)  # the frames before the nest are all there
    assert r.frame_count == 30
    assert any("nested" in w for w in r.warnings), r.warnings


# ---------------------------------------------------------------- 10, 11: damaged frames


def _chunks(video: bytes) -> list[int]:
    """Offsets of the 00dc chunk headers."""
    out, at = [], video.find(b"00dc")
    while at >= 0:
        out.append(at)
        at = video.find(b"00dc", at + 1)
    return out


def test_a_zero_size_frame_chunk_is_a_bad_frame_not_a_traceback(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    rec = _recording(tmp_path / "r")
    video = bytearray((rec / "video.avi").read_bytes())
    at = _chunks(bytes(video))[3]
    size = struct.unpack("<I", video[at + 4:at + 8])[0]
    # frame 3 becomes an empty chunk followed by a JUNK chunk over its old data
    video[at + 4:at + 8] = struct.pack("<I", 0)
    video[at + 8:at + 16] = b"JUNK" + struct.pack("<I", size - 8)
    (rec / "video.avi").write_bytes(bytes(video))
    assert main(["recording", "info", str(rec)]) == 0
    out = capsys.readouterr().out
    assert "bad frame" in out and "Traceback" not in out
    assert main(["replay", str(rec)]) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_a_flipped_byte_in_a_chunk_header_loses_that_frame_only(tmp_path: Path) -> None:
    rec = _recording(tmp_path / "r")
    video = bytearray((rec / "video.avi").read_bytes())
    at = _chunks(bytes(video))[5]
    video[at] ^= 0xFF  # "00dc" -> garbage: no fourcc
    (rec / "video.avi").write_bytes(bytes(video))
    r = Recording.open(rec)
    frames = list(r.frame_items())
    assert len(frames) >= 28, r.warnings  # the intact frames after it are still read
    assert any("byte" in w for w in r.warnings)


def test_a_jpeg_declaring_a_huge_size_is_refused_before_decoding(tmp_path: Path, monkeypatch) -> None:
    rec = _recording(tmp_path / "r")
    video = bytearray((rec / "video.avi").read_bytes())
    at = _chunks(bytes(video))[2] + 8
    sof = video.find(b"\xff\xc0", at)
    video[sof + 5:sof + 9] = struct.pack(">HH", 30000, 30000)  # height, width
    (rec / "video.avi").write_bytes(bytes(video))
    r = Recording.open(rec)
    decode = cv2.imdecode

    def guarded(buf, flags):
        assert len(buf) != 0
        image = decode(buf, cv2.IMREAD_REDUCED_GRAYSCALE_8)  # cheap: what a full decode would be
        assert image is None or image.shape[0] * 8 < 20000, "decoded a 30000x30000 frame"
        return decode(buf, flags)

    monkeypatch.setattr("device.record.format.cv2.imdecode", guarded)
    bad = r.bad_frames()
    assert [b.index for b in bad] == [2]
    assert "30000x30000" in bad[0].reason


# ---------------------------------------------------------------- 12: a damaged incident.json


@pytest.mark.parametrize("change", [{"time": None}, {"time": 5}, {"newer_key": 1}])
def test_one_damaged_incident_json_hides_no_other_clip(tmp_path: Path, change: dict,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from device.record.incidents import INCIDENT

    base = {"time": "2026-01-01T10:00:00.000Z", "level": "WARN", "source": "camera", "t_ns": 0,
            "start_ns": 0, "end_ns": 2_000_000_000, "alerts": 1, "distance_m": 3.0, "ttc_s": 2.0}
    inc = tmp_path / "rec" / "incidents"
    for i in (1, 2):
        clip = _recording(inc / f"inc-{i:06d}", seconds=2.0)
        (clip / INCIDENT).write_text(json.dumps(base | (change if i == 1 else {})))
    code = main(["recording", "incidents", str(tmp_path / "rec")])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert "inc-000002" in out, (out, err)
    if "newer_key" in change:
        assert "inc-000001" in out  # a key from a newer writer is no damage
        assert code == 0
    else:
        assert "inc-000001" in err


# ---------------------------------------------------------------- 13: FIFOs and endless files


def test_fifos_and_endless_files_are_refused_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    rec = _recording(tmp_path / "r")
    (rec / "truth.json").unlink(missing_ok=True)
    os.mkfifo(rec / "truth.json")
    for args, needle in [
        (["config", "show", "--config", str(fifo)], "not a regular file"),
        (["config", "show", "--config", "/dev/zero"], "not a regular file"),
        (["config", "show", "--config", "/dev/urandom"], "not a regular file"),
        (["config", "show", "--for-board", "auto", "--device-tree", "/dev/zero"], "not a regular file"),
        (["config", "show", "--for-board", "auto", "--device-tree", str(fifo)], "not a regular file"),
        (["models", "verify", str(fifo)], "not a regular file"),
        (["models", "verify", "/dev/zero"], "not a regular file"),
        (["recording", "info", str(rec)], "not a regular file"),
        (["replay", str(rec)], "not a regular file"),
    ]:
        done = _rearguard(*args, timeout=30)
        assert done.returncode in (1, 2), (args, done.stderr)
        assert "Traceback" not in done.stderr and "MemoryError" not in done.stderr, (args, done.stderr)
        assert needle in done.stderr, (args, done.stderr)


# ---------------------------------------------------------------- 14: absurd values


def test_a_nul_in_the_recording_directory_is_a_config_error(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[recording]\ndirectory = "/tmp/a\\u0000b"\n')
    assert main(["config", "show", "--config", str(cfg)]) == 2
    _fail_cleanly(2, capsys.readouterr().err, "recording.directory", want=2)


@pytest.mark.parametrize("args", [
    ["--detector-ms", "1e308"],
    ["--detector-ms", "10,1e308"],
    ["--detector-ms", "10", "--detector-jitter", "1e308"],
])
def test_absurd_detector_times_are_usage_errors(tmp_path: Path, args: list[str],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    rec = _recording(tmp_path / "r")
    assert main(["replay", str(rec), *args]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "detector" in err


def test_absurd_durations_and_thread_counts_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["check", "ranging", "--mock-pins", "--duration", "nan"],
                 ["bench", "--threads", "9999"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2, argv
        err = capsys.readouterr().err
        assert "Traceback" not in err and ("--duration" in err or "--threads" in err), err


# ---------------------------------------------------------------- 15: minor


def test_a_bad_config_is_exit_2_for_evaluate_and_bench(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[camera]\nfps = true\n")
    assert main(["evaluate", str(tmp_path), "--config", str(bad)]) == 2
    assert main(["bench", "--config", str(bad)]) == 2
    assert main(["scenario", "make", str(tmp_path / "out"), "--images", str(tmp_path), "--config", str(bad)]) == 2
    assert capsys.readouterr().err.count("camera.fps") == 3


def test_scenario_make_photos_honours_the_configs_camera(tmp_path: Path, shared: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[camera]\nwidth = 320\nheight = 240\nfps = 10\nhfov_deg = 80.0\n")
    assert main(["scenario", "make", str(tmp_path / "out"), "--images", str(shared / "images" / "coco"),
                 "--only", "person-2mps", "--config", str(cfg)]) == 0
    cam = Recording.open(tmp_path / "out" / "person-2mps").meta.camera
    assert (cam.width, cam.height, cam.fps, cam.hfov_deg) == (320, 240, 10, 80.0)


def test_no_ultrasonic_sensor_must_be_an_explicit_choice(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[ranging]\nsensors = []\n")
    assert main(["config", "show", "--config", str(cfg)]) == 2
    assert "ranging.camera_only" in capsys.readouterr().err
    cfg.write_text("[ranging]\nsensors = []\ncamera_only = true\n")
    assert main(["config", "show", "--config", str(cfg)]) == 0
    assert "camera_only = true" in capsys.readouterr().out


def test_config_show_prints_toml_that_reads_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from device.core.config import load

    cfg = tmp_path / "c.toml"
    cfg.write_text('[recording]\ndirectory = "/srv/a\\nb\\u0001c\\u007fd\\"e\\\\f"\n')
    assert main(["config", "show", "--config", str(cfg)]) == 0
    shown = tmp_path / "shown.toml"
    shown.write_text(capsys.readouterr().out)
    assert load(shown) == load(cfg)
    assert load(shown).recording.directory == '/srv/a\nb\x01c\x7fd"e\\f'


def test_dev_null_is_still_the_empty_config(capsys: pytest.CaptureFixture[str]) -> None:
    """`--config /dev/null` (scripts/install-pi.sh) is the built-in defaults, not a refused device."""
    import tomllib

    from device.core.config import from_dict

    assert main(["config", "show", "--config", "/dev/null"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# the built-in defaults\n")
    assert from_dict(tomllib.loads(out)) == Config()
