"""Frame sources: a Raspberry Pi camera, a webcam, or a video file.

Every source runs its blocking capture in its own daemon thread and keeps only
the newest frame (a one-slot mailbox): the detector is slower than the camera,
and a stale frame is worse than a skipped one. `latest()` never blocks.

Hardware libraries are imported lazily (picamera2 inside `Picamera2Source`),
so this module imports on any laptop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

import cv2
import numpy as np

from device.core.clock import Clock
from device.core.ports import FrameSource  # noqa: F401  (the port, re-exported)
from device.core.priority import background_thread
from device.core.types import Frame

log = logging.getLogger(__name__)

T = TypeVar("T")

PICAMERA2_MISSING = (
    "picamera2 is not available: this is not a Raspberry Pi with python3-picamera2 "
    "installed; use --source webcam or a video file"
)


class CameraError(Exception):
    """A camera or video that cannot be used, phrased for a person."""


class LatestSlot(Generic[T]):
    """A thread-safe one-slot mailbox: a put replaces the unread value.

    `dropped` counts values replaced before anyone read them (frames the
    consumer was too slow for). `close()` says no more values will come and
    wakes anyone in `wait()`.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._value: T | None = None
        self._full = False
        self._closed = False
        self._dropped = 0

    def put(self, value: T) -> None:
        with self._cond:
            if self._full:
                self._dropped += 1
            self._value = value
            self._full = True
            self._cond.notify_all()

    def take(self) -> T | None:
        with self._cond:
            if not self._full:
                return None
            value, self._value, self._full = self._value, None, False
            return value

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a value is waiting or the slot is closed; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._full or self._closed, timeout)

    @property
    def dropped(self) -> int:
        with self._cond:
            return self._dropped

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed


class GrabberThread:
    """Runs a blocking `grab()` in a daemon thread and posts stamped frames to a slot.

    Each image is stamped with `clock.now_ns()` as soon as `grab()` returns and
    numbered from 0. `grab()` returning None `max_none` times in a row (a file at
    its end, a camera unplugged) or raising stops the thread and sets `error`.
    """

    def __init__(
        self,
        grab: Callable[[], np.ndarray | None],
        clock: Clock,
        *,
        name: str = "grabber",
        max_none: int = 5,
        none_error: str = "camera stopped delivering",
        slot: LatestSlot[Frame] | None = None,
        finite: bool = False,
    ) -> None:
        self._grab = grab
        self._finite = finite  # a file: running out of frames is its end
        self.ended = False
        self._clock = clock
        self._max_none = max_none
        self._none_error = none_error
        self.slot: LatestSlot[Frame] = slot if slot is not None else LatestSlot()
        self.stop_event = threading.Event()
        self._error: str | None = None
        self._thread = background_thread(self._run, name=name)

    def start(self) -> GrabberThread:
        self._thread.start()
        return self

    @property
    def error(self) -> str | None:
        return self._error

    def _run(self) -> None:
        seq = 0
        nones = 0
        try:
            while not self.stop_event.is_set():
                try:
                    image = self._grab()
                except Exception as err:  # any driver failure ends the source, with its reason
                    if not self.stop_event.is_set():
                        self._error = f"camera error: {err}"
                    return
                if self.stop_event.is_set():
                    return
                if image is None:
                    nones += 1
                    if nones >= self._max_none:
                        self._error = self._none_error
                        self.ended = self._finite
                        return
                    continue
                nones = 0
                self.slot.put(Frame(seq=seq, t_ns=self._clock.now_ns(), image=image))
                seq += 1
        finally:
            self.slot.close()

    def close(self, timeout: float = 2.0) -> None:
        """Ask the thread to stop and wait for it (a grab in progress is allowed to finish)."""
        self.stop_event.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)


