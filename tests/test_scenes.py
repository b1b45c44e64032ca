"""The scene renderer (geometry, occlusion, textures), the runner's motion,
the ultrasonic beam in the same world, the truth, and one rendered scene
replayed through `rearguard evaluate`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.cli.main import main
from device.core.config import Config, from_dict
from device.record.format import Recording, SensorMeta
from device.tools.scene import suite as S
from device.tools.scene import world as w
from device.tools.scene.cutout import cut_out
from device.tools.scene.motion import RunnerMotion
from device.tools.scene.render import Intrinsics, Pose, Renderer, project
from device.tools.scene.ultrasonic import Beam

CAM = Intrinsics(640, 360, 66.0)
LEVEL = Pose(0.0, 0.0, 1.1)  # camera 1.1 m up, level, looking along the path


def flat(bgr: tuple[int, int, int], ppm: float | None = 16.0) -> w.Texture:
    return w.Texture.of(np.full((32, 32, 3), bgr, np.uint8), ppm=ppm)


def bare_world(*things: w.Thing) -> w.World:
    """Bright ground and sky: a dark quad stands out by a threshold."""
    g = w.Ground(flat((200, 200, 200)), flat((200, 200, 200)))
    return w.World(g, tuple(things), np.full((64, 256, 3), 230, np.uint8))


def dark_wall(distance: float, width: float = 1.0, height: float = 2.0, x: float = 0.0,
              bgr: tuple[int, int, int] = (20, 20, 20)) -> w.Thing:
    q = w.upright(x + width / 2, distance, x - width / 2, distance, height, flat(bgr))
    return w.Thing((w.Quad(q.p0, q.e1, q.e2, q.texture, 1.0),))


def extent(img: np.ndarray, below: float = 100) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(img[..., 0] < below)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


# ---------------------------------------------------------------- geometry


def test_a_point_projects_where_the_pinhole_model_says() -> None:
    f = CAM.focal_px
    p = project(CAM, LEVEL, np.array([[0.5, 5.0, 1.6]]))[0]
    # 0.5 m to the runner's right is on the image's left (the camera looks back)
    assert p[0] == pytest.approx(320 - f * 0.5 / 5.0)
    assert p[1] == pytest.approx(180 - f * 0.5 / 5.0)
    assert p[2] == pytest.approx(5.0)
    down = project(CAM, Pose(0, 0, 1.1, pitch_deg=10.0), np.array([[0.0, 5.0, 1.1]]))[0]
    assert down[1] == pytest.approx(180 - f * math.tan(math.radians(10.0)))  # looking down: horizon rises


def test_a_rendered_wall_is_where_and_as_big_as_the_pinhole_model_says() -> None:
    r = Renderer(CAM)
    f = CAM.focal_px
    img = r.render(bare_world(dark_wall(5.0, width=1.0, height=2.0, x=0.5)), LEVEL, 0.0)
    x1, y1, x2, y2 = extent(img)
    assert x2 - x1 == pytest.approx(f * 1.0 / 5.0, abs=1.5)
    assert (x1 + x2) / 2 == pytest.approx(320 - f * 0.5 / 5.0, abs=1.0)
    assert y2 == pytest.approx(180 + f * 1.1 / 5.0, abs=1.0)  # foot on the ground at 5 m
    assert y1 == pytest.approx(180 - f * 0.9 / 5.0, abs=1.0)  # top 0.9 m above the lens


def test_a_walls_image_grows_as_one_over_distance() -> None:
    r = Renderer(CAM)
    widths = {}
    for d in (3.0, 6.0, 12.0, 24.0):
        x1, _, x2, _ = extent(r.render(bare_world(dark_wall(d, width=2.0)), LEVEL, 0.0))
        widths[d] = x2 - x1
    for d, px in widths.items():
        assert px * d == pytest.approx(widths[3.0] * 3.0, rel=0.03)


def test_nearer_surfaces_hide_farther_ones_whatever_their_order() -> None:
    r = Renderer(CAM)
    near = dark_wall(3.0, width=0.6, bgr=(20, 20, 200))  # red, in front
    far = dark_wall(6.0, width=3.0, bgr=(200, 20, 20))  # blue, behind and wider
    for things in ((near, far), (far, near)):
        img = r.render(bare_world(*things), LEVEL, 0.0)
        assert tuple(img[180, 320].round()) == (20, 20, 200)  # the centre is the near one
        assert tuple(img[180, 320 + 80].round()) == (200, 20, 20)  # beside it, the far one
    behind = dark_wall(-2.0, width=3.0)  # behind the camera: never drawn
    wide = dark_wall(6.0, width=3.0)
    assert extent(r.render(bare_world(behind, wide), LEVEL, 0.0)) == extent(r.render(bare_world(wide), LEVEL, 0.0))


def test_a_cut_out_is_there_only_where_its_photo_shows_it() -> None:
    img = np.full((100, 50, 3), 30, np.uint8)
    alpha = np.zeros((100, 50), np.float32)
    alpha[:, :25] = 1.0  # only the left half of the photo is the object
    bb = w.billboard(img, alpha, 2.0, 5.0)
    out = Renderer(CAM).render(bare_world(bb), LEVEL, 0.0)
    x1, _, x2, _ = extent(out)
    f = CAM.focal_px
    assert x2 - x1 == pytest.approx(f * 0.5 / 5.0, abs=1.5)  # 1 m wide board, half of it there
    assert x1 == pytest.approx(320 - f * 0.5 / 5.0, abs=1.5)  # the photo's left is the image's left


def test_grabcut_finds_the_object_in_its_box(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    photo = (rng.uniform(150, 230, (240, 320, 3))).astype(np.uint8)
    cv2.circle(photo, (160, 120), 60, (30, 60, 160), -1)
    path = tmp_path / "p.png"
    cv2.imwrite(str(path), photo)
    crop, alpha = cut_out(path, (90.0, 50.0, 230.0, 190.0))
    truth = np.zeros((140, 140), bool)
    cv2.circle(truth.view(np.uint8), (70, 70), 60, 1, -1)
    got = alpha > 0.5
    assert crop.shape[:2] == (140, 140)
    assert (got & truth).sum() / (got | truth).sum() > 0.85


def test_textures_give_trackable_corners() -> None:
    rng = np.random.default_rng(1)
    world = w.World(w.ground(rng), (w.wall(5.0, 8.0, 2.2, rng),), np.full((64, 256, 3), 230, np.uint8))
    img = Renderer(CAM).render(world, LEVEL, 0.0).astype(np.uint8)
    wall = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)[100:170, 150:490]
    corners = cv2.goodFeaturesToTrack(wall, 200, 0.01, 5)
    assert corners is not None and len(corners) > 60


def test_far_ground_is_mip_mapped_so_it_does_not_flicker() -> None:
    """Moving 1 cm changes where each pixel samples the asphalt by 2.5
    texels: without mip levels, far ground (many texels a pixel) would
    shimmer from frame to frame; with them it stays still."""
    rng = np.random.default_rng(2)
    g = w.ground(rng)
    single = w.Ground(w.Texture(g.path.levels[:1], g.path.ppm), w.Texture(g.verge.levels[:1], g.verge.ppm))
    r = Renderer(CAM)
    sky = np.full((64, 256, 3), 230, np.uint8)

    def shimmer(ground: w.Ground) -> float:
        a = r.render(w.World(ground, (), sky), Pose(0, 0.00, 1.1), 0.0)
        b = r.render(w.World(ground, (), sky), Pose(0, 0.01, 1.1), 0.0)
        return float(np.abs(a - b)[183:200].mean())  # ground 30-180 m away

    assert shimmer(g) < 0.4 * shimmer(single)


# ---------------------------------------------------------------- runner motion


def test_the_runner_bobs_3_cm_at_the_step_rate_and_sways_1_to_3_degrees() -> None:
    m = RunnerMotion(3.0, step_hz=2.8, phase=0.3)
    t = np.arange(0, 10, 1 / 200)
    poses = [m.pose(float(x)) for x in t]
    z = np.array([p.z for p in poses])
    assert z.max() - z.min() == pytest.approx(0.03, abs=0.002)
    spectrum = np.abs(np.fft.rfft(z - z.mean()))
    assert np.fft.rfftfreq(len(z), 1 / 200)[spectrum.argmax()] == pytest.approx(2.8, abs=0.1)
    yaw = np.array([p.yaw_deg for p in poses])
    roll = np.array([p.roll_deg for p in poses])
    assert 1.0 <= yaw.max() <= 3.0 and 1.0 <= roll.max() <= 3.0
    assert yaw.min() == pytest.approx(-yaw.max(), abs=0.1)


def test_pace_varies_and_distance_is_its_integral() -> None:
    m = RunnerMotion(2.0, speed_variation=0.08, speed_period_s=3.5)
    v = [m.speed(t) for t in np.arange(0, 7, 0.01)]
    assert min(v) == pytest.approx(1.84, abs=0.01) and max(v) == pytest.approx(2.16, abs=0.01)
    for t in (0.5, 2.0, 6.3):
        assert (m.distance_m(t + 1e-4) - m.distance_m(t - 1e-4)) / 2e-4 == pytest.approx(m.speed(t), rel=1e-4)
        assert m.time_at(m.distance_m(t)) == pytest.approx(t, abs=1e-6)
    assert m.distance_m(7.0) == pytest.approx(14.0, abs=0.01)  # whole periods average out


def test_a_runner_standing_still_stays_put_and_barely_moves() -> None:
    m = RunnerMotion(0.0)
    poses = [m.pose(t) for t in np.arange(0, 8, 0.05)]
    assert all(p.y == 0.0 and p.x == 0.0 for p in poses)
    assert max(p.z for p in poses) - min(p.z for p in poses) < 0.01
    assert max(abs(p.yaw_deg) for p in poses) < 1.0


def test_on_a_curve_the_camera_turns_with_the_path() -> None:
    m = RunnerMotion(3.0, curve_radius_m=40.0, yaw_sway_deg=0.0, speed_variation=0.0)
    p = m.pose(40 * math.pi / 6 / 3.0)  # a sixth of a half circle: 30 degrees round
    assert p.yaw_deg == pytest.approx(30.0, abs=0.01)
    assert (p.x, p.y) == pytest.approx((40 * (1 - math.cos(math.pi / 6)), 40 * math.sin(math.pi / 6)))


# ---------------------------------------------------------------- ultrasonic


BEAM = Beam.of(SensorMeta(name="centre", bearing_deg=0.0, beam_deg=15.0, max_distance_m=4.0))


def test_the_echo_is_the_nearest_surface_in_the_cone() -> None:
    rng = np.random.default_rng(0)
    wall = w.wall(3.0, 4.0, 2.0, rng)
    post = w.post(2.0, rng, x_m=0.1)
    assert BEAM.echo(bare_world(wall), LEVEL, 0.0) == pytest.approx(3.0, abs=0.01)
    assert BEAM.echo(bare_world(wall, post), LEVEL, 0.0) == pytest.approx(2.0, abs=0.01)
    assert BEAM.echo(bare_world(post, wall), LEVEL, 0.0) == pytest.approx(2.0, abs=0.01)
    assert BEAM.echo(bare_world(w.wall(4.5, 4.0, 2.0, rng)), LEVEL, 0.0) is None  # beyond its range
    assert BEAM.echo(bare_world(), LEVEL, 0.0) is None  # the ground is below a level beam's 4 m cone


def test_a_side_wall_outside_the_cone_gives_no_echo() -> None:
    rng = np.random.default_rng(0)
    side = w.Thing((w.upright(1.0, 0.5, 1.0, 30.0, 2.0, w.Texture.of(np.zeros((8, 8, 3), np.uint8), ppm=8)),))
    # 1 m to the side: the 15 degree cone is 0.53 m wide at its 4 m reach
    assert BEAM.echo(bare_world(side), LEVEL, 0.0) is None
    near = w.Thing((w.upright(0.3, 0.5, 0.3, 30.0, 2.0, w.Texture.of(np.zeros((8, 8, 3), np.uint8), ppm=8)),))
    got = BEAM.echo(bare_world(near), LEVEL, 0.0)  # 0.3 m to the side: the cone's edge meets it at ~2.3 m
    assert got == pytest.approx(0.3 / math.tan(math.radians(7.5)), rel=0.05)
    assert BEAM.echo(bare_world(w.post(3.0, rng, x_m=0.8)), LEVEL, 0.0) is None  # a post beside the path


def test_a_short_obstacle_close_up_is_under_the_beam() -> None:
    rng = np.random.default_rng(0)
    low = w.wall(2.0, 2.0, 0.5, rng)  # knee-high at 2 m: the cone's bottom edge is at 0.84 m there
    assert BEAM.echo(bare_world(low), LEVEL, 0.0) is None
    assert BEAM.echo(bare_world(w.wall(2.0, 2.0, 1.0, rng)), LEVEL, 0.0) == pytest.approx(2.0, abs=0.05)


# ---------------------------------------------------------------- truth and the suite


def test_truth_is_the_contact_and_the_clear_window_before_ttc_4_s() -> None:
    cfg = Config()
    spec = S.suite(["post-2mps"])[0]
    m = S.motion_of(spec, cfg)
    tr = S.truth(spec, m)
    assert tr["contact_s"] == pytest.approx(m.time_at(spec.start_m), abs=1e-3)
    (a, b), = tr["clear"]
    assert a == 0.0 and S.gap_m(spec, m, b) / m.speed(b) == pytest.approx(4.0, abs=0.01)
    walker = S.suite(["person-3mps"])[0]  # runner 2 m/s, the person walks up at 1 m/s
    mw = S.motion_of(walker, cfg)
    c = S.truth(walker, mw)["contact_s"]
    assert mw.distance_m(c) + 1.0 * c == pytest.approx(walker.start_m, abs=1e-3)
    clear = S.suite(["facade-beside-3mps"])[0]
    assert S.truth(clear, S.motion_of(clear, cfg)) == {"contact_s": None, "clear": [[0.0, 8.0]]}


def test_the_suite_names_every_obstacle_and_the_clear_cases() -> None:
    labels = {s.label for s in S.SUITE if s.kind == "approach"}
    assert {"person", "cyclist", "dog", "post", "bench", "wall"} <= labels
    for label in ("person", "cyclist", "dog", "post", "bench", "wall"):
        speeds = {s.closing_mps for s in S.SUITE if s.label == label and s.kind == "approach"}
        assert min(speeds) <= 2 and max(speeds) >= 3, (label, speeds)
    clear = {s.name for s in S.SUITE if s.kind == "clear"}
    assert {"wall-beside-3mps", "cars-beside-2mps", "facade-beside-3mps", "standing-wall-4m", "curve-3mps"} <= clear
    assert len({s.name for s in S.SUITE}) == len(S.SUITE)


def test_scenario_list_names_the_scenes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenario", "list", "--suite", "scenes"]) == 0
    out = capsys.readouterr().out
    assert all(s.name in out for s in S.SUITE)
    assert main(["scenario", "list"]) == 0
    assert "cross-two-people" in capsys.readouterr().out  # the photo suite stays the default


def test_a_short_scene_recording_holds_frames_pings_and_truth(shared: Path, tmp_path: Path) -> None:
    cfg = from_dict({"camera": {"width": 320, "height": 180, "fps": 10}})
    out = S.make_scene(S.suite(["wall-4mps"])[0], shared / "images" / "coco", tmp_path / "w", config=cfg,
                       length_s=5.6)
    rec = Recording.open(out)
    assert rec.meta.camera.width == 320 and rec.meta.camera.hfov_deg == 66.0
    assert rec.frame_count == 56
    assert rec.truth is not None and rec.truth.contact_s == pytest.approx(
        S.contact_s(S.suite(["wall-4mps"])[0], S.motion_of(S.suite(["wall-4mps"])[0], cfg)), abs=1e-3)
    echoes = [r.metres for r in rec.ranges if r.metres is not None and r.t_ns > 5.1e9]
    assert echoes and max(echoes) < 4.0  # the wall came into range in the last half second
    meta = json.loads((out / "scenario.json").read_text())
    assert meta["suite"] == "scenes" and meta["speed_mps"] == 4.0 and meta["d0_m"] == 24.0


@pytest.mark.real_model
def test_a_rendered_scene_replays_through_evaluate(shared: Path, model_path: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "scenes"
    assert main(["scenario", "make", str(root), "--suite", "scenes", "--images", str(shared / "images" / "coco"),
                 "--only", "wall-4mps", "--size", "320x180", "--fps", "10"]) == 0
    cfg = tmp_path / "c.toml"
    # Looming off: this is the ultrasonic sensor alone (tests/test_looming.py has looming's own).
    cfg.write_text(f'[detector]\nmodel = "{model_path}"\n[looming]\nenabled = false\n')
    capsys.readouterr()
    assert main(["evaluate", str(root), "--json", "--config", str(cfg)]) == 0
    (sc,) = json.loads(capsys.readouterr().out)["scenarios"]
    assert sc["name"] == "wall-4mps" and sc["contact_s"] == pytest.approx(6.0, abs=0.3)
    # The wall is no detector class: the ultrasonic sensor alone warns, from 4 m (~1 s at 4 m/s)
    assert not sc["missed"] and 0.3 < sc["lead_s"] < 1.3
    assert sc["false_alarm_s"] == 0.0


def test_every_cut_out_in_the_suite_is_found_by_grabcut(shared: Path) -> None:
    from device.tools.scene.cutout import MIN_COVER

    for c in {s.cutout for s in (*S.SUITE, *S.HAZARDS) if s.cutout is not None}:
        _, alpha = cut_out(shared / "images" / "coco" / c.file, c.box)
        assert (alpha >= 0.5).mean() > 2 * MIN_COVER, c


def test_scene_make_refuses_unknown_names_and_a_bad_camera(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["scenario", "make", str(tmp_path / "s"), "--suite", "scenes", "--images", str(tmp_path)]
    assert main([*base, "--only", "nope"]) == 1
    assert "unknown scene(s): nope" in capsys.readouterr().err
    assert main([*base, "--size", "100x60"]) == 1  # under the config's minimum camera size
    err = capsys.readouterr().err
    assert "camera.width" in err and "Traceback" not in err
    assert not (tmp_path / "s").exists()



def test_a_scene_named_twice_is_made_once() -> None:
    """`--only far-dog-3mps far-dog-3mps` rendered it, then tried again into
    the same directory, and that attempt's cleanup deleted the recording."""
    from device.tools.scene.far import far_suite

    assert [s.name for s in S.suite(["post-2mps", "wall-4mps", "post-2mps"])] == ["post-2mps", "wall-4mps"]
    assert [s.name for s in far_suite(["far-dog-3mps", "far-dog-3mps"])] == ["far-dog-3mps"]


