"""Incident clips: the seconds around every WARN and DANGER kept as a
recording of their own, safe from the ring's deletions, within their own
budget, listed by `rearguard recording incidents`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.cli.main import main
from device.core.clock import NS_PER_S
from device.core.config import Config
from device.core.types import AlertEvent, AlertLevel, Frame, Range
from device.record import format as fmt
from device.record.format import VIDEO, JpegFrame, Recording
from device.record.incidents import INCIDENT, DeviceRecording, IncidentClips, find_clips, read_incident
from device.record.segments import MB, SegmentedRecorder

SENSORS = Config().ranging.sensors
SENSOR = SENSORS[0].name


def ns(t: float) -> int:
    return round(t * NS_PER_S)


def frame(i: int) -> Frame:
    rng = np.random.default_rng(i)
    return Frame(i, ns(i / 10), rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))


def segment_bytes(tmp_path: Path) -> int:
    probe = SegmentedRecorder(tmp_path / "probe", width=64, height=48, fps=10, hfov_deg=66.0, sensors=SENSORS,
                              source="t", segment_s=5.0)
    for i in range(50):
        probe.write_frame(frame(i))
    probe.close()
    return sum(f.stat().st_size for f in probe.segments()[0].iterdir())


def device_recording(tmp_path: Path, *, budget: float, clip_budget: float) -> DeviceRecording:
    seg = SegmentedRecorder(tmp_path / "rec", width=64, height=48, fps=10, hfov_deg=66.0, sensors=SENSORS,
                            source="test", segment_s=5.0, budget_mb=budget / MB, min_free_mb=10,
                            mount_height_m=1.25, pitch_deg=4.0)
    return DeviceRecording(seg, IncidentClips(seg, before_s=10, after_s=5, budget_mb=clip_budget / MB))


def run(rec: DeviceRecording, seconds: float, events: dict[int, AlertEvent]) -> None:
    """The recorder thread's view of a run: frames and readings in time order, alert changes as they come."""
    for i in range(round(seconds * 10)):
        f = frame(i)
        rec.write_frame(f)
        rec.write_ranges([Range(f.t_ns, SENSOR, 2.0)])
        if i in events:
            rec.on_event(events[i])
        assert rec.clips is not None
        rec.clips.flush()  # as if the clip writer were quick: the test needs no timing


def event(t: float, level: AlertLevel, source: str = "camera") -> AlertEvent:
    return AlertEvent(ns(t), level, source, 2.0, 1.4)


def test_a_clip_around_warn_and_danger_survives_the_ring(tmp_path: Path) -> None:
    seg = segment_bytes(tmp_path)
    rec = device_recording(tmp_path, budget=2.5 * seg, clip_budget=100 * seg)
    run(rec, 40, {
        120: event(12, AlertLevel.WARN),
        140: event(14, AlertLevel.DANGER, "ultrasonic"),  # within the clip: extends it to 19 s
        160: event(16, AlertLevel.CLEAR),
    })
    rec.close()
    # The ring kept only its budget's worth: the seconds before the alert are gone from it...
    ring = rec.segments.segments()
    assert len(ring) <= 4 and Recording.open(ring[0]).frame_times[0] > ns(20)
    # ...but not from the clip: 2 s to 19 s, every frame and reading.
    clips = find_clips(tmp_path / "rec")
    assert [c.name for c in clips] == ["inc-000001"]
    clip = Recording.open(clips[0])
    assert clip.frame_times == tuple(ns(i / 10) for i in range(20, 191))
    assert [r.t_ns for r in clip.ranges] == list(clip.frame_times)
    assert clip.warnings == ()
    # The camera's mount goes with the footage: into every segment, and from them into the clip.
    for r in (clip, Recording.open(ring[-1])):
        assert (r.meta.camera.mount_height_m, r.meta.camera.pitch_deg) == (1.25, 4.0)
    info = read_incident(clips[0])
    assert (info.level, info.source, info.alerts) == ("DANGER", "camera", 2)
    assert (info.t_ns, info.start_ns, info.end_ns) == (ns(12), ns(2), ns(19))
    assert json.loads((clips[0] / INCIDENT).read_text())["level"] == "DANGER"
    assert rec.fault is None


