"""Faults and bad input (issue 13): each test reproduces one attack and pins
down what the device does instead. The README's "Faults and bad input"
table is backed by these tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from device.core.clock import NS_PER_S, ReplayClock
from device.cli.main import main
from device.core import config
from device.core.config import Config
from device.core.types import AlertLevel
from device.output.alerts import PATTERNS, Alerter, pattern_output
from device.output.stall_guard import StallGuard
from device.pipeline import Pipeline

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
                        extra_faults=lambda: ("sensor centre: echo-never-rises",) if ranges.faulty else ())
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
    cfg.write_text(f'[detector]\nmodel = "{tmp_path / "missing.onnx"}"\n')  # ultrasonic-only: fast
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
        done = _run(tmp_path, "--source", str(tmp_path / "none.avi"), "--duration", "0.5",
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
    assert len(faults) == 1 and faults[0].startswith("model: ") and "sha256" in faults[0]
    assert "damaged" in faults[0] and "rearguard models fetch yolox_nano" in faults[0]


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
    assert faults == (f"model: nan.onnx: warm-up output has {n * 85} of {n * 85} values NaN or infinite "
                      "(a damaged model)",)
