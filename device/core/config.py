"""The one configuration file (TOML), strictly validated.

pydantic does the checking (Frigate's pattern: `extra="forbid"`, a
description on every field), so an unknown key or a bad value becomes one
clear line naming the key, e.g. `alerts.warn_ttc_s: Input should be greater
than 0`. Every default runs out of the box on the reference build in
hardware.md.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from device.core import coco
from device.core.files import MB, FileRefused, read_regular

# BCM numbers of the 40-pin header's general-purpose lines.
Pin = Annotated[int, Field(ge=2, le=27, description="BCM GPIO number (2-27)")]


class ConfigError(Exception):
    """A configuration problem, already phrased for a person."""


class _Strict(BaseModel):
    # strict: `fps = true`, `rotate_180 = "yes"` or `1`, `warn_ttc_s = "2.0"`
    # are errors, not conversions. An integer is still a float (`hold_s = 1`):
    # TOML writes 1 and 1.0 apart, but both say the same exact number.
    # allow_inf_nan=False: TOML has inf and nan; no setting here means either.
    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, strict=True, allow_inf_nan=False
    )

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, v: Any) -> Any:
        # Every text here is a path or a name: a NUL crashed `run` deep in os (issue 23).
        if isinstance(v, str) and "\x00" in v:
            raise ValueError("a NUL character cannot be in a path or a name")
        return v


DEFAULT_INPUT_SIZE = 416  # YOLOX-Nano's own export size; the detector's and the model tools' default


class CameraConfig(_Strict):
    # 16:9 like the Camera Module 3's sensor: a 4:3 size would crop the
    # sides and narrow the real field of view to ~52 degrees.
    width: int = Field(640, ge=160, le=4608, description="capture width, pixels")
    height: int = Field(360, ge=120, le=2592, description="capture height, pixels")
    fps: int = Field(15, ge=1, le=120, description="capture rate, frames per second")
    hfov_deg: float = Field(
        66.0, gt=10, lt=180,
        description="horizontal field of view of the captured image (Camera Module 3 at 16:9: 66)"
    )
    mount_height_m: float = Field(
        1.1, gt=0.1, le=2.5, description="camera height above the ground, metres"
    )
    pitch_deg: float = Field(
        0.0, ge=-30, le=45,
        description="camera tilt below horizontal, degrees (positive = looking down); "
        "with mount_height_m it turns a box's bottom edge into a distance on flat ground",
    )
    rotate_180: bool = Field(False, description="the camera is mounted upside down")
    max_age_s: float = Field(
        0.5, gt=0, le=5, description="camera observations older than this are ignored"
    )


class DetectorConfig(_Strict):
    model: str = Field(
        "yolox_nano",
        description="a model name from models/manifest.toml (installed with `rearguard models`) "
        "or a path to an .onnx file",
    )
    input_size: int = Field(DEFAULT_INPUT_SIZE, ge=128, le=1280, description="square input, multiple of 32")
    # A camera frame is 16:9; a square input spends 44 % of itself on grey
    # padding. A width x height near the frame's aspect spends those pixels on
    # the picture (the dynamic model takes any multiple of 32).
    input_width: int | None = Field(
        None, ge=128, le=1280,
        description="input width in pixels, multiple of 32, set together with input_height for a "
        "non-square input near the camera's aspect (e.g. 416 x 256 for 16:9); unset = input_size square",
    )
    input_height: int | None = Field(
        None, ge=96, le=1280,
        description="input height in pixels, multiple of 32, set together with input_width; "
        "unset = input_size square",
    )
    fill: Literal["letterbox", "stretch"] = Field(
        "letterbox",
        description="how a frame goes into the input: letterbox (one scale, grey padding) or stretch "
        "(x and y scaled apart to fill it, no padding)",
    )
    # A far object is a few pixels at the full frame's scale; where it comes
    # from (the path at the horizon) is known, so a crop there is magnified.
    lookahead_every: int = Field(
        0, ge=0, le=10,
        description="also detect on a magnified crop where the path meets the horizon (from camera "
        "mount_height_m and pitch_deg): 0 = never, 1 = beside the full frame on every detection, "
        "N = on every Nth; each crop costs one more inference at the input size",
    )
    lookahead_mode: Literal["beside", "instead"] = Field(
        "beside",
        description="beside = the crop is an extra inference next to that detection's full frame; instead = "
        "that detection runs the crop in place of the full frame (no extra detector time; needs "
        "lookahead_every >= 2)",
    )
    lookahead_width: float = Field(
        0.5, ge=0.2, le=0.9,
        description="the look-ahead crop's width as a fraction of the frame's (0.5 = twice the full "
        "frame's scale); its height follows the input's aspect",
    )
    score_threshold: float = Field(0.35, gt=0, lt=1, description="objectness x class score")
    nms_iou: float = Field(0.45, gt=0, lt=1, description="IoU above which boxes merge")
    threads: int = Field(2, ge=0, le=16, description="onnxruntime intra-op threads (0 = auto)")
    backend: Literal["auto", "cpu", "imx500", "hailo"] = Field(
        "auto",
        description="where the network runs: cpu (onnxruntime), imx500 (on the AI Camera's sensor), hailo "
        "(AI Kit / AI HAT+ on a Pi 5), or auto (an accelerator that is present, else cpu, with the reason "
        "logged); docs/accelerators.md",
    )
    accelerator_model: str | None = Field(
        None,
        description="the accelerator's network file (.rpk for imx500, .hef for hailo); unset = the file the "
        "vendor's OS package installs (docs/accelerators.md)",
    )
    classes: tuple[str, ...] = Field(
        coco.DEFAULT_REAR_CLASSES, min_length=1, strict=False,  # a TOML array is a list; its items stay strict
        description="COCO classes that can alert"
    )

    @field_validator("input_size", "input_width", "input_height")
    @classmethod
    def _multiple_of_32(cls, v: int | None) -> int | None:
        if v is not None and v % 32:
            raise ValueError(f"must be a multiple of 32 (got {v})")
        return v

    @model_validator(mode="after")
    def _width_with_height(self) -> DetectorConfig:
        if (self.input_width is None) != (self.input_height is None):
            raise PydanticCustomError(
                "input_pair", "input_width and input_height go together (set both, or neither for a "
                "square input_size)")
        return self

    @model_validator(mode="after")
    def _instead_needs_full_frames(self) -> DetectorConfig:
        if self.lookahead_mode == "instead" and self.lookahead_every == 1:  # the full frame would never run
            raise PydanticCustomError(
                "lookahead_instead", "lookahead_mode = \"instead\" needs lookahead_every >= 2 (1 would never "
                "look at the full frame)")
        return self

    @property
    def input_geometry(self) -> int | tuple[int, int]:
        """The model input: input_size (square), or (input_width, input_height)."""
        if self.input_width is not None and self.input_height is not None:
            if self.input_width == self.input_height:
                return self.input_width
            return (self.input_width, self.input_height)
        return self.input_size

    @field_validator("classes")
    @classmethod
    def _known_classes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        out = []
        for name in v:
            try:
                out.append(coco.canonical(name))
            except KeyError:
                raise ValueError(f"{name!r} is not a COCO class name") from None
        return tuple(dict.fromkeys(out))


# The closest each sensor type can measure, metres. An HC-SR04 times echoes
# from ~2 cm; a JSN-SR04T's single transducer rings after sending and hears
# nothing for ~23 cm. A shorter reading is physically impossible for it
# (a clone echoing its own trigger, electrical noise): a fault, not an obstacle.
SENSOR_MIN_DISTANCE_M = {"hc-sr04": 0.02, "jsn-sr04t": 0.23, "generic": 0.02}


class UltrasonicSensorConfig(_Strict):
    name: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$",
                      description="the sensor's name in faults, logs and recordings")
    trigger_pin: Pin = Field(description="BCM GPIO number wired to the sensor's Trig")
    echo_pin: Pin = Field(description="BCM GPIO number wired to the sensor's Echo (through the divider)")
    bearing_deg: float = Field(0.0, ge=-90, le=90, description="0 = straight back, negative = left")
    beam_deg: float = Field(15.0, gt=0, le=120, description="full beam width, degrees")
    type: Literal["hc-sr04", "jsn-sr04t", "generic"] = Field(
        "hc-sr04", description="sensor model: sets the default min_distance_m (hc-sr04 0.02, jsn-sr04t 0.23)"
    )
    min_distance_m: float = Field(
        0.02, ge=0, le=1.0,
        description="closer readings are impossible for this sensor: dropped, and a fault if they persist "
        "(default: the type's minimum)",
    )
    max_distance_m: float = Field(
        4.0, gt=0.5, le=6.0,
        description="beyond this is no echo ('nothing in range'); gpiozero's own default is only 1 m",
    )

    @model_validator(mode="before")
    @classmethod
    def _type_minimum(cls, data: Any) -> Any:
        if isinstance(data, dict) and "min_distance_m" not in data:
            kind = data.get("type", "hc-sr04")
            if kind in SENSOR_MIN_DISTANCE_M:  # an unknown type is reported by its own check
                data = {**data, "min_distance_m": SENSOR_MIN_DISTANCE_M[kind]}
        return data

    @model_validator(mode="after")
    def _range_order(self) -> UltrasonicSensorConfig:
        if not self.min_distance_m < self.max_distance_m:
            raise ValueError(
                f"min_distance_m {self.min_distance_m} must be below max_distance_m {self.max_distance_m}"
            )
        return self


PING_S = 0.04  # an HC-SR04 ping with nothing answering (device.sensing.ultrasonic.NO_ECHO_S), rounded up


class RangingConfig(_Strict):
    sensors: tuple[UltrasonicSensorConfig, ...] = Field(
        (UltrasonicSensorConfig(name="centre", trigger_pin=23, echo_pin=24),),
        strict=False,  # a TOML array of tables is a list; each sensor's own keys stay strict
        description="ultrasonic sensors; they take turns so they never hear each other",
    )
    max_age_s: float = Field(
        0.15, gt=0, le=2, description="a sensor whose newest ping is older than this is ignored"
    )
    sample_wait_s: float = Field(
        0.06, ge=0.03, le=1,
        description="ping cycle: each ping, of any sensor, starts at least this long after the previous "
        "one started, so its echoes have died away (HC-SR04 datasheet: 60 ms); N sensors get "
        "1 / (N x this) pings a second each",
    )

    camera_only: bool = Field(
        False,
        description="true: no ultrasonic sensor, on purpose (with sensors = []); the device then warns "
        "from the camera alone, and an empty sensor list is otherwise an error",
    )

    @field_validator("sensors")
    @classmethod
    def _unique_names(cls, v: tuple[UltrasonicSensorConfig, ...]) -> tuple[UltrasonicSensorConfig, ...]:
        names = [s.name for s in v]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"sensor names must be unique, repeated: {', '.join(sorted(dup))}")
        return v

    @model_validator(mode="after")
    def _explicit_camera_only(self) -> RangingConfig:
        # `sensors = []` left the device showing CLEAR with no sensor at all (issue 23).
        if not self.sensors and not self.camera_only:
            raise ValueError("sensors is empty: the device would warn from the camera alone, with no "
                             "ultrasonic sensor; set ranging.camera_only = true if that is meant")
        if self.sensors and self.camera_only:
            raise ValueError(f"camera_only = true, but {len(self.sensors)} sensor(s) are configured: "
                             "remove them, or camera_only")
        return self

    @model_validator(mode="after")
    def _fresh_enough(self) -> RangingConfig:
        # Sensors take turns, one ping per cycle (a ping takes up to ~40 ms,
        # within the cycle), so each sensor reads once every N cycles. A
        # bound shorter than that would throw readings away as stale between turns.
        round_s = len(self.sensors) * max(self.sample_wait_s, PING_S)
        if self.max_age_s < 1.25 * round_s:
            raise ValueError(
                f"max_age_s {self.max_age_s} is shorter than 1.25 x the time between readings, "
                f"{len(self.sensors)} sensors x sample_wait_s {self.sample_wait_s} s = {round_s:.3f} s: "
                "readings would be thrown away as stale"
            )
        return self


class AlertsConfig(_Strict):
    caution_ttc_s: float = Field(4.0, gt=0, le=20, description="advisory time to collision")
    warn_ttc_s: float = Field(2.5, gt=0, le=20, description="warning time to collision")
    danger_ttc_s: float = Field(1.2, gt=0, le=20, description="imminent time to collision")
    caution_distance_m: float = Field(3.0, gt=0, le=50, description="advisory distance")
    warn_distance_m: float = Field(2.0, gt=0, le=50, description="warning distance")
    danger_distance_m: float = Field(0.8, gt=0, le=50, description="imminent distance")
    min_closing_mps: float = Field(
        0.3, ge=0, le=5, description="slower closing than this gives no time to collision"
    )
    max_closing_mps: float = Field(
        12.0, gt=0, le=50,
        description="a camera time to collision is never taken as shorter than its distance at this closing "
        "speed, m/s (runner ~3 m/s plus an oncoming cyclist; a far box's growth is noisy)",
    )
    corridor_half_width_m: float = Field(
        1.0, gt=0, le=10, description="camera objects further to the side than this are not in the path"
    )
    # On by default since boxes the frame's side cuts no longer feed the ground filter and
    # sideways speeds under 1 m/s are no crossing: the Market Street cut-ins' false DANGER
    # (2.7-3.1 s before) was those (docs/evaluation.md).
    crossing: bool = Field(
        True,
        description="camera objects outside the corridor moving into it (filtered ground velocity) are "
        "threats with a time to collision = seconds until their body enters the corridor, if they will "
        "still be in it when the runner reaches their line; one in the corridor is no threat when its "
        "sideways motion takes it out before the runner can get there, and else has its distance over its "
        "filtered closing speed as a time to collision",
    )
    hold_s: float = Field(
        0.6, ge=0, le=10, description="a level is held this long before it may step down"
    )
    hysteresis: float = Field(
        0.15, ge=0, le=1,
        description="once a level is on, it stays on until time to collision and distance exceed "
        "its thresholds by this fraction (stops flicker at a threshold)",
    )
    persist_s: float = Field(
        0.1, ge=0, le=2,
        description="a higher level sounds only once its evidence has lasted this long "
        "(an object seen in one frame, or one echo, never alerts)",
    )
    centre_deg: float = Field(
        10.0, ge=0, le=90,
        description="a threat within this bearing of straight behind is 'centre' (both side "
        "motors); beyond it, 'left' or 'right'",
    )

    @model_validator(mode="after")
    def _ordered(self) -> AlertsConfig:
        if not self.danger_ttc_s < self.warn_ttc_s < self.caution_ttc_s:
            raise ValueError("need danger_ttc_s < warn_ttc_s < caution_ttc_s")
        if not self.danger_distance_m < self.warn_distance_m < self.caution_distance_m:
            raise ValueError("need danger_distance_m < warn_distance_m < caution_distance_m")
        return self


class LoomingConfig(_Strict):
    """Looming (`device.perception.looming`): time to contact with any surface
    in the path, from the expansion of tracked features; needs no object class."""

    enabled: bool = Field(True, description="warn of any upright surface closing in the path (posts, walls)")
    width: int = Field(
        320, ge=80, le=1280, description="width of the small grey image looming works on, pixels"
    )
    max_features: int = Field(150, ge=20, le=2000, description="features tracked at most")
    span_s: float = Field(
        0.4, gt=0.05, le=2, description="baseline of the expansion measurement, seconds (longer: steadier, later)"
    )
    min_speed_mps: float = Field(
        0.5, gt=0, le=5,
        description="below this runner speed (measured from the ground) nothing static is closing: no looming alert",
    )
    min_points: int = Field(3, ge=3, le=200, description="features an expanding group needs, at least")
    ground_margin: float = Field(
        0.3, gt=0, le=5,
        description="a feature is upright when it expands this fraction faster than the ground at its row",
    )
    max_height_m: float = Field(
        2.3, gt=0.2, le=10, description="features higher above the ground pass overhead and never count"
    )
    min_frames: int = Field(
        2, ge=1, le=30, description="frames in a row that must show a time to contact before it counts"
    )


class FlowConfig(_Strict):
    """Flow (`device.perception.flow`): each camera track's box followed by
    feature flow on every frame, so its time to collision is known at camera
    rate whatever the detector's pace."""

    # Off in the built-in defaults (inline, a Pi 5: a detection every frame or
    # nearly, little for the flow to add) and on for the Pi 4 and the Pi Zero 2 W
    # through their board defaults (device/perception/boards.toml default_flow):
    # at their pace it is what gives a fast closer its time to collision between
    # detections, and its time to collision counts only where the track's distance
    # history allows it (docs/evaluation.md, "Flow on by default on the slow boards").
    enabled: bool = Field(
        False, description="measure each track's scale change at camera rate from the flow inside its box"
    )
    width: int = Field(320, ge=80, le=1280, description="width of the small grey image flow works on, pixels")
    max_points: int = Field(40, ge=8, le=500, description="features followed per track at most")
    max_tracks: int = Field(
        4, ge=1, le=50, description="tracks followed at most, the largest boxes (nearest objects) first"
    )
    span_s: float = Field(
        0.27, gt=0.05, le=2, description="baseline of the time to collision from scale, seconds (longer: steadier, later)"
    )


