"""`evaluate`'s acquisition distances: where an approach first became an
in-path camera candidate and first reached WARN, as true distances."""

from __future__ import annotations

from device.core.types import AlertLevel
from device.tools.evaluate import Sample, acquisition, true_distance_m
from device.tools.scene.far import FAR


def sample(t: float, level: AlertLevel = AlertLevel.CLEAR, cand: bool = False) -> Sample:
    return Sample(t_s=t, level=level, fault=False, distance_m=None, ttc_s=None, source="none", direction=None,
                  camera_candidate=cand)


def test_acquisition_distances_are_true_distances_before_contact() -> None:
    samples = [sample(0.0), sample(1.0, cand=True), sample(2.0, AlertLevel.CAUTION, True),
               sample(3.0, AlertLevel.WARN, True), sample(5.0, AlertLevel.DANGER, True)]
    # closing at 4 m/s, contact at 5 s: 16 m at 1 s, 8 m at 3 s
    assert acquisition(samples, 5.0, 4.0) == (16.0, 8.0)


def test_no_acquisition_without_an_approach_or_before_contact() -> None:
    late = [sample(0.0), sample(5.0, AlertLevel.WARN, True)]  # only at contact: too late to count
    assert acquisition(late, 5.0, 4.0) == (None, None)
    assert acquisition(late, None, None) == (None, None)
    assert true_distance_m(6.0, 5.0, 4.0) == 0.0


def test_far_scenes_start_beyond_the_targets() -> None:
    start = {s.name: s.start_m for s in FAR}
    assert start["far-person-4mps"] > 25 and start["far-cyclist-6mps"] > 30 and start["far-dog-3mps"] > 12
    assert {s.label for s in FAR} == {"person", "cyclist", "dog", "post", "bench"}
