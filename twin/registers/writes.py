"""Block C writes: a FC06/FC16 write decoded as a whole into the control command it means.

Theory of operation. This module only knows the register map: which addresses are
writable, what the command codes of register 200 mean and which setting each of
registers 201..205 holds. :func:`decode_write` turns (address, values) into a
:class:`BlockCWrite`, the name of a ``twin.control`` command and its JSON-like body
(``clear_pulses`` {}, ``set_demand`` {"demand_interval_min": 30, ...}); the live meter
runs it through ``twin.control`` like a command from MQTT or HTTP, so the locks (energy
reset), the demand-setting rules (the core's, checked against the meter's other
settings) and the refusal reasons are the same on every channel. What only the wire
can get wrong is refused here, as the Modbus exception the endpoint answers: 02 for
an address outside 200..205, 03 for a bad count, a value over 16 bits, a command
mixed with settings, or an unknown command code. A refused write changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from twin.registers.map import (
    COMMAND_ADDRESS,
    CONFIG_ADDRESS,
    CONFIG_NAMES,
    MAX_WRITE_REGISTERS,
    ExceptionCode,
    ModbusException,
)

#: Register 200's command codes and the ``twin.control`` command each one is.
COMMAND_CODES: Final[Mapping[int, str]] = MappingProxyType(
    {
        21211: "new_demand_subinterval",
        21212: "reset_max_demand",
        16498: "clear_pulses",
        30078: "clear_energy",  # refused by control unless energy reset is unlocked
    }
)
ENERGY_RESET_CODE: Final = 30078
#: The ``twin.control`` command a write of registers 201..205 is.
SETTINGS_COMMAND: Final = "set_demand"


@dataclass(frozen=True, slots=True)
class BlockCWrite:
    """A block-C write as a control command: its name and body."""

    command: str
    body: Mapping[str, int] = field(default_factory=dict)


def decode_write(address: int, values: Sequence[int]) -> BlockCWrite:
    """The control command a FC06/FC16 write of ``values`` at ``address`` means.

    Raises :class:`ModbusException` 02 for any address outside 200..205 and 03 for a
    count outside 1..123, a value over 65535, the command register written with
    others, or an unknown command code.
    """
    n = len(values)
    if not 0 < n <= MAX_WRITE_REGISTERS:
        raise ModbusException(
            ExceptionCode.ILLEGAL_DATA_VALUE, f"count {n}; expected 1..{MAX_WRITE_REGISTERS}"
        )
    end = address + n
    if address < COMMAND_ADDRESS or end > CONFIG_ADDRESS + len(CONFIG_NAMES):
        raise ModbusException(
            ExceptionCode.ILLEGAL_DATA_ADDRESS, f"registers {address}..{end - 1} read-only"
        )
    if any(not 0 <= v <= 0xFFFF for v in values):
        raise ModbusException(ExceptionCode.ILLEGAL_DATA_VALUE, "register values are 0..65535")
    if address == COMMAND_ADDRESS:
        if n != 1:
            raise ModbusException(
                ExceptionCode.ILLEGAL_DATA_VALUE, "the command register is written alone"
            )
        command = COMMAND_CODES.get(values[0])
        if command is None:
            known = ", ".join(map(str, COMMAND_CODES))
            raise ModbusException(
                ExceptionCode.ILLEGAL_DATA_VALUE, f"unknown command {values[0]}; expected {known}"
            )
        return BlockCWrite(command)
    body = dict(zip(CONFIG_NAMES[address - CONFIG_ADDRESS :], values, strict=False))
    return BlockCWrite(SETTINGS_COMMAND, MappingProxyType(body))
