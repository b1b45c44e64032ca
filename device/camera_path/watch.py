"""Staleness and frozen-image checks of the frames a camera path takes."""

from __future__ import annotations

import hashlib
import statistics
from collections import deque

import numpy as np

from device.core.types import Frame
from device.perception.blind import BlindWatch


def image_signature(image: np.ndarray) -> bytes:
    """A cheap fingerprint: a real sensor's noise changes it every frame, a
    frozen camera (or a driver re-sending its last buffer) does not."""
    return hashlib.blake2b(np.ascontiguousarray(image[::8, ::8]).data, digest_size=16).digest()


INTERVALS = 8  # recent gaps between the frames taken, for their median


class FrameWatch:
    """When the camera last delivered a frame, when the camera path last took
    one and how far apart it takes them, since when its frames have been
    bit-identical, and whether the lens sees anything (`lens`)."""

    def __init__(self) -> None:
        self.arrived_ns: int | None = None  # the newest frame the camera delivered, taken or not
        self.last_ns: int | None = None  # the newest frame the main stage took
        self._gaps: deque[int] = deque(maxlen=INTERVALS)
        self._signature: bytes | None = None
        self._changed_ns: int | None = None
        self.lens = BlindWatch()

    def arrived(self, t_ns: int) -> None:
        """The camera delivered a frame of this time (cheap: every frame)."""
        if self.arrived_ns is None or t_ns > self.arrived_ns:
            self.arrived_ns = t_ns

    def saw(self, frame: Frame) -> None:
        """The main stage took this frame (checked: frozen, lens)."""
        self.arrived(frame.t_ns)
        if self.last_ns is not None and frame.t_ns > self.last_ns:
            self._gaps.append(frame.t_ns - self.last_ns)
        self.last_ns = frame.t_ns
        self.lens.saw(frame.t_ns, frame.image)
        sig = image_signature(frame.image)
        if sig != self._signature:
            self._signature, self._changed_ns = sig, frame.t_ns

    def frozen_for_ns(self) -> int:
        """How long the frames have been bit-identical (0 while they change)."""
        if self.last_ns is None or self._changed_ns is None:
            return 0
        return self.last_ns - self._changed_ns

    def interval_ns(self) -> int | None:
        """The median gap between the frames taken lately (None before two):
        the detector's own pace, since the main stage takes a frame only
        when it comes free (a Pi Zero's 0.5 s and more)."""
        return round(statistics.median(self._gaps)) if self._gaps else None
