"""A covered, dark or fogged lens is a camera fault, named within 2 s, that
clears by itself; a real scene, and a plain one, is not."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from device.camera_path import DetectStage
from device.core.clock import NS_PER_S, ReplayClock
from device.core.config import Config
from device.core.faults import Kind, Part
from device.core.types import AlertLevel, Frame
from device.perception.blind import BlindWatch, lens_stats
from device.pipeline import Pipeline
from device.sensing.ultrasonic import RecordedRanges
from device.tools.blind_eval import cover, darken, flattest_quarter, fog
from fakes import NoDetections, SlotFrames, inline_camera

CFG = Config()
FPS = 15


@pytest.fixture(scope="module")
def scene(shared: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(shared / "footage" / "vtest.avi"))
    frames = []
    while len(frames) < 45:
        ok, img = cap.read()
        assert ok
        frames.append(cv2.resize(img, (640, 360), interpolation=cv2.INTER_AREA))
    cap.release()
    return frames


def test_real_and_plain_frames_are_not_blind_but_dark_fogged_covered_are(scene) -> None:
    rng = np.random.default_rng(0)
    for img in scene[::5]:
        assert lens_stats(img).why_blind() is None
        assert lens_stats(flattest_quarter(img)).why_blind() is None
        assert lens_stats(darken(img, rng)).why_blind() == "dark"
        assert lens_stats(fog(img, rng)).why_blind() == "no detail"
        assert lens_stats(fog(img, rng, 8.0)).why_blind() == "no detail"  # a noisy sensor's fog
        assert lens_stats(cover(img, rng, 8.0)).why_blind() == "no detail"


def test_blind_watch_names_it_after_a_second_and_clears_at_the_first_good_frame(scene) -> None:
    rng = np.random.default_rng(1)
    watch = BlindWatch()
    step = NS_PER_S // FPS
    t = 0
    for img in scene[:15]:
        watch.saw(t, img)
        assert watch.fault_text() is None
        t += step
    went = t
    named_at = None
    for img in scene[15:45]:
        watch.saw(t, cover(img, rng))
        if named_at is None and watch.fault_text() is not None:
            named_at = t
        t += step
    assert named_at is not None
    # held for hold_s (1 s) of blind frames: named on the first frame at or past it
    assert 1.0 <= (named_at - went) / NS_PER_S <= 1.0 + 1 / FPS
    assert watch.fault_text() is not None and watch.fault_text().startswith("lens covered or fogged")
    watch.saw(t, scene[0])
    assert watch.fault_text() is None and watch.blind_for_ns() == 0


def test_a_dark_lens_is_a_camera_fault_in_the_loop_within_2_s_and_clears(scene) -> None:
    clock = ReplayClock(0)
    frames = SlotFrames()
    camera = inline_camera(frames, DetectStage(NoDetections(), CFG.camera), clock)

    class Sink:
        def update(self, level: AlertLevel, now_ns: int, direction: str | None = None) -> None:
            pass

    pipe = Pipeline(CFG, clock, RecordedRanges([]), Sink(), camera)
    rng = np.random.default_rng(2)
    named = None
    for i in range(150):  # the loop at 50 Hz, frames at 10 fps; dark from 1 s to 4 s
        t = round(i * 0.02 * NS_PER_S)
        clock.set(t)
        if i % 5 == 0:
            img = scene[(i // 5) % len(scene)]
            frames.slot.put(Frame(i, t, darken(img, rng) if i >= 50 else img))
        threat = pipe.step()
        if i < 50:
            assert threat.faults == ()
        elif named is None and threat.faults:
            named = t
            fault = threat.faults[0]
            assert fault.part is Part.CAMERA and fault.kind is Kind.BLIND
            assert str(fault).startswith("camera: lens dark")
            assert pipe.level is AlertLevel.FAULT
    assert named is not None and (named - NS_PER_S) / NS_PER_S <= 2.0
    clock.set(5 * NS_PER_S)
    frames.slot.put(Frame(999, 5 * NS_PER_S, scene[0]))
    assert pipe.step().faults == ()
