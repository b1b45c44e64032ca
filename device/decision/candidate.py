"""What each source (camera, ultrasonic, fused, looming) offers the policy:
one shape, so the sources need not know each other or the estimator."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    """Something that might be the threat, before the policy ranks it."""

    source: str  # camera | ultrasonic | fused | looming
    label: str
    distance_m: float
    bearing_deg: float
    ttc_s: float | None
    in_path: bool
    # The box touches the top or bottom of the image: the object is taller
    # than the box, so distance_m is only an upper bound.
    clipped: bool = False
    # Fills the frame across the runner's line (camera): near by definition,
    # DANGER whatever its distance estimate says.
    near: bool = False
    # Its evidence has lasted already (camera: seen in NEAR_CONFIRM_HITS frames),
    # so the policy raises its level without waiting alerts.persist_s.
    confirmed: bool = False
