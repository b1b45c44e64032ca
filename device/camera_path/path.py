"""The camera path as the loop sees it: one `poll()` for the newest results
of every stage, one `faults(now)` for everything that can go wrong on the
camera side, one `close()` for its threads and frame sources."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from device.camera_path.runners import Runner
from device.core.camera import CameraResult
from device.core.clock import NS_PER_S, Clock
from device.core.faults import Fault, Kind, Part
from device.perception.flow import FlowResult
from device.perception.looming import LoomingResult


@dataclass(frozen=True)
class Seen:
    """The newest result of each stage since the last poll (None: none new)."""

    camera: CameraResult | None = None  # the main stage: detect, or frames-only
    looming: LoomingResult | None = None
    flow: FlowResult | None = None  # each track's box and scale at camera rate


NOTHING = Seen()


class ResultMeter(Protocol):
    """Notes each camera result the loop takes (the live pace watch)."""

    def restart(self, now_ns: int) -> None: ...
    def note(self, frame_t_ns: int, now_ns: int, detect_ms: float | None = None) -> None: ...


class CameraPath:
    """A runner (inline, threaded, paced) of stages (detect or frames-only,
    then looming), with the camera's stall and frozen-image checks on the
    frames the main stage takes. Owns the runner and so its frame sources."""

    def __init__(self, runner: Runner, clock: Clock, max_age_s: float, *, meter: ResultMeter | None = None) -> None:
        self.runner = runner
        self.clock = clock
        self.meter = meter
        self._stall_ns = round(max_age_s * NS_PER_S)
        self._started_ns = clock.now_ns()
        self._generation = runner.generation
        self.last_looming: LoomingResult | None = None

    def start(self) -> None:
        """Starts the runner's threads (if any); the stall timer starts now."""
        self._started_ns = self.clock.now_ns()
        if self.meter is not None and self.runner.generation:
            self.meter.restart(self._started_ns)
        self.runner.start()

    def _note_new_source(self) -> None:
        # A camera that came up late, or came back: it gets `camera.max_age_s`
        # to deliver, and its pace is measured afresh.
        generation = self.runner.generation
        if generation != self._generation:
            self._generation = generation
            self._started_ns = self.clock.now_ns()
            if self.meter is not None:
                self.meter.restart(self._started_ns)

    def poll(self) -> Seen:
        self._note_new_source()
        results = self.runner.poll()
        if not results:
            return NOTHING
        seen = Seen(**results)
        if seen.camera is not None and self.meter is not None:
            self.meter.note(seen.camera.t_ns, self.clock.now_ns(), seen.camera.detect_ms)
        if seen.looming is not None:
            self.last_looming = seen.looming
        return seen

    @property
    def metering(self) -> bool:
        """A frame source has been open: there is a pace to judge."""
        return self.meter is not None and self._generation > 0

    @property
    def ended(self) -> bool:
        return self.runner.ended

    def faults(self, now_ns: int) -> tuple[Fault, ...]:
        self._note_new_source()
        return self._camera_faults(now_ns) + tuple(
            Fault(stage.part, Kind.FAILED, text) for stage, text in self.runner.side_errors())

    def unavailable(self) -> tuple[Fault, ...]:
        """The camera could not be opened (cleared when a retry succeeds)."""
        text = self.runner.unavailable
        return (Fault(Part.CAMERA, Kind.UNAVAILABLE, text),) if text is not None else ()

    def _camera_faults(self, now_ns: int) -> tuple[Fault, ...]:
        runner = self.runner
        if unavailable := self.unavailable():
            return unavailable
        error = runner.error
        if error:
            return (Fault(Part.CAMERA, Kind.ENDED if runner.ended else Kind.FAILED, error),)
        watch = runner.watch
        arrived = self._since(watch.arrived_ns, now_ns)
        if arrived > self._stall_ns:
            return (Fault(Part.CAMERA, Kind.STALLED, f"no frame for {arrived / NS_PER_S:.1f} s"),)
        # The main stage takes a frame each time it comes free: a detector
        # slower than max_age_s (a Pi Zero's slow end, 0.55 s) leaves every
        # frame it took older than that before it takes the next. Its own pace
        # is allowed for, up to max_age_s more (all of it until the pace is
        # known); a main stage that stops taking frames (a hung inference) is a
        # fault after that. (Timed on the frames taken, this read "no frame for
        # 0.5 s" twice a second on a Zero whose camera delivered 15.)
        pace = watch.interval_ns()
        taken = self._since(watch.last_ns, now_ns)
        if taken > self._stall_ns + (self._stall_ns if pace is None else min(pace, self._stall_ns)):
            return (Fault(Part.CAMERA, Kind.STALLED, f"no frame detected for {taken / NS_PER_S:.1f} s"),)
        frozen = runner.watch.frozen_for_ns()
        if frozen > self._stall_ns:
            return (Fault(Part.CAMERA, Kind.FROZEN, f"image frozen for {frozen / NS_PER_S:.1f} s"),)
        if (lens := runner.watch.lens.fault_text()) is not None:  # covered, dark or fogged
            return (Fault(Part.CAMERA, Kind.BLIND, lens),)
        return ()

    def _since(self, t_ns: int | None, now_ns: int) -> int:
        """Time since t_ns, or since this source started if later (or t_ns is None)."""
        return now_ns - (max(t_ns, self._started_ns) if t_ns is not None else self._started_ns)

    def close(self) -> None:
        self.runner.close()
