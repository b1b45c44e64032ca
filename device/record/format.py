"""Recordings: what the camera saw and the sensors heard, on one clock.

A recording is a directory (the full specification is docs/recording-format.md):

    meta.json   format, version, camera geometry, sensor geometry, provenance
    video.avi   MJPG in AVI: every frame a complete JPEG, so a cut file stays readable
    frames.csv  seq,t_ns                  one row per video frame, in order
    ranges.csv  t_ns,sensor,metres,fault  one row per ultrasonic reading
    truth.json  optional ground truth for evaluation

`RecordingWriter` writes one while the device runs (and survives being killed:
CSV lines are flushed as written, the video needs no trailer to be read).
`Recording.open` validates everything up front and reads frames lazily.
`from_video` turns any video (and optionally an ultrasonic log) into one.
"""

from __future__ import annotations

import bisect
import contextlib
import csv
import io
import json
import math
import re
import shutil
import struct
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import cv2
import numpy as np
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError

from device.core.clock import NS_PER_S
from device.core.files import MB, describe, read_regular
from device.core.types import Frame, Range
from device.record.avi import MjpegAviWriter

FORMAT = "rearguard-recording"
VERSION = 1

META = "meta.json"
VIDEO = "video.avi"
FRAMES = "frames.csv"
RANGES = "ranges.csv"
TRUTH = "truth.json"
JSON_LIMIT = 10 * MB  # meta.json and truth.json are a few KB
CSV_LIMIT = 1000 * MB  # frames.csv and ranges.csv: ~30 MB an hour
MAX_LIST_DEPTH = 16  # RIFF lists in an AVI nest 3 deep; thousands are damage, not video

FRAMES_HEADER = ("seq", "t_ns")
RANGES_HEADER = ("t_ns", "sensor", "metres", "fault")
RANGES_HEADER_SHORT = ("t_ns", "sensor", "metres")
HCSR04_HEADER = ("timestamp", "distance_cm")  # compared case-insensitively

# What the format allows (docs/recording-format.md, "Limits"): times and frame
# numbers are signed 64-bit integers, as the device's clock gives them; a
# frame rate of at most MAX_FPS; a sensor range of at most MAX_SENSOR_M.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_FPS = 1000.0
MAX_SENSOR_M = 20.0


class RecordingError(Exception):
    """A recording (or an input to one) that cannot be used, naming the file and the problem."""


# ---------------------------------------------------------------------------
# meta.json and truth.json: frozen dataclasses, validated by pydantic (strict:
# "640" is not a width). Unknown keys are ignored so that a later version-1
# writer may add a field without breaking older readers; breaking changes bump
# VERSION.


@dataclass(frozen=True)
class CameraMeta:
    width: Annotated[int, Field(gt=0)]
    height: Annotated[int, Field(gt=0)]
    hfov_deg: Annotated[float, Field(gt=0, lt=180)]
    fps: Annotated[float, Field(gt=0, le=MAX_FPS)]
    # Where the camera was and how it was tilted (the config's camera.mount_height_m
    # and camera.pitch_deg, with the config's bounds). They turn a box's bottom edge
    # into a distance, so a replay uses these, not the replaying machine's config;
    # absent (older recordings, `from-video` without them): the config's.
    mount_height_m: Annotated[float, Field(gt=0.1, le=2.5)] | None = None
    pitch_deg: Annotated[float, Field(ge=-30, le=45)] | None = None


@dataclass(frozen=True)
class SensorMeta:
    name: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
    bearing_deg: Annotated[float, Field(ge=-180, le=180)] = 0.0
    beam_deg: Annotated[float, Field(gt=0, le=180)] = 15.0
    max_distance_m: Annotated[float, Field(gt=0, le=MAX_SENSOR_M)] = 4.0

    __pydantic_config__ = ConfigDict(allow_inf_nan=False)


@dataclass(frozen=True)
class RecordingMeta:
    camera: CameraMeta
    sensors: tuple[SensorMeta, ...]
    created: str
    source: str
    format: str = FORMAT
    version: int = VERSION

    __pydantic_config__ = ConfigDict(strict=True, allow_inf_nan=False)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        return {
            "format": d["format"],
            "version": d["version"],
            "camera": {k: v for k, v in d["camera"].items() if v is not None},
            "sensors": d["sensors"],
            "created": d["created"],
            "source": d["source"],
        }


@dataclass(frozen=True)
class Truth:
    """Ground truth for evaluation; times in seconds from the recording's start_ns."""

    contact_s: Annotated[float, Field(ge=0)] | None
    clear: tuple[tuple[Annotated[float, Field(ge=0)], Annotated[float, Field(ge=0)]], ...]

    __pydantic_config__ = ConfigDict(strict=True, allow_inf_nan=False)


_META_ADAPTER = TypeAdapter(RecordingMeta)
_SENSOR_ADAPTER = TypeAdapter(SensorMeta)
_TRUTH_ADAPTER = TypeAdapter(Truth)


def _pydantic_message(err: ValidationError, origin: str) -> str:
    parts = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if "input" in e and not isinstance(e["input"], dict | list | tuple):
            msg += f" (got {e['input']!r})"
        parts.append(f"{key}: {msg}")
    return f"{origin}: " + "; ".join(parts)


SensorLike = SensorMeta | dict[str, Any] | Any  # Any: an object with the attributes, e.g. UltrasonicSensorConfig


