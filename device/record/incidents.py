"""Incident clips: the seconds around every WARN and DANGER, kept apart.

The ring of segments (segments.py) forgets the oldest footage to stay within
its budget; what nearly happened should not go with it. For each WARN or
DANGER the recorder keeps `before_s` seconds before the alert and `after_s`
after it (an alert within a clip's window extends it) as a recording of its
own in DIR/incidents/inc-NNNNNN, readable by `rearguard replay`, with an
`incident.json` saying when, what level and which source. The clips have
their own budget: when they exceed it the oldest clip goes, never the newest.

How: when the window has passed, the current segment is cut (so every frame
of the window is in a finished segment, nothing in a writer's buffer) and
the window's frames and ranges are copied out of the segments. The ring
never deletes a segment holding any of the last `before_s` seconds, nor one
an open window needs, so the clip's seconds before the alert are there.
The copy (each frame's JPEG bytes, one at a time, never decoded: the
segments and the clip are both MJPG AVI) runs in a clip writer thread of its own, on the live device below
even the camera and the detector (`device.core.priority`), so the ring goes on recording meanwhile; never in the loop or the
detector.
"""

from __future__ import annotations

import json
import logging
import queue
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from device.core.clock import NS_PER_S
from device.core.files import read_regular
from device.core.priority import background_thread
from device.core.types import AlertEvent, AlertLevel, Frame, Range
from device.record.format import JpegFrame, Recording, RecordingError, RecordingWriter
from device.record.segments import MB, SegmentedRecorder, segment_span

log = logging.getLogger(__name__)

INCIDENTS = "incidents"  # the clips' folder inside the recording directory
INCIDENT = "incident.json"
CLIP_GLOB = "inc-*"
MAX_CLIP_S = 60.0  # alert after alert extends a clip up to this length; then a new one starts
FAULT_HOLD_NS = 10 * NS_PER_S  # a failed clip is a fault for this long


@dataclass(frozen=True)
class IncidentInfo:
    """What incident.json holds."""

    time: str  # wall clock (UTC, ISO 8601) when the alert began
    level: str  # WARN or DANGER: the highest level within the clip
    source: str  # what raised the first alert: camera, ultrasonic, fused
    t_ns: int  # the first alert, on the recording's clock
    start_ns: int  # the clip's window, on the recording's clock
    end_ns: int
    alerts: int  # WARN/DANGER alerts within the clip
    distance_m: float | None
    ttc_s: float | None
    what: str = ""  # what and which side (`AlertEvent.what`); "" in clips kept before it was written


@dataclass
class _Window:
    info: IncidentInfo

    def extend(self, event: AlertEvent, after_ns: int) -> None:
        i = self.info
        level = max(AlertLevel[i.level], event.level)
        end = min(max(i.end_ns, event.t_ns + after_ns), i.start_ns + round(MAX_CLIP_S * NS_PER_S))
        self.info = IncidentInfo(**{**asdict(i), "level": level.name, "end_ns": end, "alerts": i.alerts + 1})


