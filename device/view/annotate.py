"""Draw what the device sees and decides onto a camera frame (OpenCV).

Used by the preview page only, in the preview's own thread: nothing here
runs in the alert loop. Every function returns a new image and leaves the
frame it was given untouched (the loop and the recorder share it).

What is drawn:
- each camera track: its box, `#id label`, estimated distance and time to
  collision; tracks not yet confirmed (seen in one frame) are drawn thin;
- each ultrasonic sensor: its beam as a translucent wedge from the bottom
  centre (the device) up to the horizon, between the image columns its
  bearing and beam width map to through the same pinhole model as the
  detector's bearings, with the sensor's latest reading written at the top.
  A tick across the wedge marks the reading as a fraction of the sensor's
  range: only the columns are geometry, the tick's height is a gauge;
- looming (any obstacle, no class): the path corridor on the ground as a
  thin outline, and the expanding group of features as a box with its
  time to contact, distance and the runner's own speed;
- the configured camera geometry: the horizon and the ground 2, 4 and 8 m
  away for `camera.mount_height_m` and `camera.pitch_deg` (a person's feet
  on the 4 m mark who stands 4 m away says the setting is right;
  `rearguard calibrate` measures it);
- the runner's sides: the image is seen the way the camera looks (behind
  the runner), so the runner's left is on the image's right: "L" and "R"
  mark them at the edges;
- a banner with the alert level the runner feels, the threat, any faults,
  and the rates (camera frames and loop passes per second).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from device.core.camera import CameraTrack
from device.core.config import AlertsConfig, UltrasonicSensorConfig
from device.core.types import AlertLevel, Range, Threat
from device.perception.calibrate import ground_row
from device.perception.geometry import CameraGeometry
from device.perception.looming import LoomingResult
from device.view.terminal import side

# BGR. Saturated colours that indoor and street footage rarely contains, so
# that the overlays stay readable (and a test can find them in a screenshot).
TRACK_BGR = (255, 255, 0)  # cyan
TENTATIVE_BGR = (160, 160, 160)
LEVEL_BGR: dict[AlertLevel, tuple[int, int, int]] = {
    AlertLevel.CLEAR: (60, 170, 60),
    AlertLevel.CAUTION: (0, 220, 255),
    AlertLevel.WARN: (0, 140, 255),
    AlertLevel.DANGER: (0, 0, 230),
    AlertLevel.FAULT: (200, 0, 200),
}
NO_ECHO_BGR = (200, 200, 200)
CORRIDOR_BGR = (255, 0, 255)  # magenta: the path looming watches
GROUND_BGR = (255, 255, 255)  # the horizon and ground marks of the configured geometry
GROUND_MARKS_M = (2.0, 4.0, 8.0)
LOOMING_BGR = (0, 255, 255)  # yellow: the expanding region
BEAM_ALPHA = 0.3
TTC_SHOWN_S = 60.0
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class Overlay:
    """Everything drawn over a frame, besides the frame itself."""

    level: AlertLevel  # what the runner feels (effective level)
    threat: Threat | None
    tracks: tuple[CameraTrack, ...]
    sensors: tuple[UltrasonicSensorConfig, ...]
    ranges: Mapping[str, Range]  # newest reading per sensor name
    hfov_deg: float
    alerts: AlertsConfig
    camera_fps: float | None = None
    loop_hz: float | None = None
    min_hits: int = 2  # tracks with fewer hits are tentative
    looming: LoomingResult | None = None
    mount_height_m: float | None = None  # with pitch_deg: draw the horizon and ground marks
    pitch_deg: float = 0.0
    text_scale: float = 1.0  # labels this much larger (a page showing the frame small, on a phone)


def column_for_bearing(bearing_deg: float, width: int, hfov_deg: float) -> float:
    """The image column of a runner-frame bearing: the inverse of
    `CameraGeometry.bearing_deg` (negative bearings, the runner's left, are on
    the image's right)."""
    focal = (width / 2) / math.tan(math.radians(hfov_deg) / 2)
    return width / 2 - focal * math.tan(math.radians(max(-89.0, min(89.0, bearing_deg))))


def _fmt(x: float | None, unit: str) -> str:
    return "-" if x is None else f"{x:.1f} {unit}"


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float, colour: tuple[int, int, int],
          thickness: int = 1, bg: tuple[int, int, int] | None = (0, 0, 0)) -> None:
    """Text on a solid background so it reads over any footage."""
    (tw, th), base = cv2.getTextSize(text, FONT, scale, thickness)
    x, y = org
    if bg is not None:
        cv2.rectangle(img, (x - 2, y - th - 3), (x + tw + 2, y + base + 1), bg, cv2.FILLED)
    cv2.putText(img, text, (x, y), FONT, scale, colour, thickness, cv2.LINE_AA)


def _reading_level(metres: float, cfg: AlertsConfig) -> AlertLevel:
    if metres < cfg.danger_distance_m:
        return AlertLevel.DANGER
    if metres < cfg.warn_distance_m:
        return AlertLevel.WARN
    if metres < cfg.caution_distance_m:
        return AlertLevel.CAUTION
    return AlertLevel.CLEAR