class OutputsConfig(_Strict):
    haptic_pin: Pin = Field(12, description="BCM GPIO number driving the vibration motor (PWM)")
    buzzer_pin: Pin = Field(25, description="BCM GPIO number driving the buzzer")
    haptic_strength: float = Field(1.0, gt=0, le=1, description="PWM duty at full vibration")
    buzzer: bool = Field(True, description="sound the buzzer as well as vibrating")
    haptic_left_pin: Pin | None = Field(
        None, description="optional motor on the runner's left: threat patterns play on the side "
        "of the threat (both sides for straight behind); needs haptic_right_pin too"
    )
    haptic_right_pin: Pin | None = Field(None, description="optional motor on the runner's right")

    @model_validator(mode="after")
    def _sides_paired(self) -> OutputsConfig:
        if (self.haptic_left_pin is None) != (self.haptic_right_pin is None):
            raise ValueError("set both haptic_left_pin and haptic_right_pin, or neither")
        return self


# What one frame costs on disk as MJPG (OpenCV's writer, quality 95), in bytes
# per pixel: 0.36-0.39 on average for the vtest footage and the COCO photos at
# 640x360, 0.65 for the busiest photo. The budget checks use the busy figure,
# so a valid budget holds two segments of a busy scene.
MJPG_BYTES_PER_PIXEL = 0.65


