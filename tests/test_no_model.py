"""No model (missing or rotten): looming still reads the camera's frames.

The model fault is reported and plays FAULT while nothing closes in; a wall
closing in still gives a WARN from looming (a real WARN wins over faults).
The camera is still watched, recorded and retried without a detector, and
a camera that stops is a fault, never silence. Replays run on the replay
clock; the live composition runs on a test-set clock, its threads waited
for (bounded) frame by frame, never timed.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

from device.app import compose
from device.app.replay import replay
from device.camera_path import FramesOnlyStage, LoomingStage, ThreadedRunner
from device.core.clock import NS_PER_S, ReplayClock
from device.core.config import Config, from_dict
from device.core.faults import Part, texts
from device.core.types import AlertLevel, Frame, Range
from device.record.format import DEFAULT_SENSOR, Recording, RecordingWriter
from device.sensing.ultrasonic import RecordedRanges
from fakes import LateCamera, SlotFrames, inline_camera, wait_until
from looming_scene import GROUND, Camera, render, wall
from test_looming import gait

FPS = 15
CAM = Camera(width=320, height=180)
SPEED, WALL_M = 3.0, 9.0  # m/s, and the wall's distance at the start
CONTACT_S = WALL_M / SPEED


def no_model(tmp_path: Path, name: str = "missing.onnx") -> Config:
    return from_dict({"detector": {"model": str(tmp_path / name)},
                      "camera": {"width": CAM.width, "height": CAM.height}})


def scene(planes: list, speed: float, seconds: float, stop_at_m: float | None = None) -> tuple[Frame, ...]:
    """The rendered frames of a run along the path, as a camera would give them."""
    out = []
    for i in range(round(seconds * FPS)):
        t = i / FPS
        if stop_at_m is not None and stop_at_m - speed * t < 0.3:
            break
        out.append(Frame(i, round(t * NS_PER_S), render(CAM, planes, speed * t, **gait(t))))
    return tuple(out)


@functools.cache
def wall_run() -> tuple[Frame, ...]:
    """Running backwards at 3 m/s onto a wall 9 m behind: contact at 3 s."""
    return scene([GROUND, wall(WALL_M)], SPEED, CONTACT_S, stop_at_m=WALL_M)


def write_recording(directory: Path, frames: tuple[Frame, ...]) -> Path:
    """A device-style recording of `frames`, its sensor hearing nothing in
    range (a wall beyond 4 m, then the camera alone ahead of the echo)."""
    with RecordingWriter(directory, width=CAM.width, height=CAM.height, fps=FPS, hfov_deg=CAM.hfov_deg,
                         sensors=[DEFAULT_SENSOR], source="test: rendered scene") as w:
        for f in frames:
            w.write_frame(f)
        end, t = frames[-1].t_ns, 0
        while t <= end:
            w.write_ranges([Range(t_ns=t, sensor="centre", metres=None)])
            t += 60_000_000
    return directory


@pytest.mark.parametrize(("name", "why"), [("missing.onnx", "model file not found"),
                                           ("rotten.onnx", "it is corrupt or not an ONNX model")])
def test_replay_with_no_model_warns_from_looming_before_the_wall_and_reports_the_model(
        tmp_path: Path, name: str, why: str) -> None:
    if name == "rotten.onnx":
        (tmp_path / name).write_bytes(np.random.default_rng(5).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    rec = write_recording(tmp_path / "wall", wall_run())
    levels: list[AlertLevel] = []
    result = replay(rec, no_model(tmp_path, name), on_step=lambda p: levels.append(p.level))
    [model] = result.static_faults
    assert model.startswith("model: ") and name in model and why in model
    assert result.frames == len(wall_run())  # every frame read, none detected
    assert result.stats["detect_ms"] is None and result.stats["looming_ms"] is not None
    first = result.events[0]
    assert first.level == AlertLevel.FAULT and model in first.faults  # at once, while nothing closes in yet
    warn = [e for e in result.events if e.level in (AlertLevel.WARN, AlertLevel.DANGER)]
    assert warn and warn[0].source == "looming", result.events
    lead = CONTACT_S - (warn[0].t_ns - result.start_ns) / NS_PER_S
    assert lead >= 2.0, f"looming alone warned only {lead:.2f} s before contact"
    assert model in warn[0].faults  # the fault is still carried while WARN plays over it
    assert AlertLevel.CLEAR not in levels  # FAULT, then the WARN, never silence


def test_no_model_and_nothing_closing_in_feels_fault_never_clear(tmp_path: Path) -> None:
    rec = write_recording(tmp_path / "open", scene([GROUND], SPEED, 2.0))
    levels: list[AlertLevel] = []
    result = replay(rec, no_model(tmp_path), on_step=lambda p: levels.append(p.level))
    assert set(levels) == {AlertLevel.FAULT}
    assert [e.level for e in result.events] == [AlertLevel.FAULT]
    assert any(f.startswith("model: ") for f in result.events[0].faults)
    assert result.frames == 30 and result.stats["looming_ms"] is not None  # looming read them, found nothing


def test_replay_cli_with_the_configured_model_missing_replays_with_looming(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from device.cli.main import main

    rec = write_recording(tmp_path / "wall", wall_run())
    cfg = tmp_path / "no-model.toml"
    cfg.write_text(f'[detector]\nmodel = "{tmp_path / "missing.onnx"}"\n')
    assert main(["replay", str(rec), "--config", str(cfg), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    sources = {e["source"] for e in out["events"] if e["level"] in ("WARN", "DANGER")}
    assert sources == {"looming"}
    assert out["events"][0]["level"] == "FAULT" and "missing.onnx" in out["events"][0]["faults"][0]


def test_replay_with_no_model_ignores_a_detector_pace(tmp_path: Path) -> None:
    """There is no detector to pace: looming reads every frame either way."""
    from device.camera_path import DetectorPace

    rec = write_recording(tmp_path / "wall", wall_run())
    cfg = no_model(tmp_path)
    paced = replay(rec, cfg, pace=DetectorPace(400.0))
    inline = replay(rec, cfg)
    assert paced.events == inline.events and paced.pace is None


# ---------------------------------------------------------------- the live device


class Camera320(SlotFrames):
    width, height = CAM.width, CAM.height

    def put_frame(self, frame: Frame) -> None:
        self.slot.put(frame)



@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """compose_device with no model, a test-fed camera, a test-set clock and
    a ranger that hears nothing in range."""
    cams: list[Camera320] = []
    clock = ReplayClock(0)

    def open_camera(source: str, cfg: Config, clk: object) -> Camera320:
        cams.append(Camera320())
        return cams[-1]

    class Ranger:
        @staticmethod
        def from_config(*_: object, **__: object) -> RecordedRanges:
            return RecordedRanges([Range(t_ns=round(i * 0.06 * NS_PER_S), sensor="centre", metres=None)
                                   for i in range(200)])

    monkeypatch.setattr(compose, "open_camera", open_camera)
    monkeypatch.setattr(compose, "MonotonicClock", lambda: clock)
    monkeypatch.setattr(compose, "UltrasonicRanger", Ranger)
    devices: list[compose.Device] = []

    def make(record: str | None = None) -> tuple[compose.Device, Camera320, ReplayClock]:
        device = compose.compose_device(no_model(tmp_path), source="pi", mock_pins=True, record=record)
        devices.append(device)
        return device, cams[-1], clock

    yield make
    for d in devices:
        d.close()


def test_live_no_model_runs_looming_on_the_camera_and_a_stopped_camera_is_a_fault(live, tmp_path: Path) -> None:
    device, cam, clock = live(record=str(tmp_path / "rec"))
    assert device.detector is None and [f.part for f in device.start_faults()] == [Part.MODEL]
    pipe = device.assemble()
    runner = pipe.camera.runner
    assert isinstance(runner, ThreadedRunner) and [type(s) for s in runner._stages] == [FramesOnlyStage, LoomingStage]
    assert device.pace is not None and not device.pace.active  # no detector: no detection pace to judge
    frames = wall_run()
    for f in frames:
        cam.put_frame(f)
        # Both branches take every frame before the next (bounded waits, no timing).
        assert wait_until(lambda f=f: "looming" in runner.newest and runner.newest["looming"].seq == f.seq)
        assert wait_until(lambda f=f: runner.watch.last_ns == f.t_ns)
        clock.set(f.t_ns)
        pipe.step()
    warn = [e for e in pipe.events if e.level in (AlertLevel.WARN, AlertLevel.DANGER)]
    assert warn and warn[0].source == "looming", pipe.events
    assert CONTACT_S - warn[0].t_ns / NS_PER_S >= 2.0
    view = pipe.view()  # what the preview draws: the newest frame and looming's region, no boxes
    assert view.frame is not None and view.frame.seq == frames[-1].seq and view.looming is not None
    assert view.camera is not None and view.camera.tracks == ()
    assert pipe.events[0].level == AlertLevel.FAULT and pipe.events[0].faults[0].startswith("model: ")

    # The camera stops: no new frame for longer than camera.max_age_s and the frames' own spacing.
    last, gap = frames[-1].t_ns, frames[-1].t_ns - frames[-2].t_ns
    assert runner.watch.interval_ns() == gap
    clock.set(last + round(device.cfg.camera.max_age_s * NS_PER_S) + gap + NS_PER_S // 50)
    threat = pipe.step()
    assert any(f.startswith("camera: no frame for") for f in texts(threat.faults)), threat.faults
    assert pipe.level == AlertLevel.FAULT

    device.close()
    [seg] = sorted((tmp_path / "rec").glob("seg-*"))
    recorded = Recording.open(seg).frame_count  # recorded without a model
    assert recorded > 0 and recorded == len(frames) - device.recorder.frames_dropped


def test_live_no_model_a_frozen_camera_is_a_fault(live) -> None:
    device, cam, clock = live()
    pipe = device.assemble()
    still = wall_run()[0].image
    t = 0
    for i in range(12):  # 0.73 s of one bit-identical image
        t = round(i / FPS * NS_PER_S)
        cam.put_frame(Frame(i, t, still))
        assert wait_until(lambda t=t: pipe.camera.runner.watch.last_ns == t)
        clock.set(t)
        pipe.step()
    assert any(f.startswith("camera: image frozen") for f in texts(pipe.threat.faults)), pipe.threat.faults


def test_camera_retry_without_a_model_brings_looming_back(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = ReplayClock(0)
    late = LateCamera(SlotFrames)
    opened = late.opened
    monkeypatch.setattr(compose, "open_camera", late)
    monkeypatch.setattr(compose, "CAMERA_RETRY_S", 0.01)
    cfg = Config()
    path = compose.live_camera(cfg, "pi", clock, None, None)
    try:
        assert [f.part for f in path.faults(0)] == [Part.CAMERA] and not opened
        path.start()  # its frames thread looks for the camera again
        assert wait_until(lambda: len(opened) == 1 and path.faults(0) == ())
        runner = path.runner
        assert isinstance(runner, ThreadedRunner) and [type(s) for s in runner._stages] == [FramesOnlyStage, LoomingStage]
        opened[0].put(0, 0)
        assert wait_until(lambda: "looming" in runner.newest)  # looming is back on the new camera's frames
    finally:
        path.close()
    assert opened[0].closed


def test_frames_only_stage_gives_the_frame_and_no_tracks() -> None:
    frame = Frame(3, 5, np.zeros((4, 4, 3), np.uint8))
    src = SlotFrames()
    src.slot.put(frame)
    result = inline_camera(src, FramesOnlyStage(), ReplayClock(0)).poll().camera
    assert result is not None and result.tracks == () and result.frame is frame and result.detect_ms is None
