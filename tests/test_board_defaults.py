"""Defaults per board (issue 11 item 5): the detector model and input size
each board should use, from boards.toml, applied where a config sets neither."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from device.core.clock import NS_PER_S
from device.core.config import from_dict, load
from device.perception import boards
from device.perception.pace import PaceLimits, PaceMeter, judge


def test_every_board_names_a_default_it_has_a_figure_for() -> None:
    for b in boards.load().boards.values():
        assert b.default_model is not None and b.default_input_size is not None, b.name
        assert b.default_input_size in b.inference_ms[b.default_model]
        assert b.default_why


def test_the_config_wins_over_the_boards_defaults() -> None:
    pi4 = boards.load().get("pi4")
    plain = boards.with_defaults(from_dict({}), pi4)
    assert (plain.detector.model, plain.detector.input_geometry) == (pi4.default_model, pi4.default_input_size)
    for own in ({"input_size": 416}, {"model": "yolox_nano"}):
        cfg = from_dict({"detector": own})
        assert boards.with_defaults(cfg, pi4).detector == cfg.detector  # either key set: the builder's choice stands
    other = from_dict({"alerts": {"warn_ttc_s": 2.6}})
    assert boards.with_defaults(other, pi4).alerts.warn_ttc_s == 2.6


def test_a_bad_default_in_the_board_file_is_refused() -> None:
    data = {"detect_overhead": 0.1, "boards": {"x": {
        "title": "X", "device_tree": "X", "status": "estimate", "source": "s",
        "yolox_nano": {"416": [1, 2]}, "default_model": "yolox_nano", "default_input_size": 256}}}
    with pytest.raises(boards.BoardError, match="default_model"):
        boards.parse(data)


def config_show(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "device", "config", "show", *args],
                          capture_output=True, text=True, timeout=60, check=False)


def test_config_show_for_the_board_the_device_tree_names(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.write_bytes(b"Raspberry Pi Zero 2 W Rev 1.0\0")
    r = config_show("--config", "/dev/null", "--for-board", "auto", "--device-tree", str(model))
    assert r.returncode == 0, r.stderr
    out = tmp_path / "config.toml"
    out.write_text(r.stdout)
    z = boards.load().get("zero2w")
    cfg = load(out)
    assert (cfg.detector.model, cfg.detector.input_geometry) == (z.default_model, z.default_input_size)
    assert r.stdout.startswith("# the built-in defaults\n"
                               "# Pi Zero 2 W: detector.model and its input size are its defaults")
    laptop = config_show("--config", "/dev/null", "--for-board", "auto", "--device-tree", str(tmp_path / "absent"))
    assert laptop.returncode == 0 and "built-in defaults" in laptop.stderr
    assert laptop.stdout == config_show("--config", "/dev/null").stdout
    bad = config_show("--config", "/dev/null", "--for-board", "pi3")
    assert bad.returncode == 2 and "unknown board 'pi3'" in bad.stderr


def test_a_width_by_height_default_with_its_fill() -> None:
    data = {"detect_overhead": 0.1, "boards": {"x": {
        "title": "X", "device_tree": "X", "status": "estimate", "source": "s",
        "yolox_nano_dynamic": {"256": [1, 2], "320x192": [1, 2]}, "default_model": "yolox_nano_dynamic",
        "default_input_size": "320x192", "default_fill": "stretch", "default_why": "w"}}}
    x = boards.parse(data).get("x")
    assert x.default_input_size == (320, 192) and x.detect_ms("yolox_nano_dynamic", (320, 192), 0.1) == 2.2
    cfg = boards.with_defaults(from_dict({}), x)
    assert cfg.detector.input_geometry == (320, 192) and cfg.detector.fill == "stretch"
    own = from_dict({"detector": {"fill": "letterbox"}})
    assert boards.with_defaults(own, x) is own  # a config that sets any size key keeps its own
    data["boards"]["x"]["default_fill"] = "crop"  # type: ignore[index]
    with pytest.raises(boards.BoardError, match="default_fill"):
        boards.parse(data)
    data["boards"]["x"]["default_fill"] = "stretch"  # type: ignore[index]
    data["boards"]["x"]["default_lookahead"] = {"every": 2, "mode": "instead", "width": 0.4}  # type: ignore[index]
    ahead = boards.with_defaults(from_dict({}), boards.parse(data).get("x")).detector
    assert (ahead.lookahead_every, ahead.lookahead_mode, ahead.lookahead_width) == (2, "instead", 0.4)
    for bad, needle in (({"every": 1, "mode": "instead", "width": 0.4}, "needs lookahead_every >= 2"),
                        ({"every": 2, "mode": "instead"}, "expected"), ({"every": 2, "mode": "x", "width": 0.4}, "x")):
        data["boards"]["x"]["default_lookahead"] = bad  # type: ignore[index]
        with pytest.raises(boards.BoardError, match=f"default_lookahead.*{needle}"):
            boards.parse(data)
    del data["boards"]["x"]["default_lookahead"]  # type: ignore[attr-defined]
    data["boards"]["x"]["yolox_nano_dynamic"] = {"320x190": [1, 2]}  # type: ignore[index]
    with pytest.raises(boards.BoardError, match="multiples of 32"):
        boards.parse(data)


def test_a_boards_flow_default_unless_the_config_sets_it() -> None:
    for name in ("pi4", "zero2w"):
        b = boards.load().get(name)
        assert b.default_flow is True and b.default_flow_why
        assert boards.with_defaults(from_dict({}), b).flow.enabled
        # A config with its own detector keeps them, and still gets the board's flow.
        own = boards.with_defaults(from_dict({"detector": {"input_size": 416}}), b)
        assert own.flow.enabled and own.detector.input_size == 416
        assert not boards.with_defaults(from_dict({"flow": {"enabled": False}}), b).flow.enabled
    pi5 = boards.load().get("pi5")
    assert pi5.default_flow is None and not boards.with_defaults(from_dict({}), pi5).flow.enabled
    with pytest.raises(boards.BoardError, match="default_flow"):
        boards.parse({"detect_overhead": 0.1, "boards": {"x": {
            "title": "X", "device_tree": "X", "status": "estimate", "source": "s",
            "yolox_nano": {"416": [1, 2]}, "default_flow": True}}})


def _worst_verdict(detect_ms: float, cfg_pace_window_s: float, limits: PaceLimits) -> str | None:
    """The first 'too slow' a live device would say with results arriving
    every `detect_ms`, each `detect_ms` old, read every 10 ms for 30 s."""
    step_ns = round(detect_ms * 1e6)
    meter = PaceMeter(cfg_pace_window_s, 0)
    next_ns = step_ns
    for now_ns in range(0, 30 * NS_PER_S, 10_000_000):
        while next_ns <= now_ns:
            meter.note(next_ns - step_ns, next_ns, detect_ms)
            next_ns += step_ns
        slow = judge(meter.reading(now_ns), None, limits).too_slow
        if slow:
            return slow
    return None


@pytest.mark.parametrize("name", sorted(boards.load().boards))
def test_a_board_at_its_modelled_slow_end_is_not_too_slow_under_its_own_defaults(name: str) -> None:
    # `evaluate --board NAME` scores the board's default config at the slow end
    # of its figure; the live device must not call that same pace "too slow to
    # help" (a FAULT the runner feels while the evaluation says it warns).
    known = boards.load()
    b = known.get(name)
    cfg = boards.with_defaults(from_dict({}), b)
    ms = boards.config_detect_ms(b, cfg, known.detect_overhead)
    limits = PaceLimits(cfg.pace.degraded_factor, cfg.pace.min_rate_hz, cfg.camera.max_age_s)
    assert _worst_verdict(ms, cfg.pace.window_s, limits) is None
    # ...and the check is not blind: the same board a third slower is too slow.
    if b.default_min_rate_hz is not None:
        assert "too slow to help" in (_worst_verdict(ms * 1.34, cfg.pace.window_s, limits) or "")


def test_a_boards_pace_floor_unless_the_config_sets_it() -> None:
    zero = boards.load().get("zero2w")
    assert zero.default_min_rate_hz is not None and zero.default_min_rate_why
    assert boards.with_defaults(from_dict({}), zero).pace.min_rate_hz == zero.default_min_rate_hz
    own = boards.with_defaults(from_dict({"pace": {"min_rate_hz": 3.0}}), zero)
    assert own.pace.min_rate_hz == 3.0
    assert boards.with_defaults(from_dict({}), boards.load().get("pi5")).pace.min_rate_hz == from_dict({}).pace.min_rate_hz
    base = {"title": "X", "device_tree": "X", "status": "estimate", "source": "s", "yolox_nano": {"416": [1, 2]}}
    for bad in ({"default_min_rate_hz": 1.5}, {"default_min_rate_hz": 0, "default_min_rate_why": "w"},
                {"default_min_rate_hz": True, "default_min_rate_why": "w"},
                {"default_min_rate_hz": "2", "default_min_rate_why": "w"}):
        with pytest.raises(boards.BoardError, match="default_min_rate_hz"):
            boards.parse({"detect_overhead": 0.1, "boards": {"x": base | bad}})