def sensor_meta(sensor: SensorLike) -> SensorMeta:
    """The recorded geometry of a sensor given as SensorMeta, a dict, or an UltrasonicSensorConfig."""
    if isinstance(sensor, SensorMeta):
        data = asdict(sensor)
    elif isinstance(sensor, dict):
        data = {k: sensor[k] for k in ("name", "bearing_deg", "beam_deg", "max_distance_m") if k in sensor}
    else:
        data = {
            k: getattr(sensor, k)
            for k in ("name", "bearing_deg", "beam_deg", "max_distance_m")
            if hasattr(sensor, k)
        }
    try:
        return _SENSOR_ADAPTER.validate_python(data)
    except ValidationError as err:
        raise RecordingError(_pydantic_message(err, f"sensor {data.get('name', '?')!r}")) from None


def _make_meta(
    *, width: int, height: int, fps: float, hfov_deg: float, sensors: Sequence[SensorLike],
    source: str, created: str | None, mount_height_m: float | None = None, pitch_deg: float | None = None,
) -> RecordingMeta:
    metas = tuple(sensor_meta(s) for s in sensors)
    names = [s.name for s in metas]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise RecordingError(f"sensor names must be unique, repeated: {', '.join(dup)}")
    meta = RecordingMeta(
        camera=CameraMeta(width=width, height=height, hfov_deg=hfov_deg, fps=fps,
                          mount_height_m=mount_height_m, pitch_deg=pitch_deg),
        sensors=metas,
        created=created or datetime.now(UTC).isoformat(timespec="seconds"),
        source=source,
    )
    # Through the reader's own validation, so a writer never writes what the reader rejects.
    try:
        return _META_ADAPTER.validate_json(json.dumps(meta.to_json()))
    except ValidationError as err:
        raise RecordingError(_pydantic_message(err, "recording settings")) from None


# ---------------------------------------------------------------------------
# video.avi: the frames are found by walking the AVI's RIFF chunks. That gives
# the exact number of complete frames without decoding any (VideoCapture's
# frame count is 0 for a file whose writer was killed), and reads frame i as
# JPEG chunk i, so a damaged frame cannot silently shift the later frames
# against their timestamps.


@dataclass(frozen=True)
class _VideoIndex:
    chunks: tuple[tuple[int, int], ...]  # (offset, size) of each complete frame's JPEG
    notes: tuple[str, ...]  # how the file is damaged, for Recording.warnings


def _is_fourcc(cid: bytes) -> bool:
    return all(32 <= b < 127 for b in cid)