def recording_mb_per_s(camera: CameraConfig) -> float:
    """Disk use of the recording of a busy scene, MB per second."""
    return camera.width * camera.height * camera.fps * MJPG_BYTES_PER_PIXEL / 1e6


class RecordingConfig(_Strict):
    directory: str = Field(
        "", description="record every run into this directory ('' = only with `run --record DIR`)"
    )
    segment_s: float = Field(300.0, ge=5, le=3600, description="length of one recording segment")
    budget_mb: float = Field(
        2000.0, ge=50, le=10_000_000,
        description="keep at most this much recording; the oldest segments go first (must hold two "
        "segments: the one being written and the one before it are never deleted)",
    )
    min_free_mb: float = Field(
        500.0, ge=10, le=10_000_000, description="never let recordings leave less free disk space than this"
    )
    incidents: bool = Field(
        True, description="keep the seconds around every WARN and DANGER as a clip of their own "
        "(DIR/incidents), safe from the segments' deletions"
    )
    incident_before_s: float = Field(10.0, ge=0, le=60, description="seconds kept before the alert")
    incident_after_s: float = Field(5.0, ge=1, le=60, description="seconds kept after the alert")
    incident_budget_mb: float = Field(
        500.0, ge=10, le=10_000_000, description="keep at most this much in incident clips; the oldest go first"
    )


