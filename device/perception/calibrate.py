"""Measure the camera's mount height and pitch as worn, from a person (or
any grounded object the detector knows) standing at two or more measured
distances behind the runner.

A point on flat ground at distance d is seen atan(H / d) below the horizon
by a camera H above the ground; the camera tilted down by `pitch` sees it
atan(H / d) - pitch below its optical axis. The foot point of the helper's
box gives that angle at each stop, so two stops fix both unknowns (their
difference is H's, the rest the pitch's); more stops are a least-squares
fit. One stop cannot: a person's angular height is nearly the same for any
mount height near half theirs, so the span of one box says next to nothing.

How sure: each stop's foot angle carries the spread of the box's bottom edge
over its frames (standard error of the median), the tape's error on each
distance and a small bias of where a detector puts a box's bottom; these are
propagated by a seeded Monte Carlo, so the same measurements give the same
answer and the same "+-".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from device.perception.geometry import CameraGeometry

DISTANCE_SIGMA_M = 0.05  # a tape measured from the heels: a few centimetres either way
EDGE_BIAS_PX = 1.0  # where a box's bottom edge sits against the true foot point, one standard deviation ...
# ... plus this fraction of the box's height: YOLOX-Nano's box ends 0-4 % of its
# height below the feet, depending on the person and pose (measured on rendered
# cut-outs, tests/test_calibrate.py), a bias no number of frames averages away.
BOX_BIAS_FRACTION = 0.025
MIN_FRAMES = 5
HEIGHT_RANGE_M = (0.2, 3.0)
PITCH_RANGE_DEG = (-30.0, 45.0)  # config camera.pitch_deg's own bounds are -30..45


class CalibrationError(Exception):
    """The measurements cannot give a height and pitch; the message says why and what to do."""


@dataclass(frozen=True)
class Stop:
    """One measured distance, the foot rows (pixels) seen there and the
    helper's box heights (pixels) in the same frames."""

    distance_m: float
    foot_rows: tuple[float, ...]
    box_heights: tuple[float, ...] = ()


@dataclass(frozen=True)
class Calibration:
    mount_height_m: float
    pitch_deg: float
    height_sigma_m: float  # one standard deviation
    pitch_sigma_deg: float
    residual_deg: float  # rms misfit of the stops (0 with exactly two)
    stops: tuple[tuple[float, float, int], ...]  # (distance, foot angle below the axis, frames)

    def text(self) -> str:
        return (f"camera.mount_height_m = {self.mount_height_m:.2f} m (+- {2 * self.height_sigma_m:.2f}), "
                f"camera.pitch_deg = {self.pitch_deg:.1f} deg (+- {2 * self.pitch_sigma_deg:.1f}); "
                "+- is two standard deviations")


def foot_angle(geometry: CameraGeometry, rows: Sequence[float], box_heights: Sequence[float] = ()
               ) -> tuple[float, float]:
    """(median foot angle below the optical axis, its standard error), degrees."""
    a = np.array([geometry.below_axis_deg(r) for r in rows])
    med = float(np.median(a))
    mad = float(np.median(np.abs(a - med))) * 1.4826  # a robust standard deviation
    se = 1.2533 * mad / math.sqrt(len(a))  # of the median
    px = math.degrees(math.atan(1 / geometry.focal_px))
    bias_px = math.hypot(EDGE_BIAS_PX, BOX_BIAS_FRACTION * float(np.median(box_heights)) if box_heights else 0.0)
    return med, math.hypot(se, bias_px * px)