def _index_avi(path: Path) -> _VideoIndex:
    size = path.stat().st_size
    if size == 0:
        # OpenCV buffers about 64 KB before its first write: a kill that early leaves nothing.
        return _VideoIndex((), (f"{VIDEO} is empty (the recorder stopped before any frame was saved)",))
    chunks: list[tuple[int, int]] = []
    notes: list[str] = []
    with path.open("rb") as f:

        def next_frame(pos: int, end: int) -> int | None:
            """The next plausible frame chunk header in (pos, end): its id, a
            size that fits, and a JPEG's first bytes."""
            f.seek(pos + 1)
            data = f.read(min(end, size) - pos - 1)
            at = 0
            while True:
                hits = [i for i in (data.find(b"00dc", at), data.find(b"00db", at)) if i >= 0]
                if not hits:
                    return None
                i = min(hits)
                if i + 10 <= len(data):
                    (csize,) = struct.unpack("<I", data[i + 4:i + 8])
                    if i + 8 + csize <= len(data) and data[i + 8:i + 10] == b"\xff\xd8":
                        return pos + 1 + i
                at = i + 1

        def walk(pos: int, end: int, in_movi: bool, depth: int = 0) -> bool:
            """Collect frame chunks in [pos, end); False once the data stops making sense.
            In the frames' list a damaged chunk header costs that frame only: the
            walk goes on at the next frame's header, and the lost frame keeps its
            place (an empty chunk: a bad frame), so every later frame keeps its time."""
            if depth > MAX_LIST_DEPTH:
                notes.append(f"{VIDEO}: lists nested more than {MAX_LIST_DEPTH} deep at byte {pos} "
                             "(damaged); the data after it is ignored")
                return False
            while pos + 8 <= end:
                f.seek(pos)
                cid, csize = struct.unpack("<4sI", f.read(8))
                is_frame = in_movi and cid[:2] == b"00" and cid[2:] in (b"dc", b"db")
                if not _is_fourcc(cid) or (is_frame and pos + 8 + csize > end):
                    found = next_frame(pos, end) if in_movi else None
                    if found is not None:
                        notes.append(f"{VIDEO}: damaged data at bytes {pos}-{found}: frame {len(chunks)} is lost, "
                                     "the frames after it are read")
                        chunks.append((pos, 0))
                        pos = found
                        continue
                    if not _is_fourcc(cid):
                        notes.append(f"{VIDEO}: unreadable data at byte {pos}; the frames after it are ignored")
                    else:
                        notes.append(f"{VIDEO} ends inside frame {len(chunks)} (the file was cut); it is ignored")
                    return False
                if cid in (b"LIST", b"RIFF"):
                    kind = f.read(4)
                    # A writer killed before closing leaves the size 0: the list runs to the end.
                    list_end = pos + 8 + csize if csize else end
                    if list_end > end:
                        notes.append(f"{VIDEO} is shorter than its header says (the file was cut)")
                        list_end = end
                    if not walk(pos + 12, list_end, in_movi or kind == b"movi", depth + 1):
                        return False
                    pos = list_end + (csize & 1)
                    continue
                if is_frame:
                    chunks.append((pos + 8, csize))
                pos += 8 + csize + (csize & 1)
            return True

        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"AVI ":
            raise RecordingError(f"{path} is not an AVI video (it does not start with a RIFF AVI header)")
        if struct.unpack("<I", head[4:8])[0] == 0:
            notes.append(f"{VIDEO} was not closed (the recorder stopped abruptly, or the file passed 4 GB)")
        # The top level may hold several RIFF chunks (OpenDML 'AVIX' extensions).
        walk(0, size, False)
    return _VideoIndex(tuple(chunks), tuple(dict.fromkeys(notes)))


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) a JPEG's frame header declares, read from its markers
    without decoding; None where there is none to read."""
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        # SOF0..SOF15 (not DHT C4, JPG C8, DAC CC): precision, height, width
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 9 > len(data):
                return None
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        if marker == 0xDA:  # the scan began before any frame header
            return None
        i += 2 + length
    return None


def _decode(data: bytes, what: str, width: int, height: int) -> np.ndarray:
    if not data:
        raise RecordingError(f"{what} is empty (damaged video?)")
    # The declared size first: a header claiming 30000x30000 would have the
    # decoder allocate 2.7 GB for one frame (issue 23).
    declared = jpeg_size(data)
    if declared is not None and declared != (width, height):
        raise RecordingError(f"{what} is {declared[0]}x{declared[1]} but {META} says {width}x{height} "
                             "(its JPEG header; not decoded)")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    if image is None:
        raise RecordingError(f"{what} cannot be decoded as a JPEG image (damaged video?)")
    if image.shape[:2] != (height, width):
        raise RecordingError(
            f"{what} is {image.shape[1]}x{image.shape[0]} but {META} says {width}x{height}"
        )
    return image


# ---------------------------------------------------------------------------
# CSV parsing shared by the reader and from_video.

_INT = re.compile(r"-?\d+")


def _int(text: str, what: str, where: str) -> int:
    text = text.strip()
    # Length first: int() of a 400-digit string works, but later float
    # arithmetic on it overflows; anything past 20 characters is out of range.
    if len(text) > 20 or not _INT.fullmatch(text):
        if _INT.fullmatch(text):
            raise RecordingError(f"{where}: {what} {text[:24]}... is out of range (a signed 64-bit integer)")
        raise RecordingError(f"{where}: {what} is not an integer (got {text!r})")
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        raise RecordingError(f"{where}: {what} {text} is out of range (a signed 64-bit integer)")
    return value


def _read_csv_lines(path: Path, *, cut_tail: bool) -> tuple[list[tuple[int, list[str]]], list[str]]:
    """Rows with their 1-based line numbers (header included), and warnings.

    With `cut_tail`, a last line without a newline is taken as cut off by a
    kill (the writer ends every line) and dropped with a warning.
    """
    try:
        text = read_regular(path, CSV_LIMIT).decode("utf-8")
    except UnicodeDecodeError as err:
        raise RecordingError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start})") from None
    warnings: list[str] = []
    if cut_tail and text and not text.endswith("\n"):
        keep = text.rfind("\n") + 1
        warnings.append(
            f"{path.name}: the last line {text[keep:]!r} is incomplete (the recording was cut) "
            "and was ignored"
        )
        text = text[:keep]
    rows = []
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        for row in reader:
            if row and any(cell.strip() for cell in row):
                rows.append((reader.line_num, row))
    except csv.Error as err:
        raise RecordingError(f"{path.name} line {reader.line_num}: {err}") from None
    return rows, warnings


def _header(rows: list[tuple[int, list[str]]], name: str, expected: str) -> tuple[str, ...]:
    if not rows:
        raise RecordingError(f"{name} is empty (expected the header {expected})")
    line, header = rows[0]
    if line != 1:
        raise RecordingError(f"{name} line 1: expected the header {expected}, found an empty line")
    return tuple(h.strip() for h in header)


def _distance(text: str, column: str, where: str, need: str = "a distance of 0 or more") -> float:
    """A CSV cell that must hold a finite distance of 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise RecordingError(f"{where}: {column} is not a number (got {text!r})") from None
    if not math.isfinite(value) or value < 0:
        raise RecordingError(f"{where}: {column} must be {need} (got {text!r})")
    return value


def _parse_range_row(
    row: list[str], where: str, columns: int, sensors: dict[str, SensorMeta]
) -> Range:
    if len(row) != columns:
        raise RecordingError(f"{where}: expected {columns} fields, found {len(row)}")
    t_ns = _int(row[0], "t_ns", where)
    sensor = row[1].strip()
    if sensor not in sensors:
        known = ", ".join(sensors) or "none"
        raise RecordingError(f"{where}: unknown sensor {sensor!r} (this recording's sensors: {known})")
    metres = _distance(row[2], "metres", where) if row[2].strip() else None
    fault = (row[3].strip() or None) if columns == 4 else None
    if fault is not None and metres is not None:
        raise RecordingError(f"{where}: a reading with a fault ({fault!r}) must have empty metres")
    return Range(t_ns=t_ns, sensor=sensor, metres=metres, fault=fault)