class IncidentClips:
    def __init__(
        self,
        segments: SegmentedRecorder,
        *,
        before_s: float = 10.0,
        after_s: float = 5.0,
        budget_mb: float = 500.0,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.segments = segments
        self.directory = segments.directory / INCIDENTS
        self.before_ns = round(before_s * NS_PER_S)
        self.after_ns = round(after_s * NS_PER_S)
        self.budget = round(budget_mb * MB)
        self._wall = wall
        self._open: _Window | None = None
        self._due = False  # the window has passed; copy once the segment is cut
        self._fault: tuple[str, int] | None = None
        self._last_t: int | None = None
        self.saved: list[Path] = []
        self._lock = threading.Lock()
        self._writing: list[IncidentInfo] = []  # windows handed to the clip writer, not yet written
        self._jobs: queue.Queue[IncidentInfo | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        segments.keep = self._needed
        segments.after_frame = self.after_frame

    @property
    def fault(self) -> str | None:
        if self._fault is None:
            return None
        text, t = self._fault
        if self._last_t is not None and self._last_t - t > FAULT_HOLD_NS:
            self._fault = None
            return None
        return text

    # ------------------------------------------------------------ the recorder thread calls these

    def on_event(self, event: AlertEvent) -> None:
        if event.level not in (AlertLevel.WARN, AlertLevel.DANGER):
            return
        if self._open is not None and event.t_ns - self.before_ns <= self._open.info.end_ns:
            # Their windows overlap: one clip. (A cut already asked for only
            # makes one segment shorter.)
            self._open.extend(event, self.after_ns)
            self._due = False
            return
        if self._open is not None:  # no frame since the window passed (camera gone): keep what is there
            self._finish()
        self._open = _Window(IncidentInfo(
            time=self._wall().isoformat(timespec="milliseconds"),
            level=event.level.name,
            source=event.source,
            t_ns=event.t_ns,
            start_ns=event.t_ns - self.before_ns,
            end_ns=event.t_ns + self.after_ns,
            alerts=1,
            distance_m=event.distance_m,
            ttc_s=event.ttc_s,
            what=event.what(),
        ))
        log.info("incident: %s %s; keeping a clip", event.level.name, event.what())

    def after_frame(self, frame: Frame) -> None:
        self._last_t = frame.t_ns
        if self._open is None:
            return
        if self._due:
            # This frame opened a new segment: the window is all in finished ones.
            self._finish()
        elif frame.t_ns >= self._open.info.end_ns:
            self._due = True
            self.segments.cut()

    def close(self, timeout: float = 6.0) -> None:
        """At the end of the run: keep what there is of an open window, and
        let the clips being written finish (up to `timeout`: systemd stops
        the service within 10 s; an unfinished clip has no incident.json and
        is not listed, and its seconds are still in the newest segments)."""
        if self._open is not None:
            self._finish()
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("incident clip not finished at stop (its seconds are in the newest segments)")

    # ------------------------------------------------------------ internals

    def _needed(self, segment: Path) -> bool:
        """The ring keeps what a clip could need: the last `before_s`
        seconds, an open window, and the windows of clips being written."""
        if self._last_t is None:
            return False
        starts = [self._last_t - self.before_ns]
        if self._open is not None:
            starts.append(self._open.info.start_ns)
        with self._lock:
            starts += [i.start_ns for i in self._writing]
        span = segment_span(segment)
        return span is not None and span[1] >= min(starts)

    def _finish(self) -> None:
        """Hand the window to the clip writer's thread: copying a clip
        (decode, encode) takes seconds on a Pi, and the ring must go on."""
        window, self._open, self._due = self._open, None, False
        if window is None:
            return
        with self._lock:
            self._writing.append(window.info)
        if self._thread is None:
            # below the camera and the detector too: a clip can wait
            self._thread = background_thread(self._work, name="rearguard-incident", further=5)
            self._thread.start()
        self._jobs.put(window.info)

    def _work(self) -> None:
        while (info := self._jobs.get()) is not None:
            path = None
            try:
                path = self._write(info)
            except Exception as err:  # a clip that cannot be saved is a recording fault, nothing more
                log.error("incident clip not saved: %s", err)
                self._fault = (f"recording: incident clip not saved: {err}", self._last_t or info.end_ns)
            finally:
                with self._lock:
                    self._writing.remove(info)
            if path is not None:
                self.saved.append(path)
                log.info("incident clip %s", path)
                self._trim()
            self._jobs.task_done()

    def flush(self) -> None:
        """Wait until every clip handed to the clip writer is written."""
        if self._thread is not None:
            self._jobs.join()

    def _sources(self, info: IncidentInfo) -> Iterator[Recording]:
        current = self.segments.current
        for seg in self.segments.segments():
            if seg == current:
                continue
            span = segment_span(seg)
            if span is None or span[1] < info.start_ns or span[0] > info.end_ns:
                continue
            yield Recording.open(seg, decode_first=False)  # its JPEGs are copied, never decoded

    def _write(self, info: IncidentInfo) -> Path | None:
        sources = list(self._sources(info))
        if not sources:
            log.warning("incident at t=%d: no footage to keep (recording was stopped)", info.t_ns)
            return None
        self.directory.mkdir(exist_ok=True)
        # Past every inc-* folder, also one a kill left without its incident.json.
        index = 1 + max((_index(p) for p in self.directory.glob(CLIP_GLOB)), default=0)
        path = self.directory / f"inc-{index:06d}"
        meta = sources[0].meta
        try:
            with RecordingWriter(
                path, width=meta.camera.width, height=meta.camera.height, fps=meta.camera.fps,
                hfov_deg=meta.camera.hfov_deg, sensors=meta.sensors,
                mount_height_m=meta.camera.mount_height_m, pitch_deg=meta.camera.pitch_deg,
                source=f"incident {info.level} ({info.source}) from {meta.source}",
                copy_jpeg=True,
            ) as out:
                for rec in sources:
                    # The segments' JPEGs, copied one at a time, never decoded.
                    for frame in rec.jpeg_items(info.start_ns, info.end_ns):
                        if isinstance(frame, JpegFrame):  # a damaged frame is left out, not the whole clip
                            out.write_jpeg(frame)
                    out.write_ranges(r for r in rec.ranges if info.start_ns <= r.t_ns <= info.end_ns)
            (path / INCIDENT).write_text(json.dumps(asdict(info), indent=2) + "\n", encoding="utf-8")
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)  # no half clip that looks like a whole one
            raise
        return path

    def _trim(self) -> None:
        kept = clips(self.directory)
        sizes = {p: sum(f.stat().st_size for f in p.iterdir() if f.is_file()) for p in kept}
        total = sum(sizes.values())
        for old in kept[:-1]:
            if total <= self.budget:
                break
            log.info("incident budget: deleting %s", old)
            shutil.rmtree(old, ignore_errors=True)
            total -= sizes[old]


def _index(p: Path) -> int:
    try:
        return int(p.name.split("-")[1])
    except (IndexError, ValueError):
        return 0


def clips(directory: Path) -> list[Path]:
    """The incident clips in DIR/incidents (or DIR itself), oldest first."""
    if not directory.is_dir():
        return []
    return sorted((p for p in directory.glob(CLIP_GLOB) if (p / INCIDENT).is_file()), key=_index)


_INCIDENT_TYPES: dict[str, tuple[type, ...]] = {
    "time": (str,), "level": (str,), "source": (str,), "t_ns": (int,), "start_ns": (int,), "end_ns": (int,),
    "alerts": (int,), "distance_m": (int, float, type(None)), "ttc_s": (int, float, type(None)),
}


def read_incident(clip: Path) -> IncidentInfo:
    """incident.json, each field checked (a null or numeric `time` is
    damage); keys a newer writer added are ignored. Raises RecordingError."""
    path = clip / INCIDENT
    try:
        data: Any = json.loads(read_regular(path, 1 * MB))
    except (OSError, ValueError) as err:
        raise RecordingError(f"{path}: not a valid incident description ({err})") from None
    except RecursionError:
        raise RecordingError(f"{path}: not a valid incident description (nested too deeply)") from None
    if not isinstance(data, dict):
        raise RecordingError(f"{path}: not a valid incident description (not a JSON object)")
    for name, types in _INCIDENT_TYPES.items():
        value = data.get(name)
        if name not in data or isinstance(value, bool) or not isinstance(value, types):
            raise RecordingError(f"{path}: not a valid incident description ({name}: {value!r})")
    what = data.get("what", "")  # optional: clips kept before it was written have none
    if not isinstance(what, str):
        raise RecordingError(f"{path}: not a valid incident description (what: {what!r})")
    return IncidentInfo(**{name: data[name] for name in _INCIDENT_TYPES}, what=what)


def find_clips(directory: str | Path) -> list[Path]:
    """Clips under a recording directory (DIR/incidents) or an incidents folder itself."""
    d = Path(directory)
    if not d.is_dir():
        raise RecordingError(f"not a directory: {d}")
    return clips(d / INCIDENTS) if (d / INCIDENTS).is_dir() else clips(d)


class DeviceRecording:
    """The device's recording: the ring of segments and the incident clips,
    driven by the recorder thread (worker.RecorderThread)."""

    def __init__(self, segments: SegmentedRecorder, clips: IncidentClips | None = None) -> None:
        self.segments = segments
        self.clips = clips

    @property
    def fault(self) -> str | None:
        return self.segments.fault or (self.clips.fault if self.clips is not None else None)

    def write_frame(self, frame: Frame) -> None:
        self.segments.write_frame(frame)

    def write_ranges(self, ranges: Iterable[Range]) -> None:
        self.segments.write_ranges(ranges)

    def on_event(self, event: AlertEvent) -> None:
        if self.clips is not None:
            self.clips.on_event(event)

    def close(self) -> None:
        self.segments.close()  # first: then every frame is in a finished segment
        if self.clips is not None:
            self.clips.close()
