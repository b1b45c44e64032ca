"""Faults and bad input (issue 13): each test reproduces one attack and pins
down what the device does instead. The README's "Faults and bad input"
table is backed by these tests."""

from __future__ import annotations

from gpiozero.pins.mock import MockFactory, MockPWMPin

from device.core.clock import NS_PER_S, ReplayClock
from device.core.config import Config
from device.core.types import AlertLevel
from device.output.alerts import PATTERNS, Alerter, pattern_output
from device.output.stall_guard import StallGuard
from device.pipeline import Pipeline

MS = 1_000_000


# ---------------------------------------------------------------- 0: stall guard vs loop


def _guarded() -> tuple[ReplayClock, Alerter, StallGuard, object]:
    clock = ReplayClock(0)
    factory = MockFactory(pin_class=MockPWMPin)
    alerter = Alerter(Config().outputs, pin_factory=factory)
    guard = StallGuard(alerter, clock, limit_s=0.4)
    return clock, alerter, guard, factory.pin(Config().outputs.haptic_pin)


def test_loop_update_with_an_older_now_after_the_guard_took_over_keeps_fault_playing() -> None:
    # The loop read now = 1.0 s, then its pass took 0.5 s (in it a sensor fault
    # appeared); meanwhile the guard's thread started FAULT at 1.5 s. The pass
    # then updates FAULT with its own 1.0 s.
    clock, alerter, guard, haptic = _guarded()
    clock.set(980 * MS)
    guard.update(AlertLevel.CLEAR, 980 * MS)
    clock.set(1000 * MS)
    loop_now = clock.now_ns()
    clock.set(1500 * MS)
    assert guard.check() and guard.stalled and alerter.level == AlertLevel.FAULT
    guard.update(AlertLevel.FAULT, loop_now)  # raised ValueError: elapsed time cannot be negative
    assert alerter.level == AlertLevel.FAULT and not guard.stalled
    # The pattern never steps back: the next pass 20 ms later plays the phase
    # 20 ms after the guard's start, not one computed from the stale 1.0 s.
    clock.set(1520 * MS)
    guard.update(AlertLevel.FAULT, clock.now_ns())
    assert alerter.output == pattern_output(PATTERNS[AlertLevel.FAULT], 20 * MS)
    clock.set(2120 * MS)  # FAULT's first segment (0.6 s on) has ended 0.6 s after the guard's start
    guard.update(AlertLevel.FAULT, clock.now_ns())
    assert alerter.output == (0.0, False) and haptic.state == 0
    alerter.close()


def test_the_guard_first_then_a_pass_that_began_after_it_continues_the_same_pattern() -> None:
    # The other interleaving: the guard writes FAULT, then a pass that read its
    # now after that write updates FAULT: one pattern, no restart.
    clock, alerter, guard, _ = _guarded()
    guard.update(AlertLevel.CLEAR, 0)
    clock.set(450 * MS)
    assert guard.check()
    clock.set(460 * MS)
    guard.update(AlertLevel.FAULT, clock.now_ns())
    assert alerter.output == pattern_output(PATTERNS[AlertLevel.FAULT], 10 * MS)
    alerter.close()


def test_loop_update_with_an_older_now_and_another_level_wins_over_the_guard() -> None:
    clock, alerter, guard, haptic = _guarded()
    guard.update(AlertLevel.CLEAR, 0)
    loop_now = clock.now_ns()
    clock.set(450 * MS)
    assert guard.check()  # guard: FAULT from 0.45 s
    guard.update(AlertLevel.DANGER, loop_now)  # the late pass found a real DANGER
    assert alerter.level == AlertLevel.DANGER and haptic.state > 0
    clock.set(470 * MS)
    assert not guard.check()  # the loop is back: the guard stays quiet
    assert alerter.level == AlertLevel.DANGER
    alerter.close()


def test_guard_check_after_a_loop_update_with_a_newer_now_never_steps_back() -> None:
    # The other order: the loop's update carries a time later than the clock
    # the guard reads next (both read the same clock, but the guard may read it
    # first and take the lock second).
    clock, alerter, guard, _ = _guarded()
    guard.update(AlertLevel.FAULT, 0)
    clock.set(500 * MS)
    guard.update(AlertLevel.CLEAR, 900 * MS)  # a pass with a later now
    clock.set(1400 * MS)  # 0.5 s after that pass's clock read: stalled
    assert guard.check()
    clock.set(1420 * MS)
    guard.update(AlertLevel.FAULT, 1420 * MS)
    assert alerter.level == AlertLevel.FAULT
    alerter.close()


class _SlowRanges:
    """A range source whose poll takes `slow_ns` of clock time once, during
    which the stall guard's thread runs (called here, so it is exact) and a
    sensor fault appears."""

    def __init__(self, clock: ReplayClock, guard: StallGuard, slow_at_ns: int, slow_ns: int) -> None:
        self.clock, self.guard, self.slow_at_ns, self.slow_ns = clock, guard, slow_at_ns, slow_ns
        self.faulty = False

    def poll(self, now_ns: int) -> list:
        if now_ns == self.slow_at_ns:
            self.clock.set(now_ns + self.slow_ns)
            assert self.guard.check()
            self.faulty = True
        return []

    def close(self) -> None:
        pass


def test_a_slow_pass_in_which_a_fault_appears_does_not_crash_the_loop() -> None:
    clock, alerter, guard, haptic = _guarded()
    ranges = _SlowRanges(clock, guard, slow_at_ns=1000 * MS, slow_ns=500 * MS)
    pipeline = Pipeline(Config(), clock, ranges, guard,
                        extra_faults=lambda: ("sensor centre: echo-never-rises",) if ranges.faulty else ())
    t = 0
    while t <= 2000 * MS:
        clock.set(max(t, clock.now_ns()))
        pipeline.step()  # raised ValueError at the slow pass
        t += 20 * MS
    assert [e.level for e in pipeline.events] == [AlertLevel.FAULT]
    assert alerter.level == AlertLevel.FAULT and not guard.stalled
    alerter.close()
