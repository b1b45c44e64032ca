"""Faults and bad input (issue 13): each test reproduces one attack and pins
down what the device does instead. The "Faults and bad input"
table of docs/troubleshooting.md is backed by these tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from device.cli.main import main
from device.core import config
from device.core.clock import NS_PER_S, ReplayClock
from device.core.config import Config
from device.core.faults import Fault, Kind, Part, texts
from device.core.types import AlertLevel
from device.output.alerts import PATTERNS, Alerter, pattern_output
from device.output.stall_guard import StallGuard
from device.pipeline import Pipeline
from test_run_source import tiny_video

MS = 1_000_000


# ---------------------------------------------------------------- 0: stall guard vs loop


def _guarded() -> tuple[ReplayClock, Alerter, StallGuard, object]:
    clock = ReplayClock(0)
    factory = MockFactory(pin_class=MockPWMPin)
    alerter = Alerter(Config().outputs, pin_factory=factory)
    guard = StallGuard(alerter, clock, limit_s=0.4)
    return clock, alerter, guard, factory.pin(Config().outputs.haptic_pin)


def test_loop_update_with_an_older_now_after_the_guard_took_over_keeps_fault_playing() -> None:
    # The loop read now = 1.0 s, then its pass took 0.5 s (in it a sensor fault
    # appeared); meanwhile the guard's thread started FAULT at 1.5 s. The pass
    # then updates FAULT with its own 1.0 s.
    clock, alerter, guard, haptic = _guarded()
    clock.set(980 * MS)
    guard.update(AlertLevel.CLEAR, 980 * MS)
    clock.set(1000 * MS)
    loop_now = clock.now_ns()
    clock.set(1500 * MS)
    assert guard.check() and guard.stalled and alerter.level == AlertLevel.FAULT
    guard.update(AlertLevel.FAULT, loop_now)  # raised ValueError: elapsed time cannot be negative
    assert alerter.level == AlertLevel.FAULT and not guard.stalled
    # The pattern never steps back: the next pass 20 ms later plays the phase
    # 20 ms after the guard's start, not one computed from the stale 1.0 s.
    clock.set(1520 * MS)
    guard.update(AlertLevel.FAULT, clock.now_ns())
    assert alerter.output == pattern_output(PATTERNS[AlertLevel.FAULT], 20 * MS)
    clock.set(2120 * MS)  # FAULT's first segment (0.6 s on) has ended 0.6 s after the guard's start
    guard.update(AlertLevel.FAULT, clock.now_ns())
    assert alerter.output == (0.0, False) and haptic.state == 0
    alerter.close()


def test_the_guard_first_then_a_pass_that_began_after_it_continues_the_same_pattern() -> None:
    # The other interleaving: the guard writes FAULT, then a pass that read its
    # now after that write updates FAULT: one pattern, no restart.
    clock, alerter, guard, _ = _guarded()
    guard.update(AlertLevel.CLEAR, 0)
    clock.set(450 * MS)
    assert guard.check()
    clock.set(460 * MS)
    guard.update(AlertLevel.FAULT, clock.now_ns())
    assert alerter.output == pattern_output(PATTERNS[AlertLevel.FAULT], 10 * MS)
    alerter.close()


def test_loop_update_with_an_older_now_and_another_level_wins_over_the_guard() -> None:
    clock, alerter, guard, haptic = _guarded()
    guard.update(AlertLevel.CLEAR, 0)
    loop_now = clock.now_ns()
    clock.set(450 * MS)
    assert guard.check()  # guard: FAULT from 0.45 s
    guard.update(AlertLevel.DANGER, loop_now)  # the late pass found a real DANGER
    assert alerter.level == AlertLevel.DANGER and haptic.state > 0
    clock.set(470 * MS)
    assert not guard.check()  # the loop is back: the guard stays quiet
    assert alerter.level == AlertLevel.DANGER
    alerter.close()


def test_guard_check_after_a_loop_update_with_a_newer_now_never_steps_back() -> None:
    # The other order: the loop's update carries a time later than the clock
    # the guard reads next (both read the same clock, but the guard may read it
    # first and take the lock second).
    clock, alerter, guard, _ = _guarded()
    guard.update(AlertLevel.FAULT, 0)
    clock.set(500 * MS)
    guard.update(AlertLevel.CLEAR, 900 * MS)  # a pass with a later now
    clock.set(1400 * MS)  # 0.5 s after that pass's clock read: stalled
    assert guard.check()
    clock.set(1420 * MS)
    guard.update(AlertLevel.FAULT, 1420 * MS)
    assert alerter.level == AlertLevel.FAULT
    alerter.close()


class _SlowRanges:
    """A range source whose poll takes `slow_ns` of clock time once, during
    which the stall guard's thread runs (called here, so it is exact) and a
    sensor fault appears."""

    def __init__(self, clock: ReplayClock, guard: StallGuard, slow_at_ns: int, slow_ns: int) -> None:
        self.clock, self.guard, self.slow_at_ns, self.slow_ns = clock, guard, slow_at_ns, slow_ns
        self.faulty = False

    def poll(self, now_ns: int) -> list:
        if now_ns == self.slow_at_ns:
            self.clock.set(now_ns + self.slow_ns)
            assert self.guard.check()
            self.faulty = True
        return []

    def close(self) -> None:
        pass


def test_a_slow_pass_in_which_a_fault_appears_does_not_crash_the_loop() -> None:
    clock, alerter, guard, haptic = _guarded()
    ranges = _SlowRanges(clock, guard, slow_at_ns=1000 * MS, slow_ns=500 * MS)
    pipeline = Pipeline(Config(), clock, ranges, guard,
                        extra_faults=lambda: (Fault(Part.SENSOR, Kind.FAILED, "echo-never-rises", "centre"),)
                        if ranges.faulty else ())
    t = 0
    while t <= 2000 * MS:
        clock.set(max(t, clock.now_ns()))
        pipeline.step()  # raised ValueError at the slow pass
        t += 20 * MS
    assert [e.level for e in pipeline.events] == [AlertLevel.FAULT]
    assert alerter.level == AlertLevel.FAULT and not guard.stalled
    alerter.close()


# ---------------------------------------------------------------- 3: config and --duration


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[recording]\nmin_free_mb = inf\n", "recording.min_free_mb"),  # passed, then OverflowError in run
        ("[recording]\nbudget_mb = 1e300\n", "recording.budget_mb"),
        ("[recording]\nbudget_mb = nan\n", "recording.budget_mb"),
        ("[alerts]\nhold_s = -inf\n", "alerts.hold_s"),
        ("[camera]\nfps = true\n", "camera.fps"),  # was read as 1 fps
        ('[camera]\nrotate_180 = "yes"\n', "camera.rotate_180"),  # was read as true
        ("[camera]\nrotate_180 = 1\n", "camera.rotate_180"),
        ('[alerts]\nwarn_ttc_s = "2.0"\n', "alerts.warn_ttc_s"),  # was read as 2.0
        ("[camera]\nwidth = 640.0\n", "camera.width"),
        ('[[ranging.sensors]]\nname = "c"\ntrigger_pin = 23\necho_pin = 24\nbearing_deg = "0"\n',
         "ranging.sensors.0.bearing_deg"),
    ],
)
def test_a_config_that_would_crash_or_be_converted_is_an_error_naming_the_key(
    tmp_path: Path, text: str, key: str
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(config.ConfigError) as err:
        config.load(path)
    assert f"  {key}: " in str(err.value)


def test_an_integer_is_still_a_float_and_lists_are_still_lists(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[alerts]\nhold_s = 1\n[detector]\nclasses = ["person", "dog"]\n'
                    '[[ranging.sensors]]\nname = "c"\ntrigger_pin = 23\necho_pin = 24\n')
    cfg = config.load(path)
    assert cfg.alerts.hold_s == 1.0 and cfg.detector.classes == ("person", "dog")
    assert config.load(_written(tmp_path, config.to_toml(cfg))) == cfg


def _written(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "again.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("value", ["nan", "-5", "0", "inf", "soon"])
def test_run_duration_must_be_a_positive_finite_number(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--mock-pins", "--duration", value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--duration" in err and "Traceback" not in err


# ---------------------------------------------------------------- 2, 11: a live run's start


def _run(tmp_path: Path, *args: str, mock: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[detector]\nmodel = "{tmp_path / "missing.onnx"}"\n')  # no model: no inference, fast
    env = {k: v for k, v in os.environ.items() if k not in ("GPIOZERO_PIN_FACTORY", "NOTIFY_SOCKET")}
    env["REARGUARD_CONFIG"] = str(cfg)
    if mock:
        env["GPIOZERO_PIN_FACTORY"] = "mock"
    return subprocess.run([sys.executable, "-m", "device", "run", "--quiet", "--no-self-test", *args],
                          env=env, capture_output=True, text=True, timeout=timeout)


def test_a_busy_preview_port_does_not_stop_the_device(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = _run(tmp_path, "--source", str(tiny_video(tmp_path / "walk.avi")), "--duration", "0.5",
                    "--preview", str(port))
    assert done.returncode == 0, done.stderr  # was 1, after the self-test
    assert f"running without the preview: cannot serve the preview on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
    assert "stopped after" in done.stderr


@pytest.mark.skipif(Path("/proc/device-tree/model").exists(), reason="a Raspberry Pi has pins")
def test_run_without_pins_says_what_to_do_in_one_message(tmp_path: Path) -> None:
    done = _run(tmp_path, "--duration", "0.5", mock=False)
    assert done.returncode == 1
    assert "--mock-pins" in done.stderr and "no GPIO pins here" in done.stderr
    assert "Fallback" not in done.stderr and "Warning" not in done.stderr  # eight gpiozero warnings before
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


# ---------------------------------------------------------------- 4: a damaged model


@pytest.mark.real_model
def test_a_bit_rotted_model_is_a_model_fault_not_ok(tmp_path: Path, model_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from device.app.compose import build_detector

    monkeypatch.setenv("REARGUARD_MODELS", str(tmp_path))
    data = bytearray(model_path.read_bytes())
    (tmp_path / "yolox_nano.onnx").write_bytes(data)
    detector, faults = build_detector(Config())
    assert detector is not None and faults == ()
    detector.close()
    rng = np.random.default_rng(13)
    for i in rng.choice(len(data) // 2, 200, replace=False) + len(data) // 2:  # 200 flipped bits in the weights
        data[i] ^= 1 << int(rng.integers(8))
    (tmp_path / "yolox_nano.onnx").write_bytes(data)
    detector, faults = build_detector(Config())
    assert detector is None
    text = texts(faults)
    assert len(text) == 1 and text[0].startswith("model: ") and "sha256" in text[0]
    assert "damaged" in text[0] and "rearguard models fetch yolox_nano" in text[0]


def test_a_model_whose_output_is_nan_is_a_model_fault(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from device.app.compose import build_detector

    size = 128
    n = sum((size // s) ** 2 for s in (8, 16, 32))
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])
    output = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, n, 85])
    nodes = [helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0),
             helper.make_node("Add", ["raw", "m"], ["output"])]
    inits = [numpy_helper.from_array(np.full((1, n, 85), np.nan, np.float32), "raw")]
    model = helper.make_model(helper.make_graph(nodes, "nan", [images], [output], inits),
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "nan.onnx")
    cfg = config.from_dict({"detector": {"model": str(tmp_path / "nan.onnx"), "input_size": size}})
    detector, faults = build_detector(cfg)  # was: a detector that never detects anything, no fault
    assert detector is None
    assert texts(faults) == (f"model: nan.onnx: warm-up output has {n * 85} of {n * 85} values NaN or infinite "
                      "(a damaged model)",)


# ---------------------------------------------------------------- 7-10: recordings and replay


class _NoDetections:
    """A detector that finds nothing: replays exercise the camera path fast."""

    def detect(self, image: np.ndarray) -> object:
        from device.core.types import Detections

        return Detections.empty()

    def close(self) -> None:
        pass


def _recording(directory: Path, *, seconds: float = 3.0, fps: float = 10.0, ranges_s: float | None = None,
               near_at_s: float | None = None) -> Path:
    """A small device-style recording: noise frames (never frozen) and an
    HC-SR04 reading every 60 ms, open park unless `near_at_s` (an object
    closing from 3 m at 1.5 m/s from then); ranges stop at `ranges_s`."""
    from device.core.types import Frame, Range
    from device.record.format import DEFAULT_SENSOR, RecordingWriter

    rng = np.random.default_rng(7)
    with RecordingWriter(directory, width=64, height=48, fps=fps, hfov_deg=66.0, sensors=[DEFAULT_SENSOR],
                         source="rearguard run --source pi") as w:
        for i in range(int(seconds * fps)):
            w.write_frame(Frame(seq=i, t_ns=round(i * NS_PER_S / fps),
                                image=rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)))
        t, end = 0.0, seconds if ranges_s is None else ranges_s
        while t < end:
            metres = None
            if near_at_s is not None and t >= near_at_s:
                metres = max(0.3, 3.0 - 1.5 * (t - near_at_s))
            w.write_ranges([Range(t_ns=round(t * NS_PER_S), sensor="centre", metres=metres)])
            t += 0.06
    return directory


def _replay(directory: Path, **kw: object):
    from device.app.replay import replay

    return replay(directory, Config(), detector=_NoDetections(), **kw)  # type: ignore[arg-type]


def test_a_far_off_timestamp_is_skipped_over_not_stepped_through(tmp_path: Path) -> None:
    rec = _recording(tmp_path / "r")
    with (rec / "ranges.csv").open("a") as f:
        f.write("999999999999999999,centre,0.5,\n")  # 31.7 years later: 5e10 ticks of 20 ms
    steps = []
    result = _replay(rec, on_step=lambda p: steps.append(p.clock.now_ns()))
    assert len(steps) < 3000  # 3 s of input + 30 s settling + the reading; was a hang
    assert result.duration_s == pytest.approx(1e9)  # 31.7 years
    assert all(b > a for a, b in pairwise(steps))


def test_skipping_an_idle_stretch_gives_the_events_of_stepping_through(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from device.app import replay as replay_mod

    rec = _recording(tmp_path / "r", near_at_s=1.0)
    text = (rec / "ranges.csv").read_text().splitlines(keepends=True)
    later = [f"{int(row.split(',')[0]) + 200 * NS_PER_S},{row.split(',', 1)[1]}" for row in text[1:]]
    (rec / "ranges.csv").write_text("".join(text + later))  # the same approach again 200 s later
    skipped = _replay(rec)
    monkeypatch.setattr(replay_mod, "IDLE_SKIP_S", 1e12)
    stepped = _replay(rec)
    assert [(e.t_ns, e.level, e.faults) for e in skipped.events] == [(e.t_ns, e.level, e.faults) for e in stepped.events]
    assert AlertLevel.DANGER in [e.level for e in skipped.events]
    assert [e.t_ns for e in skipped.events if e.level == AlertLevel.DANGER][-1] > 200 * NS_PER_S


@pytest.mark.parametrize("where", ["frames", "ranges"])
def test_a_400_digit_timestamp_is_a_clear_error(tmp_path: Path, where: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    rec = _recording(tmp_path / "r")
    huge = "9" * 400
    if where == "frames":
        lines = (rec / "frames.csv").read_text().splitlines(keepends=True)
        lines[-1] = f"{len(lines)},{huge}\n"
        (rec / "frames.csv").write_text("".join(lines))
    else:
        with (rec / "ranges.csv").open("a") as f:
            f.write(f"{huge},centre,0.5,\n")
    for argv in (["recording", "info", str(rec)], ["replay", str(rec)]):
        assert main(argv) == 1  # was an OverflowError traceback
        err = capsys.readouterr().err
        assert f"{where}.csv line" in err and "out of range (a signed 64-bit integer)" in err


def test_an_undecodable_frame_is_skipped_as_a_camera_fault(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from device.record.format import Recording

    rec = _recording(tmp_path / "r", seconds=3.0)
    r = Recording.open(rec)
    off, size = r._chunks[12]
    with (rec / "video.avi").open("r+b") as f:
        f.seek(off)
        f.write(b"\x00" * size)  # frame 12 (at 1.2 s) is no JPEG any more
    result = _replay(rec)  # was: RecordingError, no result
    assert result.frames == 29 and result.bad_frames == 1
    faults = [e for e in result.events if e.level == AlertLevel.FAULT]
    assert [(e.t_ns, e.faults) for e in faults] == [(1200 * MS, ("camera: frame 12 cannot be decoded",))]
    assert result.events[-1].level == AlertLevel.CLEAR and result.events[-1].t_ns == 1300 * MS
    assert main(["recording", "info", str(rec)]) == 0
    out = capsys.readouterr().out
    assert "bad frame  video.avi frame 12 cannot be decoded" in out and "decoded    29 of 30 frames" in out
    assert any(w.startswith("1 frame(s) could not be decoded") for w in result.warnings)  # replay prints these


def _no_model(tmp_path: Path) -> Path:
    cfg = tmp_path / "no-model.toml"
    cfg.write_text(f'[detector]\nmodel = "{tmp_path / "missing.onnx"}"\n')
    return cfg


def test_evaluate_names_the_recording_that_failed_and_scores_the_rest(tmp_path: Path) -> None:
    from device.tools.evaluate import evaluate

    suite = tmp_path / "suite"
    for name in ("a-good", "b-broken"):
        _recording(suite / name)
        (suite / name / "truth.json").write_text('{"contact_s": null, "clear": [[0.0, 2.9]]}')
    (suite / "b-broken" / "frames.csv").write_text("seq,t_ns\n0,zero\n")
    ev = evaluate([suite], Config(), detector=_NoDetections())  # type: ignore[arg-type]
    assert [s.name for s in ev.scores] == ["a-good"]
    assert len(ev.failed) == 1 and ev.failed[0][0] == str(suite / "b-broken")
    assert "t_ns is not an integer" in ev.failed[0][1]
    assert ev.to_json()["failed"][0]["recording"] == str(suite / "b-broken")


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda m: m["sensors"].append(dict(m["sensors"][0])), "sensor names must be unique, repeated: centre"),
        (lambda m: m["sensors"][0].update(max_distance_m=float("inf")), "sensors.0.max_distance_m"),
        (lambda m: m["sensors"][0].update(max_distance_m=500.0), "sensors.0.max_distance_m"),
        (lambda m: m["camera"].update(fps=1e9), "camera.fps"),
        (lambda m: m.update(version="1"), "version must be the integer 1, not '1'"),
    ],
)
def test_meta_json_against_the_formats_own_spec(tmp_path: Path, change, needle: str) -> None:
    import json

    from device.record.format import Recording, RecordingError

    rec = _recording(tmp_path / "r", seconds=0.5)
    meta = json.loads((rec / "meta.json").read_text())
    change(meta)
    (rec / "meta.json").write_text(json.dumps(meta))  # json writes inf as Infinity
    with pytest.raises(RecordingError, match="meta.json") as err:
        Recording.open(rec)
    assert needle in str(err.value)


@pytest.mark.parametrize(("args", "needle"), [
    (["--ranges-offset", "nan"], "ranges offset must be a number of seconds within +-86400"),
    (["--ranges-offset", "inf"], "ranges offset must be a number of seconds within +-86400"),
    (["--ranges-offset", "1e9"], "ranges offset must be a number of seconds within +-86400"),
    (["--fps", "1e9"], "fps must be a number above 0 and at most 1000"),
])
def test_from_video_refuses_offsets_and_rates_out_of_bounds(tmp_path: Path, args: list[str], needle: str,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    rec = _recording(tmp_path / "r", seconds=0.5)
    ranges = tmp_path / "ranges.csv"
    ranges.write_text("t_ns,sensor,metres\n0,centre,1.0\n")
    out = tmp_path / "new"
    code = main(["recording", "from-video", str(rec / "video.avi"), str(out), "--ranges", str(ranges),
                 "--fps", "10", *args])
    assert code == 1
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not out.exists()


def test_replay_warns_as_info_does(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rec = _recording(tmp_path / "r")
    lines = (rec / "frames.csv").read_text().splitlines(keepends=True)
    (rec / "frames.csv").write_text("".join(lines[:-5]))  # fewer rows than frames
    assert main(["recording", "info", str(rec)]) == 0
    warnings = [line.split("warning    ", 1)[1] for line in capsys.readouterr().out.splitlines()
                if line.startswith("warning")]
    assert warnings and "frames.csv lists 25" in warnings[0]
    assert main(["replay", str(rec), "--config", str(_no_model(tmp_path))]) == 0
    err = capsys.readouterr().err
    for w in warnings:
        assert f"warning: {w}" in err  # replay kept quiet about them


def test_a_sensor_log_that_simply_ends_is_the_sensor_going_silent(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    rec = _recording(tmp_path / "r", seconds=3.0, ranges_s=1.0)  # the camera runs on to 2.9 s
    result = _replay(rec)
    last_row = max(r for r in range(0, 1000, 60) if r < 1000) * MS  # 0.96 s
    fault = [e for e in result.events if e.level == AlertLevel.FAULT]
    assert fault and fault[0].faults == ("centre: silent",)  # was: no event, "nothing in the way"
    assert last_row + 300 * MS <= fault[0].t_ns <= last_row + 300 * MS + 20 * MS
    assert any("sensor centre: its log ends" in w for w in result.warnings)


def test_a_sensor_log_ending_with_the_run_is_not_silence(tmp_path: Path) -> None:
    # The camera thread writes its last frames after the loop's last ping.
    rec = _recording(tmp_path / "r", seconds=3.0, ranges_s=2.5)
    result = _replay(rec)
    assert not any(e.level == AlertLevel.FAULT for e in result.events) and not result.warnings
