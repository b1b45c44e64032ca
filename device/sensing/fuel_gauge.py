"""A UPS HAT's battery fuel gauge: the MAX1704x family (MAX17040, 17041,
17043, 17044, 17048, 17049) on I2C, as fitted at address 0x36 on common
Pi UPS HATs (for example Geekworm's X728 and X120x series, whose own
scripts read these two registers there).

Two registers, both big-endian 16-bit: VCELL (0x02) and SOC (0x04). SOC's
high byte is whole percent, its low byte 1/256 %; VCELL is 78.125 uV per
bit on every chip of the family (the MAX17040's 1.25 mV per 12-bit count,
left-aligned by 4 bits, is the same scale). The bus is smbus2's SMBus, or a
test's fake with the same `read_i2c_block_data`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

VCELL_REG = 0x02
SOC_REG = 0x04
VOLTS_PER_BIT = 78.125e-6


class I2CBus(Protocol):
    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]: ...
    def close(self) -> None: ...


class GaugeError(Exception):
    """The gauge could not be opened or read; the message names the bus and address."""


@dataclass(frozen=True)
class Battery:
    percent: float  # state of charge, 0..100
    volts: float  # the cell's voltage


class Max1704x:
    def __init__(self, bus: I2CBus, address: int = 0x36, where: str = "") -> None:
        self.bus, self.address = bus, address
        self.where = where or f"I2C address 0x{address:02x}"

    def _word(self, register: int) -> int:
        try:
            hi, lo = self.bus.read_i2c_block_data(self.address, register, 2)
        except (OSError, ValueError) as err:  # a loose HAT: EIO / ENXIO from the kernel
            raise GaugeError(f"fuel gauge at {self.where}: {err}") from err
        return (hi << 8) | lo

    def read(self) -> Battery:
        soc = self._word(SOC_REG) / 256
        volts = self._word(VCELL_REG) * VOLTS_PER_BIT
        # The 17048 may report a little over 100 % on a full cell before its
        # model settles; more than 110 % is not a gauge talking sense.
        if soc > 110:
            raise GaugeError(f"fuel gauge at {self.where}: state of charge {soc:.0f} % is impossible")
        return Battery(min(soc, 100.0), volts)

    def close(self) -> None:
        self.bus.close()


def open_max1704x(bus_number: int, address: int) -> Max1704x:
    """The gauge on /dev/i2c-`bus_number`, through smbus2."""
    try:
        from smbus2 import SMBus

        bus = SMBus(bus_number)
    except (ImportError, OSError) as err:
        raise GaugeError(f"fuel gauge: /dev/i2c-{bus_number} could not be opened: {err} "
                         "(enable I2C: sudo raspi-config nonint do_i2c 0)") from err
    return Max1704x(bus, address, f"/dev/i2c-{bus_number} address 0x{address:02x}")
