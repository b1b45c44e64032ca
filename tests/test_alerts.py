"""Alert patterns on gpiozero mock pins, driven by a synthetic clock (no sleeps)."""

from __future__ import annotations

import pytest
from gpiozero import Buzzer
from gpiozero.pins.mock import MockFactory, MockPin, MockPWMPin

from device.core.clock import NS_PER_S
from device.core.config import OutputsConfig
from device.core.faults import Fault, Kind, Part
from device.core.types import AlertLevel
from device.output.alerts import (
    PATTERNS,
    Alerter,
    AlertError,
    Pattern,
    Segment,
    effective_level,
    pattern_output,
)

MS = 1_000_000
HAPTIC, BUZZER = 12, 25


class CountingPWMPin(MockPWMPin):
    """Counts every write, even of an unchanged value (MockPin.states only logs changes)."""

    def __init__(self, factory, info):
        super().__init__(factory, info)
        self.writes = 0

    def _set_state(self, value):
        self.writes += 1
        super()._set_state(value)


@pytest.fixture
def factory():
    f = MockFactory(pin_class=CountingPWMPin)
    yield f
    f.close()


def make_alerter(factory, **kw) -> Alerter:
    return Alerter(OutputsConfig(haptic_pin=HAPTIC, buzzer_pin=BUZZER, **kw), pin_factory=factory)


def play(alerter, factory, level, start_s, end_s, step_ms=5, pins=(HAPTIC, BUZZER)):
    """Call update() every step_ms of synthetic time; return each pin's changes as
    [(t_s, state), ...] with t_s rounded to the ms (exact: the clock is ours)."""
    changes = {p: [] for p in pins}
    last = {p: factory.pin(p).state for p in pins}
    t = round(start_s * 1000)
    while t < round(end_s * 1000):
        alerter.update(level, t * MS)
        for p in pins:
            st = factory.pin(p).state
            if st != last[p]:
                changes[p].append((t / 1000, st))
                last[p] = st
        t += step_ms
    return changes


# Expected pin changes over the first ~2 s, written out by hand from the spec
# (not derived from PATTERNS, so a wrong table fails here).
EXPECTED = {
    AlertLevel.CLEAR: ([], []),
    AlertLevel.CAUTION: ([(0.0, 1.0), (0.15, 0.0), (1.0, 1.0), (1.15, 0.0)], []),
    AlertLevel.WARN: (
        [(0.0, 1.0), (0.1, 0.0), (0.25, 1.0), (0.35, 0.0), (0.5, 1.0), (0.6, 0.0)],
        [(0.0, 1.0), (0.1, 0.0), (0.25, 1.0), (0.35, 0.0), (0.5, 1.0), (0.6, 0.0)],
    ),
    AlertLevel.DANGER: ([(0.0, 1.0)], [(0.0, 1.0)]),
    AlertLevel.FAULT: (
        [(0.0, 1.0), (0.6, 0.0), (0.8, 1.0), (0.95, 0.0), (1.95, 1.0), (2.55, 0.0)],
        [(0.0, 1.0), (0.6, 0.0), (0.8, 1.0), (0.95, 0.0), (1.95, 1.0), (2.55, 0.0)],
    ),
}
WINDOW_S = {AlertLevel.WARN: 0.7, AlertLevel.FAULT: 2.7, AlertLevel.CAUTION: 2.0}


@pytest.mark.parametrize("level", list(AlertLevel))
def test_each_level_plays_its_pin_sequence(factory, level):
    haptic_exp, buzzer_exp = EXPECTED[level]
    with make_alerter(factory) as a:
        got = play(a, factory, level, 0.0, WINDOW_S.get(level, 2.0))
    assert got[HAPTIC] == haptic_exp
    assert got[BUZZER] == buzzer_exp
    # gpiozero's own record of the pins agrees (initial 0, then the changes).
    hp = factory.pin(HAPTIC)
    if haptic_exp:
        expected_states = [0.0] + [s for _, s in haptic_exp]
        assert len(hp.states) >= len(expected_states)
        hp.assert_states(expected_states)


def test_danger_keeps_going_for_minutes(factory):
    with make_alerter(factory) as a:
        got = play(a, factory, AlertLevel.DANGER, 0.0, 120.0, step_ms=20)
    assert got[HAPTIC] == [(0.0, 1.0)] and got[BUZZER] == [(0.0, 1.0)]


