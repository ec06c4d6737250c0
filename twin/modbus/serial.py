"""Serial line settings for the Modbus RTU server: a frozen value object, no IO.

Kept apart from :mod:`twin.modbus.rtu` (which opens the device and imports pymodbus
for the CRC) so configuration code can validate ``--serial/--baud/--parity/--stopbits``
without importing the transport.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from twin.errors import ConfigError

#: The baud rates the RTU server can set on a line (termios has a constant for each).
BAUD_RATES: Final = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400)
DATA_BITS: Final = 8  # Modbus RTU: 8 data bits per character


@dataclass(frozen=True, slots=True)
class SerialSettings:
    """A serial device and its line settings, validated."""

    device: str
    baud: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1

    def __post_init__(self) -> None:
        if self.baud not in BAUD_RATES:
            raise ConfigError(f"--baud {self.baud}: expected one of {sorted(BAUD_RATES)}")
        if self.parity not in ("N", "E", "O"):
            raise ConfigError(f"--parity {self.parity}: expected N, E or O")
        if self.stopbits not in (1, 2):
            raise ConfigError(f"--stopbits {self.stopbits}: expected 1 or 2")

    @property
    def char_s(self) -> float:
        """Seconds one character takes on the line (start, data, parity, stop bits)."""
        bits = 1 + DATA_BITS + (self.parity != "N") + self.stopbits
        return bits / self.baud
