"""Fusion of camera and ultrasonic observations into one threat, and the
alert level policy. Pure: no I/O, no threads, time passed in.

Design choices, each for the runner:
- Raise once the evidence has lasted `persist_s` (escalating an alarm
  already on is immediate), step down only after `hold_s`, and leave a
  level only when time to collision and distance are past its thresholds
  by `hysteresis`: a late warning costs more than a long one, and a
  flickering buzzer teaches the runner to ignore it.
- A camera object alerts only once seen in two frames and an ultrasonic
  distance only once a second ping agrees: one bad frame or one spike must
  not alert.
- Camera distance is decided once, in the camera path
  (`device.camera_path.distance`), and taken as it comes; time to collision
  is the range rate where a sensor sees the object and the box's growth
  where none does.
- The near field: a box the frame's bottom edge cuts stands nearer than the
  ground there (decided with the distance, in the camera path), and a box
  that fills the frame with its inner side inside the corridor is DANGER
  whatever its distance estimate: a clipped box understates its object, so
  its height alone would say "far" (a bus's or truck's always does: it counts
  once seen closing). The detector often finds nothing in a frame one object
  fills, so a near-field object it loses is held for NEAR_HOLD_S.
- No-echo readings never erase a fresh valid reading: cheap sensors lose the
  echo from soft targets (clothing, a hand) every other ping.
- Stale data is never acted on: a sensor whose newest ping (of any kind) is
  older than `ranging.max_age_s`, or a camera result older than
  `camera.max_age_s`, is ignored. The one bounded exception is deliberate:
  while a sensor keeps pinging, a followed object's lost echoes are bridged
  for up to 0.5 s (`device.decision.range_filter`), so a soft target never reads as clear.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import replace

import numpy as np

from device.core.camera import CameraResult, CameraTrack, GroundState
from device.core.clock import NS_PER_S
from device.core.config import AlertsConfig, Config, UltrasonicSensorConfig
from device.core.faults import Fault, Part
from device.core.types import AlertLevel, Range, Threat
from device.decision.candidate import Candidate
from device.decision.crossing import clears_corridor, corridor_entry_s, line_s, reach_s
from device.decision.looming import LoomingTrack, centre_inside
from device.decision.range_filter import DEFAULT_PARAMS, FilterParams, RangeFilter
from device.perception.flow import FlowResult, FlowTrack
from device.perception.geometry import CameraGeometry
from device.perception.looming import LoomingResult
from device.perception.motion import closing_settled
from device.perception.tracking import Box, iou_matrix
from device.sensing.ultrasonic import fault_kind

CAMERA_MIN_HITS = 2
# The near field (a box filling the frame in the corridor) is DANGER once its
# track has been seen in this many frames, without waiting persist_s as well:
# three frames already rule out a one- or two-frame glitch (what persist_s is
# for), and a step-in a metre away is contact in under a second (at 15 fps,
# persist_s would wait for a fourth).
NEAR_CONFIRM_HITS = 3
# A near-field object the detector stops finding is still there: YOLOX often
# finds nothing at all in a frame that one object fills (a truck's last 1.3 s
# before contact at 2 m/s, the real car crossing the Market Street film at
# 3.3-3.9 s). Its near candidate stands this long after its last detection
# (and the policy's hold_s after that): inside the near field (3 m) the runner
# meets it within 1-1.5 s at 2-3 m/s.
NEAR_HOLD_S = 1.0
NEAR_HOLD_NS = round(NEAR_HOLD_S * NS_PER_S)
NEAR_HOLD_IOU = 0.3  # a box overlapping the lost one this much (the tracker's own match) is still it
# A camera time to collision counts only once the frames have agreed that the
# object is closing in for this long without a break (a box-growth estimate is
# noisy). In seconds, not frames, so it means the same at 15 detections a
# second (3 frames) as at a Pi Zero's 2-3 (2 results).
CAMERA_TTC_STREAK_S = 0.13
CAMERA_TTC_STREAK_NS = round(CAMERA_TTC_STREAK_S * NS_PER_S)
# A streak's time to collision is from the contact time (frame time plus TTC)
# its newest fit predicts, or the median of its newest CONTACT_FITS fits'
# where that is later: a fit that says contact comes sooner than the streak's
# recent fits agree on is one noisy fit, not news. For an object closing at a
# steady speed every fit predicts the same moment, so this has no lag (a
# median of the TTC values themselves would be as old as its middle fit). At
# a Pi 4's pace a young track's 4-box fit read 2.6 s for 5.0 (hazards
# jogger-5mps), where the fit before it had said 3.9.
CONTACT_FITS = 3
# A streak outlasts one result in which its track is missing: the newest result
# is within this many of the detector's intervals of the track's last closing one.
# So does one in which the track's box says nothing (no fit: its shape changed
# faster than it grew, a stride or an arm swinging out), its last closing fit
# standing for it, aged.
STREAK_MISS_INTERVALS = 1.5
# A camera object and a sensor beam are the same thing when the object's
# bearing is inside the beam widened by this margin (degrees) ...
FUSE_BEARING_MARGIN_DEG = 10.0
# ... and the two distances agree within this fraction (box-height distances
# are good to tens of percent), or the box is clipped and the sensor nearer.
FUSE_DISTANCE_TOLERANCE = 0.4
# The flow's scale since a detection shrinks that detection's distance only
# within these bounds: beyond them the flow has lost the object, not found it.
FLOW_SCALE_MIN, FLOW_SCALE_MAX = 0.5, 3.0
# The corridor test takes the median of a track's lateral offsets over this
# long. The runner's sway turns the camera 1-3 degrees each way (twice that
# running backwards), once a stride pair: at 20 m that is 0.3-1 m sideways, so
# one frame's bearing puts a cyclist passing 1.5 m out inside the corridor
# and a head-on one outside it. The sway is an oscillation about the true
# bearing; over one of its periods its median is the offset. A stride takes
# 0.67-0.8 s (2.5-3 steps a second): the window is the slow stride's, since
# a median over less than one period leans to the phase it caught (at 0.6 s,
# twice the sway put a cyclist passing 1.7 m out 0.95 m in, hazards
# pass-cyclist-1.7m-rough).
LATERAL_WINDOW_S = 0.8
LATERAL_WINDOW_NS = round(LATERAL_WINDOW_S * NS_PER_S)
# A median of fewer samples than this is no offset to give a time to collision on.
LATERAL_MIN_SAMPLES = 3
# The flow's time to collision counts only where the track's own distance
# history allows it: the closing speed it implies (distance / TTC) may exceed
# the ground filter's closing speed by at most this many of that speed's
# standard deviations. Feature flow inside a box measures the points' spread,
# and a walker's swinging legs, a second person inside the box or a few
# surviving points on the background spread too: on vtest's static camera a
# walker 9.8 m off closing at 0.66 +- 0.34 m/s had a flow TTC of 1.9 s (5 m/s),
# on the Market Street film a cyclist riding away ahead (receding 0.3 +- 0.5
# m/s) one of 1.5 s from a single 16 % step of ten points. A new track's
# velocity is unknown (4 m/s sd), so the flow speaks first on a fast closer;
# an object the history knows is not closing cannot be made one by the flow.
FLOW_AGREE_SD = 3.0


class SensorTrack:
    """One ultrasonic sensor: its readings through the range filter
    (`device.decision.range_filter`: spikes need a second agreeing ping, lost echoes
    of a followed object are bridged for up to 0.5 s) and its fault."""

    def __init__(self, sensor: UltrasonicSensorConfig, params: FilterParams = DEFAULT_PARAMS) -> None:
        self.sensor = sensor
        self.filter = RangeFilter(params)
        self.fault: str | None = None

    def add(self, r: Range) -> None:
        self.fault = r.fault
        self.filter.update(r)  # a fault resets the filter: no reading spans one

    def candidate(self, now_ns: int, max_age_ns: int, min_closing: float) -> Candidate | None:
        if self.fault is not None:
            return None
        # None when the sensor's newest ping of any kind is older than
        # max_age_ns: a sensor gone quiet is never taken at its last word.
        est = self.filter.estimate(now_ns, max_age_ns)
        if est is None:
            return None
        distance, closing = est.distance_m, est.closing_mps
        if est.dropout and closing is not None and closing > 0:
            # The object's echo was lost since (soft targets do that): it
            # has kept coming meanwhile, so it is nearer than it last read.
            distance = max(0.0, distance - closing * (now_ns - est.t_ns) / NS_PER_S)
        ttc = distance / closing if closing is not None and closing >= max(min_closing, 1e-6) else None
        return Candidate(
            source="ultrasonic",
            label=self.sensor.name,
            distance_m=distance,
            bearing_deg=self.sensor.bearing_deg,
            ttc_s=ttc,
            in_path=True,  # the sensors are aimed along the path by construction
        )


def level_for(c: Candidate, cfg: AlertsConfig, current: AlertLevel = AlertLevel.CLEAR) -> AlertLevel:
    """The level a candidate calls for. Levels up to `current` (the one on
    now) keep their thresholds widened by `cfg.hysteresis`, so an estimate
    wobbling about a threshold does not switch the alert on and off."""
    if not c.in_path:
        return AlertLevel.CLEAR
    if c.near:  # fills the frame across the runner's line: no estimate needed
        return AlertLevel.DANGER
    ttc = c.ttc_s if c.ttc_s is not None else math.inf
    for level, ttc_max, dist_max in (
        (AlertLevel.DANGER, cfg.danger_ttc_s, cfg.danger_distance_m),
        (AlertLevel.WARN, cfg.warn_ttc_s, cfg.warn_distance_m),
        (AlertLevel.CAUTION, cfg.caution_ttc_s, cfg.caution_distance_m),
    ):
        k = 1.0 + cfg.hysteresis if level <= current else 1.0
        if ttc < ttc_max * k or c.distance_m < dist_max * k:
            return level
    return AlertLevel.CLEAR


def direction_for(bearing_deg: float | None, centre_deg: float) -> str | None:
    """"left", "centre" or "right" of the runner for a bearing (None: unknown)."""
    if bearing_deg is None:
        return None
    if abs(bearing_deg) <= centre_deg:
        return "centre"
    return "left" if bearing_deg < 0 else "right"


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


def _urgency(c: Candidate, cfg: AlertsConfig, current: AlertLevel) -> tuple[int, float, float]:
    ttc = c.ttc_s if c.ttc_s is not None else math.inf
    return (int(level_for(c, cfg, current)), -ttc, -c.distance_m)


class AlertPolicy:
    """When the level the evidence calls for (raw) becomes the level played.

    - Up: only once raw has stayed at or above the new level for `persist_s`
      without a break, so an object seen in one frame never alerts.
      Evidence that has persisted already goes up at once: an ultrasonic
      distance is only a candidate once a second ping agrees (`confirmed`),
      and escalating an alarm already on (WARN to DANGER) is immediate,
      because every tenth of a second counts then.
    - Down: only after raw has stayed below the current level for `hold_s`
      (threshold hysteresis is applied before, in `level_for`).
    """

    def __init__(self, persist_s: float, hold_s: float) -> None:
        self.persist_ns = round(persist_s * NS_PER_S)
        self.hold_ns = round(hold_s * NS_PER_S)
        self.level = AlertLevel.CLEAR
        self._since = 0  # last time raw supported self.level
        self._above: dict[AlertLevel, int] = {}  # level -> since when raw >= it, unbroken

    def update(self, now_ns: int, raw: AlertLevel, confirmed: bool = False) -> AlertLevel:
        for lv in (AlertLevel.CAUTION, AlertLevel.WARN, AlertLevel.DANGER):
            if raw >= lv:
                self._above.setdefault(lv, now_ns)
            else:
                self._above.pop(lv, None)
        persist = 0 if confirmed or self.level >= AlertLevel.WARN else self.persist_ns
        target = max(
            (lv for lv, t0 in self._above.items() if now_ns - t0 >= persist), default=AlertLevel.CLEAR
        )
        if target > self.level:
            self.level = target
            self._since = now_ns
        elif raw >= self.level:
            self._since = now_ns
        elif now_ns - self._since >= self.hold_ns:
            self.level = raw
            self._since = now_ns
        return self.level


def _object_key(tr: CameraTrack) -> tuple[str, int]:
    """Whose lateral offsets a track's are: its ground filter's object, which
    outlives the tracker's renames, else its own track id. A far object the
    runner's sway swings by more than its width gets a new track id every
    few frames, each id catching the sway at one phase: by one id's own
    median a head-on rider read 1.2 m to the side (cyclist-10mps-rough)."""
    g = tr.ground
    return ("object", g.object_id) if g is not None and g.object_id else ("track", tr.track_id)


def _frames_seen(tr: CameraTrack) -> int:
    """The frames the track's object was found in: its own hits, or its
    ground filter's measurements if more. The filter outlives the IoU
    tracker's renames (device.perception.motion carries it over to a new id
    where it was going), and at a Pi Zero's pace a crosser moves further than
    its box's width between two detections: the hazards suite's cross-walker
    had three ids in six detections, and the result whose four measurements
    first showed it crossing (1.7 s before it entered) was a new id's first hit."""
    return max(tr.hits, tr.ground.updates if tr.ground is not None else 0)


