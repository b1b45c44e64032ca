"""How a runner moves the camera: along the path at a speed that varies,
bobbing up and down once per step, swaying in yaw and roll once per stride
(two steps), so the view is never still.

The figures are those of running gait: the centre of mass rises and falls
about 3 cm (peak to peak) per step at 2.5-3 steps a second; the trunk
twists and rolls 1-3 degrees each way per stride; pace varies a few per cent
over a few seconds. A runner standing still breathes and shifts a little.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from device.tools.scene.render import Pose


@dataclass(frozen=True)
class RunnerMotion:
    speed_mps: float  # mean speed along the path (backwards, towards where the camera looks)
    mount_height_m: float = 1.1
    pitch_deg: float = 0.0  # the camera's mounting tilt (config camera.pitch_deg)
    step_hz: float = 2.8
    bob_m: float = 0.03  # peak to peak, per step
    yaw_sway_deg: float = 2.0  # amplitude, per stride
    roll_sway_deg: float = 1.5
    pitch_sway_deg: float = 0.5  # the trunk nods with each step
    speed_variation: float = 0.08  # +- fraction of the mean speed ...
    speed_period_s: float = 3.5  # ... over this period
    phase: float = 0.0  # radians: where in the stride the run starts
    curve_radius_m: float | None = None  # None: a straight path; else it bends right with this radius

    @property
    def still(self) -> bool:
        return self.speed_mps <= 0

    def distance_m(self, t: float) -> float:
        """Distance run along the path by time t: the integral of
        v (1 + a sin(2 pi t / T + phase))."""
        if self.still:
            return 0.0
        w = 2 * math.pi / self.speed_period_s
        a = self.speed_variation
        return self.speed_mps * (t + a / w * (math.cos(self.phase) - math.cos(w * t + self.phase)))

    def speed(self, t: float) -> float:
        if self.still:
            return 0.0
        w = 2 * math.pi / self.speed_period_s
        return self.speed_mps * (1 + self.speed_variation * math.sin(w * t + self.phase))

    def time_at(self, distance_m: float) -> float | None:
        """When the runner has run distance_m (bisection: distance grows monotonically)."""
        if self.still or distance_m < 0:
            return None if distance_m > 0 else 0.0
        lo, hi = 0.0, 2 * distance_m / (self.speed_mps * (1 - self.speed_variation)) + 1.0
        for _ in range(60):
            mid = (lo + hi) / 2
            if self.distance_m(mid) < distance_m:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2

    def path_point(self, s: float) -> tuple[float, float, float]:
        """(x, y, heading in degrees) of the path at arc length s."""
        if self.curve_radius_m is None:
            return 0.0, s, 0.0
        r = self.curve_radius_m
        a = s / r
        return r * (1 - math.cos(a)), r * math.sin(a), math.degrees(a)

    def pose(self, t: float) -> Pose:
        x, y, heading = self.path_point(self.distance_m(t))
        if self.still:  # standing: breathing and a little shifting of weight
            bob, yaw, roll, nod = 0.003, 0.4, 0.3, 0.2
            step = 0.25
        else:
            bob, yaw, roll, nod = self.bob_m / 2, self.yaw_sway_deg, self.roll_sway_deg, self.pitch_sway_deg
            step = self.step_hz
        ph = 2 * math.pi * step * t + self.phase
        stride = ph / 2  # one stride = two steps: left, right
        return Pose(
            x=x,
            y=y,
            # lowest at foot strike, highest mid-flight
            z=self.mount_height_m - bob * math.cos(ph),
            yaw_deg=heading + yaw * math.sin(stride),
            pitch_deg=self.pitch_deg + nod * math.sin(ph + 0.6),
            roll_deg=roll * math.sin(stride + 0.4),
        )