def _check_recording_fits(camera: CameraConfig, rec: RecordingConfig) -> None:
    """A budget that cannot hold what the camera records is a config error, saying what fits."""
    rate = recording_mb_per_s(camera)
    where = f"at {camera.width}x{camera.height}, {camera.fps} fps (~{rate:.2f} MB/s for a busy scene)"
    seg_mb = rate * rec.segment_s
    if rec.budget_mb < 2 * seg_mb:
        fits = math.floor(rec.budget_mb / (2 * rate))
        shorter = f" or segment_s to at most {fits}" if fits >= 5 else ""
        raise PydanticCustomError(
            "recording_budget",
            "{value} MB holds less than two {segment_s} s segments {where}: set budget_mb to at least "
            "{need}{shorter}",
            {"key": "budget_mb", "value": f"{rec.budget_mb:g}", "segment_s": f"{rec.segment_s:g}",
             "where": where, "need": f"{math.ceil(2 * seg_mb)}", "shorter": shorter},
        )
    if rec.incidents:
        clip_s = rec.incident_before_s + rec.incident_after_s
        if rec.incident_budget_mb < rate * clip_s:
            raise PydanticCustomError(
                "recording_budget",
                "{value} MB holds less than one {clip_s} s incident clip {where}: set incident_budget_mb "
                "to at least {need}",
                {"key": "incident_budget_mb", "value": f"{rec.incident_budget_mb:g}", "clip_s": f"{clip_s:g}",
                 "where": where, "need": f"{math.ceil(rate * clip_s)}"},
            )