# ---------------------------------------------------------------- the hazards suite


def test_hazards_cover_fast_closers_crossings_passes_same_way_and_step_ins() -> None:
    normal = [s for s in S.HAZARDS if s.motion_scale == 1.0]
    head_on = {s.closing_mps for s in normal if s.kind == "approach"}
    assert head_on == {5.0, 6.5, 8.0, 10.0}
    assert {"person", "cyclist", "dog"} <= {s.label for s in normal if s.kind == "approach"}
    assert {s.label for s in normal if s.kind == "crossing"} == {"person", "cyclist", "dog", "car"}
    passes = [s for s in normal if s.name.startswith("pass-")]
    assert passes and all(1.0 < abs(s.lateral_m) <= 1.7 and s.kind == "clear" for s in passes)
    # Beside the path: each pass's body stays outside the corridor (a body inside it is in the way).
    assert all(abs(s.lateral_m) - s.half_width_m > S.PASS_CORRIDOR_M == 1.0 for s in passes)
    assert all(s.closing_mps <= 0 for s in normal if s.name.startswith("ahead-"))
    assert all(1.0 <= s.entry_gap_m <= 1.5 for s in normal if s.kind == "step-in")
    rough = {s.name.removesuffix("-rough") for s in S.HAZARDS if s.motion_scale == 2.0}
    assert rough == {s.name for s in normal}
    assert len({s.name for s in S.HAZARDS}) == len(S.HAZARDS)
    assert not {s.name for s in S.HAZARDS} & {s.name for s in S.SUITE}


