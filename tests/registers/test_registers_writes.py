"""Block C writes: decode_write turns a whole write into the control command it means,
or refuses what only the wire can get wrong (the rules on values are control's and
the core's: tests/control/test_control_modbus.py)."""

from __future__ import annotations

import pytest

from twin.control import CommandName, parse_command
from twin.registers import COMMAND_CODES, BlockCWrite, ModbusException, decode_write


def refused(address: int, values: list[int]) -> int:
    with pytest.raises(ModbusException) as info:
        decode_write(address, values)
    return info.value.code


@pytest.mark.parametrize(
    ("code", "command"),
    [
        (21211, "new_demand_subinterval"),
        (21212, "reset_max_demand"),
        (16498, "clear_pulses"),
        (30078, "clear_energy"),  # decoded; control refuses it while energy reset is locked
    ],
)
def test_command_codes(code: int, command: str) -> None:
    assert decode_write(200, [code]) == BlockCWrite(command)


def test_every_decoded_write_is_a_control_command() -> None:
    for name in COMMAND_CODES.values():
        parse_command(name, {})
    write = decode_write(201, [30, 5, 1, 168, 2])
    assert write.command == CommandName.SET_DEMAND
    parse_command(write.command, write.body)


@pytest.mark.parametrize("code", [0, 1, 21210, 30079, 0xFFFF])
def test_unknown_command_is_an_illegal_value(code: int) -> None:
    assert refused(200, [code]) == 3


@pytest.mark.parametrize(
    ("address", "count"),
    [(0, 1), (20, 2), (100, 1), (199, 2), (206, 1), (204, 3), (299, 1), (40000, 1), (40088, 1)],
)
def test_read_only_or_undefined_addresses(address: int, count: int) -> None:
    assert refused(address, [1] * count) == 2


@pytest.mark.parametrize(
    ("address", "values"),
    [
        (200, [21212, 15]),  # a command is written alone
        (201, []),
        (201, [70000]),
        (201, [1] * 124),
    ],
)
def test_wire_errors_are_illegal_values(address: int, values: list[int]) -> None:
    assert refused(address, values) == 3


def test_settings_writes_carry_only_the_written_registers() -> None:
    assert decode_write(201, [20, 4]) == BlockCWrite(
        "set_demand", {"demand_interval_min": 20, "demand_subintervals": 4}
    )
    assert decode_write(202, [5]) == BlockCWrite("set_demand", {"demand_subintervals": 5})
    assert decode_write(204, [0]) == BlockCWrite("set_demand", {"demand_max_window_h": 0})
    assert decode_write(205, [1]) == BlockCWrite("set_demand", {"registration_mode": 1})
    assert decode_write(201, [30, 5, 1, 168, 2]).body == {
        "demand_interval_min": 30,
        "demand_subintervals": 5,
        "demand_method": 1,
        "demand_max_window_h": 168,
        "registration_mode": 2,
    }
