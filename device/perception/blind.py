"""Is the camera seeing anything? A covered, dark or fogged lens still sends
changing frames (sensor noise), so the frozen-frame check never fires, and
with nothing detected and nothing looming the device would say CLEAR.

`lens_stats` measures one frame on a small grey copy (80x45: cheap, and
the 8x8 averaging of a 640x360 frame takes sensor noise down eightfold); `BlindWatch` turns a run of
blind frames into a fault and clears it by itself when the view comes back.

What separates a blind lens from a plain scene was measured (docs/blind-camera.md,
`python -m device.tools.blind_eval`): a dark lens has almost no light
anywhere (the 99th percentile of brightness stays low: a street at dusk has
lamps and lit surfaces); a covered or fogged lens has no edges left at all
(the Laplacian's variance on the small grey image stays near the sensor
noise's, where a plain wall or the sky keeps some edge: a horizon, a seam,
texture).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from device.core.clock import NS_PER_S

SMALL = (80, 45)  # width, height of the grey copy the statistics are taken on

# Thresholds: measured, see docs/blind-camera.md.
DARK_P99 = 40.0  # 99th percentile of grey level (0..255) below this: no light reaches the sensor
FLAT_LAPLACIAN_VAR = 20.0  # Laplacian variance below this: no edge anywhere (covered, fogged)


@dataclass(frozen=True)
class LensStats:
    mean: float  # grey level 0..255
    p99: float  # 99th percentile of grey level
    contrast: float  # standard deviation of grey level
    sharpness: float  # variance of the Laplacian

    @property
    def dark(self) -> bool:
        return self.p99 < DARK_P99

    @property
    def flat(self) -> bool:
        return self.sharpness < FLAT_LAPLACIAN_VAR

    def why_blind(self) -> str | None:
        """"dark" / "no detail" for a frame the camera sees nothing in, else None."""
        if self.dark:
            return "dark"
        if self.flat:
            return "no detail"
        return None


def lens_stats(image: np.ndarray) -> LensStats:
    """Statistics of one BGR (or grey) uint8 frame, on a 160x90 grey copy."""
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(grey, SMALL, interpolation=cv2.INTER_AREA).astype(np.float32)
    lap = cv2.Laplacian(small, cv2.CV_32F)
    return LensStats(
        mean=float(small.mean()),
        p99=float(np.percentile(small, 99)),
        contrast=float(small.std()),
        sharpness=float(lap.var()),
    )


class BlindWatch:
    """A camera fault once every frame for `hold_s` was blind; it clears at
    the first frame that is not. Pure: fed frames and their times, no clock.

    `every` measures one frame in that many (the rest keep the last verdict):
    at 15 fps and every=3 a blind lens is judged 5 times a second.
    """

    def __init__(self, hold_s: float = 1.0, every: int = 1) -> None:
        self.hold_ns = round(hold_s * NS_PER_S)
        self.every = max(1, every)
        self._n = 0
        self._since_ns: int | None = None  # first frame of the current blind run
        self._last_ns: int | None = None
        self._why: str | None = None
        self.last: LensStats | None = None

    def saw(self, t_ns: int, image: np.ndarray) -> None:
        self._n += 1
        if self._n % self.every and self.last is not None:
            return
        self.last = lens_stats(image)
        why = self.last.why_blind()
        if why is None:
            self._since_ns = None
        elif self._since_ns is None:
            self._since_ns = t_ns
        self._why, self._last_ns = why, t_ns

    def blind_for_ns(self) -> int:
        """How long the frames have been blind (0 while the camera sees)."""
        if self._since_ns is None or self._last_ns is None:
            return 0
        return self._last_ns - self._since_ns

    def fault_text(self) -> str | None:
        """"lens covered or fogged (no detail for 1.2 s)" / "lens dark (...)" once blind
        for hold_s, else None."""
        blind = self.blind_for_ns()
        if self._why is None or blind < self.hold_ns:
            return None
        what = "lens dark" if self._why == "dark" else "lens covered or fogged"
        return f"{what} ({self._why} for {blind / NS_PER_S:.1f} s)"
