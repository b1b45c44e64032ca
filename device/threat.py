"""Fusion of camera and ultrasonic observations into one threat, and the
alert level policy. Pure: no I/O, no threads, time passed in.

Design choices, each for the runner:
- Raise at once, step down only after `hold_s`: a late warning costs more
  than a long one, and a flickering buzzer teaches the runner to ignore it.
- A camera object alerts only once seen in two frames and an ultrasonic
  distance only once a second ping agrees: one bad frame or one spike must
  not alert.
- No-echo readings never erase a fresh valid reading: cheap sensors lose the
  echo from soft targets (clothing, a hand) every other ping.
- Stale data is never acted on: a reading older than `ranging.max_age_s`, or
  a camera result older than `camera.max_age_s`, is ignored.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from device.clock import NS_PER_S
from device.coco import COCO_CLASSES
from device.config import AlertsConfig, Config, UltrasonicSensorConfig
from device.geometry import CameraGeometry
from device.tracking import Track, ttc_from_scale_rate
from device.types import AlertLevel, Range, Threat

# Two pings agree when they are within this of each other (metres) ...
CONFIRM_DELTA_M = 0.3
# ... and no further apart in time than this.
CONFIRM_WINDOW_NS = round(0.35 * NS_PER_S)
# Closing speed is fitted over this much history.
RATE_WINDOW_NS = round(0.6 * NS_PER_S)
SCALE_WINDOW_NS = round(1.0 * NS_PER_S)
CAMERA_MIN_HITS = 2
EDGE_PX = 2.0  # a box this close to the top or bottom edge is cut off by it
# A camera time to collision counts only after this many frames in a row
# agree that the object is closing in (a box-growth estimate is noisy).
CAMERA_TTC_STREAK = 3
# A camera object and a sensor beam are the same thing when the object's
# bearing is inside the beam widened by this margin (degrees) ...
FUSE_BEARING_MARGIN_DEG = 10.0
# ... and the two distances agree within this fraction (box-height distances
# are good to tens of percent), or the box is clipped and the sensor nearer.
FUSE_DISTANCE_TOLERANCE = 0.4


@dataclass(frozen=True)
class Candidate:
    """Something that might be the threat, before the policy ranks it."""

    source: str  # camera | ultrasonic | fused
    label: str
    distance_m: float
    bearing_deg: float
    ttc_s: float | None
    in_path: bool
    # The box touches the top or bottom of the image: the object is taller
    # than the box, so distance_m is only an upper bound.
    clipped: bool = False


@dataclass(frozen=True)
class CameraResult:
    """What the camera stage concluded about one frame."""

    t_ns: int
    seq: int
    tracks: tuple[CameraTrack, ...]
    detect_ms: float | None = None


@dataclass(frozen=True)
class CameraTrack:
    track_id: int
    label: str
    box: tuple[float, float, float, float]
    confidence: float
    hits: int
    distance_m: float
    bearing_deg: float
    ttc_s: float | None
    clipped: bool = False


def camera_tracks(tracks: list[Track], geometry: CameraGeometry) -> tuple[CameraTrack, ...]:
    out = []
    for tr in tracks:
        label = COCO_CLASSES[tr.class_id]
        cx = (tr.box[0] + tr.box[2]) / 2
        out.append(
            CameraTrack(
                track_id=tr.track_id,
                label=label,
                box=tr.box,
                confidence=tr.confidence,
                hits=tr.hits,
                distance_m=geometry.distance_m(tr.box, label),
                bearing_deg=geometry.bearing_deg(cx),
                ttc_s=ttc_from_scale_rate(tr.scale_rate(SCALE_WINDOW_NS)),
                clipped=tr.box[1] <= EDGE_PX or tr.box[3] >= geometry.height - EDGE_PX,
            )
        )
    return tuple(out)


class SensorTrack:
    """Recent readings of one ultrasonic sensor and what they say now."""

    def __init__(self, sensor: UltrasonicSensorConfig) -> None:
        self.sensor = sensor
        self.valid: deque[tuple[int, float]] = deque(maxlen=16)
        self.fault: str | None = None

    def add(self, r: Range) -> None:
        self.fault = r.fault
        if r.fault is None and r.metres is not None:
            self.valid.append((r.t_ns, r.metres))

    def candidate(self, now_ns: int, max_age_ns: int, min_closing: float) -> Candidate | None:
        if self.fault is not None or not self.valid:
            return None
        t_last, d_last = self.valid[-1]
        if now_ns - t_last > max_age_ns:
            return None
        # Spike rejection: the newest distance counts only once an earlier
        # ping close in time agrees with it.
        if not any(
            0 < t_last - t <= CONFIRM_WINDOW_NS and abs(d - d_last) <= CONFIRM_DELTA_M
            for t, d in list(self.valid)[:-1]
        ):
            return None
        return Candidate(
            source="ultrasonic",
            label=self.sensor.name,
            distance_m=d_last,
            bearing_deg=self.sensor.bearing_deg,
            ttc_s=self._ttc(d_last, min_closing),
            in_path=True,  # the sensors are aimed along the path by construction
        )

    def _ttc(self, distance: float, min_closing: float) -> float | None:
        t_last = self.valid[-1][0]
        pts = [(t, d) for t, d in self.valid if t_last - t <= RATE_WINDOW_NS]
        if len(pts) < 3 or (pts[-1][0] - pts[0][0]) < 0.2 * NS_PER_S:
            return None
        t = np.array([p[0] - pts[0][0] for p in pts], dtype=np.float64) / NS_PER_S
        d = np.array([p[1] for p in pts], dtype=np.float64)
        slope, _ = np.polyfit(t, d, 1)
        closing = -float(slope)
        if closing < max(min_closing, 1e-6):
            return None
        return distance / closing


def level_for(c: Candidate, cfg: AlertsConfig) -> AlertLevel:
    if not c.in_path:
        return AlertLevel.CLEAR
    ttc = c.ttc_s if c.ttc_s is not None else math.inf
    if ttc < cfg.danger_ttc_s or c.distance_m < cfg.danger_distance_m:
        return AlertLevel.DANGER
    if ttc < cfg.warn_ttc_s or c.distance_m < cfg.warn_distance_m:
        return AlertLevel.WARN
    if ttc < cfg.caution_ttc_s or c.distance_m < cfg.caution_distance_m:
        return AlertLevel.CAUTION
    return AlertLevel.CLEAR


def fuse(camera: list[Candidate], sensors: list[tuple[UltrasonicSensorConfig, Candidate]]) -> list[Candidate]:
    """Replace a camera candidate by a fused one when a sensor beam sees it.

    The ultrasonic distance is the better one (centimetres against the tens
    of percent of a box-height estimate); the camera gives the label and
    the bearing. A sensor reading nothing the camera saw stays on its own.
    """
    out: list[Candidate] = []
    used: set[str] = set()
    for cam in camera:
        match = None
        for sensor, us in sensors:
            inside = abs(cam.bearing_deg - sensor.bearing_deg) <= sensor.beam_deg / 2 + FUSE_BEARING_MARGIN_DEG
            tol = max(0.5, FUSE_DISTANCE_TOLERANCE * cam.distance_m)
            plausible = abs(us.distance_m - cam.distance_m) <= tol or (cam.clipped and us.distance_m < cam.distance_m)
            if inside and plausible and (match is None or us.distance_m < match.distance_m):
                match = us
        if match is None:
            out.append(cam)
            continue
        used.add(match.label)
        out.append(
            replace(
                cam,
                source="fused",
                in_path=True,  # inside a sensor's beam, and the beams point along the path
                distance_m=match.distance_m,
                ttc_s=match.ttc_s if match.ttc_s is not None else cam.ttc_s,
            )
        )
    out += [us for _, us in sensors if us.label not in used]
    return out


def _urgency(c: Candidate, cfg: AlertsConfig) -> tuple[int, float, float]:
    ttc = c.ttc_s if c.ttc_s is not None else math.inf
    return (int(level_for(c, cfg)), -ttc, -c.distance_m)


class LevelHold:
    """Raise at once; step down only after the lower level has lasted hold_s."""

    def __init__(self, hold_s: float) -> None:
        self.hold_ns = round(hold_s * NS_PER_S)
        self.level = AlertLevel.CLEAR
        self._since = 0

    def update(self, now_ns: int, raw: AlertLevel) -> AlertLevel:
        if raw >= self.level:
            self.level = raw
            self._since = now_ns
        elif now_ns - self._since >= self.hold_ns:
            self.level = raw
            self._since = now_ns
        return self.level


class ThreatEstimator:
    """Keeps the latest evidence from every source and judges it on demand."""

    def __init__(self, config: Config) -> None:
        self.cfg = config.alerts
        self.sensors = {s.name: SensorTrack(s) for s in config.ranging.sensors}
        self.range_max_age_ns = round(config.ranging.max_age_s * NS_PER_S)
        self.camera_max_age_ns = round(config.camera.max_age_s * NS_PER_S)
        self.camera: CameraResult | None = None
        self._ttc_streak: dict[int, int] = {}
        self.hold = LevelHold(self.cfg.hold_s)
        self._last: Threat | None = None

    def add_ranges(self, ranges: list[Range]) -> None:
        for r in ranges:
            track = self.sensors.get(r.sensor)
            if track is not None:  # recordings are checked against the config up front
                track.add(r)

    def set_camera(self, result: CameraResult) -> None:
        self.camera = result
        streak = {}
        for tr in result.tracks:
            closing = self._plausible_ttc(tr) is not None and tr.ttc_s < self.cfg.caution_ttc_s  # type: ignore[operator]
            streak[tr.track_id] = self._ttc_streak.get(tr.track_id, 0) + 1 if closing else 0
        self._ttc_streak = streak

    def _plausible_ttc(self, tr: CameraTrack) -> float | None:
        """The track's TTC unless it implies an impossible closing speed: the
        box-height distance is rough, but not wrong by a factor of three."""
        if tr.ttc_s is None or tr.distance_m / tr.ttc_s > self.cfg.max_closing_mps:
            return None
        return tr.ttc_s

    def sensor_faults(self) -> tuple[str, ...]:
        return tuple(f"{name}: {t.fault}" for name, t in self.sensors.items() if t.fault)

    def candidates(self, now_ns: int) -> list[Candidate]:
        cams: list[Candidate] = []
        if self.camera is not None and now_ns - self.camera.t_ns <= self.camera_max_age_ns:
            for tr in self.camera.tracks:
                if tr.hits < CAMERA_MIN_HITS:
                    continue
                lateral = tr.distance_m * math.sin(math.radians(tr.bearing_deg))
                cams.append(
                    Candidate(
                        source="camera",
                        label=tr.label,
                        distance_m=tr.distance_m,
                        bearing_deg=tr.bearing_deg,
                        ttc_s=(
                            self._plausible_ttc(tr)
                            if self._ttc_streak.get(tr.track_id, 0) >= CAMERA_TTC_STREAK
                            else None
                        ),
                        in_path=abs(lateral) <= self.cfg.corridor_half_width_m,
                        clipped=tr.clipped,
                    )
                )
        sensors = []
        for t in self.sensors.values():
            c = t.candidate(now_ns, self.range_max_age_ns, self.cfg.min_closing_mps)
            if c is not None:
                sensors.append((t.sensor, c))
        return fuse(cams, sensors)

    def assess(self, now_ns: int, faults: tuple[str, ...] = ()) -> Threat:
        cands = self.candidates(now_ns)
        worst = max(cands, key=lambda c: _urgency(c, self.cfg), default=None)
        raw = level_for(worst, self.cfg) if worst is not None else AlertLevel.CLEAR
        level = self.hold.update(now_ns, raw)
        all_faults = faults + self.sensor_faults()
        if worst is None or raw == AlertLevel.CLEAR:
            # Held level with no current evidence: keep the last threat's
            # description, so the runner's alert and the log agree.
            prev = self._last
            if level > AlertLevel.CLEAR and prev is not None:
                threat = replace(prev, t_ns=now_ns, level=level, faults=all_faults)
            else:
                threat = Threat(t_ns=now_ns, level=level, source="none", faults=all_faults)
        else:
            threat = Threat(
                t_ns=now_ns,
                level=level,
                source=worst.source,
                distance_m=worst.distance_m,
                ttc_s=worst.ttc_s,
                closing_mps=(worst.distance_m / worst.ttc_s) if worst.ttc_s else None,
                bearing_deg=worst.bearing_deg,
                label=worst.label,
                faults=all_faults,
            )
        if raw > AlertLevel.CLEAR:
            self._last = threat
        return threat
