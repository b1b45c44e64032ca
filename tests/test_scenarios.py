"""Scenario recordings (geometry, ultrasonic model, truth) and their evaluation."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import HCSR04_LOG
from device.cli.main import main
from device.core.types import AlertLevel
from device.record.format import Recording
from device.tools.evaluate import Sample, recordings_in, score
from device.tools.scenario import (
    SENSOR,
    NoiseModel,
    Photo,
    ScenarioError,
    ScenarioSpec,
    Scene,
    VirtualCamera,
    WorldObject,
    echo_distance,
    make_scenario,
    make_suite,
    ping_log,
)

STILL = VirtualCamera(bob_deg=0.0)  # no gait bob: exact geometry
BOX = (300.0, 200.0, 340.0, 300.0)  # the "person" in the synthetic photo, 100 px tall


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A grey photo with one dark upright rectangle standing for a person."""
    d = tmp_path_factory.mktemp("photos")
    img = np.full((480, 640, 3), 170, np.uint8)
    x1, y1, x2, y2 = (int(v) for v in BOX)
    img[y1:y2, x1:x2] = 20
    cv2.imwrite(str(d / "synth.png"), img)
    return d


def approach(v: float = 2.0, d0: float = 10.0, **kw) -> ScenarioSpec:
    return ScenarioSpec("synth", "approach", Photo("synth.png", "person", BOX), v, d0, **kw)