# ---------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class BadFrame:
    """A frame of video.avi that cannot be decoded: where it is and why."""

    index: int  # row in frames.csv / chunk in video.avi
    seq: int
    t_ns: int
    reason: str


@dataclass(frozen=True)
class JpegFrame:
    """A frame of video.avi as its JPEG bytes, not decoded."""

    seq: int
    t_ns: int
    jpeg: bytes


@dataclass(frozen=True, eq=False)
class Recording:
    """A validated recording. Open with `Recording.open(directory)`.

    If frames.csv and video.avi disagree in length (a recording cut by a kill
    or a power loss), the common prefix is used and `warnings` says so.
    """

    directory: Path
    meta: RecordingMeta
    frame_seqs: tuple[int, ...]
    frame_times: tuple[int, ...]  # t_ns of each frame, device monotonic clock
    ranges: tuple[Range, ...]  # sorted by t_ns
    truth: Truth | None
    warnings: tuple[str, ...]
    _chunks: tuple[tuple[int, int], ...] = field(repr=False)

    @classmethod
    def open(cls, directory: str | Path, *, decode_first: bool = True) -> Recording:
        """Raises RecordingError, naming the file, for anything unreadable.
        decode_first=False leaves out decoding frame 0 (the codec's proof), for
        a reader that only copies the JPEGs (`jpeg_items`, incident clips)."""
        try:
            return cls._open(Path(directory), decode_first)
        except OSError as err:  # unreadable, not a file, a name too long: said, never a traceback
            raise RecordingError(f"cannot read the recording {directory}: {describe(err)}") from None

    @classmethod
    def _open(cls, d: Path, decode_first: bool) -> Recording:
        if not d.exists():
            raise RecordingError(f"recording not found: {d}")
        if not d.is_dir():
            raise RecordingError(f"{d} is not a recording directory (a recording is a directory)")
        warnings: list[str] = []
        meta = _read_meta(d)
        seqs, times = _read_frames(d / FRAMES, warnings)
        video = d / VIDEO
        if not video.is_file():
            raise RecordingError(f"{d}: missing {VIDEO}")
        index = _index_avi(video)
        warnings += index.notes
        n = min(len(index.chunks), len(times))
        if len(index.chunks) != len(times):
            warnings.append(
                f"{VIDEO} holds {len(index.chunks)} complete frames but {FRAMES} lists {len(times)}: "
                f"the recording was cut short; using the first {n}"
            )
        if n and decode_first:  # the first frame proves the codec and the size without decoding them all
            with video.open("rb") as f:
                off, size = index.chunks[0]
                f.seek(off)
                _decode(f.read(size), f"{VIDEO} frame 0", meta.camera.width, meta.camera.height)
        ranges = _read_ranges(d / RANGES, meta, warnings)
        truth = _read_truth(d / TRUTH)
        return cls(
            directory=d,
            meta=meta,
            frame_seqs=tuple(seqs[:n]),
            frame_times=tuple(times[:n]),
            ranges=tuple(ranges),
            truth=truth,
            warnings=tuple(warnings),
            _chunks=index.chunks[:n],
        )

    @property
    def frame_count(self) -> int:
        return len(self.frame_times)

    @property
    def start_ns(self) -> int:
        """The earliest t_ns of any frame or range: time zero of the recording (and of truth.json)."""
        firsts = [*self.frame_times[:1], *(r.t_ns for r in self.ranges[:1])]
        return min(firsts) if firsts else 0

    @property
    def end_ns(self) -> int:
        lasts = [*self.frame_times[-1:], *(r.t_ns for r in self.ranges[-1:])]
        return max(lasts) if lasts else 0

    @property
    def duration_s(self) -> float:
        """From the first to the last timestamp of any frame or range."""
        return (self.end_ns - self.start_ns) / NS_PER_S

    def frames(self, start_ns: int | None = None, end_ns: int | None = None) -> Iterator[Frame]:
        """Decode the frames in order, each with its recorded seq and t_ns;
        RecordingError at the first frame that cannot be decoded. With
        start_ns/end_ns only those within [start_ns, end_ns] (the others are not decoded)."""
        for item in self.frame_items(start_ns, end_ns):
            if isinstance(item, BadFrame):
                raise RecordingError(item.reason)
            yield item

    def frame_items(self, start_ns: int | None = None, end_ns: int | None = None) -> Iterator[Frame | BadFrame]:
        """Like frames(), but a frame that cannot be decoded comes as a
        BadFrame and the frames after it still follow (replay skips it)."""
        cam = self.meta.camera
        for i, seq, t_ns, data, size in self._chunk_bytes(start_ns, end_ns):
            try:
                if len(data) != size:
                    raise RecordingError(f"{VIDEO} frame {i}: the file became shorter while reading")
                image = _decode(data, f"{VIDEO} frame {i}", cam.width, cam.height)
            except RecordingError as err:
                yield BadFrame(index=i, seq=seq, t_ns=t_ns, reason=str(err))
                continue
            yield Frame(seq=seq, t_ns=t_ns, image=image)

    def jpeg_items(self, start_ns: int | None = None, end_ns: int | None = None) -> Iterator[JpegFrame | BadFrame]:
        """Like frame_items(), but each frame as the JPEG bytes video.avi holds,
        never decoded (an incident clip copies them). A frame that is empty,
        cut short or declares a size other than the recording's comes as a
        BadFrame; damage inside a JPEG's data is not seen here."""
        cam = self.meta.camera
        for i, seq, t_ns, data, size in self._chunk_bytes(start_ns, end_ns):
            what = f"{VIDEO} frame {i}"
            if not data:
                reason = f"{what} is empty (damaged video?)"
            elif len(data) != size:
                reason = f"{what}: the file became shorter while reading"
            elif (declared := jpeg_size(data)) != (cam.width, cam.height):
                reason = (f"{what} declares no JPEG frame size (damaged video?)" if declared is None else
                          f"{what} is {declared[0]}x{declared[1]} but {META} says {cam.width}x{cam.height}")
            else:
                yield JpegFrame(seq=seq, t_ns=t_ns, jpeg=data)
                continue
            yield BadFrame(index=i, seq=seq, t_ns=t_ns, reason=reason)

    def _chunk_bytes(self, start_ns: int | None, end_ns: int | None) -> Iterator[tuple[int, int, int, bytes, int]]:
        """(index, seq, t_ns, the bytes read, the chunk's size) of each frame
        within [start_ns, end_ns], in order, read from video.avi one at a time."""
        lo = 0 if start_ns is None else bisect.bisect_left(self.frame_times, start_ns)
        hi = len(self._chunks) if end_ns is None else bisect.bisect_right(self.frame_times, end_ns)
        try:
            f = (self.directory / VIDEO).open("rb")
        except OSError as err:
            raise RecordingError(f"cannot read {self.directory / VIDEO}: {describe(err)}") from None
        with f:
            for i in range(lo, hi):
                off, size = self._chunks[i]
                f.seek(off)
                yield i, self.frame_seqs[i], self.frame_times[i], f.read(size), size

    def bad_frames(self) -> list[BadFrame]:
        """Every frame that cannot be decoded (decodes the whole video)."""
        return [item for item in self.frame_items() if isinstance(item, BadFrame)]


