"""Detector backends: where the network runs (Frigate's shape: a narrow
`Detector` interface, one module per backend).

- `cpu_onnx`: YOLOX on onnxruntime, as ever.
- `imx500`: the AI Camera runs the network on its sensor; the backend owns
  the camera (`Imx500Source`, a FrameSource) and `AttachedDetector` returns
  the detections that came with each frame.
- `hailo`: the AI Kit / AI HAT+ on a Pi 5; frames handed to `Hailo.run`.

`choose_backend` picks one from `detector.backend` and what `probe` finds;
`open_backend` builds it, falling back to the CPU model with a fault when an
accelerator cannot be opened, and wrapping it in `FallbackDetector` so one
that fails later hands over to the CPU model too. docs/accelerators.md says
what is tested without the hardware and what needs it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from device.core.clock import Clock
from device.core.coco import COCO_CLASSES, class_id
from device.core.config import Config
from device.core.faults import Fault
from device.core.ports import Detector

from .choose import Choice, Presence, Probe, choose_backend, probe
from .fallback import BackendError, FallbackDetector

__all__ = ["BackendError", "Choice", "FallbackDetector", "Opened", "Presence", "Probe", "choose_backend",
           "open_backend", "probe"]

log = logging.getLogger(__name__)


@dataclass
class Opened:
    """A backend, built. `source` is the AI Camera when it owns the camera
    (use it as the FrameSource instead of opening the camera); None means
    open the camera as usual. `faults`: an accelerator asked for and not
    opened (detection runs on the CPU model)."""

    backend: str
    detector: Detector
    source: Any = None
    faults: tuple[Fault, ...] = ()
    reopen: Callable[[], Any] | None = None  # the AI Camera opened again (the frames thread calls it)


def open_backend(choice: Choice, config: Config, make_cpu: Callable[[], Detector], clock: Clock, *,
                 devices: Any = None, picamera2_cls: Any = None) -> Opened:
    """Build the chosen backend. `make_cpu` builds the CPU detector (now
    for cpu, or later, when an accelerator fails)."""
    d = config.detector
    allowed: Sequence[int] = [class_id(c) for c in d.classes]
    log.info("detector backend: %s (%s)", choice.backend, choice.reason)
    try:
        if choice.backend == "hailo":
            from .hailo import HailoDetector
            hailo = HailoDetector(d.accelerator_model, threshold=d.score_threshold, allowed=allowed, devices=devices)
            return Opened("hailo", FallbackDetector(hailo, "hailo", make_cpu))
        if choice.backend == "imx500":
            from .imx500 import AttachedDetector, Imx500Source
            cam = config.camera

            def make_source() -> Imx500Source:
                return Imx500Source(clock, width=cam.width, height=cam.height, fps=cam.fps,
                                    model_path=d.accelerator_model, threshold=d.score_threshold, allowed=allowed,
                                    coco80=COCO_CLASSES, rotate_180=cam.rotate_180, devices=devices,
                                    picamera2_cls=picamera2_cls)

            src = make_source()
            attached = AttachedDetector(src)

            def reopen() -> Imx500Source:
                new = make_source()  # raises BackendError while the camera is not back
                attached.follow(new)
                return new

            return Opened("imx500", FallbackDetector(attached, "imx500", make_cpu), source=src, reopen=reopen)
    except BackendError as err:
        fault = err.fault(choice.backend)
        log.error("%s; using the CPU model", fault)
        return Opened("cpu", make_cpu(), faults=(fault,))
    return Opened("cpu", make_cpu())
