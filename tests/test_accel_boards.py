"""Issue 24: the accelerated board profiles (device/perception/boards.toml,
[accelerated.*]) and what replay/evaluate make of them."""

from __future__ import annotations

import pytest

from device.app.replay import pace_for
from device.core.config import Config
from device.perception import boards


def test_accelerated_boards_pace_at_the_accelerators_figure_whatever_the_cpu_model() -> None:
    profiles = boards.load()
    assert set(profiles.accelerated) == {"pi4-imx500", "zero2w-imx500", "pi5-hailo8l"}
    cfg = Config()
    for name, ms in (("pi4-imx500", 43.5), ("zero2w-imx500", 43.5), ("pi5-hailo8l", 12.4)):
        b = profiles.get(name)
        assert b.accelerator in ("imx500", "hailo") and b.source and b.status == "estimate"
        for model, size in (("yolox_nano", 416), ("yolox_nano_dynamic", 256)):
            assert b.detect_ms(model, size, profiles.detect_overhead) == ms
        small = cfg.model_copy(update={"detector": cfg.detector.model_copy(update={"input_size": 256})})
        pace = pace_for(name, small)
        assert pace is not None and pace.busy_ms == ms
    # the IMX500 is the same on any Pi: the sensor runs the network
    assert profiles.get("pi4-imx500").inference_ms == profiles.get("zero2w-imx500").inference_ms


def test_accelerated_boards_stay_out_of_the_cpu_tables_and_the_device_tree_lookup() -> None:
    profiles = boards.load()
    assert not set(profiles.accelerated) & set(profiles.boards)
    assert profiles.for_device_tree("Raspberry Pi 5 Model B Rev 1.0").name == "pi5"  # type: ignore[union-attr]
    assert profiles.for_device_tree("Raspberry Pi Zero 2 W Rev 1.0").name == "zero2w"  # type: ignore[union-attr]
    assert "AI Camera" not in boards.estimate_table(profiles)
    with pytest.raises(boards.BoardError, match="pi4-imx500.*pi5-hailo8l"):
        profiles.get("pi4-coral")


def test_a_bad_accelerated_profile_is_a_clear_error() -> None:
    base = {"title": "X", "device_tree": "X", "status": "estimate", "source": "s", "net": {"416": [40, 40]}}
    ok = boards.parse({"detect_overhead": 0.1, "accelerated": {"x": {
        **base, "accelerator": "imx500", "accelerator_model": "net", "accelerator_input": 416}}})
    assert ok.get("x").detect_ms("yolox_nano", 320, 0.1) == 40
    for bad in ({"accelerator": "coral", "accelerator_model": "net", "accelerator_input": 416},
                {"accelerator": "hailo", "accelerator_model": "other", "accelerator_input": 416},
                {"accelerator": "hailo", "accelerator_model": "net", "accelerator_input": 320}):
        with pytest.raises(boards.BoardError, match="accelerated.x"):
            boards.parse({"detect_overhead": 0.1, "accelerated": {"x": {**base, **bad}}})