def _read_meta(d: Path) -> RecordingMeta:
    path = d / META
    if not path.is_file():
        segments = sorted(p.name for p in d.glob("seg-*") if (p / META).is_file()) if d.is_dir() else []
        if segments:  # a device recording: a folder of segments (device/record/segments.py)
            raise RecordingError(
                f"{d} holds {len(segments)} recording segment(s), each a recording of its own: "
                f"give one, e.g. {d / segments[-1]}"
            )
        raise RecordingError(f"{d}: missing {META} (is this a Rearguard recording?)")
    raw = read_regular(path, JSON_LIMIT)
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RecordingError(f"{path} is not valid JSON: {err}") from None
    except RecursionError:
        raise RecordingError(f"{path}: nested too deeply (not a meta.json this reads)") from None
    if not isinstance(data, dict):
        raise RecordingError(f"{path}: expected a JSON object")
    if data.get("format") != FORMAT:
        raise RecordingError(f"{path}: format is {data.get('format')!r}, expected {FORMAT!r}")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise RecordingError(f"{path}: version must be the integer {VERSION}, not {version!r}")
    if version != VERSION:
        raise RecordingError(
            f"{path}: version {data.get('version')!r} is not supported (this Rearguard reads version {VERSION})"
        )
    try:
        meta = _META_ADAPTER.validate_json(raw)
    except ValidationError as err:
        raise RecordingError(_pydantic_message(err, str(path))) from None
    names = [s.name for s in meta.sensors]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise RecordingError(f"{path}: sensor names must be unique, repeated: {', '.join(dup)}")
    return meta


def _read_frames(path: Path, warnings: list[str]) -> tuple[list[int], list[int]]:
    if not path.is_file():
        raise RecordingError(f"{path.parent}: missing {FRAMES}")
    rows, notes = _read_csv_lines(path, cut_tail=True)
    warnings += notes
    if _header(rows, FRAMES, ",".join(FRAMES_HEADER)) != FRAMES_HEADER:
        raise RecordingError(
            f"{FRAMES} line 1: header is {','.join(rows[0][1])!r}, expected {','.join(FRAMES_HEADER)!r}"
        )
    seqs: list[int] = []
    times: list[int] = []
    for line, row in rows[1:]:
        where = f"{FRAMES} line {line}"
        if len(row) != 2:
            raise RecordingError(f"{where}: expected 2 fields (seq,t_ns), found {len(row)}")
        seq = _int(row[0], "seq", where)
        t_ns = _int(row[1], "t_ns", where)
        if seqs and seq <= seqs[-1]:
            raise RecordingError(f"{where}: seq {seq} does not increase (previous {seqs[-1]})")
        if times and t_ns < times[-1]:
            raise RecordingError(f"{where}: t_ns {t_ns} goes backwards (previous {times[-1]})")
        seqs.append(seq)
        times.append(t_ns)
    return seqs, times


