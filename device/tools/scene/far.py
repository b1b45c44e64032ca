"""The `far` scenes: head-on approaches that start far enough away to
measure where the camera first acquires each kind of obstacle.

The `scenes` suite starts each approach 6 s out (6-24 m), nearer than the
distances the camera must see a person (25 m), a cyclist (30 m) or a dog
(12 m) at. These start beyond them, so `rearguard evaluate` reports the true
distance at which each first became an in-path camera candidate and first
reached WARN (its acquisition table), per board. Rendered by the scenes
suite's own renderer (same world, runner motion and ultrasonic model).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from device.core.config import Config
from device.tools.scenario import NoiseModel, pick, prepare_out_root
from device.tools.scene.suite import CYCLIST, DEFAULT_NOISE, DOG, PERSON_A, SceneSpec, _make_one

FAR: tuple[SceneSpec, ...] = (
    SceneSpec("far-person-4mps", "approach", "cutout", 3.0, 1.0, cutout=PERSON_A, distance_m=40.0,
              note="a person walking towards a runner at 3 m/s, from 40 m"),
    SceneSpec("far-cyclist-6mps", "approach", "cutout", 2.0, 4.0, cutout=CYCLIST, distance_m=45.0,
              note="a cyclist at 4 m/s towards a runner at 2 m/s, from 45 m"),
    SceneSpec("far-dog-3mps", "approach", "cutout", 2.0, 1.0, cutout=DOG, distance_m=25.0,
              note="a dog trotting towards a runner at 2 m/s, from 25 m"),
    SceneSpec("far-post-3mps", "approach", "post", 3.0, distance_m=25.0, surround=("hedge-left", "facade-right"),
              note="a post in the path, from 25 m"),
    SceneSpec("far-bench-3mps", "approach", "bench", 3.0, distance_m=25.0, note="a bench across the path, from 25 m"),
)


def far_suite(names: Sequence[str] | None = None) -> tuple[SceneSpec, ...]:
    return pick(FAR, names, "far scene")


def make_far(images: str | Path, out_root: str | Path, *, names: Sequence[str] | None = None,
             config: Config | None = None, noise: NoiseModel = DEFAULT_NOISE, seed: int = 0,
             progress: Callable[[SceneSpec, Path], None] | None = None) -> list[Path]:
    """Render the far scenes (or `names` of them) into out_root, one after another."""
    cfg = config or Config()
    root = Path(out_root)
    specs = far_suite(names)
    prepare_out_root(root, [s.name for s in specs])
    out = []
    for s in specs:
        out.append(_make_one((s, Path(images), root / s.name, cfg, noise, seed)))
        if progress is not None:
            progress(s, out[-1])
    return out