BOARD_NAMES = ("pi5", "pi4", "zero2w")  # device/perception/boards.toml's boards (a test keeps them equal)


class PaceConfig(_Strict):
    """How the live device judges its own detector's pace."""

    board: Literal["auto", "none", "pi5", "pi4", "zero2w"] = Field(
        "auto",
        description="the board profile the detector is held to: auto (from /proc/device-tree/model), "
        "none (no degraded check), or pi5, pi4, zero2w",
    )
    degraded_factor: float = Field(
        1.5, gt=1, le=10,
        description="a detector slower than the board's profile by more than this factor is shown as degraded",
    )
    min_rate_hz: float = Field(
        2.0, gt=0, le=30,
        description="fewer camera results a second than this is a fault: under 2 the 1 s box-growth "
        "window holds fewer than two results, so the camera gives no time to collision; a board may "
        "set its own (the Pi Zero 2 W: 1.5, its time to collision coming from the flow)",
    )
    window_s: float = Field(3.0, ge=1, le=30, description="detections per second are counted over this window")
    health_period_s: float = Field(
        5.0, ge=1, le=60, description="how often a Pi's throttling flags and CPU temperature are read"
    )


class PowerConfig(_Strict):
    """Power reaching the runner: the Pi's under-voltage flag (always read on
    a Pi) and, on a UPS HAT with one, the battery's fuel gauge."""

    fuel_gauge: Literal["none", "max1704x"] = Field(
        "none",
        description="a UPS HAT's battery fuel gauge: none, or max1704x (a MAX17040/17043/17048/17049 "
        "on I2C, read with smbus2; see hardware.md for the HATs)",
    )
    i2c_bus: int = Field(1, ge=0, le=31, description="the gauge's I2C bus number (/dev/i2c-N)")
    i2c_address: int = Field(0x36, ge=0x03, le=0x77, description="the gauge's 7-bit I2C address (0x36 = 54)")
    low_battery_pct: float = Field(
        15.0, ge=1, le=90, description="a state of charge at or below this, in %, plays the power-low cue"
    )
    cue_every_s: float = Field(
        60.0, ge=10, le=3600,
        description="while power is low the power-low cue repeats this often, in seconds (over CLEAR only)",
    )