def _read_ranges(path: Path, meta: RecordingMeta, warnings: list[str]) -> list[Range]:
    if not path.is_file():
        raise RecordingError(f"{path.parent}: missing {RANGES}")
    rows, notes = _read_csv_lines(path, cut_tail=True)
    warnings += notes
    header = _header(rows, RANGES, ",".join(RANGES_HEADER))
    if header not in (RANGES_HEADER, RANGES_HEADER_SHORT):
        raise RecordingError(
            f"{RANGES} line 1: header is {','.join(header)!r}, expected {','.join(RANGES_HEADER)!r}"
        )
    sensors = {s.name: s for s in meta.sensors}
    last: dict[str, int] = {}
    out: list[Range] = []
    for line, row in rows[1:]:
        where = f"{RANGES} line {line}"
        r = _parse_range_row(row, where, len(header), sensors)
        if r.t_ns < last.get(r.sensor, r.t_ns):
            raise RecordingError(
                f"{where}: t_ns {r.t_ns} goes backwards for sensor {r.sensor!r} (previous {last[r.sensor]})"
            )
        last[r.sensor] = r.t_ns
        out.append(r)
    out.sort(key=lambda r: r.t_ns)  # stable: sensors taking turns may interleave slightly
    return out


def _read_truth(path: Path) -> Truth | None:
    if not path.exists() and not path.is_symlink():
        return None
    try:
        truth = _TRUTH_ADAPTER.validate_json(read_regular(path, JSON_LIMIT))
    except ValidationError as err:
        raise RecordingError(_pydantic_message(err, str(path))) from None
    except RecursionError:
        raise RecordingError(f"{path}: nested too deeply (not a truth.json this reads)") from None
    for start, end in truth.clear:
        if end < start:
            raise RecordingError(f"{path}: clear interval [{start}, {end}] ends before it starts")
    return truth


# ---------------------------------------------------------------------------
# Writing


