"""The ultrasonic sensor in the same world the camera sees.

The configured beam (`ranging.sensors[].beam_deg`, full width) is a cone
from the sensor, mounted with the camera on the runner's chest and facing
`bearing_deg` from straight back, level (the camera's mounting pitch is the
camera's, not the sensor's) but moving with the runner's bob and sway. The
true echo is the nearest surface any ray of the cone meets within
`max_distance_m`: the ground, a wall, a post, a cut-out (only where its
photo shows the object). Noise, lost-echo bursts and late echoes are then
added by `device.tools.scenario.pings` with the `NoiseModel` fitted to the
real HC-SR04 log.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from device.record.format import SensorMeta
from device.tools.scene.render import Pose, hit_ground, hit_quad
from device.tools.scene.world import World

CONE_RAYS = 400  # rays filling the cone: a 14 cm post at 4 m is ~2 degrees wide, several rays


def cone_directions(beam_deg: float, n: int = CONE_RAYS) -> np.ndarray:
    """Unit directions (n, 3) filling a cone of full width beam_deg about +z
    evenly (a sunflower pattern over the cone's cap), the axis included."""
    half = math.radians(beam_deg / 2)
    i = np.arange(n)
    # even in solid angle: cos(theta) uniform between cos(half) and 1
    cos_t = 1 - (i / max(n - 1, 1)) * (1 - math.cos(half))
    sin_t = np.sqrt(np.maximum(1 - cos_t**2, 0))
    phi = i * math.pi * (3 - math.sqrt(5))
    return np.stack([sin_t * np.cos(phi), sin_t * np.sin(phi), cos_t], axis=1).astype(np.float32)


@dataclass(frozen=True, eq=False)
class Beam:
    sensor: SensorMeta
    directions: np.ndarray  # in the sensor's frame, +z along its axis

    @classmethod
    def of(cls, sensor: SensorMeta, n: int = CONE_RAYS) -> Beam:
        return cls(sensor, cone_directions(sensor.beam_deg, n))

    def echo(self, world: World, pose: Pose, t: float, mount_pitch_deg: float = 0.0) -> float | None:
        """Distance to the nearest surface in the cone, or None (nothing within range)."""
        o = pose.position
        # The sensor's frame is the camera's with the mounting pitch taken
        # out and its bearing turned in (bearing + = runner's right = +x, as yaw).
        level = Pose(pose.x, pose.y, pose.z, pose.yaw_deg + self.sensor.bearing_deg,
                     pose.pitch_deg - mount_pitch_deg, pose.roll_deg)
        dirs = (self.directions @ level.rotation().T.astype(np.float32)).T.copy()  # (3, N) unit rays: t is distance
        best = hit_ground(o, dirs)
        for q in world.quads(t):
            tq, _, _ = hit_quad(q, o, dirs)
            best = np.minimum(best, tq)
        d = float(best.min())
        return d if d <= self.sensor.max_distance_m else None