def test_a_side_pass_whose_body_is_in_the_corridor_is_refused() -> None:
    with pytest.raises(ValueError, match="inside the 1.0 m corridor"):
        S._pass("pass-jogger-0.8m", S.PERSON_A, 2.5, 2.5, 0.8)
    assert S._pass("pass-jogger-1.5m", S.PERSON_A, 2.5, 2.5, 1.5).lateral_m == 1.5


def test_a_crossing_is_a_hazard_only_if_in_the_corridor_when_the_runner_gets_there() -> None:
    cfg = Config()
    c = cfg.alerts.corridor_half_width_m
    for name in ("cross-walker", "cross-cyclist", "cross-dog", "cross-car"):
        spec = S.suite([name], "hazards")[0]
        m = S.motion_of(spec, cfg)
        p = S.placement(spec, m, c)
        tr = S.truth(spec, m, c)
        assert tr["contact_s"] == pytest.approx(spec.entry_s)
        # at contact the body's near edge is at the corridor's edge, the line gap_m ahead
        assert abs(p.x_at(spec.entry_s)) - spec.half_width_m == pytest.approx(c, abs=1e-6)
        assert p.y_m - m.distance_m(spec.entry_s) == pytest.approx(spec.entry_gap_m, abs=1e-6)
        assert p.arrive_s is not None and abs(p.x_at(p.arrive_s)) - spec.half_width_m < c
        assert all(b <= tr["contact_s"] - 4.0 + 1e-3 for _, b in tr["clear"])
    for name in ("cross-walker-clear", "cross-cyclist-clear", "cross-dog-clear", "cross-car-clear"):
        spec = S.suite([name], "hazards")[0]
        m = S.motion_of(spec, cfg)
        p = S.placement(spec, m, c)
        assert S.truth(spec, m, c) == {"contact_s": None, "clear": [[0.0, round(p.end_s, 3)]]}
        # gone from the corridor at least 1.5 s before the runner reaches its line
        assert p.arrive_s is not None and abs(p.x_at(p.arrive_s - 1.5)) - spec.half_width_m > c