class RecordingWriter:
    """Writes a recording while the device runs.

    Thread-safe: on the device frames arrive from the camera thread and ranges
    from the main loop.

    Each CSV line is flushed as it is written and every video frame is a
    complete JPEG, so a kill loses at most the frames still in OpenCV's write
    buffer (about 64 KB); `Recording.open` reads what survived.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        width: int,
        height: int,
        fps: float,
        hfov_deg: float,
        sensors: Sequence[SensorLike],
        source: str,
        created: str | None = None,
        copy_jpeg: bool = False,
        mount_height_m: float | None = None,
        pitch_deg: float | None = None,
    ) -> None:
        self.directory = Path(directory)
        if self.directory.exists():
            if not self.directory.is_dir():
                raise RecordingError(f"{self.directory} exists and is not a directory")
            if any(self.directory.iterdir()):
                raise RecordingError(
                    f"{self.directory} already exists and is not empty: choose a new directory"
                )
        self.meta = _make_meta(
            width=width, height=height, fps=fps, hfov_deg=hfov_deg, sensors=sensors,
            source=source, created=created, mount_height_m=mount_height_m, pitch_deg=pitch_deg,
        )
        self._sensor_names = {s.name for s in self.meta.sensors}
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / META).write_text(json.dumps(self.meta.to_json(), indent=2) + "\n", encoding="utf-8")
        self._video: cv2.VideoWriter | MjpegAviWriter
        if copy_jpeg:
            # Frames come as JPEG (write_jpeg) and are copied as they are: the same
            # container OpenCV writes, without decoding and encoding them again.
            self._video = MjpegAviWriter(self.directory / VIDEO, width=width, height=height,
                                         fps=max(1, round(fps)))
        else:
            self._video = cv2.VideoWriter(
                str(self.directory / VIDEO),
                cv2.CAP_OPENCV_MJPEG,  # OpenCV's own AVI writer: in every build, no FFmpeg needed
                cv2.VideoWriter.fourcc(*"MJPG"),
                # This writer stores a whole-number rate in the header (players only);
                # the true frame times are in frames.csv.
                float(max(1, round(fps))),
                (width, height),
            )
            if not self._video.isOpened():
                raise RecordingError(f"cannot write {self.directory / VIDEO} (OpenCV's MJPG writer failed to open)")
        # buffering=1: line buffered, so every row reaches the OS as it is written.
        self._frames_file = (self.directory / FRAMES).open("w", encoding="utf-8", newline="", buffering=1)
        self._ranges_file = (self.directory / RANGES).open("w", encoding="utf-8", newline="", buffering=1)
        self._frames_csv = csv.writer(self._frames_file, lineterminator="\n")
        self._ranges_csv = csv.writer(self._ranges_file, lineterminator="\n")
        self._frames_csv.writerow(FRAMES_HEADER)
        self._ranges_csv.writerow(RANGES_HEADER)
        self._last_seq: int | None = None
        self._last_t: int | None = None
        self._last_range_t: dict[str, int] = {}
        self.frames_written = 0
        self.ranges_written = 0
        self._closed = False
        self._lock = threading.Lock()

    def write_frame(self, frame: Frame) -> None:
        with self._lock:
            self._write_frame(frame)

    def _write_frame(self, frame: Frame) -> None:
        self._check_open()
        cam = self.meta.camera
        img = frame.image
        if not isinstance(self._video, cv2.VideoWriter):
            raise ValueError(f"recording {self.directory} takes frames as JPEG (write_jpeg)")
        if img.dtype != np.uint8 or img.shape != (cam.height, cam.width, 3):
            # OpenCV would silently drop a frame of the wrong size: refuse it loudly instead.
            raise ValueError(
                f"frame {frame.seq} is {img.dtype} {img.shape}, the recording takes uint8 "
                f"({cam.height}, {cam.width}, 3)"
            )
        self._check_order(frame.seq, frame.t_ns)
        self._video.write(np.ascontiguousarray(img))
        self._wrote_frame(frame.seq, frame.t_ns)

    def write_jpeg(self, frame: JpegFrame) -> None:
        """A frame already encoded (`Recording.jpeg_items`), copied unchanged
        into video.avi; only for a writer made with copy_jpeg=True."""
        with self._lock:
            self._check_open()
            if not isinstance(self._video, MjpegAviWriter):
                raise ValueError(f"recording {self.directory} takes frames as images (write_frame)")
            cam = self.meta.camera
            if jpeg_size(frame.jpeg) != (cam.width, cam.height):
                raise ValueError(f"frame {frame.seq} is not a {cam.width}x{cam.height} JPEG")
            self._check_order(frame.seq, frame.t_ns)
            self._video.write(frame.jpeg)
            self._wrote_frame(frame.seq, frame.t_ns)

    def _check_order(self, seq: int, t_ns: int) -> None:
        if self._last_seq is not None and seq <= self._last_seq:
            raise ValueError(f"frame seq {seq} does not increase (previous {self._last_seq})")
        if self._last_t is not None and t_ns < self._last_t:
            raise ValueError(f"frame t_ns {t_ns} goes backwards (previous {self._last_t})")

    def _wrote_frame(self, seq: int, t_ns: int) -> None:
        self._frames_csv.writerow((seq, t_ns))
        self._last_seq, self._last_t = seq, t_ns
        self.frames_written += 1

    def write_ranges(self, ranges: Iterable[Range]) -> None:
        with self._lock:
            self._write_ranges(ranges)

    def _write_ranges(self, ranges: Iterable[Range]) -> None:
        self._check_open()
        for r in ranges:
            if r.sensor not in self._sensor_names:
                raise ValueError(f"unknown sensor {r.sensor!r} (recording has {sorted(self._sensor_names)})")
            if r.fault is not None and r.metres is not None:
                raise ValueError(f"a faulted reading carries no distance: {r}")
            if r.metres is not None and (not math.isfinite(r.metres) or r.metres < 0):
                raise ValueError(f"bad distance in {r}")
            prev = self._last_range_t.get(r.sensor)
            if prev is not None and r.t_ns < prev:
                raise ValueError(f"range t_ns {r.t_ns} goes backwards for {r.sensor!r} (previous {prev})")
            self._ranges_csv.writerow(
                (r.t_ns, r.sensor, "" if r.metres is None else repr(float(r.metres)), r.fault or "")
            )
            self._last_range_t[r.sensor] = r.t_ns
            self.ranges_written += 1

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"recording {self.directory} is closed")

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            # Past 4 GB OpenCV cannot patch the AVI's 32-bit sizes and raises here;
            # the file is then left like a killed one, which the reader handles.
            if isinstance(self._video, MjpegAviWriter):
                self._video.close()
            else:
                with contextlib.suppress(cv2.error):
                    self._video.release()
            self._frames_file.close()
            self._ranges_file.close()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------
# Converting any video (and an optional ultrasonic log) into a recording

_CLOCK = re.compile(r"(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?")
_DAY_NS = 86_400 * NS_PER_S


def _clock_ns(text: str, where: str) -> int:
    m = _CLOCK.fullmatch(text.strip())
    if not m:
        raise RecordingError(f"{where}: Timestamp {text!r} is not a time of day HH:MM:SS.mmm")
    h, mi, s, frac = m.groups()
    if int(h) > 23 or int(mi) > 59 or int(s) > 60:
        raise RecordingError(f"{where}: Timestamp {text!r} is not a valid time of day")
    ns = ((int(h) * 60 + int(mi)) * 60 + int(s)) * NS_PER_S
    return ns + (int(frac.ljust(9, "0")) if frac else 0)


MAX_RANGES_OFFSET_S = 86_400.0  # a log a day off its video is a wrong log, not an offset


def read_ranges_csv(
    path: str | Path, sensors: Sequence[SensorLike], *, start_offset_s: float = 0.0
) -> list[Range]:
    """Ranges from a CSV in the project's format or an HC-SR04 serial log, on a timeline from 0.

    Times become offsets from the first row, shifted by `start_offset_s`.
    Project format (`t_ns,sensor,metres[,fault]`): sensors must be among
    `sensors`. HC-SR04 log (`Timestamp,Distance_cm`, wall-clock HH:MM:SS.mmm):
    every reading belongs to the first sensor; a time earlier than the one
    before by more than 12 h is taken as crossing midnight; a distance at or
    beyond the sensor's max_distance_m (400 cm: the HC-SR04's no-echo value)
    becomes metres=None.
    """
    p = Path(path)
    if not p.is_file():
        raise RecordingError(f"ranges file not found: {p}")
    metas = [sensor_meta(s) for s in sensors]
    if not metas:
        raise RecordingError("ranges need at least one sensor")
    if not (math.isfinite(start_offset_s) and abs(start_offset_s) <= MAX_RANGES_OFFSET_S):
        raise RecordingError(
            f"the ranges offset must be a number of seconds within +-{MAX_RANGES_OFFSET_S:.0f} (got {start_offset_s})"
        )
    rows, _ = _read_csv_lines(p, cut_tail=False)
    header = _header(rows, p.name, "t_ns,sensor,metres[,fault] or Timestamp,Distance_cm")
    offset_ns = round(start_offset_s * NS_PER_S)
    if header in (RANGES_HEADER, RANGES_HEADER_SHORT):
        by_name = {s.name: s for s in metas}
        parsed = [_parse_range_row(row, f"{p.name} line {line}", len(header), by_name) for line, row in rows[1:]]
        if not parsed:
            return []
        first = parsed[0].t_ns
        for i, r in enumerate(parsed[1:], start=1):
            if r.t_ns < parsed[i - 1].t_ns:
                raise RecordingError(f"{p.name} line {rows[i + 1][0]}: t_ns {r.t_ns} goes backwards")
        out = [Range(r.t_ns - first + offset_ns, r.sensor, r.metres, r.fault) for r in parsed]
        if out[-1].t_ns > INT64_MAX:
            raise RecordingError(f"{p.name}: the readings span more than a signed 64-bit count of ns")
        return out
    if tuple(h.lower() for h in header) == HCSR04_HEADER:
        sensor = metas[0]
        out = []
        t0: int | None = None
        prev: int | None = None
        day = 0
        for line, row in rows[1:]:
            where = f"{p.name} line {line}"
            if len(row) != 2:
                raise RecordingError(f"{where}: expected 2 fields (Timestamp,Distance_cm), found {len(row)}")
            t = _clock_ns(row[0], where) + day
            if prev is not None and t < prev:
                if prev - t > _DAY_NS // 2:
                    day += _DAY_NS
                    t += _DAY_NS
                else:
                    raise RecordingError(f"{where}: Timestamp {row[0].strip()} goes backwards")
            prev = t
            if t0 is None:
                t0 = t
            cm = _distance(row[1], "Distance_cm", where, need="0 or more")
            metres = None if cm >= sensor.max_distance_m * 100 else cm / 100
            out.append(Range(t - t0 + offset_ns, sensor.name, metres))
        return out
    raise RecordingError(
        f"{p}: unknown CSV header {','.join(header)!r}; accepted: 't_ns,sensor,metres,fault', "
        "'t_ns,sensor,metres' or 'Timestamp,Distance_cm' (an HC-SR04 serial log)"
    )


DEFAULT_SENSOR = SensorMeta(name="centre", bearing_deg=0.0, beam_deg=15.0, max_distance_m=4.0)


def from_video(
    video_path: str | Path,
    out_dir: str | Path,
    *,
    ranges_csv: str | Path | None = None,
    fps: float | None = None,
    hfov_deg: float = 66.0,
    mount_height_m: float | None = None,
    pitch_deg: float | None = None,
    sensor: SensorLike | Sequence[SensorLike] = DEFAULT_SENSOR,
    max_frames: int | None = None,
    start_offset_s: float = 0.0,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Turn any video OpenCV can read into a recording; returns its directory.

    Frame i is at i/fps seconds (fps given, else the video's own; an error if
    neither is known). `sensor` is one sensor or a sequence of them (default:
    one "centre" HC-SR04 straight back). `progress(done, total)` is called
    after each frame; total is None when the video does not say.
    """
    src = Path(video_path)
    out = Path(out_dir)
    if not src.is_file():
        raise RecordingError(f"video not found: {src}")
    if max_frames is not None and max_frames < 1:
        raise RecordingError(f"max_frames must be 1 or more, got {max_frames}")
    if fps is not None and not (math.isfinite(fps) and 0 < fps <= MAX_FPS):
        raise RecordingError(f"fps must be a number above 0 and at most {MAX_FPS:g}, got {fps}")
    sensors = list(sensor) if isinstance(sensor, list | tuple) else [sensor]
    # Read the ranges first: a bad CSV fails before anything is written.
    ranges = read_ranges_csv(ranges_csv, sensors, start_offset_s=start_offset_s) if ranges_csv else []
    cap = cv2.VideoCapture(str(src))
    try:
        if not cap.isOpened():
            raise RecordingError(f"cannot read video {src}: not a video OpenCV can decode")
        rate = fps if fps is not None else cap.get(cv2.CAP_PROP_FPS)
        if not rate or not math.isfinite(rate) or rate <= 0:
            raise RecordingError(f"video {src} does not say its frame rate: give --fps")
        ok, image = cap.read()
        if not ok or image is None:
            raise RecordingError(f"video {src} has no frame that OpenCV can decode")
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        total = count if count > 0 else None
        if max_frames is not None:
            total = min(total, max_frames) if total else max_frames
        created_dir = not out.exists()
        was_empty = out.is_dir() and not any(out.iterdir())
        source = f"from-video {src.name}" + (f" + {Path(ranges_csv).name}" if ranges_csv else "")
        try:
            with RecordingWriter(
                out, width=image.shape[1], height=image.shape[0], fps=rate, hfov_deg=hfov_deg,
                mount_height_m=mount_height_m, pitch_deg=pitch_deg, sensors=sensors, source=source,
            ) as writer:
                i = 0
                while ok and image is not None and (max_frames is None or i < max_frames):
                    writer.write_frame(Frame(seq=i, t_ns=round(i * NS_PER_S / rate), image=image))
                    i += 1
                    if progress is not None:
                        progress(i, total)
                    ok, image = cap.read()
                writer.write_ranges(ranges)
        except BaseException:
            # Leave no half-made recording behind, but never delete what was there before.
            if created_dir:
                shutil.rmtree(out, ignore_errors=True)
            elif was_empty:
                for name in (META, VIDEO, FRAMES, RANGES):
                    (out / name).unlink(missing_ok=True)
            raise
    finally:
        cap.release()
    return out