class _ThreadedSource:
    """What OpenCVSource and Picamera2Source share: the slot, the thread, close()."""

    width: int
    height: int
    _grabber: GrabberThread

    def latest(self) -> Frame | None:
        return self._grabber.slot.take()

    @property
    def error(self) -> str | None:
        return self._grabber.error

    @property
    def ended(self) -> bool:
        return self._grabber.ended

    @property
    def dropped(self) -> int:
        """Frames that arrived while an older one was still unread (the consumer was busy)."""
        return self._grabber.slot.dropped

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a frame is waiting or the source has stopped; False on timeout."""
        return self._grabber.slot.wait(timeout)

    def _release(self) -> None:
        raise NotImplementedError

    _closed = False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._grabber.close()
        if self._grabber._thread.is_alive():
            # Still inside a grab: releasing the capture under it would free
            # what it reads into. Left to the process's end (device.cli.ending).
            log.error("camera: the capture thread did not stop within its bound; not released")
            return
        self._release()

    def __enter__(self) -> _ThreadedSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _rotate(image: np.ndarray) -> np.ndarray:
    return cv2.rotate(image, cv2.ROTATE_180)


class OpenCVSource(_ThreadedSource):
    """A webcam (int index) or a video file (path) through cv2.VideoCapture.

    A webcam is asked for `width`x`height` at `fps` and may choose a nearby mode:
    the `width`/`height` attributes report what it delivers. A file keeps its
    own size and frame rate (those requests describe a camera; `fps` is used
    only for a file that does not state its rate). With `realtime_file` a file
    is read at its frame rate, so it behaves like a live camera; without it, as
    fast as it decodes. At the end of a file `error` becomes "end of video".
    """

    def __init__(
        self,
        spec: int | str,
        clock: Clock,
        *,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        realtime_file: bool = True,
        rotate_180: bool = False,
    ) -> None:
        self._rotate = rotate_180
        if isinstance(spec, bool) or not isinstance(spec, int | str):
            raise CameraError(f"camera source must be a webcam index or a video file path, not {spec!r}")
        if isinstance(spec, int):
            self._cap = self._open_webcam(spec, width, height, fps)
            self.is_file = False
            self.width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
            self.height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            if self.width <= 0 or self.height <= 0:  # some backends only know after a frame
                ok, first = self._cap.read()
                if not ok or first is None:
                    self._cap.release()
                    raise CameraError(f"webcam {spec} opened but delivers no frames")
                self.height, self.width = first.shape[:2]
            grab: Callable[[], np.ndarray | None] = self._read
            max_none, none_error = 5, "camera stopped delivering"
        else:
            self._cap = self._open_file(Path(spec))
            self.is_file = True
            self.width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
            self.height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            grab = self._read
            own_rate = self._cap.get(cv2.CAP_PROP_FPS)
            rate = own_rate if own_rate and np.isfinite(own_rate) and own_rate > 0 else fps
            if realtime_file:
                if not rate:
                    self._cap.release()
                    raise CameraError(f"video file {spec} does not say its frame rate: give fps")
                grab = self._paced(self._read, 1.0 / rate)
            fps = rate
            # A file read that fails once is its end: there is nothing to wait for.
            max_none, none_error = 1, "end of video"
        self.fps: float | None = fps or (self._cap.get(cv2.CAP_PROP_FPS) or None)
        # Assigned before start(): the paced grab reads self._grabber.stop_event.
        self._grabber = GrabberThread(
            grab, clock, name=f"camera {spec}", max_none=max_none, none_error=none_error, finite=self.is_file
        )
        self._grabber.start()

    @staticmethod
    def _open_webcam(
        index: int, width: int | None, height: int | None, fps: float | None
    ) -> cv2.VideoCapture:
        if index < 0:
            raise CameraError(f"webcam index must be 0 or more, got {index}")
        cap = cv2.VideoCapture(index)
        if not cap.isOpened():
            cap.release()
            raise CameraError(
                f"no camera at webcam index {index}: check it is plugged in and not in use "
                "by another program"
            )
        if width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        if fps:
            cap.set(cv2.CAP_PROP_FPS, fps)
        # Only one frame of driver buffering: an old queued frame is a stale frame.
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return cap

    @staticmethod
    def _open_file(path: Path) -> cv2.VideoCapture:
        if not path.exists():
            raise CameraError(f"video file not found: {path}")
        if not path.is_file():
            raise CameraError(f"not a video file: {path}")
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"cannot read video file {path}: not a video OpenCV can decode")
        return cap

    def _read(self) -> np.ndarray | None:
        ok, image = self._cap.read()
        if not ok or image is None:
            return None
        if image.shape[:2] != (self.height, self.width):
            # Keep the promise of width/height (a webcam that changed mode, a file whose
            # size changes mid-stream): a recorder sized for them must not get another size.
            image = cv2.resize(image, (self.width, self.height), interpolation=cv2.INTER_AREA)
        if self._rotate:
            image = _rotate(image)
        return image

    def _paced(
        self, read: Callable[[], np.ndarray | None], period_s: float
    ) -> Callable[[], np.ndarray | None]:
        """Deliver frame i no earlier than i*period after the first (real time: this is I/O)."""
        start: float | None = None
        i = 0

        def grab() -> np.ndarray | None:
            nonlocal start, i
            if start is None:
                start = time.monotonic()
            delay = start + i * period_s - time.monotonic()
            if delay > 0 and self._grabber.stop_event.wait(delay):
                return None
            i += 1
            return read()

        return grab

    def _release(self) -> None:
        self._cap.release()


class Picamera2Source(_ThreadedSource):
    """The Raspberry Pi camera through picamera2 (Raspberry Pi OS's python3-picamera2).

    The main stream is "RGB888", which picamera2 lays out as B, G, R bytes: the
    order OpenCV and the detector expect. FrameDurationLimits pins the frame
    rate; few buffers and queue=False so every capture is a fresh frame.
    """

    BUFFER_COUNT = 3

    def __init__(
        self,
        clock: Clock,
        *,
        width: int,
        height: int,
        fps: float,
        rotate_180: bool = False,
        camera_num: int = 0,
    ) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise CameraError(PICAMERA2_MISSING) from None
        if fps <= 0:
            raise CameraError(f"camera fps must be positive, got {fps}")
        try:
            cam = Picamera2(camera_num)
        except Exception as err:  # libcamera reports "no camera" as RuntimeError/IndexError
            raise CameraError(
                f"no Raspberry Pi camera {camera_num} ({err}): check the ribbon cable and "
                "that the camera is detected (rpicam-hello --list-cameras)"
            ) from None
        self._cam = cam
        frame_us = round(1_000_000 / fps)
        try:
            config = cam.create_video_configuration(
                main={"size": (width, height), "format": "RGB888"},
                buffer_count=self.BUFFER_COUNT,
                controls={"FrameDurationLimits": (frame_us, frame_us)},
                queue=False,
            )
            cam.configure(config)
            # libcamera may adjust the size (alignment, sensor limits): report what it chose.
            self.width, self.height = cam.camera_configuration()["main"]["size"]
            cam.start()
        except Exception as err:
            cam.close()
            raise CameraError(f"cannot start the camera at {width}x{height} {fps} fps: {err}") from None
        self.fps = fps
        self._rotate = rotate_180
        self._grabber = GrabberThread(self._capture, clock, name="picamera2").start()

    def _capture(self) -> np.ndarray | None:
        image = self._cam.capture_array("main")
        if image is None:
            return None
        if image.ndim == 3 and image.shape[2] == 4:  # an XBGR8888 stream: drop the padding byte
            image = np.ascontiguousarray(image[:, :, :3])
        if self._rotate:
            image = _rotate(image)
        return image

    def _release(self) -> None:
        try:
            self._cam.stop()
        finally:
            self._cam.close()