def test_the_rough_runner_bobs_and_sways_twice_as_much() -> None:
    cfg = Config()
    a, b = (S.motion_of(S.suite([n], "hazards")[0], cfg) for n in ("cyclist-8mps", "cyclist-8mps-rough"))
    assert b.bob_m == pytest.approx(2 * a.bob_m) and b.yaw_sway_deg == pytest.approx(2 * a.yaw_sway_deg)
    assert b.roll_sway_deg == pytest.approx(2 * a.roll_sway_deg) and b.step_hz != 0


def test_a_short_crossing_recording_says_when_the_hazard_begins(shared: Path, tmp_path: Path) -> None:
    cfg = from_dict({"camera": {"width": 320, "height": 180, "fps": 5}})
    spec = S.suite(["stepin-dog-1.0m"], "hazards")[0]
    out = S.make_scene(spec, shared / "images" / "coco", tmp_path / "s", config=cfg)
    rec = Recording.open(out)
    assert rec.truth is not None and rec.truth.contact_s is None and rec.truth.clear == ()
    meta = json.loads((out / "scenario.json").read_text())
    assert meta["suite"] == "hazards" and meta["kind"] == "step-in" and meta["label"] == "dog"
    # in the corridor first, then in the (narrower) frame, a step from the runner
    assert spec.entry_s <= meta["hazard_s"] < spec.entry_s + 0.5
    assert rec.frame_count == math.ceil(2.5 * 5)