class ButtonConfig(_Strict):
    """One push button between a GPIO and ground (hardware.md): a press pauses
    the alerts (DANGER still plays), a hold shuts the Pi down."""

    pin: Pin | None = Field(None, description="the button's GPIO (BCM), wired to ground; none = no button")
    pause_s: float = Field(60.0, ge=10, le=900, description="a press pauses the alerts for this long, in seconds")
    hold_s: float = Field(
        3.0, ge=1.5, le=10, description="held this long, in seconds, the button shuts the Pi down"
    )


class Config(_Strict):
    camera: CameraConfig = CameraConfig()
    detector: DetectorConfig = DetectorConfig()
    ranging: RangingConfig = RangingConfig()
    alerts: AlertsConfig = AlertsConfig()
    looming: LoomingConfig = LoomingConfig()
    flow: FlowConfig = FlowConfig()
    outputs: OutputsConfig = OutputsConfig()
    recording: RecordingConfig = RecordingConfig()
    pace: PaceConfig = PaceConfig()
    power: PowerConfig = PowerConfig()
    button: ButtonConfig = ButtonConfig()

    @field_validator("recording")
    @classmethod
    def _recording_fits(cls, v: RecordingConfig, info: ValidationInfo) -> RecordingConfig:
        camera = info.data.get("camera")
        if isinstance(camera, CameraConfig):  # a bad camera section is reported by its own check
            _check_recording_fits(camera, v)
        return v

    @model_validator(mode="after")
    def _pins_unique(self) -> Config:
        used: dict[int, str] = {}
        claims = [("outputs.haptic_pin", self.outputs.haptic_pin), ("outputs.buzzer_pin", self.outputs.buzzer_pin)]
        for side in ("haptic_left_pin", "haptic_right_pin"):
            if getattr(self.outputs, side) is not None:
                claims.append((f"outputs.{side}", getattr(self.outputs, side)))
        for i, s in enumerate(self.ranging.sensors):
            claims += [
                (f"ranging.sensors.{i}.trigger_pin", s.trigger_pin),
                (f"ranging.sensors.{i}.echo_pin", s.echo_pin),
            ]
        if self.button.pin is not None:
            claims.append(("button.pin", self.button.pin))
        for key, pin in claims:
            if pin in used:
                raise ValueError(f"GPIO{pin} is used twice: {used[pin]} and {key}")
            used[pin] = key
        return self