def _draw_beams(img: np.ndarray, ov: Overlay, scale: float) -> None:
    h, w = img.shape[:2]
    base = (w / 2, h - 1)
    horizon = h / 2  # a level camera's horizon: the beams point along the ground
    layer = img.copy()
    labels = []
    for s in ov.sensors:
        r = ov.ranges.get(s.name)
        if r is None:
            colour, text, frac = NO_ECHO_BGR, f"{s.name}: waiting", None
        elif r.fault is not None:
            colour, text, frac = LEVEL_BGR[AlertLevel.FAULT], f"{s.name}: FAULT {r.fault}", None
        elif r.metres is None:
            colour, text, frac = NO_ECHO_BGR, f"{s.name}: no echo", None
        else:
            colour = LEVEL_BGR[_reading_level(r.metres, ov.alerts)]
            text, frac = f"{s.name}: {r.metres:.2f} m", min(r.metres / s.max_distance_m, 1.0)
        # The beam's edges; sorted because a negative bearing is on the right.
        xa, xb = sorted(
            column_for_bearing(s.bearing_deg + sign * s.beam_deg / 2, w, ov.hfov_deg) for sign in (-1, 1)
        )
        pts = np.array([base, (xa, horizon), (xb, horizon)], np.float32)
        cv2.fillConvexPoly(layer, np.round(pts).astype(np.int32), colour, cv2.LINE_AA)
        cv2.polylines(img, [np.round(pts).astype(np.int32)], True, colour, max(1, round(scale)), cv2.LINE_AA)
        if frac is not None:
            y = base[1] - frac * (base[1] - horizon)
            t = (base[1] - y) / (base[1] - horizon)  # where the wedge is that wide
            x0, x1 = base[0] + t * (xa - base[0]), base[0] + t * (xb - base[0])
            cv2.line(img, (round(x0) - 6, round(y)), (round(x1) + 6, round(y)), colour, max(2, round(3 * scale)),
                     cv2.LINE_AA)
        labels.append((text, (xa + xb) / 2, colour))
    cv2.addWeighted(layer, BEAM_ALPHA, img, 1 - BEAM_ALPHA, 0, dst=img)
    for text, cx, colour in labels:
        (tw, _), _ = cv2.getTextSize(text, FONT, 0.5 * scale, 1)
        x = int(min(max(cx - tw / 2, 2), w - tw - 2))
        _text(img, text, (x, int(horizon) - 6), 0.5 * scale, colour)


def _draw_tracks(img: np.ndarray, ov: Overlay, scale: float) -> None:
    h, w = img.shape[:2]
    for tr in ov.tracks:
        confirmed = tr.hits >= ov.min_hits
        colour = TRACK_BGR if confirmed else TENTATIVE_BGR
        x0, y0, x1, y1 = (int(round(v)) for v in tr.box)
        cv2.rectangle(img, (x0, y0), (x1, y1), colour, max(2, round(2 * scale)) if confirmed else 1)
        line1 = f"#{tr.track_id} {tr.label}"
        # A clipped box only bounds the distance from above; a time to
        # collision of minutes says "not closing" and is left out.
        line2 = f"{'<' if tr.clipped else ''}{_fmt(tr.distance_m, 'm')}"
        if tr.ttc_s is not None and tr.ttc_s < TTC_SHOWN_S:
            line2 += f"  ttc {tr.ttc_s:.1f} s"
        fs = 0.45 * scale
        (tw, th), _ = cv2.getTextSize(max(line1, line2, key=len), FONT, fs, 1)
        y = y0 - 2 * th - 10 if y0 - 2 * th - 10 > th else y1 + th + 6
        x = min(max(x0, 2), max(2, w - tw - 4))
        _text(img, line1, (x, y), fs, colour)
        _text(img, line2, (x, y + th + 7), fs, colour)


def _draw_looming(img: np.ndarray, ov: Overlay, scale: float) -> None:
    lr = ov.looming
    if lr is None:
        return
    if lr.corridor:
        pts = np.round(np.array(lr.corridor, np.float32)).astype(np.int32)
        cv2.polylines(img, [pts], True, CORRIDOR_BGR, 1, cv2.LINE_AA)
    fs = 0.45 * scale
    h = img.shape[0]
    speed = "-" if lr.speed_mps is None else f"{lr.speed_mps:.1f} m/s"
    _text(img, f"looming: runner {speed}, {lr.features} features", (6, h - 8), fs, CORRIDOR_BGR)
    if lr.box is None or lr.ttc_s is None:
        return
    x0, y0, x1, y1 = (int(round(v)) for v in lr.box)
    cv2.rectangle(img, (x0 - 2, y0 - 2), (x1 + 2, y1 + 2), LOOMING_BGR, max(2, round(2 * scale)))
    text = f"looming ttc {lr.ttc_s:.1f} s {_fmt(lr.distance_m, 'm')}"
    (tw, th), _ = cv2.getTextSize(text, FONT, fs, 1)
    y = y1 + th + 8 if y1 + th + 8 < h - 24 else max(th + 2, y0 - 8)
    _text(img, text, (min(max(x0, 2), max(2, img.shape[1] - tw - 4)), y), fs, LOOMING_BGR)


