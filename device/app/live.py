"""The device's lifecycle when it runs live: the parts come from the
composition root (`device.app.compose`); here they are greeted with,
self-tested, looped and shut down cleanly. `rearguard run` is a thin
wrapper around `run_device`.

Start-up order matters to the runner: the outputs come first (without them
nothing can be said), then every other part; a part that fails becomes a
fault and the device carries on with what works. systemd hears READY only
after the self-test, and WATCHDOG from the loop itself, so a stalled loop
gets the service restarted; until then the stall guard plays FAULT.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TextIO

from gpiozero.exc import BadPinFactory, PinFactoryFallback

from device import __version__
from device.app import heap_trim
from device.app.compose import RecordingRefused, compose_device, is_file_source, start_preview
from device.app.selftest import greet, self_test
from device.app.service_hint import hint as service_hint
from device.app.systemd_notify import Notifier, WatchdogPinger
from device.app.unit_notes import unit_notes
from device.core.clock import NS_PER_S
from device.core.config import Config
from device.core.faults import Part, texts
from device.core.priority import lowering
from device.core.types import AlertEvent, Threat
from device.output.alerts import READY, AlertError
from device.output.button import ButtonControl, GatedSink
from device.output.power_cue import PowerCues
from device.pipeline import run_forever
from device.record.worker import summary as recording_summary
from device.view.terminal import StatusLine, Tolerant

log = logging.getLogger(__name__)

# The button was held: the device stopped cleanly (outputs off) and asks
# systemd to power the Pi off (rearguard.service: OnFailure= runs
# rearguard-poweroff.service for this status only; it is not restarted).
EXIT_POWER_OFF = 75

NO_PINS_HINT = ("gpiozero found no pin library it can use (this is not a Raspberry Pi, or lgpio is missing). "
                "On a laptop add --mock-pins (or set GPIOZERO_PIN_FACTORY=mock); on a Pi install lgpio "
                "(sudo apt install python3-lgpio; scripts/install-pi.sh does) and see hardware.md.")
KEEP_EVENTS = 1000  # alert changes a live run keeps (the count is of all): bounded for hours of running


@dataclass(frozen=True)
class RunOptions:
    source: str = "pi"
    record: str | None = None
    mock_pins: bool = False
    duration: float | None = None
    preview: tuple[str, int] | None = None
    self_test: bool = True
    preview_for: float | None = None  # seconds the preview is served, then closed (`rearguard aim`)


def run_device(cfg: Config, opts: RunOptions, *, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """The live device, start to stop. Its perception, recording and preview
    threads run lowered, so the loop (sensors and alert rhythms) gets the
    CPU first whenever they all want it (device.core.priority)."""
    with lowering():
        return _run(cfg, opts, out=out, err=err)


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)  # SIGHUP: the SSH session that started it closed


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """From the first moment to the last, SIGTERM, SIGINT and SIGHUP only ask
    the device to stop: every exit then goes through the shutdown that turns
    the outputs off (issue 23: a signal during the greeting left them on, and
    SIGHUP killed the device with no shutdown at all)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals are the main thread's; a caller in another thread handles its own
        return

    def on_signal(signum: int, _frame: Any) -> None:
        if not stop.is_set():
            log.warning("%s: stopping", signal.Signals(signum).name)
        stop.set()

    before = {s: signal.signal(s, on_signal) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def _run(cfg: Config, opts: RunOptions, *, out: TextIO, err: TextIO) -> int:
    stop = threading.Event()
    with stop_on_signals(stop):
        # The device never depends on its terminal: a closed stdout or stderr is
        # logged once and then written to /dev/null (device.view.terminal.Tolerant).
        return _run_until(cfg, opts, stop, out=Tolerant(out), err=Tolerant(err))


def _run_until(cfg: Config, opts: RunOptions, stop: threading.Event, *, out: Any, err: Any) -> int:
    from device.view.preview import PreviewError

    def pause(seconds: float) -> None:  # start-up waits end early when asked to stop
        stop.wait(seconds)

    notifier = Notifier()
    # Before any part allocates: frame-sized blocks get mappings of their
    # own, so the arenas' level cannot shift over a long run (heap_trim.py)
    heap_trim.fix_mmap_threshold()
    try:
        with warnings.catch_warnings():
            # gpiozero warns once per pin library it tries (eight lines on a
            # laptop) before failing; the one message below says it all.
            warnings.simplefilter("ignore", PinFactoryFallback)
            device = compose_device(cfg, source=opts.source, mock_pins=opts.mock_pins, record=opts.record)
    except (AlertError, RecordingRefused) as e:
        # Without outputs the device cannot tell the runner anything, and a
        # recording asked for on the command line is a promise: stop loud
        # (systemd restarts it, and the journal says why).
        if isinstance(e.__cause__, BadPinFactory):
            print(f"rearguard: no GPIO pins here: {NO_PINS_HINT}", file=err)
        else:
            print(f"rearguard: {e}", file=err)
            if not opts.mock_pins and (h := service_hint(str(e))):
                print(f"rearguard: {h}", file=err)
        return 1
    clock = device.clock
    button: Any = None
    power_off = threading.Event()  # the button was held: exit EXIT_POWER_OFF once the outputs are off
    try:
        if opts.self_test and not stop.is_set():
            greet(device.alerter, clock, pause)
        if opts.self_test and not stop.is_set():
            report = self_test(
                clock=clock, sleep=pause, frames=device.frames, detector=device.detector,
                ranges=device.ranges, sensor_names=tuple(s.name for s in cfg.ranging.sensors),
            )
            model = tuple(f for f in report.faults if f.part is Part.MODEL)
            if device.detector is not None and model:
                device.drop_detector(model)
            # Camera and sensor failures need no special case: the loop's own
            # checks report them for as long as they last, and clear them after.

        pace = device.pace
        status_every_ns = round(cfg.pace.health_period_s * NS_PER_S)
        notes: list[str] = []  # said in systemd's STATUS, but not faults: the runner loses nothing
        sent: dict[str, Any] = {"text": None, "at": -status_every_ns}  # STATUS on a level change, and every period

        def send_status(level_text: str, faults: tuple[str, ...], now: int) -> None:
            text = (level_text + (f" faults: {'; '.join(faults)}" if faults else "") + "".join(f", {n}" for n in notes)
                    + (f" | {pace.text()}" if pace is not None else ""))
            if text != sent["text"]:
                notifier.status(text)
            sent.update(text=text, at=now)

        def on_event(event: AlertEvent, threat: Threat) -> None:
            send_status(event.level.name, event.faults, event.t_ns)

        pipeline = device.assemble(on_event)
        pipeline.keep_events = KEEP_EVENTS
        button, control = open_button(cfg, device.factory, notes)
        if control is not None:
            pipeline.alerter = GatedSink(pipeline.alerter, control)  # a pause reaches the pins, not the log
        status = StatusLine(out)
        pinger = WatchdogPinger(notifier)
        t_start = clock.now_ns()
        t_end = t_start + round(opts.duration * NS_PER_S) if opts.duration else None
        file_source = is_file_source(opts.source)

        power = PowerCues(cfg.power)

        def on_step(threat: Threat) -> None:
            now = clock.now_ns()
            pinger.beat(now)
            if pace is not None:
                pace.observe(now)
                if (h := pace.health_now) is not None and \
                        (cue := power.due(now, pipeline.level, h.under_voltage, h.battery_pct)) is not None:
                    device.alerter.cue(cue)
                if now - sent["at"] >= status_every_ns:
                    send_status(pipeline.level.name, texts(threat.faults), now)
            status.show(threat, pipeline.level, pipeline.stats.frames, now / NS_PER_S,
                        pace=pace.text() if pace is not None else "")
            camera = pipeline.camera
            if (t_end is not None and now >= t_end) or (file_source and camera is not None and camera.ended):
                stop.set()
            if control is not None and button is not None:
                act = control.update(now, button.is_pressed)
                if act.cue is not None:
                    device.alerter.cue(act.cue)
                if act.power_off:
                    print("button held: shutting down", file=err, flush=True)
                    power_off.set()
                    stop.set()

        print(f"rearguard {__version__}: source {opts.source}, pins "
              f"{'simulated' if device.factory else 'gpiozero default'}; Ctrl-C to stop", file=err)
        for note in unit_notes(opts.record or cfg.recording.directory or None, opts.preview):
            print(f"warning: {note}", file=err)  # what the installed unit's sandbox undoes
        start_faults = texts(device.start_faults())
        for f in start_faults:
            print(f"fault: {f}", file=err)
        if any(f.startswith("camera") for f in start_faults) and opts.source == "pi" and (h := service_hint()):
            print(f"rearguard: {h}", file=err)
        preview = None
        # glibc's free pages back to the OS every half minute: a long run's
        # memory stays flat (device/app/heap_trim.py, docs/performance.md)
        trimmer = heap_trim.HeapTrimmer(heap_trim.glibc_trim(), heap_trim.TRIM_PERIOD_S)
        try:
            try:
                preview = start_preview(opts.preview, err)
            except PreviewError as e:
                # The preview is for aiming the camera; a busy port must not
                # stop the device (under systemd it would crash-loop).
                log.error("running without the preview: %s", e)
                print(f"rearguard: running without the preview: {e}", file=err, flush=True)
                notes.append(f"preview off: {e}")
            if preview is not None:
                preview.show(pipeline, extra=(lambda: {"pace": pace.as_json()}) if pace is not None else None)
                if opts.preview_for is not None:
                    preview.stop_after(opts.preview_for)
            if pace is not None:
                pace.start()
                print(f"pace: board {pace.board.why}", file=err)
            device.guard.start()
            if opts.self_test:
                # Felt once the loop runs: played over CLEAR only, so a start
                # fault's FAULT rhythm (or a threat) is never hidden by it.
                device.alerter.cue(READY)
            # in the journal too: when the runner felt "ready" (or, with a start
            # fault, FAULT instead: the cue is dropped under it)
            print("ready: self-test done, loop running; " + ("FAULT plays (a part is missing)" if start_faults
                  else "the ready cue plays" if opts.self_test else "no self-test"), file=err, flush=True)
            notifier.ready("running" + (f", faults: {'; '.join(start_faults)}" if start_faults else "")
                           + "".join(f", {n}" for n in notes))
            trimmer.start()
            run_forever(pipeline, stop, on_step=on_step)
        finally:
            trimmer.close()
            notifier.stopping()
            if status.tty:
                print(file=out)
            if preview is not None:
                preview.close()
    finally:
        if button is not None:
            button.close()
        device.close()
        notifier.close()
    secs = (clock.now_ns() - t_start) / NS_PER_S
    print(f"stopped after {pipeline.stats.frames} frames; {pipeline.event_count} alert changes", file=err)
    if device.recorder is not None and (lost := recording_summary(device.recorder.stats())):
        print(lost, file=err)  # frames the recorder dropped because the disk was too slow
    if secs > 0:
        med = pipeline.stats.summary()["detect_ms"]
        print(f"loop {pipeline.steps / secs:.1f} passes/s, camera {pipeline.stats.frames / secs:.1f} fps over "
              f"{secs:.1f} s; median detect {'-' if med is None else f'{med:.1f}'} ms", file=err)
    return EXIT_POWER_OFF if power_off.is_set() else 0


def open_button(cfg: Config, factory: Any, notes: list[str]) -> tuple[Any, ButtonControl | None]:
    """The configured button (gpiozero Button, to ground, the internal pull-up) and its
    control; none configured, or one that cannot be set up (said in STATUS): (None, None)."""
    if cfg.button.pin is None:
        return None, None
    from gpiozero import Button

    try:
        button = Button(cfg.button.pin, pull_up=True, pin_factory=factory)
    except Exception as e:  # a broken button must not stop the device: it still warns
        log.error("running without the button: GPIO%d: %s", cfg.button.pin, e)
        notes.append(f"button off: GPIO{cfg.button.pin}: {e}")
        return None, None
    return button, ButtonControl(cfg.button)