def dark_box(img: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(img[..., 0] < 95)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


@pytest.mark.parametrize("t", [0.0, 2.5, 3.0])
def test_zoom_is_the_pinhole_view_of_an_approach(photos: Path, t: float) -> None:
    scene = Scene(approach(), photos, STILL)
    d = 10.0 - 2.0 * t
    f = STILL.focal_px
    x1, y1, x2, y2 = dark_box(scene.frame(t))
    # As tall as a 1.7 m person at d, feet where flat ground at d is seen
    # from 1.1 m up, in the middle of the path.
    assert y2 - y1 == pytest.approx(f * 1.7 / d, abs=2.5)
    assert y2 == pytest.approx(STILL.height / 2 + f * 1.1 / d, abs=2.5)
    assert (x1 + x2) / 2 == pytest.approx(STILL.width / 2, abs=1.5)


def test_the_obstacle_overfills_the_frame_before_contact(photos: Path) -> None:
    scene = Scene(approach(), photos, STILL)
    img = scene.frame(4.8)  # 0.4 m away
    assert (img[..., 0] < 95).mean() > 0.5


def test_noise_model_fits_the_real_hcsr04_log(shared: Path) -> None:
    m = NoiseModel.fit(HCSR04_LOG)
    default = NoiseModel()
    assert m.p_lose_after_echo == pytest.approx(default.p_lose_after_echo, abs=0.01)
    assert m.p_lose_after_loss == pytest.approx(default.p_lose_after_loss, abs=0.01)
    assert m.sigma_m == pytest.approx(default.sigma_m, abs=0.003)
    assert m.p_late_echo == pytest.approx(default.p_late_echo, abs=0.01)


def test_noise_model_refuses_a_log_it_cannot_use(tmp_path: Path) -> None:
    bad = tmp_path / "x.csv"
    bad.write_text("t_ns,sensor,metres\n1,centre,1.0\n")
    with pytest.raises(ScenarioError, match="Timestamp,Distance_cm"):
        NoiseModel.fit(bad)
    with pytest.raises(ScenarioError, match="cannot read"):
        NoiseModel.fit(tmp_path / "missing.csv")


def test_ultrasonic_log_follows_the_geometry(photos: Path) -> None:
    scene = Scene(approach(), photos, STILL)
    quiet = NoiseModel(p_lose_after_echo=0, p_lose_after_loss=0, sigma_m=0.005, p_late_echo=0, p_spurious=0)
    log = ping_log(scene, quiet, np.random.default_rng(1), 1.1)
    times = [r.t_ns / 1e9 for r in log]
    assert 0.06 < float(np.median(np.diff(times))) < 0.12  # the device's ping rate
    for r, t in zip(log, times, strict=True):
        d = 10.0 - 2.0 * t
        if d > 4.0:
            assert r.metres is None
        else:
            assert r.metres == pytest.approx(d, abs=0.1)
    assert sum(r.metres is not None for r in log) > 15


def test_dropouts_and_faults(photos: Path) -> None:
    rng = np.random.default_rng(2)
    lossy = ping_log(Scene(approach(ultrasonic="dropouts"), photos, STILL), NoiseModel(), rng, 1.1)
    near = [r for r in lossy if r.t_ns / 1e9 > 3.2]
    assert 0.4 < sum(r.metres is None for r in near) / len(near) < 0.95
    faulty = ping_log(Scene(approach(ultrasonic="fault", fault_at_s=1.0), photos, STILL), NoiseModel(), rng, 1.1)
    assert all(r.fault == "no-echo-signal" and r.metres is None for r in faulty if r.t_ns > 1.05e9)


def test_short_obstacles_slip_under_the_beam() -> None:
    hydrant = 0.7
    assert echo_distance([WorldObject(0.0, 3.5, hydrant)], SENSOR, 1.1) == 3.5
    assert echo_distance([WorldObject(0.0, 2.0, hydrant)], SENSOR, 1.1) is None
    assert echo_distance([WorldObject(0.0, 2.0, 1.7)], SENSOR, 1.1) == 2.0
    assert echo_distance([WorldObject(1.5, 2.0, 1.7)], SENSOR, 1.1) is None  # beside the beam
    assert echo_distance([WorldObject(0.0, 4.5, 1.7)], SENSOR, 1.1) is None  # out of range


@pytest.fixture(scope="module")
def small_recording(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sc") / "synth"
    return make_scenario(approach(), photos, out, cam=VirtualCamera(width=160, height=90, fps=10))


def test_make_scenario_writes_a_recording_with_truth(small_recording: Path) -> None:
    rec = Recording.open(small_recording)
    assert rec.truth is not None
    assert rec.truth.contact_s == pytest.approx(5.0)
    assert rec.truth.clear == ((0.0, 1.0),)  # until the true TTC falls to 4 s
    assert rec.frame_count == 50 and rec.meta.camera.hfov_deg == 66.0
    assert {r.sensor for r in rec.ranges} == {"centre"}
    meta = json.loads((small_recording / "scenario.json").read_text())
    assert meta["speed_mps"] == 2.0 and meta["d0_m"] == 10.0


def test_clear_and_crossing_truth_have_no_contact() -> None:
    spec = ScenarioSpec("c", "crossing", Photo("x.jpg"), 1.0, duration_s=8.0)
    assert spec.truth() == {"contact_s": None, "clear": [[0.0, 8.0]]}
    # An obstacle 1.5 m to the side is passed, not hit.
    assert approach(lateral_m=1.5, duration_s=5.0).truth()["contact_s"] is None


def test_unknown_names_and_existing_output_are_refused(photos: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenario", "make", str(tmp_path / "s"), "--images", str(photos), "--only", "nope"]) == 1
    assert "unknown scenario" in capsys.readouterr().err
    (tmp_path / "s2" / "person-1mps").mkdir(parents=True)
    with pytest.raises(ScenarioError, match="already holds person-1mps"):
        make_suite(photos, tmp_path / "s2", names=["person-1mps"])


def samples(levels: list[tuple[float, AlertLevel]], end: float) -> list[Sample]:
    out, i = [], 0
    for t in np.arange(0.0, end + 1e-9, 0.02):
        while i + 1 < len(levels) and levels[i + 1][0] <= t + 1e-9:
            i += 1
        out.append(Sample(float(t), levels[i][1], False, None, None, "camera", "centre"))
    return out


def test_scoring_lead_false_alarms_and_flicker(small_recording: Path) -> None:
    rec = Recording.open(small_recording)  # contact 5.0 s, clear [0, 1]
    end = rec.duration_s
    s = score("x", small_recording, rec, samples(
        [(0, AlertLevel.CLEAR), (0.5, AlertLevel.WARN), (0.8, AlertLevel.CLEAR),
         (2.5, AlertLevel.WARN), (3.0, AlertLevel.CLEAR), (3.2, AlertLevel.WARN), (4.0, AlertLevel.DANGER)], end), {})
    assert s.lead_s == pytest.approx(4.5)  # the first WARN, though it was a false one
    assert s.sustained_lead_s == pytest.approx(1.8)  # unbroken from 3.2 s to contact
    assert s.false_alarm_s == pytest.approx(0.3, abs=0.021)
    assert s.clear_s == pytest.approx(1.0)
    assert s.level_changes == 6 and not s.missed
    silent = score("x", small_recording, rec, samples([(0, AlertLevel.CAUTION)], end), {})
    assert silent.missed and silent.lead_s is None


def test_plot_without_matplotlib_is_a_clear_error(small_recording: Path, monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    assert main(["evaluate", str(small_recording), "--plot", str(tmp_path / "p.png")]) == 1
    err = capsys.readouterr().err
    assert "needs matplotlib" in err and "pip install" in err and "Traceback" not in err


def test_evaluate_refuses_what_is_not_a_recording(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["evaluate", str(tmp_path / "empty")]) == 1
    assert "neither a recording" in capsys.readouterr().err
    assert recordings_in([]) == []


# ---------------------------------------------------------------- real model, real photos

REAL = ["person-2mps", "cross-3.5m-runner-still", "hydrant-1.5mps"]


@pytest.mark.real_model
def test_suite_scenarios_meet_the_targets(shared: Path, model_path: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Three scenarios of the suite, made from the shared photos and scored
    through the CLI with the real detector: the full suite is in docs/evaluation.md."""
    root = tmp_path / "suite"
    assert main(["scenario", "make", str(root), "--images", str(shared / "images" / "coco"),
                 "--only", *REAL]) == 0
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[detector]\nmodel = "{model_path}"\n')
    capsys.readouterr()
    plot = tmp_path / "eval.png"
    assert main(["evaluate", str(root), "--json", "--config", str(cfg), "--plot", str(plot)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"scenarios", "summary"}
    assert {"min_lead_s", "median_lead_s", "missed", "false_alarm_s", "clear_s", "flicker_per_min"} <= set(out["summary"])
    by = {s["name"]: s for s in out["scenarios"]}
    assert set(by) == set(REAL)
    for name in ("person-2mps", "hydrant-1.5mps"):
        assert by[name]["lead_s"] >= 2.0, by[name]
        assert by[name]["direction_at_warn"] == "centre"
    assert by["cross-3.5m-runner-still"]["false_alarm_s"] == 0.0
    assert out["summary"]["missed"] == 0
    assert out["summary"]["false_alarm_s"] <= 0.01 * out["summary"]["clear_s"]
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:4] == b"\x89PNG"


def test_an_obstacle_to_the_runners_right_is_on_the_images_left(photos: Path) -> None:
    from device.perception.geometry import CameraGeometry

    scene = Scene(approach(lateral_m=0.5), photos, STILL)
    x1, _, x2, _ = dark_box(scene.frame(2.5))  # 5 m away
    f = STILL.focal_px
    assert (x1 + x2) / 2 == pytest.approx(STILL.width / 2 - f * 0.5 / 5.0, abs=1.5)
    g = CameraGeometry(STILL.width, STILL.height, STILL.hfov_deg, 1.1, 0.0)
    assert g.bearing_deg((x1 + x2) / 2) == pytest.approx(math.degrees(math.atan2(0.5, 5.0)), abs=0.3)


@pytest.mark.real_model
def test_evaluate_per_board_json_and_plots(small_recording: Path, model_path: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[detector]\nmodel = "{model_path}"\n')
    plot = tmp_path / "p.png"
    capsys.readouterr()
    assert main(["evaluate", str(small_recording), "--json", "--config", str(cfg),
                 "--board", "zero2w,inline", "--plot", str(plot)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == ["zero2w", "inline"]
    assert out["inline"]["pace"] is None
    assert out["zero2w"]["pace"]["detector_ms"] == 1210.0 and out["zero2w"]["pace"]["detections_per_s"] == 0.83
    for board in out.values():
        assert {"scenarios", "summary"} <= set(board) and board["scenarios"][0]["name"] == "synth"
    for board in ("zero2w", "inline"):
        assert (tmp_path / f"p-{board}.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["evaluate", str(small_recording), "--config", str(cfg), "--board", "pi9"]) == 1
    assert "unknown board 'pi9'" in capsys.readouterr().err
