"""Power reaches the runner: the fuel gauge on a fake I2C bus, and the
power-low cue's timing on the exact clock."""

from __future__ import annotations

from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from device.app.pace_watch import PaceWatch
from device.core.clock import NS_PER_S, ReplayClock
from device.core.config import Config, ConfigError, OutputsConfig, PowerConfig, from_dict
from device.core.types import AlertLevel
from device.output.alerts import POWER_LOW, Alerter
from device.output.power_cue import PowerCues
from device.sensing.fuel_gauge import GaugeError, Max1704x
from device.sensing.pi_health import HealthReader


class FakeBus:
    """An SMBus stand-in holding the gauge's registers (big-endian words)."""

    def __init__(self, regs: dict[int, int], fail: OSError | None = None) -> None:
        self.regs, self.fail, self.reads, self.closed = regs, fail, [], False

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]:
        self.reads.append((i2c_addr, register, length))
        if self.fail is not None:
            raise self.fail
        word = self.regs[register]
        return [word >> 8, word & 0xFF]

    def close(self) -> None:
        self.closed = True


def test_max1704x_reads_state_of_charge_and_cell_voltage() -> None:
    # SOC 0x3680: 54 + 128/256 %; VCELL 0xD000 = 53248 * 78.125 uV = 4.16 V
    bus = FakeBus({0x04: 0x3680, 0x02: 0xD000})
    gauge = Max1704x(bus, 0x36)
    b = gauge.read()
    assert b.percent == 54.5 and b.volts == pytest.approx(4.16)
    assert (0x36, 0x04, 2) in bus.reads and (0x36, 0x02, 2) in bus.reads
    # a MAX17040's 12-bit VCELL (1.25 mV a count, left-aligned by 4 bits): 3328 counts = 4.16 V too
    assert Max1704x(FakeBus({0x04: 0x6400, 0x02: 3328 << 4})).read() == b.__class__(100.0, pytest.approx(4.16))
    gauge.close()
    assert bus.closed


def test_a_gauge_that_fails_or_talks_nonsense_is_a_named_error_and_health_goes_on() -> None:
    with pytest.raises(GaugeError, match="0x36: .*Remote I/O"):
        Max1704x(FakeBus({}, fail=OSError(121, "Remote I/O error"))).read()
    with pytest.raises(GaugeError, match="impossible"):
        Max1704x(FakeBus({0x04: 0xFF00, 0x02: 0})).read()
    broken = Max1704x(FakeBus({}, fail=OSError(5, "Input/output error")))
    reader = HealthReader(Path("/nonexistent"), Path("/nonexistent"), run=None,
                          battery=lambda: broken.read().percent)
    assert reader.read().battery_pct is None  # logged; the rest of the health still reads
    good = Max1704x(FakeBus({0x04: 0x0C00, 0x02: 0xB000}))
    h = HealthReader(Path("/nonexistent"), Path("/nonexistent"), run=None, battery=lambda: good.read().percent).read()
    assert h.battery_pct == 12.0 and "battery 12 %" in h.text()


def test_the_gauge_is_read_with_the_health_even_off_a_pi(tmp_path: Path) -> None:
    gauge = Max1704x(FakeBus({0x04: 0x2000, 0x02: 0xC000}))
    pace = PaceWatch(Config(), ReplayClock(0), model_path=tmp_path / "no-model", gauge=gauge)
    assert pace.health is not None and not pace.on_pi
    assert pace.health.poll().battery_pct == 32.0
    pace.close()
    assert gauge.bus.closed  # type: ignore[attr-defined]


def S(t: float) -> int:
    return round(t * NS_PER_S)


def test_power_low_cue_at_once_then_every_minute_only_over_clear() -> None:
    cues = PowerCues(PowerConfig(low_battery_pct=15, cue_every_s=60))
    clear = AlertLevel.CLEAR
    assert cues.due(S(0), clear, False, 80.0) is None
    assert cues.due(S(1), clear, False, None) is None  # no gauge, no under-voltage
    assert cues.due(S(2), clear, False, 15.0) is POWER_LOW  # at the threshold: at once
    assert cues.due(S(3), clear, False, 14.0) is None
    assert cues.due(S(61.9), clear, False, 14.0) is None
    assert cues.due(S(62), AlertLevel.WARN, False, 14.0) is None  # never over a threat...
    assert cues.due(S(62), AlertLevel.FAULT, False, 14.0) is None
    assert cues.due(S(63), clear, False, 14.0) is POWER_LOW  # ...it waits for CLEAR
    assert cues.due(S(100), clear, True, None) is None  # under-voltage: the same cue, the same pace
    assert cues.due(S(123), clear, True, None) is POWER_LOW
    assert cues.low(True, None) == "under-voltage" and cues.low(False, 9.6) == "battery 10 %"
    # a supply that sags now and then does not replay the cue at every sag
    assert cues.due(S(124), clear, False, 90.0) is None
    assert cues.due(S(125), clear, True, None) is None


def test_power_low_is_two_quick_ticks_and_never_masks_warn_or_danger() -> None:
    f = MockFactory(pin_class=MockPWMPin)
    alerter = Alerter(OutputsConfig(haptic_pin=12, buzzer_pin=25), pin_factory=f)
    alerter.cue(POWER_LOW)
    trace = []
    for ms in range(0, 400, 10):
        alerter.update(AlertLevel.CLEAR, ms * 1_000_000)
        trace.append(alerter.output)
    # written out by hand: on 0-50 ms, off 50-150, on 150-200, then nothing
    assert trace[0] == trace[4] == (1.0, True)
    assert trace[5] == trace[14] == (0.0, False)
    assert trace[15] == trace[19] == (1.0, True)
    assert all(o == (0.0, False) for o in trace[20:])
    for level in (AlertLevel.WARN, AlertLevel.DANGER):
        alerter.cue(POWER_LOW)
        alerter.update(level, S(1))
        alerter.update(level, S(1.12))  # where the cue would be off: the threat plays
        assert alerter.level is level and alerter.cue_playing is None
        alerter.update(AlertLevel.CLEAR, S(2))
    alerter.close()


def test_power_config_is_strict() -> None:
    with pytest.raises(ConfigError, match="power.fuel_gauge"):
        from_dict({"power": {"fuel_gauge": "max17048x"}})
    with pytest.raises(ConfigError, match="power.cue_every_s"):
        from_dict({"power": {"cue_every_s": 1}})
    assert from_dict({"power": {"fuel_gauge": "max1704x", "i2c_address": 54}}).power.i2c_address == 0x36


def test_a_gauge_whose_bus_cannot_be_opened_is_logged_and_the_device_runs_on(
        caplog: pytest.LogCaptureFixture) -> None:
    # I2C not enabled (no /dev/i2c-N), or the service not allowed it: named, with the fix
    from device.app.compose import open_gauge
    cfg = from_dict({"power": {"fuel_gauge": "max1704x", "i2c_bus": 31}})
    assert not Path("/dev/i2c-31").exists()
    with caplog.at_level("ERROR"):
        assert open_gauge(cfg) is None
    text = caplog.text
    assert "running without the battery gauge" in text and "/dev/i2c-31 could not be opened" in text
    assert "raspi-config nonint do_i2c 0" in text
    assert open_gauge(from_dict({})) is None  # no gauge configured: none opened
