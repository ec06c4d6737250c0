"""Block C writes: decode_write validates whole writes into core commands, or refuses them."""

from __future__ import annotations

import struct

import pytest

from twin.core import (
    ClearEnergy,
    ClearPulseCounts,
    MeterConfig,
    MeterCore,
    NewDemandSubinterval,
    Reconfigure,
    ResetMaxDemand,
    SampleBlock,
)
from twin.registers import Identity, ModbusException, RegisterImage, decode_write

DEFAULTS = (15, 3, 0, 24, 0)


def refused(
    address: int,
    values: list[int],
    *,
    unlocked: bool = False,
    current: tuple[int, ...] = DEFAULTS,
) -> int:
    with pytest.raises(ModbusException) as info:
        decode_write(address, values, energy_reset_unlocked=unlocked, current=current)
    return info.value.code


@pytest.mark.parametrize(
    ("code", "command"),
    [
        (21211, NewDemandSubinterval()),
        (21212, ResetMaxDemand()),
        (16498, ClearPulseCounts()),
    ],
)
def test_command_codes(code: int, command: object) -> None:
    assert decode_write(200, [code], energy_reset_unlocked=False) == command


def test_energy_clear_only_when_unlocked() -> None:
    assert refused(200, [30078]) == 3
    assert decode_write(200, [30078], energy_reset_unlocked=True) == ClearEnergy()


@pytest.mark.parametrize("code", [0, 1, 21210, 30079, 0xFFFF])
def test_unknown_command_is_an_illegal_value(code: int) -> None:
    assert refused(200, [code], unlocked=True) == 3


@pytest.mark.parametrize(
    ("address", "count"),
    [(0, 1), (20, 2), (100, 1), (199, 2), (206, 1), (204, 3), (299, 1), (40000, 1), (40088, 1)],
)
def test_read_only_or_undefined_addresses(address: int, count: int) -> None:
    assert refused(address, [1] * count) == 2


@pytest.mark.parametrize(
    ("address", "values"),
    [
        (201, [0]),
        (201, [61]),
        (202, [0]),
        (202, [16]),
        (202, [4]),  # does not divide the current 15-min interval
        (201, [20, 3]),  # 3 does not divide 20
        (201, [16]),  # the current 3 sub-intervals do not divide 16
        (203, [3]),
        (204, [169]),
        (205, [3]),
        (200, [21212, 15]),  # a command is written alone
        (201, []),
        (201, [70000]),
    ],
)
def test_values_out_of_range(address: int, values: list[int]) -> None:
    assert refused(address, values) == 3


def test_config_writes_return_only_the_written_fields() -> None:
    def ok(address: int, values: list[int]) -> object:
        return decode_write(address, values, energy_reset_unlocked=False, current=DEFAULTS)

    assert ok(201, [20, 4]) == Reconfigure(demand_interval_min=20, demand_subintervals=4)
    assert ok(202, [5]) == Reconfigure(demand_subintervals=5)
    assert ok(204, [0]) == Reconfigure(demand_max_window_h=0)
    assert ok(201, [30, 5, 1, 168, 2]) == Reconfigure(
        demand_interval_min=30,
        demand_subintervals=5,
        demand_method=1,
        demand_max_window_h=168,
        registration_mode=2,
    )
    assert ok(205, [1]) == Reconfigure(registration_mode=1)


def test_image_checks_writes_against_its_config_and_reads_the_change_back() -> None:
    core = MeterCore(MeterConfig())
    core.advance(SampleBlock.build(10, 1.0, current_a=10.0))
    ident = Identity.from_config(core.config)
    img = RegisterImage.build(core.snapshot(), ident)
    with pytest.raises(ModbusException) as info:
        decode_write(202, [4], energy_reset_unlocked=False, current=img.config)
    assert info.value.code == 3
    cmd = decode_write(201, [20, 4, 1], energy_reset_unlocked=False, current=img.config)
    core.apply(cmd)
    img = RegisterImage.build(core.snapshot(), ident)
    assert struct.unpack(">6H", img.read_registers(200, 6)) == (0, 20, 4, 1, 24, 0)
    # Now 4 divides 20 but not the 15 it was refused against.
    assert decode_write(202, [4], energy_reset_unlocked=False, current=img.config) == Reconfigure(
        demand_subintervals=4
    )
    with pytest.raises(ModbusException):
        decode_write(202, [3], energy_reset_unlocked=False, current=img.config)
