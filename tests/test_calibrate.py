"""`rearguard calibrate`: the camera's mount height and pitch from a helper
at two distances. The solver is checked on exact projections; the whole
measurement (the real detector on rendered footage with a known camera
height and pitch, device/tools/scene) recovers them within stated bounds;
--write changes only the two keys of the config file."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from device.cli.calibrate import measure, report
from device.core.config import Config, from_dict, load
from device.perception.calibrate import Calibration, CalibrationError, Stop, calibrate, fit, ground_row
from device.perception.geometry import CameraGeometry

GEOM = CameraGeometry(640, 360, 66.0, 0.0, 0.0)


def row(h: float, pitch: float, d: float) -> float:
    below = math.degrees(math.atan(h / d)) - pitch
    return GEOM.height / 2 + GEOM.focal_px * math.tan(math.radians(below))


@pytest.mark.parametrize(("h", "pitch"), [(1.1, 0.0), (1.4, 8.0), (0.95, 12.0), (1.5, -3.0)])
def test_the_fit_recovers_height_and_pitch_from_exact_foot_rows(h: float, pitch: float) -> None:
    ds = (4.0, 8.0)
    fh, fp, resid = fit(ds, [GEOM.below_axis_deg(row(h, pitch, d)) for d in ds])
    assert fh == pytest.approx(h, abs=1e-4) and fp == pytest.approx(pitch, abs=1e-3) and resid < 1e-6


def test_uncertainty_and_refusals() -> None:
    rng = np.random.default_rng(3)
    stops = [Stop(d, tuple(row(1.4, 8.0, d) + rng.normal(0, 1.0) for _ in range(30))) for d in (4.0, 8.0)]
    c = calibrate(GEOM, stops)
    assert abs(c.mount_height_m - 1.4) < 2 * c.height_sigma_m and abs(c.pitch_deg - 8.0) < 2 * c.pitch_sigma_deg
    # a 5 cm tape and a pixel and a half of box edge: about +-0.1 m and +-1 degree (2 sigma)
    assert 0.03 < c.height_sigma_m < 0.08 and 0.2 < c.pitch_sigma_deg < 0.8
    with pytest.raises(CalibrationError, match="two or more different distances"):
        calibrate(GEOM, stops[:1])
    with pytest.raises(CalibrationError, match="fewer than 5 frames at 8 m"):
        calibrate(GEOM, [stops[0], Stop(8.0, (100.0, 101.0))])


def test_ground_marks_are_where_the_fit_reads_them() -> None:
    g = CameraGeometry(640, 360, 66.0, 1.4, 8.0)
    assert ground_row(g, 4.0) == pytest.approx(row(1.4, 8.0, 4.0))
    assert ground_row(g, None) == pytest.approx(180 - GEOM.focal_px * math.tan(math.radians(8.0)))
    assert ground_row(g, 1.0) is None  # below the image


@pytest.mark.real_model
@pytest.mark.parametrize(("who", "h", "pitch"), [("PERSON_A", 1.4, 8.0), ("PERSON_C", 1.1, 3.0)])
def test_calibrate_recovers_a_rendered_cameras_height_and_pitch(model_path: Path, shared: Path, who: str,
                                                                h: float, pitch: float) -> None:
    """A helper (a photo cut-out of a person, standing, feet on the ground) at
    5 m and 10 m (the command's default), rendered through a camera worn by a runner standing still
    (breathing sway included); the real detector finds the feet. Bounds: 0.1 m
    and 1 degree."""
    import device.tools.scene.suite as S
    import device.tools.scene.textures as tx
    import device.tools.scene.world as w
    from device.perception.detector import YoloxDetector
    from device.tools.scene.cutout import cut_out
    from device.tools.scene.render import Intrinsics, Renderer

    cfg = from_dict({"camera": {"mount_height_m": h, "pitch_deg": pitch}})
    cam = Intrinsics(cfg.camera.width, cfg.camera.height, cfg.camera.hfov_deg)
    renderer = Renderer(cam)
    person = getattr(S, who)
    img, alpha = cut_out(shared / "images" / "coco" / person.file, person.box)
    # The photo's box runs a little below the feet GrabCut kept: trim it there,
    # so the rendered feet touch the ground (the helper stands on it).
    last = int(np.nonzero(alpha.max(axis=1) >= 0.5)[0].max()) + 1
    height_m = person.height_m * last / len(alpha)
    img, alpha = img[:last], alpha[:last]
    stops = {}
    for d in (5.0, 10.0):
        spec = S.SceneSpec(f"calibrate-{d:g}", "clear", "none", 0.0, distance_m=d, duration_s=2.0, surround=())
        rng = np.random.default_rng(int(d))
        world = w.World(w.ground(rng), (w.backdrop(rng), w.billboard(img, alpha, height_m, d, label="person")),
                        tx.sky(rng, 256, 2048))
        motion = S.motion_of(spec, cfg)
        stops[d] = [S.frame_at(renderer, world, spec, motion, t, rng) for t in np.arange(0, 2.0, 0.2)]
    with YoloxDetector(model_path, input_size=416, threads=1) as det:
        got = measure(CameraGeometry.for_camera(cfg.camera), stops, det)
    assert all(n >= 8 for _, _, n in got.stops), got.stops  # seen in (nearly) every frame
    assert abs(got.mount_height_m - h) <= 0.15, got
    assert abs(got.pitch_deg - pitch) <= 1.0, got
    # and it says how sure it is, honestly: the truth within its stated +- (2 sigma)
    assert abs(got.mount_height_m - h) <= 2 * got.height_sigma_m and abs(got.pitch_deg - pitch) <= 2 * got.pitch_sigma_deg


def test_write_changes_only_the_two_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg_file = tmp_path / "config.toml"
    text = ("# my build: worn between the shoulder blades\n[camera]\nhfov_deg = 102.0  # the Wide\n"
            "mount_height_m = 1.1  # was a guess\n\n[alerts]\nhold_s = 0.8\n")
    cfg_file.write_text(text)
    result = Calibration(1.384, 7.93, 0.04, 0.4, 0.0, ((4.0, 11.2, 30), (8.0, 1.9, 30)))
    assert report(result, load(cfg_file), cfg_file, write=True, as_json=False) == 0
    assert cfg_file.read_text() == text.replace("mount_height_m = 1.1  # was a guess",
                                                "mount_height_m = 1.38  # was a guess").replace(
        "hfov_deg = 102.0  # the Wide\n", "hfov_deg = 102.0  # the Wide\n") .replace(
        "# was a guess\n", "# was a guess\npitch_deg = 7.9\n")
    out = capsys.readouterr().out
    assert "camera.mount_height_m = 1.38 m (+- 0.08), camera.pitch_deg = 7.9 deg (+- 0.8)" in out
    assert f"wrote camera.mount_height_m = 1.38 and camera.pitch_deg = 7.9 into {cfg_file}" in out
    assert load(cfg_file).camera.model_dump() == {**Config().camera.model_dump(), "hfov_deg": 102.0,
                                                  "mount_height_m": 1.38, "pitch_deg": 7.9}


def test_the_preview_draws_the_horizon_and_ground_marks_of_the_configured_geometry() -> None:
    from device.core.types import AlertLevel
    from device.view.annotate import GROUND_BGR, Overlay, draw

    cfg = Config()
    base = dict(level=AlertLevel.CLEAR, threat=None, tracks=(), sensors=(), ranges={}, hfov_deg=66.0,
                alerts=cfg.alerts)
    image = np.full((360, 640, 3), 90, np.uint8)
    plain = draw(image, Overlay(**base))  # type: ignore[arg-type]
    marked = draw(image, Overlay(**base, mount_height_m=1.4, pitch_deg=8.0))  # type: ignore[arg-type]
    g = CameraGeometry(640, 360, 66.0, 1.4, 8.0)
    for d in (4.0, 8.0, None):  # 2 m is below this camera's view
        y = round(ground_row(g, d))  # type: ignore[arg-type]
        assert (marked[y, :, :] == GROUND_BGR).all(axis=1).sum() > 20, d
        assert not (plain[y, :, :] == GROUND_BGR).all(axis=1).any(), d
    assert ground_row(g, 2.0) is None
