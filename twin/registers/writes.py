"""Block C writes: a FC06/FC16 write validated as a whole into the core command it means.

Theory of operation. Register 200 takes a command code (:data:`COMMANDS`), alone;
registers 201..205 take the demand and registration settings, checked together with
the values they do not overwrite (``current``, block C as it reads now) so a write of
one demand register is checked against the other. A refused write raises
:class:`~twin.registers.map.ModbusException` with the exception code the endpoint
answers, and changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from twin.core import (
    ClearEnergy,
    ClearPulseCounts,
    Command,
    NewDemandSubinterval,
    Reconfigure,
    ResetMaxDemand,
)
from twin.registers.map import (
    COMMAND_ADDRESS,
    CONFIG_ADDRESS,
    CONFIG_NAMES,
    MAX_WRITE_REGISTERS,
    ExceptionCode,
    ModbusException,
)

COMMANDS: Final[Mapping[int, Command]] = {
    21211: NewDemandSubinterval(),
    21212: ResetMaxDemand(),
    16498: ClearPulseCounts(),
    30078: ClearEnergy(),
}
ENERGY_RESET_CODE: Final = 30078


def decode_write(
    address: int,
    values: Sequence[int],
    *,
    energy_reset_unlocked: bool,
    current: Sequence[int] | None = None,
) -> Command:
    """Validate a FC06/FC16 write as a whole and return the core command it means.

    ``current``: block C 201..205 as they are now, so a write of one demand register
    is checked against the other (subintervals must divide the interval). Raises
    :class:`ModbusException` 02 for any address outside 200..205, 03 for a bad value
    or count, a command mixed with config registers, or 30078 while locked.
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
        code = values[0]
        command = COMMANDS.get(code)
        if command is None:
            raise ModbusException(ExceptionCode.ILLEGAL_DATA_VALUE, f"unknown command {code}")
        if code == ENERGY_RESET_CODE and not energy_reset_unlocked:
            raise ModbusException(ExceptionCode.ILLEGAL_DATA_VALUE, "energy reset is locked")
        return command
    written = dict(zip(CONFIG_NAMES[address - CONFIG_ADDRESS :], values, strict=False))
    merged = dict(zip(CONFIG_NAMES, current, strict=True)) if current is not None else {}
    merged.update(written)
    _check_config(merged)
    return Reconfigure(**written)


def _check_config(cfg: Mapping[str, int]) -> None:
    def bad(what: str) -> ModbusException:
        return ModbusException(ExceptionCode.ILLEGAL_DATA_VALUE, what)

    interval = cfg.get("demand_interval_min")
    subs = cfg.get("demand_subintervals")
    if interval is not None and not 1 <= interval <= 60:
        raise bad(f"demand_interval_min {interval}; expected 1..60")
    if subs is not None and not 1 <= subs <= 15:
        raise bad(f"demand_subintervals {subs}; expected 1..15")
    if interval is not None and subs is not None and interval % subs:
        raise bad(f"demand_subintervals {subs} does not divide {interval} min")
    if cfg.get("demand_method", 0) > 2:
        raise bad("demand_method; expected 0..2")
    window = cfg.get("demand_max_window_h", 0)
    if window > 168:
        raise bad(f"demand_max_window_h {window}; expected 0 or 1..168")
    if cfg.get("registration_mode", 0) > 2:
        raise bad("registration_mode; expected 0..2")