def test_a_clip_copies_the_segments_jpegs_one_by_one_without_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The segments' frames are already JPEG: the clip writer copies each one's
    # bytes (no decode and encode: the transient that was the soak's peaks).
    seg = segment_bytes(tmp_path)
    rec = device_recording(tmp_path, budget=100 * seg, clip_budget=100 * seg)
    run(rec, 12, {})
    decoded: list[int] = []
    real = fmt.cv2.imdecode
    monkeypatch.setattr(fmt.cv2, "imdecode", lambda *a: decoded.append(1) or real(*a))
    for i in range(120, 200):  # the recorder decodes nothing either  # WARN at 12.5 s: the window is 2.5-17.5 s
        f = frame(i)
        rec.write_frame(f)
        if i == 125:
            rec.on_event(event(12.5, AlertLevel.WARN))
    assert rec.clips is not None
    rec.clips.flush()
    assert decoded == []  # the clip writer decoded nothing
    rec.close()
    clip = Recording.open(find_clips(tmp_path / "rec")[0])
    want = [j for s in rec.segments.segments() for j in Recording.open(s).jpeg_items(ns(2.5), ns(17.5))]
    got = list(clip.jpeg_items())
    assert [j.t_ns for j in got] == [ns(i / 10) for i in range(25, 176)] == [j.t_ns for j in want]
    assert all(isinstance(j, JpegFrame) for j in got)
    assert [j.jpeg for j in got] == [j.jpeg for j in want]  # byte for byte
    assert clip.warnings == ()
    # A player reads it too: OpenCV's own reader, every frame, the header's count.
    cap = cv2.VideoCapture(str(clip.directory / VIDEO))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == len(got)
    ok, img = cap.read()
    assert ok and img.shape == (48, 64, 3)
    cap.release()


def test_a_clip_leaves_out_a_damaged_frame_and_keeps_the_rest(tmp_path: Path) -> None:
    seg = segment_bytes(tmp_path)
    rec = device_recording(tmp_path, budget=100 * seg, clip_budget=100 * seg)
    run(rec, 10, {})
    first = rec.segments.segments()[0]
    chunks = Recording.open(first)._chunks
    with (first / VIDEO).open("r+b") as f:  # frame 3's JPEG header: not a JPEG any more
        f.seek(chunks[3][0])
        f.write(b"\0" * 16)
    run_rest = [frame(i) for i in range(100, 160)]
    for f in run_rest:
        rec.write_frame(f)
        if f.seq == 100:
            rec.on_event(event(10, AlertLevel.WARN))
    rec.close()
    clip = Recording.open(find_clips(tmp_path / "rec")[0])
    assert ns(0.3) not in clip.frame_times and clip.frame_times[:3] == (0, ns(0.1), ns(0.2))
    assert clip.bad_frames() == [] and rec.fault is None


def test_clips_keep_within_their_budget_the_newest_stays(tmp_path: Path) -> None:
    seg = segment_bytes(tmp_path)
    # Room for about one 15 s clip (three 5 s segments' worth).
    rec = device_recording(tmp_path, budget=100 * seg, clip_budget=3.5 * seg)
    run(rec, 60, {120: event(12, AlertLevel.WARN), 400: event(40, AlertLevel.WARN, "fused")})
    rec.close()
    clips = find_clips(tmp_path / "rec")
    assert [c.name for c in clips] == ["inc-000002"]
    assert read_incident(clips[0]).source == "fused"