def _draw_geometry(img: np.ndarray, ov: Overlay, scale: float) -> None:
    """The horizon and ground marks where the configured height and pitch put
    them: a wrong setting shows as feet off their mark."""
    if ov.mount_height_m is None:
        return
    h, w = img.shape[:2]
    g = CameraGeometry(w, h, ov.hfov_deg, ov.mount_height_m, ov.pitch_deg)
    fs = 0.42 * scale
    horizon = ground_row(g, None)
    if horizon is not None:
        y = round(horizon)
        for x in range(0, w, 16):  # dashed: it is a reference, not an object
            cv2.line(img, (x, y), (min(x + 8, w - 1), y), GROUND_BGR, 1)
        _text(img, "horizon", (w - int(70 * scale), y - 4), fs, GROUND_BGR)
    tick = int(28 * scale)
    for d in GROUND_MARKS_M:
        row = ground_row(g, d)
        if row is None:
            continue
        y = round(row)
        for x0 in (int(22 * scale), w - int(22 * scale) - tick):
            cv2.line(img, (x0, y), (x0 + tick, y), GROUND_BGR, max(1, round(2 * scale)), cv2.LINE_AA)
        _text(img, f"{d:g} m", (int(22 * scale) + tick + 4, y + int(5 * scale)), fs, GROUND_BGR)


def _draw_sides(img: np.ndarray, scale: float) -> None:
    """The runner's left is the image's right (the camera looks behind them)."""
    h, w = img.shape[:2]
    fs = 0.6 * scale
    y = int(h * 0.72)
    (tw, _), _ = cv2.getTextSize("L", FONT, fs, 2)
    _text(img, "R", (4, y), fs, (255, 255, 255), 2)
    _text(img, "L", (w - tw - 4, y), fs, (255, 255, 255), 2)


def _describe(threat: Threat | None) -> str:
    if threat is None:
        return "waiting for the loop"
    if threat.source == "none":
        return "nothing in the way"
    where = side(threat)  # the decision's direction, as the terminal shows it
    return (f"{threat.label or '?'} ({threat.source}) {_fmt(threat.distance_m, 'm')}, "
            f"ttc {_fmt(threat.ttc_s, 's')}" + (f", {where}" if where else ""))


def _draw_banner(img: np.ndarray, ov: Overlay, scale: float) -> None:
    h, w = img.shape[:2]
    colour = LEVEL_BGR[ov.level]
    bar_h = int(28 * scale)
    cv2.rectangle(img, (0, 0), (w - 1, bar_h), colour, cv2.FILLED)
    ink = (0, 0, 0) if ov.level in (AlertLevel.CAUTION, AlertLevel.WARN) else (255, 255, 255)
    _text(img, ov.level.name, (6, int(21 * scale)), 0.7 * scale, ink, 2, bg=None)
    (lw, _), _ = cv2.getTextSize(ov.level.name, FONT, 0.7 * scale, 2)
    _text(img, _describe(ov.threat), (lw + 18, int(20 * scale)), 0.5 * scale, ink, 1, bg=None)
    rates = f"camera {_fmt(ov.camera_fps, 'fps')}  loop {_fmt(ov.loop_hz, 'Hz')}"
    (rw, _), _ = cv2.getTextSize(rates, FONT, 0.45 * scale, 1)
    _text(img, rates, (w - rw - 6, h - 8), 0.45 * scale, (255, 255, 255))
    faults = ov.threat.faults if ov.threat is not None else ()
    for i, f in enumerate(faults[:3]):
        _text(img, f"FAULT {f}", (6, bar_h + int((20 + 20 * i) * scale)), 0.45 * scale, LEVEL_BGR[AlertLevel.FAULT])


def _scale(img: np.ndarray) -> float:
    # Text and lines sized for a 640-pixel-wide view, scaled with the frame.
    return max(0.6, img.shape[1] / 640)


def draw(image: np.ndarray, ov: Overlay) -> np.ndarray:
    """A copy of `image` (HxWx3 BGR) with the overlays drawn on it."""
    img = np.array(image, dtype=np.uint8, copy=True)
    s = _scale(img) * ov.text_scale
    _draw_geometry(img, ov, s)
    _draw_beams(img, ov, s)
    _draw_sides(img, s)
    _draw_looming(img, ov, s)
    _draw_tracks(img, ov, s)
    _draw_banner(img, ov, s)
    return img


def blank(width: int, height: int, ov: Overlay, why: Sequence[str] = ("no camera frame",)) -> np.ndarray:
    """The overlays on a dark canvas: the sensors and the level still show
    when there is no camera image (camera fault, not started)."""
    img = np.full((height, width, 3), 40, np.uint8)
    s = _scale(img)
    for i, line in enumerate(why):
        _text(img, line, (10, int(height * 0.75) + int(22 * s) * i), 0.6 * s, (255, 255, 255), bg=None)
    return draw(img, ov)