def _streak_held(streak: tuple[int, int] | None) -> bool:
    return streak is not None and streak[1] - streak[0] >= CAMERA_TTC_STREAK_NS


def _flow_agrees(tr: CameraTrack, flow_closing_mps: float) -> bool:
    """The flow's closing speed is within FLOW_AGREE_SD of what the track's
    distance history says (its ground filter); no history, no say."""
    g = tr.ground
    return g is not None and flow_closing_mps <= -g.vz_mps + FLOW_AGREE_SD * g.vz_sd_mps


class ThreatEstimator:
    """Keeps the latest evidence from every source and judges it on demand."""

    def __init__(self, config: Config) -> None:
        self.cfg = config.alerts
        self.sensors = {s.name: SensorTrack(s) for s in config.ranging.sensors}
        self.range_max_age_ns = round(config.ranging.max_age_s * NS_PER_S)
        self.camera_max_age_ns = round(config.camera.max_age_s * NS_PER_S)
        self.camera_cfg = config.camera
        self._geometry: CameraGeometry | None = None  # at the frames' real size, for a flow-carried box's bearing
        # The newest camera result: its tracks carry the decided distances,
        # which is what every view shows.
        self.camera: CameraResult | None = None
        # track id -> (frame time the closing streak began, frame time of its newest result)
        self._ttc_streak: dict[int, tuple[int, int]] = {}
        # track id -> the contact times (ns, on the frames' clock) its streak's
        # newest CONTACT_FITS closing fits predicted, oldest first
        self._contacts: dict[int, tuple[int, ...]] = {}
        # object (see _object_key) -> (time, lateral offset m) of its recent frames (see LATERAL_WINDOW_S)
        self._laterals: dict[tuple[str, int], list[tuple[int, float]]] = {}
        self.policy = AlertPolicy(self.cfg.persist_s, self.cfg.hold_s)
        self._last: Threat | None = None
        self.looming = LoomingTrack(config)  # any upright surface, no class (device.decision.looming)
        # The newest flow result (device.perception.flow: each track's scale at
        # camera rate) and, per track id, its own closing streak.
        self.flow: FlowResult | None = None
        self._flow_streak: dict[int, tuple[int, int]] = {}
        # track id -> (frame time, box, candidate) of its newest confirmed near-field frame (see NEAR_HOLD_S)
        self._near_seen: dict[int, tuple[int, Box, Candidate]] = {}
        self._trail_track: dict[int, tuple[str, int]] = {}  # flow trail id -> whose offsets it last followed

    def add_ranges(self, ranges: list[Range]) -> None:
        for r in ranges:
            track = self.sensors.get(r.sensor)
            if track is not None:  # recordings are checked against the config up front
                track.add(r)

    def set_camera(self, result: CameraResult) -> None:
        """Take a camera result (its distances already decided, its pace measured)."""
        self.camera = result
        if result.frame is not None:
            h, w = result.frame.image.shape[:2]
            if self._geometry is None or (self._geometry.width, self._geometry.height) != (w, h):
                self._geometry = CameraGeometry.for_camera(self.camera_cfg, w, h)
        streak: dict[int, tuple[int, int]] = {}
        fits: dict[int, tuple[int, ...]] = {}
        for tr in result.tracks:
            before = self._ttc_streak.get(tr.track_id)
            # An implausibly short time to collision (see _plausible_ttc) is not
            # used, but it is closing all the same: it carries the streak on
            # rather than restarting it, or a fast closer's noisiest boxes (far,
            # small) would hold its alert back by a streak each time.
            closing = tr.ttc_s is not None and tr.ttc_s < self.cfg.caution_ttc_s
            # A width-based TTC (the box cut off at the top or bottom) may carry
            # a closing streak on, never start one: widths swing with a stride.
            if tr.ttc_measure == "width" and not _streak_held(before):
                closing = False
            if closing and tr.ttc_s is not None:
                streak[tr.track_id] = (before[0] if before is not None else result.t_ns, result.t_ns)
                ttc = max(tr.ttc_s, tr.distance_m / self.cfg.max_closing_mps)  # see _plausible_ttc
                kept = self._contacts.get(tr.track_id, ()) if before is not None else ()
                fits[tr.track_id] = (kept + (result.t_ns + round(ttc * NS_PER_S),))[-CONTACT_FITS:]
        # A track the detector missed in this one result (the tracker keeps it
        # over a miss) has not said otherwise: its streak stands, not lengthened,
        # for one result. Dropped, it restarted at every missed detection: with
        # the camera's motion in matching a fast closer keeps one track, and a
        # miss in one result of its 15 a second put its WARN back 0.4 s
        # (hazards cyclist-10mps inline, a miss at 3.33 s, 30 m out).
        # Nor has a track whose box gave no fit at all (ttc_measure None: its
        # shape changed faster than it grew, Track._isotropic): a sprinter's
        # stride did that in 3 of 10 results from 22 to 15 m (hazards
        # jogger-8mps-rough inline), and each restart put the WARN back by a
        # streak. A box that says "not closing" (a fit, no contact) ends it.
        silent = {tr.track_id for tr in result.tracks if tr.ttc_s is None and tr.ttc_measure is None}
        seen = {tr.track_id for tr in result.tracks} - silent
        for tid, (start, last) in self._ttc_streak.items():
            if tid not in seen and result.t_ns - last <= STREAK_MISS_INTERVALS * result.interval_ns:
                streak[tid] = (start, last)
                fits[tid] = self._contacts[tid]
        self._ttc_streak = streak
        self._contacts = fits
        # A gone object's offsets are kept while they are inside the window: the
        # flow may show it renamed (set_flow), and they go on with it.
        keys = {_object_key(tr) for tr in result.tracks}
        self._laterals = {k: s for k, s in self._laterals.items()
                          if k in keys or (s and s[-1][0] > result.t_ns - LATERAL_WINDOW_NS)}
        for tr in result.tracks:
            self._add_lateral(_object_key(tr), result.t_ns, tr.distance_m, tr.bearing_deg)

    def _add_lateral(self, key: tuple[str, int], t_ns: int, distance_m: float, bearing_deg: float) -> None:
        series = self._laterals.setdefault(key, [])
        series.append((t_ns, distance_m * math.sin(math.radians(bearing_deg))))
        while series and series[0][0] <= t_ns - LATERAL_WINDOW_NS:
            series.pop(0)

    def _lateral(self, key: tuple[str, int], now_lateral: float) -> float:
        """The object's lateral offset for the corridor test: the median over
        LATERAL_WINDOW_S (sway averaged out), the current one alone when there
        is no history."""
        series = [x for _, x in self._laterals.get(key, ())] or [now_lateral]
        return statistics.median(series)

    def _lateral_held(self, key: tuple[str, int]) -> bool:
        """The object's lateral median has LATERAL_MIN_SAMPLES over at least
        half of LATERAL_WINDOW_S: enough of the sway's phases to stand for
        its offset. Two samples (a Pi Zero's pace) can be two of one phase:
        at zero2w pass-jogger-1.5m-rough read 0.8 m out, in the corridor."""
        series = self._laterals.get(key, [])
        return len(series) >= LATERAL_MIN_SAMPLES and series[-1][0] - series[0][0] >= LATERAL_WINDOW_NS // 2

    def set_flow(self, result: FlowResult) -> None:
        """Take a flow result: a track's camera-rate time to collision counts
        once it has said closing for CAMERA_TTC_STREAK_S, like the box's."""
        self.flow = result
        streak = {}
        for ft in result.tracks:  # by the flow's own id: it outlives a tracker's new track id
            before = self._flow_streak.get(ft.trail_id)
            if ft.ttc_s is not None and ft.ttc_s < self.cfg.caution_ttc_s:
                streak[ft.trail_id] = (before[0] if before is not None else result.t_ns, result.t_ns)
        self._flow_streak = streak
        # A track the tracker renamed (a box jump at a slow pace) that the flow
        # followed through keeps its offsets: a new id's first detection is one
        # sample of the sway, and alone it put a jogger passing 1.5 m out inside
        # the corridor (hazards pass-jogger-1.5m-rough at zero2w, a false WARN).
        # (Offsets are kept per object, _object_key; this is for a track whose
        # ground filter did not carry over.)
        cam = self.camera
        keys = {t.track_id: _object_key(t) for t in cam.tracks} if cam is not None else {}
        for ft in result.tracks:
            was, now = self._trail_track.get(ft.trail_id), keys.get(ft.track_id)
            if was is not None and now is not None and was != now and was in self._laterals:
                self._laterals[now] = sorted(self._laterals.pop(was) + self._laterals.get(now, []))
        self._trail_track = {ft.trail_id: keys[ft.track_id] for ft in result.tracks if ft.track_id in keys}
        # The flow-carried box's offset, frame by frame: the sway's samples between detections.
        if cam is not None:
            for ft in result.tracks:
                tr = next((t for t in cam.tracks if t.track_id == ft.track_id), None)
                if tr is not None:
                    distance, bearing = self._current(tr, ft)
                    if (distance, bearing) != (tr.distance_m, tr.bearing_deg):
                        self._add_lateral(_object_key(tr), result.t_ns, distance, bearing)

    def _flow_of(self, tr: CameraTrack, now_ns: int) -> FlowTrack | None:
        """The flow's newest word on a track, if fresh."""
        flow = self.flow
        if flow is None or now_ns - flow.t_ns > self.camera_max_age_ns:
            return None
        return flow.track(tr.track_id)

    def _current(self, tr: CameraTrack, ft: FlowTrack | None) -> tuple[float, float]:
        """The track's distance and bearing now. The detection's are as old as
        its frame (at a Pi Zero's pace, half a second and more: metres at 8
        m/s, and a side passer's bearing has grown meanwhile); the flow's box,
        carried from that detection to the newest frame, is where the object
        is now: its distance shrunk by the scale since, its bearing from the
        carried box's centre. So the corridor test and the time to collision
        judge the same moment."""
        g = self._geometry
        if ft is None or not self._flow_follows(ft):
            return tr.distance_m, tr.bearing_deg  # the flow has not (or no longer) followed this detection
        bearing = g.bearing_deg((ft.box[0] + ft.box[2]) / 2) if g is not None else tr.bearing_deg
        return tr.distance_m / ft.scale, bearing

    def _flow_follows(self, ft: FlowTrack) -> bool:
        """The flow's box was carried from the newest detection, by a plausible scale."""
        return (self.camera is not None and ft.detection_t_ns == self.camera.t_ns
                and FLOW_SCALE_MIN <= ft.scale <= FLOW_SCALE_MAX)

    def camera_fresh(self, now_ns: int) -> bool:
        """The newest camera result may still be acted on: no older than
        camera.max_age_s plus the detector's own interval between results. A
        detector slower than the loop (a Pi Zero's 2-3 results a second)
        leaves each result standing until the next is due; without the
        allowance its objects would vanish between results, and no camera
        evidence would ever last `persist_s`. The allowance is bounded by
        max_age_s itself, so a stalled camera is still dropped."""
        if self.camera is None:
            return False
        allowance = min(self.camera.interval_ns, self.camera_max_age_ns)
        return now_ns - self.camera.t_ns <= self.camera_max_age_ns + allowance

    def set_looming(self, result: LoomingResult) -> None:
        self.looming.add(result)

    def _plausible_ttc(self, tr: CameraTrack) -> float | None:
        """The track's box-growth TTC at the newest result's frame time, once
        its closing streak has held: the contact time its newest fit predicts,
        or its newest CONTACT_FITS fits' median if later (see there), each fit no
        shorter than its distance covered at max_closing_mps. A far object's
        box is small and its growth noisy, and a fast closer's early fits
        come out short (at 8 m/s from 20 m, 1.1 s for 2.4): closing, but
        faster than anything on a path. Dropping such a value (as before)
        held a cyclist's alert back until its boxes were big enough to
        agree; the fastest plausible closing says what it can."""
        contacts = self._contacts.get(tr.track_id)
        if self.camera is None or not contacts or not _streak_held(self._ttc_streak.get(tr.track_id)):
            return None
        ttc = (max(contacts[-1], statistics.median(contacts)) - self.camera.t_ns) / NS_PER_S
        return max(ttc, tr.distance_m / self.cfg.max_closing_mps)

    def _box_closing(self, tr: CameraTrack) -> bool:
        """The track's box says closing in this result (a fit under the
        CAUTION time), or gave no fit while its streak stands on an earlier one."""
        if tr.ttc_s is not None:
            return tr.ttc_s < self.cfg.caution_ttc_s
        return tr.ttc_measure is None and tr.track_id in self._contacts

    def _near_held(self, now_ns: int, tracks: tuple[CameraTrack, ...]) -> list[Candidate]:
        """The near-field objects the detector has lost since, for NEAR_HOLD_S
        after their last detection (only while the camera itself is fresh).
        Lost means nothing is found where it was: a box there now (the same
        object under another class, a duplicate gone) speaks for it instead."""
        self._near_seen = {tid: v for tid, v in self._near_seen.items() if now_ns - v[0] <= NEAR_HOLD_NS}
        seen = {tr.track_id for tr in tracks}
        boxes = np.array([tr.box for tr in tracks], np.float64).reshape(-1, 4)
        return [c for tid, (_, box, c) in self._near_seen.items() if tid not in seen and not (
            len(boxes) and iou_matrix(np.array([box], np.float64), boxes).max() >= NEAR_HOLD_IOU)]

    def _near_distance(self, tr: CameraTrack, distance: float, ttc: float | None, now_ns: int) -> float | None:
        """The distance a frame-filling box is the near field at, or None.

        Within the CAUTION distance by its own (upper-bound) distance, or no
        further than the ground at the bottom edge that cuts it: a bus filling
        the frame beside a tram stop reads 4 m and is big, not near (a false
        DANGER in the photo suite, whose zoomed pictures the ground check
        distrusts). But a class taller than the
        frame's view at that distance (a bus or truck: 3.0 f / height = 4.1 m
        at the least for the default camera) never reads nearer, however close
        it is; a box the frame's bottom edge cuts stands nearer than the ground
        there, and counts at that bound once something says it is closing in:
        its own time to collision, or looming's over the same surface, within
        the CAUTION time. A picture of a bus grows no faster than the runner
        gains on what it shows far off (the tram stop: looming 5-8 s)."""
        if tr.near_bearing_deg is None:
            return None
        # No further than the ground at the frame's bottom edge (the camera path's
        # bound, once the ground plane is trusted) is the near field by definition.
        if distance <= self.cfg.caution_distance_m or (tr.bottom_ground_m is not None and distance <= tr.bottom_ground_m):
            return distance
        if tr.bottom_ground_m is None:
            return None
        closing = (ttc is not None and ttc <= self.cfg.caution_ttc_s) or self.looming.closing_inside(
            tr.box, now_ns, self.cfg.caution_ttc_s)
        return min(distance, tr.bottom_ground_m) if closing else None

    def _crossing_entry_s(self, tr: CameraTrack) -> float | None:
        """Seconds until the track's body enters the corridor, if it crosses
        into the runner's way (device.decision.crossing); only with
        `alerts.crossing` on, once its filter has enough measurements and a
        settled closing speed (motion.closing_settled). Its sideways speed
        need not be settled as well: corridor_entry_s asks it to stand
        CROSS_SIGMAS standard deviations clear of its own uncertainty, and at
        a Pi Zero's pace the filter's sideways sd stays above
        SETTLED_VX_SD_MPS until a crosser is about 5 m away (the hazards
        suite's cross-walker: settled 0.67 s before it entered, no WARN)."""
        g = tr.ground
        if not self.cfg.crossing or g is None or not closing_settled(g):
            return None
        return corridor_entry_s(g, tr.half_width_m, self.cfg.corridor_half_width_m, self.cfg.min_closing_mps)

    def _settled_ground(self, tr: CameraTrack) -> GroundState | None:
        """The track's filtered ground state, when `alerts.crossing` is on and
        its velocity is settled enough to act on (device.perception.motion)."""
        g = tr.ground
        return g if self.cfg.crossing and g is not None and g.settled else None

    def sensor_faults(self) -> tuple[Fault, ...]:
        return tuple(Fault(Part.SENSOR, fault_kind(t.fault), t.fault, name=name)
                     for name, t in self.sensors.items() if t.fault)

    def candidates(self, now_ns: int) -> list[Candidate]:
        cams: list[Candidate] = []
        if self.camera is not None and self.camera_fresh(now_ns):
            for tr in self.camera.tracks:
                ft = self._flow_of(tr, now_ns)
                # An object the flow has followed unbroken since before the
                # tracker renamed it has been seen in more than two frames.
                if _frames_seen(tr) < CAMERA_MIN_HITS and (
                        ft is None or not _streak_held(self._flow_streak.get(ft.trail_id))):
                    continue
                distance, bearing = self._current(tr, ft)
                # Every time to collision below is from the result's frame
                # (self.camera.t_ns) until contact, and aged to now at the end.
                ttc = self._plausible_ttc(tr)
                # The flow's own implausibly short TTC is dropped, not bounded: one
                # 0.27 s window whose points slid onto something passing is a
                # tracking failure, where a box fit that comes out short is an
                # approach measured noisily (on the Market Street film the
                # bound drew 0.66 s of false WARN at crossing-ahead).
                if (ft is not None and ft.ttc_s is not None and _streak_held(self._flow_streak.get(ft.trail_id))
                        and distance / ft.ttc_s <= self.cfg.max_closing_mps and _flow_agrees(tr, distance / ft.ttc_s)):
                    assert self.flow is not None  # ft is from it
                    flow_ttc = ft.ttc_s + (self.flow.t_ns - self.camera.t_ns) / NS_PER_S  # from the result's frame
                    ttc = flow_ttc if ttc is None else min(ttc, flow_ttc)
                g = self._settled_ground(tr)
                lateral = self._lateral(_object_key(tr), distance * math.sin(math.radians(bearing)))
                # Filling the frame with its inner side inside the corridor: the near field.
                # (The distance of a frame-filling box is an upper bound, so this errs narrow.)
                near_m = self._near_distance(tr, distance, ttc, now_ns)
                near = near_m is not None and tr.near_bearing_deg is not None and (
                    abs(near_m * math.sin(math.radians(tr.near_bearing_deg))) <= self.cfg.corridor_half_width_m)
                in_path = near or abs(lateral) <= self.cfg.corridor_half_width_m
                if in_path and not near and g is not None:
                    if clears_corridor(g, tr.half_width_m, self.cfg.corridor_half_width_m, reach_s(g, ttc)):
                        in_path = False  # crossing ahead, gone before the runner gets there
                    elif self._box_closing(tr) and self._lateral_held(_object_key(tr)):
                        # Its box grows (one fit, where the tracker's renames break
                        # a streak), it is in the corridor by a median that has seen
                        # the sway's phases, and its filter knows how fast it closes.
                        # (Without the box: a filter carried onto the wrong one of two
                        # people crossing each other read 7 m/s closing, DANGER.)
                        arrive = line_s(g, self.cfg.min_closing_mps)
                        if arrive is not None:
                            ttc = arrive if ttc is None else min(ttc, arrive)
                entry = self._crossing_entry_s(tr) if not in_path else None
                if entry is not None:  # crossing into the corridor: in the path from now on
                    in_path, ttc = True, entry if ttc is None else min(ttc, entry)
                if ttc is not None:
                    # The result is as old as its frame: at a Pi 4's pace a
                    # third of a second by the time it arrives, and it stands
                    # until the next (at a Pi Zero's, 0.5-1 s in all). Contact
                    # is that much nearer now than its frame said.
                    ttc = max(0.0, ttc - (now_ns - self.camera.t_ns) / NS_PER_S)
                cams.append(
                    Candidate(
                        source="camera",
                        label=tr.label,
                        distance_m=distance,
                        bearing_deg=bearing,
                        ttc_s=ttc,
                        in_path=in_path,
                        clipped=tr.clipped,
                        near=near,
                        confirmed=near and tr.hits >= NEAR_CONFIRM_HITS,
                    )
                )
                if cams[-1].confirmed:
                    self._near_seen[tr.track_id] = (self.camera.t_ns, tr.box, cams[-1])
                else:  # seen, and no longer the near field: nothing to hold
                    self._near_seen.pop(tr.track_id, None)
            cams += self._near_held(now_ns, self.camera.tracks)
        sensors = []
        for t in self.sensors.values():
            c = t.candidate(now_ns, self.range_max_age_ns, self.cfg.min_closing_mps)
            if c is not None:
                sensors.append((t.sensor, c))
        out = fuse(cams, sensors)
        loom = self.looming.candidate(now_ns)
        return out + [loom] if loom is not None and not self._looming_beside(now_ns) else out

    def _looming_beside(self, now_ns: int) -> bool:
        """Looming's group lies on a classified object that, at that object's
        own distance, is beside the corridor. Looming has no distance of its
        own: it takes the runner's speed times the time to contact, which
        holds for a still surface but puts something moving towards the
        runner nearer, and so nearer the centre line, than it is (a cyclist
        passing 1.7 m to the side read 1.5 m ahead, 0.3 m off the line: a
        false WARN). A group that spans the image's centre column is never
        beside anything."""
        r = self.looming.result
        if r is None or r.box is None or self.camera is None or self._geometry is None:
            return False
        g = self._geometry
        b0, b1 = g.bearing_deg(r.box[0]), g.bearing_deg(r.box[2])
        if b0 * b1 <= 0:
            return False
        inner = math.radians(min(abs(b0), abs(b1)))
        for tr in self.camera.tracks:
            ft = self._flow_of(tr, now_ns)
            distance, _ = self._current(tr, ft)
            # Where the object is now: the flow's box carried to the newest frame, when it follows this detection.
            box = ft.box if ft is not None and self._flow_follows(ft) else tr.box
            if (tr.hits >= CAMERA_MIN_HITS and not tr.clipped and centre_inside(r.box, box)
                    and distance * math.sin(inner) > self.cfg.corridor_half_width_m):
                return True
        return False

    def assess(self, now_ns: int, faults: tuple[Fault, ...] = ()) -> Threat:
        """The threat now. `faults` are the other parts' (camera, model,
        recording); the sensors' own are added here. The threat carries
        their texts, which is what the runner's log and the events show."""
        cands = self.candidates(now_ns)
        current = self.policy.level
        worst = max(cands, key=lambda c: _urgency(c, self.cfg, current), default=None)
        raw = level_for(worst, self.cfg, current) if worst is not None else AlertLevel.CLEAR
        # A sensor's distance (alone or fused) is confirmed by two agreeing pings already;
        # the near field by NEAR_CONFIRM_HITS frames.
        confirmed = worst is not None and (worst.source in ("ultrasonic", "fused") or worst.confirmed)
        level = self.policy.update(now_ns, raw, confirmed)
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
                direction=direction_for(worst.bearing_deg, self.cfg.centre_deg),
                label=worst.label,
                faults=all_faults,
            )
        if raw > AlertLevel.CLEAR:
            self._last = threat
        return threat