DEFAULT_PATHS = (Path("/etc/rearguard/config.toml"),)
CONFIG_LIMIT = 1 * MB  # a config is a few KB


def _format(err: ValidationError, origin: str) -> str:
    lines = [f"invalid config ({origin}):"]
    for e in err.errors():
        loc = tuple(e["loc"]) + ((e["ctx"]["key"],) if "key" in e.get("ctx", {}) else ())
        key = ".".join(str(p) for p in loc) or "(top level)"
        msg = e["msg"]
        if e["type"] == "recording_budget":
            pass  # says what fits; the input is the whole section
        elif e["type"] == "extra_forbidden":
            msg = "unknown key" + _did_you_mean(loc)
        elif e["type"] == "value_error":
            msg = msg.removeprefix("Value error, ")
        elif "input" in e and not isinstance(e["input"], dict | list | tuple):
            msg += f" (got {e['input']!r})"
        lines.append(f"  {key}: {msg}")
    return "\n".join(lines)


def _did_you_mean(loc: tuple[Any, ...]) -> str:
    """`; did you mean 'warn_ttc_s'?` for a misspelt key: the close matches
    among the keys its section has (list indices in `loc` are skipped)."""
    model: Any = Config
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return ""
        ann = field.annotation
        args = getattr(ann, "__args__", ())  # tuple[UltrasonicSensorConfig, ...] -> the item's model
        model = next((a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if model is None:
            return ""
    known = list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []
    close = difflib.get_close_matches(str(loc[-1]), known, n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def from_dict(data: dict[str, Any], origin: str = "config") -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format(err, origin)) from None


def config_path(path: str | os.PathLike[str] | None = None) -> Path | None:
    """The file `load(path)` reads: PATH, else $REARGUARD_CONFIG, else
    /etc/rearguard/config.toml if it exists; None = the built-in defaults."""
    if path is None and os.environ.get("REARGUARD_CONFIG"):
        path = os.environ["REARGUARD_CONFIG"]
    if path is None:
        return next((p for p in DEFAULT_PATHS if p.is_file()), None)
    return Path(path)


def load(path: str | os.PathLike[str] | None = None) -> Config:
    """The effective config: PATH, else $REARGUARD_CONFIG, else /etc/rearguard/config.toml
    if it exists, else the built-in defaults."""
    p = config_path(path)
    if p is None:
        return Config()
    try:
        # A regular file of at most 1 MB: a FIFO or /dev/zero hung or filled the memory.
        data = tomllib.loads(read_regular(p, CONFIG_LIMIT, allow_devnull=True).decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {p}") from None
    except FileRefused as err:
        raise ConfigError(f"cannot read config file: {err}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read config file {p}: {err}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {p} is not valid TOML: {err}") from None
    except RecursionError:
        raise ConfigError(f"config file {p}: nested too deeply (no setting here is nested)") from None
    try:
        return from_dict(data, str(p))
    except RecursionError:
        raise ConfigError(f"config file {p}: nested too deeply (no setting here is nested)") from None


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        # JSON's string escapes are TOML's (\n, \t, \uXXXX for control characters),
        # but for DEL, which TOML wants escaped too: `config show` reads back.
        return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)


def _line(model: type[BaseModel], key: str, value: Any, described: bool) -> str:
    line = f"{key} = {_toml_value(value)}"
    field = model.model_fields.get(key)
    if described and field is not None and field.description:
        line += f"  # {field.description}"
    return line


def to_toml(cfg: Config, *, described: bool = False) -> str:
    """The config as TOML that `load` reads back to an equal Config;
    `described`: each key followed by its field's description (units,
    meaning) as a comment, as `rearguard config show` prints it."""
    data = cfg.model_dump(mode="python")
    out: list[str] = []
    for section, body in data.items():
        smodel = type(getattr(cfg, section))
        # TOML has no null: an unset optional key is left out (load gives it back as None).
        body = {k: v for k, v in body.items() if v is not None}
        scalars = {k: v for k, v in body.items() if not (isinstance(v, tuple | list) and v and isinstance(v[0], dict))}
        tables = {k: v for k, v in body.items() if k not in scalars}
        out.append(f"[{section}]")
        out += [_line(smodel, k, v, described) for k, v in scalars.items()]
        out.append("")
        for k, items in tables.items():
            for obj, item in zip(getattr(getattr(cfg, section), k), items, strict=True):
                out.append(f"[[{section}.{k}]]")
                out += [_line(type(obj), ik, iv, described) for ik, iv in item.items()]
                out.append("")
    return "\n".join(out)