def test_hazard_rows_judge_each_kind_by_its_own_measure() -> None:
    from device.core.types import AlertLevel
    from device.tools.evaluate import Evaluation, Sample, Score

    def sc(name: str, contact: float | None, lead: float | None, fa: float = 0.0) -> Score:
        return Score(name, name, 5.0, contact, None, None, lead, lead, contact is not None and lead is None, fa,
                     5.0, 0.0, 0, 0.0, None, "")

    def trace(*levels: tuple[float, AlertLevel]) -> list[Sample]:
        return [Sample(t, lv, False, None, None, "camera", None) for t, lv in levels]

    ev = Evaluation(
        (sc("x", 3.0, 1.2), sc("y", 3.0, 0.4), sc("p", None, None, 0.5), sc("s", None, None),
         sc("a", 5.0, 1.6), sc("z", None, None)),
        {"x": trace(), "y": trace(), "p": trace((0.0, AlertLevel.WARN)),
         "s": trace((0.0, AlertLevel.CLEAR), (1.6, AlertLevel.WARN), (1.9, AlertLevel.DANGER)), "a": trace(),
         "z": trace()},
        {"x": {"suite": "hazards", "kind": "crossing", "in_view_s": 3.0},
         "y": {"suite": "hazards", "kind": "crossing", "in_view_s": 0.5},
         "p": {"suite": "hazards", "kind": "clear"},
         "s": {"suite": "hazards", "kind": "step-in", "hazard_s": 1.6},
         "a": {"suite": "hazards", "kind": "approach", "speed_mps": 10.0},
         "z": {"suite": "scenes", "kind": "clear"}},
    )
    from device.tools.evaluate import hazard_rows

    rows = {r["name"]: r for r in hazard_rows(ev)}
    assert set(rows) == {"x", "y", "p", "s", "a"}  # other suites are not hazards
    assert rows["x"]["ok"] and rows["x"]["target"] == "lead >= 1 s"
    assert rows["y"]["ok"] and rows["y"]["target"].startswith("warned")  # seen 0.5 s: warned at all
    assert not rows["p"]["ok"] and rows["p"]["max_level"] == "WARN"
    assert rows["s"]["danger_after_s"] == pytest.approx(0.3) and rows["s"]["ok"]
    assert rows["a"]["ok"] and rows["a"]["target"] == "lead >= 1.5 s"  # 10 m/s: 1.5 s
