"""Will a camera object be inside the runner's corridor, and how soon: the
question a crossing car, a pedestrian cutting across and a cyclist head-on
share. Pure: the filtered ground state in, seconds out.

A crosser is a threat when its body enters the corridor (|x| minus its
half width <= the corridor's half width) before the runner reaches its line,
and has not left the corridor again by then: one that clears it first is
no threat, whatever its speed. The time to collision it is given is the
time until it enters, so the runner is told before it is in the way.
"""

from __future__ import annotations

from device.core.camera import GroundState

# Sideways speeds below this are what still things beside the path read as
# from a moving camera, not a crossing (m/s), and the speed must stand out of
# its own uncertainty by this many standard deviations. Measured: a side pass
# 1.1 m out wobbles by +-0.5 m/s with the stride and the runner's sway (the
# hazards suite's pass-walker-1.1m); a man standing beside the track on the
# Market Street footage read as 0.82 +- 0.26 m/s towards it at the Pi 4's
# pace (rough box distances along a nearly fixed bearing). People walk across
# at 1.2-1.5 m/s; a slower crosser is caught once inside the corridor.
MIN_CROSS_MPS = 1.0
CROSS_SIGMAS = 2.0


def corridor_entry_s(g: GroundState, half_width_m: float, corridor_half_width_m: float,
                     min_closing_mps: float) -> float | None:
    """Seconds until the object's body enters the corridor, if it will be in
    the corridor when the runner reaches its line; else None (not crossing,
    gone by then, or the runner is not closing on it)."""
    closing = -g.vz_mps
    if g.z_m <= 0 or closing < max(min_closing_mps, 1e-6):
        return None
    t_line = g.z_m / closing  # when the runner reaches the object's line
    side = 1.0 if g.x_m >= 0 else -1.0
    inward = -side * g.vx_mps  # speed towards the runner's line
    if inward < max(MIN_CROSS_MPS, CROSS_SIGMAS * g.vx_sd_mps):
        return None
    gap = abs(g.x_m) - half_width_m - corridor_half_width_m
    if gap <= 0:
        # Its body at the corridor's edge already: a side pass looks the same
        # (a walker 1.1 m out, half a metre wide), and a crosser seen coming
        # was warned of before it got there.
        return None
    t_enter = gap / inward
    t_leave = (abs(g.x_m) + half_width_m + corridor_half_width_m) / inward
    if t_enter > t_line or t_leave < t_line:
        return None  # enters after the runner has passed its line, or has cleared it before
    return t_enter