def test_level_change_restarts_the_pattern_at_phase_zero(factory):
    with make_alerter(factory) as a:
        warn = play(a, factory, AlertLevel.WARN, 0.0, 0.12)
        # 0.12 s into WARN the motor is in an off gap; CAUTION must buzz now, not later.
        caution = play(a, factory, AlertLevel.CAUTION, 0.12, 0.5)
        warn2 = play(a, factory, AlertLevel.WARN, 0.5, 0.7)
    assert warn[HAPTIC] == [(0.0, 1.0), (0.1, 0.0)]
    assert caution[HAPTIC] == [(0.12, 1.0), (0.27, 0.0)]
    assert caution[BUZZER] == []
    assert warn2[HAPTIC] == [(0.5, 1.0), (0.6, 0.0)]
    assert warn2[BUZZER] == [(0.5, 1.0), (0.6, 0.0)]


def test_same_level_does_not_restart(factory):
    with make_alerter(factory) as a:
        a.update(AlertLevel.CAUTION, 0)
        a.update(AlertLevel.CAUTION, 500 * MS)  # mid-gap: stays off
        assert factory.pin(HAPTIC).state == 0.0


def _on_off_rhythm(changes, end_s):
    """[(state, duration_s), ...] of one pin over [0, end_s)."""
    pts = changes + [(end_s, None)]
    return [(s, round(pts[i + 1][0] - t, 3)) for i, (t, s) in enumerate(changes)]


def test_fault_rhythm_is_unlike_every_other_pattern(factory):
    rhythms = {}
    with make_alerter(factory) as a:
        t0 = 0.0
        for level in AlertLevel:
            a.off()
            got = play(a, factory, level, t0, t0 + 4.0)
            shifted = {p: [(round(t - t0, 3), s) for t, s in ch] for p, ch in got.items()}
            rhythms[level] = (
                _on_off_rhythm(shifted[HAPTIC], 4.0),
                _on_off_rhythm(shifted[BUZZER], 4.0),
            )
            t0 += 10.0
    fault = rhythms.pop(AlertLevel.FAULT)
    for level, r in rhythms.items():
        assert r[0] != fault[0], f"FAULT haptic rhythm equals {level.name}'s"
        assert r[1] != fault[1], f"FAULT buzzer rhythm equals {level.name}'s"
    # Distinct by feel, not only by numbers: the only pattern with two
    # different on-lengths in one cycle.
    on_lengths = {d for s, d in fault[0][:4] if s}
    assert on_lengths == {0.6, 0.15}
    for level, pat in PATTERNS.items():
        if level != AlertLevel.FAULT:
            assert len({s.duration_s for s in pat.segments if s.haptic > 0}) <= 1


SENSOR_FAULT = Fault(Part.SENSOR, Kind.FAILED, "no-echo-signal", name="centre")
CAMERA_FAULT = Fault(Part.CAMERA, Kind.STALLED, "no frames")
ACCEL_FAULT = Fault(Part.ACCELERATOR, Kind.FAILED, "hailo failed (x); detecting with the CPU model instead")


@pytest.mark.parametrize(
    ("level", "faults", "expected"),
    [
        (AlertLevel.CLEAR, (), AlertLevel.CLEAR),
        (AlertLevel.CAUTION, (), AlertLevel.CAUTION),
        (AlertLevel.WARN, (), AlertLevel.WARN),
        (AlertLevel.DANGER, (), AlertLevel.DANGER),
        (AlertLevel.CLEAR, (SENSOR_FAULT,), AlertLevel.FAULT),
        (AlertLevel.CAUTION, (CAMERA_FAULT,), AlertLevel.FAULT),
        (AlertLevel.WARN, (SENSOR_FAULT,), AlertLevel.WARN),
        (AlertLevel.DANGER, (SENSOR_FAULT, CAMERA_FAULT), AlertLevel.DANGER),
        (AlertLevel.FAULT, (), AlertLevel.FAULT),
        (AlertLevel.FAULT, (CAMERA_FAULT,), AlertLevel.FAULT),
        # the CPU model took over: named, but no FAULT rhythm of its own
        (AlertLevel.CLEAR, (ACCEL_FAULT,), AlertLevel.CLEAR),
        (AlertLevel.CAUTION, (ACCEL_FAULT,), AlertLevel.CAUTION),
        (AlertLevel.CLEAR, (ACCEL_FAULT, CAMERA_FAULT), AlertLevel.FAULT),
    ],
)
def test_effective_level(level, faults, expected):
    assert effective_level(level, faults) is expected


def test_updates_write_a_pin_only_when_its_value_changes(factory):
    with make_alerter(factory) as a:
        hp, bp = factory.pin(HAPTIC), factory.pin(BUZZER)
        h0, b0 = hp.writes, bp.writes
        for i in range(200):  # 4 s of DANGER at 50 Hz
            a.update(AlertLevel.DANGER, i * 20 * MS)
        assert (hp.writes - h0, bp.writes - b0) == (1, 1)
        for i in range(200, 250):
            a.update(AlertLevel.CLEAR, i * 20 * MS)
        assert (hp.writes - h0, bp.writes - b0) == (2, 2)


