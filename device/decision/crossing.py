"""Will a camera object be inside the runner's corridor, and how soon: the
question a crossing car, a pedestrian cutting across and a cyclist head-on
share. Pure: the filtered ground state in, seconds out.

A crosser is a threat when its body enters the corridor (|x| minus its
half width <= the corridor's half width) before the runner reaches its line,
and has not left the corridor again by then: one that clears it first is
no threat, whatever its speed. The time to collision it is given is the
time until it enters, so the runner is told before it is in the way.

The same question is put to an object inside the corridor now
(`clears_corridor`): one whose own sideways motion, at the slow end of its
uncertainty, takes its body out of the corridor before the runner can
reach its line is no threat either, however fast its box grows.
"""

from __future__ import annotations

import math

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


# An object inside the corridor clears it only if its time to clear it, CROSS_SIGMAS
# standard deviations on the slow side, is this long before the earliest the
# runner can be at its line.
CLEAR_MARGIN_S = 0.5


def line_s(g: GroundState, min_closing_mps: float) -> float | None:
    """When the runner reaches the object's line at the filtered closing
    speed, if that speed stands clear of its uncertainty (CROSS_SIGMAS);
    else None. A time to collision the box's growth need not give: one filter
    per object outlasts the tracker's renames, where a box-growth fit needs
    one track id's boxes over a second."""
    closing = -g.vz_mps
    if g.z_m <= 0 or closing < max(min_closing_mps, CROSS_SIGMAS * g.vz_sd_mps, 1e-6):
        return None
    return g.z_m / closing


def reach_s(g: GroundState, ttc_s: float | None) -> float:
    """The earliest the runner plausibly reaches the object's line: at the
    ground closing speed plus CROSS_SIGMAS standard deviations, or the time
    to collision the box's growth gives, whichever is sooner (inf when
    neither says closing)."""
    closing_hi = -g.vz_mps + CROSS_SIGMAS * g.vz_sd_mps
    t = math.inf
    if g.z_m <= 0:
        t = 0.0
    elif closing_hi > 1e-6:
        t = g.z_m / closing_hi
    return t if ttc_s is None else min(t, ttc_s)


def clears_corridor(g: GroundState, half_width_m: float, corridor_half_width_m: float, reach: float) -> bool:
    """Whether the object's body will be out of the corridor (on the side it
    is heading for) CLEAR_MARGIN_S before `reach`, the earliest the runner
    can reach its line: a crosser that is gone by the time the runner gets
    there. Its time to clear is distance over speed, taken CROSS_SIGMAS
    standard deviations long, its deviation from the position's and the
    speed's together (first order, taken as independent). Bounding each of
    the two by CROSS_SIGMAS first and dividing one bound by the other, as
    before, stacked two unlikely ends into a far less likely one: on the
    rough sway at a Pi 4's pace (hazards cross-walker-clear-rough, a walker
    at 1.29 +- 0.26 m/s, 1.5 m to go) that said 2.3 s, where two sd of the
    estimate say 1.7 s and the walker took 0.9, and a walker gone two
    seconds before the runner arrived drew a WARN. Not for a sideways speed
    under MIN_CROSS_MPS or inside CROSS_SIGMAS of its uncertainty (the
    runner's sway, a crosser that stops in the path)."""
    speed = abs(g.vx_mps)
    if speed < MIN_CROSS_MPS or speed - CROSS_SIGMAS * g.vx_sd_mps <= 0:
        return False
    heading = 1.0 if g.vx_mps > 0 else -1.0
    # Its trailing side has to pass the corridor's edge on the side it is heading for.
    to_go = corridor_half_width_m + half_width_m - heading * g.x_m
    t = to_go / speed
    sd = math.hypot(g.x_sd_m / speed, to_go * g.vx_sd_mps / speed**2)
    return t + CROSS_SIGMAS * sd + CLEAR_MARGIN_S <= reach
