"""An accelerator's detector that hands over to the CPU model when it fails.

A backend that breaks at run time (the Hailo driver gone, the AI Camera's
network no longer sending results) must not take detection down: the
failure becomes a named fault (`Part.ACCELERATOR`) and from the next call
on the CPU model detects on the same frames. `detect` never raises for the
accelerator's sake; only a CPU model that cannot be built (ModelError)
comes through, as it would without an accelerator.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from device.core.faults import Fault, Kind, Part
from device.core.ports import Detector
from device.core.types import Detections

log = logging.getLogger(__name__)


class BackendError(Exception):
    """An accelerator that cannot be opened (`kind` UNAVAILABLE) or broke (FAILED); phrased for a person."""

    def __init__(self, message: str, kind: Kind = Kind.FAILED) -> None:
        super().__init__(message)
        self.kind = kind

    def fault(self, backend: str) -> Fault:
        return Fault(Part.ACCELERATOR, self.kind, f"{backend}: {self}")


class FallbackDetector:
    """`primary` until it raises, then the CPU detector `make_cpu()` builds."""

    def __init__(self, primary: Detector, backend: str, make_cpu: Callable[[], Detector]) -> None:
        self.backend = backend
        self._primary: Detector | None = primary
        self._make_cpu = make_cpu
        self._cpu: Detector | None = None
        self.fault: Fault | None = None

    @property
    def active(self) -> str:
        """The backend detecting now: the accelerator's name, or "cpu"."""
        return self.backend if self._primary is not None else "cpu"

    @property
    def faults(self) -> tuple[Fault, ...]:
        return () if self.fault is None else (self.fault,)

    def detect(self, image: np.ndarray) -> Detections:
        if self._primary is not None:
            try:
                return self._primary.detect(image)
            except Exception as err:  # any accelerator failure: hand over, never stop detection
                kind = err.kind if isinstance(err, BackendError) else Kind.FAILED
                self.fault = Fault(Part.ACCELERATOR, kind,
                                   f"{self.backend} failed ({err}); detecting with the CPU model instead")
                log.error("%s", self.fault)
                self._drop_primary()
        if self._cpu is None:
            self._cpu = self._make_cpu()
        return self._cpu.detect(image)

    def _drop_primary(self) -> None:
        primary, self._primary = self._primary, None
        try:
            if primary is not None:
                primary.close()
        except Exception:  # closing a broken device may fail too; it is already out of use
            log.exception("closing the %s backend failed", self.backend)

    def close(self) -> None:
        self._drop_primary()
        if self._cpu is not None:
            self._cpu.close()