def test_haptic_strength_scales_the_duty(factory):
    with make_alerter(factory, haptic_strength=0.6) as a:
        a.update(AlertLevel.DANGER, 0)
        assert factory.pin(HAPTIC).state == pytest.approx(0.6)
        assert factory.pin(HAPTIC).frequency == 200
        assert a.output == (pytest.approx(0.6), True)


def test_buzzer_disabled_leaves_its_pin_alone(factory):
    with make_alerter(factory, buzzer=False) as a:
        got = play(a, factory, AlertLevel.DANGER, 0.0, 1.0)
        assert got[HAPTIC] == [(0.0, 1.0)]
        bp = factory.pin(BUZZER)
        assert bp.function == "input" and bp.writes == 0 and len(bp.states) == 1
        # Not even reserved: something else may use the pin.
        Buzzer(BUZZER, pin_factory=factory).close()


def test_off_stops_everything_and_next_update_restarts(factory):
    with make_alerter(factory) as a:
        a.update(AlertLevel.WARN, 0)
        a.off()
        assert factory.pin(HAPTIC).state == 0.0 and factory.pin(BUZZER).state == 0.0
        assert a.level is None
        a.update(AlertLevel.WARN, 1234 * MS)  # phase 0 again: on at once
        assert factory.pin(HAPTIC).state == 1.0


def test_close_turns_all_off_releases_pins_and_is_idempotent(factory):
    a = make_alerter(factory)
    a.update(AlertLevel.DANGER, 0)
    hp, bp = factory.pin(HAPTIC), factory.pin(BUZZER)
    assert hp.state == 1.0 and bp.state == 1.0
    a.close()
    a.close()
    assert hp.state == 0.0 and bp.state == 0.0
    assert hp.frequency is None  # PWM stopped
    with pytest.raises(AlertError, match="closed"):
        a.update(AlertLevel.DANGER, 1)
    # The pins are free again.
    make_alerter(factory).close()


def test_haptic_pin_in_use_names_the_pin(factory):
    other = Buzzer(HAPTIC, pin_factory=factory)
    with pytest.raises(AlertError, match="GPIO12") as err:
        make_alerter(factory)
    assert "haptic" in str(err.value)
    other.close()


def test_buzzer_pin_in_use_names_the_pin_and_frees_the_haptic_pin(factory):
    other = Buzzer(BUZZER, pin_factory=factory)
    with pytest.raises(AlertError, match="GPIO25") as err:
        make_alerter(factory)
    assert "buzzer" in str(err.value)
    other.close()
    make_alerter(factory).close()  # the haptic pin was not left claimed


def test_haptic_pin_without_pwm_is_an_alert_error():
    f = MockFactory(pin_class=MockPin)  # pins with no PWM
    with pytest.raises(AlertError, match="GPIO12.*PWM"):
        Alerter(OutputsConfig(haptic_pin=12, buzzer_pin=25), pin_factory=f)
    f.close()


def test_pattern_output_loops_and_switches_exactly_at_boundaries():
    p = PATTERNS[AlertLevel.WARN]
    assert pattern_output(p, 0) == (1.0, True)
    assert pattern_output(p, 100 * MS - 1) == (1.0, True)
    assert pattern_output(p, 100 * MS) == (0.0, False)
    assert pattern_output(p, 250 * MS - 1) == (0.0, False)
    assert pattern_output(p, 250 * MS) == (1.0, True)
    # An hour in, no drift.
    hour = 3600 * NS_PER_S
    assert pattern_output(p, hour) == (1.0, True)  # 3600 s is a whole number of 0.25 s periods
    assert pattern_output(p, hour + 100 * MS) == (0.0, False)
    with pytest.raises(ValueError, match="negative"):
        pattern_output(p, -1)


@pytest.mark.parametrize(
    ("segments", "message"),
    [
        ((), "at least one"),
        ((Segment(0.0, 1.0, True),), "duration"),
        ((Segment(0.1, 1.5, True),), "haptic"),
    ],
)
def test_bad_patterns_are_rejected(segments, message):
    with pytest.raises(ValueError, match=message):
        Pattern(segments)


def test_every_level_has_a_pattern_and_clear_is_silent():
    assert set(PATTERNS) == set(AlertLevel)
    clear = PATTERNS[AlertLevel.CLEAR]
    assert all(s.haptic == 0 and not s.buzzer for s in clear.segments)
    assert not any(s.buzzer for s in PATTERNS[AlertLevel.CAUTION].segments)