def fit(distances: Sequence[float], angles_deg: Sequence[float]) -> tuple[float, float, float]:
    """(H, pitch in degrees, rms residual in degrees) minimising the misfit of
    atan(H / d) - pitch to the measured foot angles below the axis."""
    d = np.asarray(distances, float)
    a = np.radians(np.asarray(angles_deg, float))

    def residuals(h: float) -> tuple[float, np.ndarray]:
        theta = np.arctan(h / d)
        pitch = float(np.mean(theta - a))  # the best pitch for this height, in closed form
        return pitch, theta - pitch - a

    # The misfit is one-dimensional in H once the pitch is solved for it: a
    # coarse scan, then golden-section refinement around the best cell.
    hs = np.linspace(*HEIGHT_RANGE_M, 281)
    costs = [float(np.sum(residuals(h)[1] ** 2)) for h in hs]
    i = int(np.argmin(costs))
    lo, hi = hs[max(i - 1, 0)], hs[min(i + 1, len(hs) - 1)]
    g = (math.sqrt(5) - 1) / 2
    for _ in range(60):
        m1, m2 = hi - g * (hi - lo), lo + g * (hi - lo)
        if np.sum(residuals(m1)[1] ** 2) < np.sum(residuals(m2)[1] ** 2):
            hi = m2
        else:
            lo = m1
    h = (lo + hi) / 2
    pitch, r = residuals(h)
    return h, math.degrees(pitch), math.degrees(float(np.sqrt(np.mean(r**2))))


def calibrate(geometry: CameraGeometry, stops: Sequence[Stop], *, samples: int = 400, seed: int = 0) -> Calibration:
    """Height and pitch from the stops, with their uncertainty. `geometry`
    gives the image size and field of view (its height and pitch are unused)."""
    if len({round(s.distance_m, 2) for s in stops}) < 2:
        raise CalibrationError("needs the helper at two or more different distances (e.g. 2 m and 5 m): one "
                               "distance cannot tell the camera's height from its tilt")
    short = [s.distance_m for s in stops if len(s.foot_rows) < MIN_FRAMES]
    if short:
        raise CalibrationError(f"the helper was seen in fewer than {MIN_FRAMES} frames at "
                               f"{', '.join(f'{d:g} m' for d in short)}: stand in full view, feet visible, "
                               "and try again")
    measured = [foot_angle(geometry, s.foot_rows, s.box_heights) for s in stops]
    dists = [s.distance_m for s in stops]
    angles = [m[0] for m in measured]
    h, pitch, resid = fit(dists, angles)
    if not (HEIGHT_RANGE_M[0] + 0.01 < h < HEIGHT_RANGE_M[1] - 0.01) or not (
            PITCH_RANGE_DEG[0] <= pitch <= PITCH_RANGE_DEG[1]):
        raise CalibrationError(f"the fit gives a height of {h:.2f} m and a pitch of {pitch:.1f} deg, outside what a "
                               "worn camera can be: check the distances (from directly below the camera) and that "
                               "the helper's feet were in view")
    rng = np.random.default_rng(seed)
    hs, ps = [], []
    for _ in range(samples):
        dd = [d + rng.normal(0, DISTANCE_SIGMA_M) for d in dists]
        aa = [a + rng.normal(0, se) for a, (_, se) in zip(angles, measured, strict=True)]
        if min(dd) <= 0.1:
            continue
        sh, sp, _ = fit(dd, aa)
        hs.append(sh)
        ps.append(sp)
    return Calibration(
        mount_height_m=h, pitch_deg=pitch, height_sigma_m=float(np.std(hs)), pitch_sigma_deg=float(np.std(ps)),
        residual_deg=resid,
        stops=tuple((s.distance_m, a, len(s.foot_rows)) for s, a in zip(stops, angles, strict=True)),
    )


def ground_row(geometry: CameraGeometry, distance_m: float | None) -> float | None:
    """The image row where flat ground `distance_m` away is seen (None: the
    horizon's row), for the configured height and pitch; None if off the image
    or not on the ground."""
    if distance_m is None:
        below_axis = -geometry.pitch_deg
    else:
        below_axis = math.degrees(math.atan(geometry.mount_height_m / distance_m)) - geometry.pitch_deg
    if abs(below_axis) >= 89:
        return None
    row = geometry.height / 2 + geometry.focal_px * math.tan(math.radians(below_axis))
    return row if 0 <= row < geometry.height else None
