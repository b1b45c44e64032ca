"""Each camera track's position on the ground and its velocity, filtered
over time: a constant-velocity Kalman filter on (x lateral, z ahead), in
the runner's frame, fed with the bearing and the decided distance.

Why our own 4-state filter rather than filterpy 2.0 (the well-kept one):
it is four states and two measurements, some 30 lines of numpy, where a
dependency would be another package to lock for numpy 1.24 (Python 3.11,
the Pi OS) and numpy 2 alike and to install on aarch64 for what is one
matrix product each step. The maths is the textbook one (white-noise
acceleration model), on the injected clock, so replay is exact.

The measurement noise is the polar one: the distance from a box is good to
tens of percent, the bearing to a fraction of a degree, so the error of
(x, z) lies along the ray; the filter then trusts the sideways motion that
bearing changes show and smooths the rough distance.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from device.core.camera import GroundState
from device.core.clock import NS_PER_S

DISTANCE_REL_SD = 0.12  # of the decided distance: box heights are good to tens of percent
DISTANCE_FLOOR_SD_M = 0.1
# A box centre's bearing is good to a few pixels, but the camera is worn: the
# runner's sway turns it 1-3 degrees each way within a stride (twice that
# running backwards). At 0.7 the filter took that swing as the object's own
# sideways motion, and a side pass 1.3 m out in the hazards suite's rough
# render read as crossing (1.35 +- 0.33 m/s) after three detections at the
# Pi 4's pace: a false DANGER. At 2.0 it needs a longer look, which a real
# crosser gives: the rough walker crossing warned 1.92 s before entry at pi4
# (0.90 s at 0.7), and the Market Street cut-ins lost their 0.14 s of WARN.
BEARING_SD_DEG = 2.0
ACCEL_SD_MPS2 = 0.8  # white-noise acceleration: people and bikes change pace, not wildly
INITIAL_SPEED_SD_MPS = 4.0  # unknown velocity at a track's birth
# The velocity is settled (may raise a level) after this many measurements
# and once its standard deviation is below these: sideways (what makes a
# crossing) tight, along the line looser (the rough distance; it only sets
# when the runner reaches the object's line).
SETTLED_MIN_UPDATES = 4
SETTLED_VX_SD_MPS = 0.6
SETTLED_VZ_SD_MPS = 1.5


def closing_settled(g: GroundState) -> bool:
    """Enough measurements (SETTLED_MIN_UPDATES) and a closing speed settled
    (SETTLED_VZ_SD_MPS), whatever the sideways speed's standard deviation:
    what a rule needs that asks the sideways speed to stand clear of its own
    uncertainty (device.decision.crossing.corridor_entry_s).

    SETTLED_VX_SD_MPS is out of reach at a Pi Zero's pace. Between two
    detections ACCEL_SD_MPS2 adds ACCEL_SD_MPS2**2 x dt to the velocity's
    variance: 0.58 m/s of sd over the Zero's 0.53 s, 0.83 over the 1.07 s
    the look-ahead crop (every third detection, in place of the full frame)
    leaves an object off the axis unmeasured. Fed a walker's exact range and
    bearing at that cadence, the filter's sideways sd stays at 0.64-0.73 m/s
    until the walker is 5 m away (tests/test_motion.py), so `settled` came
    0.7 s before the hazards suite's crosser entered the corridor, too late
    to warn (issue 19)."""
    return g.updates >= SETTLED_MIN_UPDATES and g.vz_sd_mps <= SETTLED_VZ_SD_MPS


def ground_point(distance_m: float, bearing_deg: float) -> tuple[float, float]:
    """(x, z) on the ground of a range and bearing."""
    b = math.radians(bearing_deg)
    return distance_m * math.sin(b), distance_m * math.cos(b)


def _measurement_cov(distance_m: float, bearing_deg: float) -> np.ndarray:
    b = math.radians(bearing_deg)
    sd_d = DISTANCE_REL_SD * distance_m + DISTANCE_FLOOR_SD_M
    sd_b = math.radians(BEARING_SD_DEG)
    # d(x, z)/d(distance, bearing) for x = d sin b, z = d cos b
    j = np.array([[math.sin(b), distance_m * math.cos(b)], [math.cos(b), -distance_m * math.sin(b)]])
    return j @ np.diag([sd_d**2, sd_b**2]) @ j.T


_H = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0]])


class GroundFilter:
    """Constant-velocity Kalman filter, state (x, z, vx, vz)."""

    def __init__(self, t_ns: int, distance_m: float, bearing_deg: float, label: str = "", object_id: int = 0) -> None:
        x, z = ground_point(distance_m, bearing_deg)
        self.label = label
        self.object_id = object_id
        self.t_ns = t_ns
        self.s = np.array([x, z, 0.0, 0.0])
        self.p = np.zeros((4, 4))
        self.p[:2, :2] = _measurement_cov(distance_m, bearing_deg)
        self.p[2, 2] = self.p[3, 3] = INITIAL_SPEED_SD_MPS**2
        self.updates = 1

    def _predicted(self, dt: float) -> tuple[np.ndarray, np.ndarray]:
        f = np.eye(4)
        f[0, 2] = f[1, 3] = dt
        q1 = np.array([[dt**4 / 4, dt**3 / 2], [dt**3 / 2, dt**2]]) * ACCEL_SD_MPS2**2
        q = np.zeros((4, 4))
        q[np.ix_([0, 2], [0, 2])] = q1
        q[np.ix_([1, 3], [1, 3])] = q1
        return f @ self.s, f @ self.p @ f.T + q

    def _innovation(self, t_ns: int, distance_m: float, bearing_deg: float
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        s, p = self._predicted((t_ns - self.t_ns) / NS_PER_S)
        y = np.array(ground_point(distance_m, bearing_deg)) - _H @ s
        return s, p, y, _H @ p @ _H.T + _measurement_cov(distance_m, bearing_deg)

    def gate(self, t_ns: int, distance_m: float, bearing_deg: float) -> float:
        """Squared Mahalanobis distance of a measurement from the prediction."""
        _, _, y, sk = self._innovation(t_ns, distance_m, bearing_deg)
        return float(y @ np.linalg.solve(sk, y))

    def update(self, t_ns: int, distance_m: float, bearing_deg: float) -> None:
        if t_ns < self.t_ns:
            return  # out of order: never rewind the filter
        s, p, y, sk = self._innovation(t_ns, distance_m, bearing_deg)
        k = p @ _H.T @ np.linalg.inv(sk)
        self.s = s + k @ y
        self.p = (np.eye(4) - k @ _H) @ p
        self.t_ns = t_ns
        self.updates += 1

    def state(self) -> GroundState:
        st = GroundState(
            x_m=float(self.s[0]), z_m=float(self.s[1]), vx_mps=float(self.s[2]), vz_mps=float(self.s[3]),
            vx_sd_mps=math.sqrt(max(self.p[2, 2], 0.0)), vz_sd_mps=math.sqrt(max(self.p[3, 3], 0.0)),
            updates=self.updates, x_sd_m=math.sqrt(max(self.p[0, 0], 0.0)), object_id=self.object_id,
        )
        return replace(st, settled=closing_settled(st) and st.vx_sd_mps <= SETTLED_VX_SD_MPS)


# A filter outlives its track's missed frames for this long (the tracker's
# own gap is shorter), then it is dropped.
KEEP_NS = round(1.5 * NS_PER_S)
# A new tracker id takes over a filter whose track was not seen in its frame,
# of the same label, when its measurement is inside this gate of the
# filter's prediction (chi-square, 2 degrees of freedom, 99 %): the IoU
# tracker renames a crosser whose box moves more than its width between
# detections (3.5 a second on a Pi 4), and the motion must not start again.
GATE_CHI2 = 9.21


class GroundTracks:
    """One filter per object: per tracker id, kept through a missed frame or
    two, and carried over to a new id that is where it was going.

    A track whose name changes (a truck read as a car, a dog as a person: one
    confusable group, one track) measures a different distance under each
    name, since the distance comes from the name's size: 13 m as a truck and
    7 m as a car for the same box. One filter fed both would read each flip as
    metres of motion in a fifteenth of a second (a truck at 3 m/s closing at
    5, a false early WARN). So a track keeps one filter per name, each fed
    only that name's distances, all under the track's one object id."""

    def __init__(self) -> None:
        self._filters: dict[tuple[int, str], GroundFilter] = {}
        self._serials = 0

    def update(self, t_ns: int, tracks: list[tuple[int, str, float, float]]) -> dict[int, GroundState]:
        """(track id, label, decided distance, bearing) of a frame's tracks -> their states."""
        out: dict[int, GroundState] = {}
        kept = {key: f for key, f in self._filters.items() if t_ns - f.t_ns <= KEEP_NS}
        valid = [(tid, label, d, b) for tid, label, d, b in tracks
                 if math.isfinite(d) and d > 0 and math.isfinite(b)]
        ids = {tid for tid, *_ in valid}
        new = []
        for tid, label, distance_m, bearing_deg in valid:
            flt = kept.get((tid, label))
            if flt is None:
                new.append((tid, label, distance_m, bearing_deg))
                continue
            flt.update(t_ns, distance_m, bearing_deg)
            out[tid] = flt.state()
        for tid, label, distance_m, bearing_deg in new:
            renamed = [f.object_id for (old, _), f in kept.items() if old == tid]
            orphans = [(f.gate(t_ns, distance_m, bearing_deg), key) for key, f in kept.items()
                       if key[0] not in ids and key[1] == label and f.t_ns < t_ns]
            best = min(orphans, default=None)
            if renamed:
                # The same track under another name: a filter of its own, the same object.
                flt = GroundFilter(t_ns, distance_m, bearing_deg, label, renamed[0])
            elif best is not None and best[0] <= GATE_CHI2:
                flt = kept.pop(best[1])
                flt.update(t_ns, distance_m, bearing_deg)
            else:
                self._serials += 1
                flt = GroundFilter(t_ns, distance_m, bearing_deg, label, self._serials)
            kept[(tid, label)] = flt
            out[tid] = flt.state()
        self._filters = kept
        return out