def test_an_alert_near_the_start_and_one_at_the_end_of_the_run(tmp_path: Path) -> None:
    seg = segment_bytes(tmp_path)
    rec = device_recording(tmp_path, budget=100 * seg, clip_budget=100 * seg)
    run(rec, 8, {30: event(3, AlertLevel.WARN), 75: event(7.5, AlertLevel.DANGER)})
    rec.close()  # the run stops inside the clip's window: what there is is kept
    clips = find_clips(tmp_path / "rec")
    assert len(clips) == 1
    clip = Recording.open(clips[0])
    assert clip.frame_times[0] == 0 and clip.frame_times[-1] == ns(7.9)


def test_recording_incidents_lists_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seg = segment_bytes(tmp_path)
    rec = device_recording(tmp_path, budget=100 * seg, clip_budget=100 * seg)
    run(rec, 40, {120: event(12, AlertLevel.WARN), 300: event(30, AlertLevel.DANGER, "ultrasonic")})
    rec.close()
    assert main(["recording", "incidents", str(tmp_path / "rec")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["time", "(UTC)", "level", "source", "length", "path", "what"]
    assert [ln.split()[2:5] for ln in lines[1:]] == [["WARN", "camera", "15.0s"], ["DANGER", "ultrasonic", "15.0s"]]
    assert lines[2].endswith("inc-000002  echo 2.0 m, ttc 1.4 s (ultrasonic)")
    assert main(["recording", "incidents", str(tmp_path / "nothing")]) == 1


@pytest.mark.real_model
def test_a_live_run_keeps_a_clip_of_its_alerts(tmp_path: Path, model_path: Path, shared: Path) -> None:
    # The whole path on the device: the loop's alert events reach the recorder
    # thread, the clip is cut from the segments, and it replays.
    from device.tools.scenario import make_suite

    (video_dir,) = make_suite(shared / "images" / "coco", tmp_path / "sc", names=["person-3mps-silent"])
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[detector]\nmodel = "{model_path}"\n')
    env = dict(os.environ, GPIOZERO_PIN_FACTORY="mock", REARGUARD_CONFIG=str(cfg))
    env.pop("NOTIFY_SOCKET", None)
    done = subprocess.run(
        [sys.executable, "-m", "device", "run", "--quiet", "--no-self-test", "--source", str(video_dir / "video.avi"),
         "--record", str(tmp_path / "rec")],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    levels = {line.split()[0] for line in done.stdout.splitlines() + done.stderr.splitlines() if line.strip()}
    clips = find_clips(tmp_path / "rec")
    # The person is seen closing in (WARN, then DANGER, on an idle laptop); a
    # machine too loaded to warn makes no clip: either way they must agree.
    # The run ends inside the clip's window, so the clip is written at stop,
    # within a bound (systemd's stop timeout): past it the run says so.
    # Not finished within its bound, a clip may still finish in the process's
    # last grace (device.cli.ending), or not: never a native abort (issue 23).
    alerted = sorted(levels & {"WARN", "DANGER"}, key=lambda n: AlertLevel[n])
    unfinished = "incident clip not finished at stop" in done.stderr
    assert bool(clips) == bool(alerted) or (unfinished and not clips), (done.stdout, done.stderr)
    if clips:
        assert len(clips) == 1
        assert read_incident(clips[0]).level == alerted[-1]
        clip = Recording.open(clips[0])
        assert clip.frame_count > 0 and clip.warnings == ()


def test_the_device_records_its_configured_mount(tmp_path: Path) -> None:
    # `run --record`: each segment says the config's camera height and tilt, so a replay on a
    # laptop with another config turns box edges into the same distances the device did.
    from device.app.compose import build_recorder

    cfg = Config.model_validate({"camera": {"mount_height_m": 1.35, "pitch_deg": 7.5}})
    thread = build_recorder(cfg, str(tmp_path / "rec"), None, "test")
    thread.write_frame(Frame(0, 0, np.zeros((cfg.camera.height, cfg.camera.width, 3), np.uint8)))
    thread.close()
    assert thread.fault is None
    cam = Recording.open(thread.sink.segments.segments()[0]).meta.camera
    assert (cam.mount_height_m, cam.pitch_deg) == (1.35, 7.5)
