"""Replays of recordings made from the shared footage and the real HC-SR04
log, through the full pipeline with the real model and simulated pins.

A replay of the approach recording takes seconds of real-model inference,
so it runs twice in this module, not once per test: `approach_result` (in
process) is shared by the tests that read its result, and the CLI's --json
run is compared event for event with it (which is what "deterministic"
means). The human output is printed from the shared result."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

import build_cache
import device.app.replay
from device.app.replay import ReplayResult, replay
from device.cli.main import main
from device.core.config import Config
from device.core.types import AlertLevel
from device.record.format import RecordingError, from_video

pytestmark = pytest.mark.real_model


@pytest.fixture(scope="module")
def model_config(model_path: Path) -> Config:
    cfg = Config()
    return cfg.model_copy(update={"detector": cfg.detector.model_copy(update={"model": str(model_path)})})


def video_recording(tmp_path_factory: pytest.TempPathFactory, name: str, video: Path, **kw: Any) -> Path:
    """from_video(video, **kw), a copy of it for this session. Encoding the
    frames takes seconds, so the recording is built once per key in the
    test cache (tests/build_cache.py): the inputs' hashes, the parameters,
    device/record's code, the tools' versions."""
    import cv2
    import numpy as np

    import device.record

    inputs = {"video": build_cache.sha256(video), "record_code": build_cache.sha256(Path(device.record.__file__).parent),
              "ranges": build_cache.sha256(kw["ranges_csv"]) if kw.get("ranges_csv") else None,
              "params": {k: v for k, v in kw.items() if k != "ranges_csv"}, "cv2": cv2.__version__,
              "numpy": np.__version__}
    built = build_cache.cached(f"recording-{name}", inputs, lambda d: from_video(video, d / name, **kw))
    # Hard links: no test writes into these recordings (test_corrupt... copies first).
    return Path(shutil.copytree(built / name, tmp_path_factory.mktemp("rec") / name, copy_function=link_or_copy))


def link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another filesystem
        shutil.copy2(src, dst)


@pytest.fixture(scope="module")
def approach_recording(tmp_path_factory: pytest.TempPathFactory, shared: Path) -> Path:
    """vtest.avi with the real sensor log laid from 20 s on (people walk
    through the sensor's beam then, far behind the hand): a hand is brought
    from the ~1 m background to 6-27 cm, with real no-echo dropouts."""
    return video_recording(
        tmp_path_factory, "approach", shared / "footage" / "vtest.avi",
        ranges_csv=shared / "ultrasonic" / "hcsr04_log.csv", start_offset_s=20.0, max_frames=400, hfov_deg=60.0,
    )


@pytest.fixture(scope="module")
def clear_recording(tmp_path_factory: pytest.TempPathFactory, shared: Path) -> Path:
    """The whole of vtest.avi with no ultrasonic readings: people walk at a
    distance, towards, away and across, none of them into the runner."""
    return video_recording(tmp_path_factory, "clear", shared / "footage" / "vtest.avi", hfov_deg=60.0)


@pytest.fixture(scope="module")
def approach_result(approach_recording: Path, model_config: Config) -> ReplayResult:
    """The approach recording replayed once, for every test that reads the result."""
    return replay(approach_recording, model_config)


@pytest.fixture(scope="module")
def approach_cli_json(approach_recording: Path, model_path: Path, tmp_path_factory: pytest.TempPathFactory,
                      ) -> dict[str, Any]:
    """`rearguard replay --json` of the approach recording: a second, independent replay."""
    cfg = tmp_path_factory.mktemp("cfg") / "c.toml"
    cfg.write_text(f'[detector]\nmodel = "{model_path}"\n')
    out = io.StringIO()  # capsys is per test; this fixture is per module
    with contextlib.redirect_stdout(out):
        assert main(["replay", str(approach_recording), "--json", "--config", str(cfg)]) == 0
    return json.loads(out.getvalue())


def levels(result) -> list[AlertLevel]:
    return [e.level for e in result.events]


def test_approaching_obstacle_warns_then_danger(approach_result: ReplayResult) -> None:
    result = approach_result
    seen = levels(result)
    assert AlertLevel.WARN in seen and AlertLevel.DANGER in seen
    assert seen.index(AlertLevel.WARN) < seen.index(AlertLevel.DANGER)
    first_warn = result.events[seen.index(AlertLevel.WARN)]
    danger = result.events[seen.index(AlertLevel.DANGER)]
    assert first_warn.source in ("ultrasonic", "fused")
    # The background wall is ~1 m away: WARN by distance (< 2 m) ...
    assert first_warn.distance_m is not None and 0.9 <= first_warn.distance_m <= 1.1
    # ... and DANGER once the hand is inside 0.8 m.
    assert danger.distance_m is not None and danger.distance_m < 0.8
    # The log's first two echoes (0.98 m at +0.107 s and +0.233 s) confirm
    # each other: WARN at the next loop pass. The hand's first two (0.21 m at
    # +2.618 s and +2.742 s) give DANGER the same way. Whatever the camera
    # sees in the same frames (people ~10 m away) must not delay either.
    assert (first_warn.t_ns - result.start_ns) / 1e9 == pytest.approx(20.24, abs=0.021)
    assert (danger.t_ns - result.start_ns) / 1e9 == pytest.approx(22.76, abs=0.021)
    assert result.frames == 400
    assert result.static_faults == ()


def test_clear_path_gives_no_alert(clear_recording: Path, model_config: Config) -> None:
    result = replay(clear_recording, model_config)
    assert result.frames == 795
    assert [e for e in result.events if e.level >= AlertLevel.WARN] == []
    assert result.stats["detect_ms"] is not None


def test_replay_is_deterministic(approach_result: ReplayResult, approach_cli_json: dict[str, Any]) -> None:
    # Two replays, one in process and one through the CLI with the model
    # named in a config file: the same events, to the nanosecond.
    a = json.loads(json.dumps(approach_result.to_json()))
    b = approach_cli_json
    assert a["events"] == b["events"] and a["frames"] == b["frames"]
    assert len(a["events"]) >= 2


def test_missing_model_runs_on_ultrasonic_and_looming_with_fault(approach_recording: Path, tmp_path: Path) -> None:
    cfg = Config()
    cfg = cfg.model_copy(update={"detector": cfg.detector.model_copy(update={"model": str(tmp_path / "none.onnx")})})
    result = replay(approach_recording, cfg)
    seen = levels(result)
    assert seen[0] == AlertLevel.FAULT and result.events[0].t_ns == result.start_ns
    assert result.static_faults and result.static_faults[0].startswith("model:")
    # A real danger still plays over the fault, then the fault comes back.
    assert AlertLevel.DANGER in seen
    assert seen[-1] == AlertLevel.FAULT
    # The frames are still read, every one, for looming; none is detected.
    assert result.frames == 400 and result.stats["detect_ms"] is None and result.stats["looming_ms"] is not None
    assert {e.source for e in result.events} <= {"ultrasonic", "fused", "looming", "fault"}  # never "camera"


def test_cli_replay_json(approach_cli_json: dict[str, Any]) -> None:
    out = approach_cli_json
    assert set(out) >= {"frames", "events", "stats"}
    assert out["frames"] == 400
    assert {"detect_ms", "total_ms"} <= set(out["stats"])
    ev = out["events"][0]
    assert set(ev) >= {"t_s", "level", "source", "distance_m", "ttc_s"}
    assert all(e["source"] in {"camera", "ultrasonic", "fused", "fault"} for e in out["events"])
    assert all(e["level"] in {lv.name for lv in AlertLevel} for e in out["events"])


def test_cli_replay_human_output(approach_recording: Path, approach_result: ReplayResult, model_path: Path,
                                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[detector]\nmodel = "{model_path}"\n')
    calls = []

    def shared_replay(directory: str | Path, config: Config, **kw: object) -> ReplayResult:
        # The CLI asked for this very replay (recording, model, as fast as
        # possible): print the one already made instead of redoing it.
        calls.append((Path(directory), config.detector.model, kw.get("realtime")))
        return approach_result

    monkeypatch.setattr(device.app.replay, "replay", shared_replay)
    assert main(["replay", str(approach_recording), "--config", str(cfg)]) == 0
    assert calls == [(approach_recording, str(model_path), False)]
    out = capsys.readouterr().out
    assert "WARN" in out and "DANGER" in out and "400 frames" in out


def test_corrupt_recording_is_a_clear_error(approach_recording: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(approach_recording, broken)
    (broken / "frames.csv").write_text("seq,t_ns\n0,abc\n")
    with pytest.raises(RecordingError, match="frames.csv"):
        replay(broken, Config())
    assert main(["replay", str(broken)]) == 1
    err = capsys.readouterr().err
    assert "frames.csv" in err and "Traceback" not in err


def test_a_replay_uses_the_recordings_camera_mount_over_the_config(tmp_path: Path) -> None:
    # A box's bottom edge is a distance only with the camera's own height and tilt: the
    # replaying machine's config may be another mount's (or the built-in one).
    import numpy as np

    from device.app.replay import replay_config
    from device.core.types import Frame
    from device.record.format import Recording, RecordingWriter

    config = Config.model_validate({"camera": {"mount_height_m": 1.0, "pitch_deg": 2.0}})

    def recorded(name: str, **mount: float) -> Recording:
        with RecordingWriter(tmp_path / name, width=64, height=48, fps=10, hfov_deg=45.0,
                             sensors=config.ranging.sensors, source="t", **mount) as w:
            w.write_frame(Frame(0, 0, np.zeros((48, 64, 3), np.uint8)))
        return Recording.open(tmp_path / name)

    cam = replay_config(config, recorded("m", mount_height_m=1.4, pitch_deg=6.0)).camera
    assert (cam.mount_height_m, cam.pitch_deg, cam.hfov_deg, cam.width) == (1.4, 6.0, 45.0, 64)
    cam = replay_config(config, recorded("plain")).camera  # says nothing: the config's
    assert (cam.mount_height_m, cam.pitch_deg) == (1.0, 2.0)
