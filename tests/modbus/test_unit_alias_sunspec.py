"""Unit ids 0 and 255 on a one-meter TCP port, and a real SunSpec client (pysunspec2).

The Modbus TCP guide has a directly connected server answer unit 0 and 255 (many
masters send 255 by default); the Dispatcher aliases them on TCP when the port serves
exactly one meter, never on a serial line (unit 0 is its broadcast). pysunspec2 scans
the twin over TCP (with unit 255, as such a master would) and reads every point its
model definitions mark mandatory.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import replace

import pytest

from twin.core import MeterConfig, MeterCore, MeterModel, SampleBlock, StatusBit
from twin.modbus import Dispatcher, MeterEndpoint
from twin.modbus.tcp import ModbusTcpServer
from twin.registers import ExceptionCode, Identity, RegisterImage, device_identification

READ = struct.pack(">BHH", 3, 0, 4)
WRITE = struct.pack(">BHH", 6, 200, 21212)
GATEWAY = bytes((0x83, ExceptionCode.GATEWAY_TARGET_FAILED))


def endpoint(model: str = "MMD-200A", powered: bool = True) -> MeterEndpoint:
    core = MeterCore(MeterConfig(model=MeterModel.parse(model)))
    for _ in range(3):
        core.advance(SampleBlock.build(60, 1.0, voltage_v=[120.0, 120.0], current_a=[20.0, 9.0]))
    snap = core.snapshot()
    if not powered:
        nan = float("nan")
        snap = replace(
            snap,
            powered=False,
            status_bits=snap.status_bits | 1 << StatusBit.UNPOWERED,
            power_w=nan,
            power_l1_w=nan,
            power_l2_w=nan,
            voltage_l1_v=nan,
            voltage_l2_v=nan,
            voltage_l1_l2_v=nan,
            current_l1_a=nan,
            current_l2_a=nan,
            power_factor_l1=nan,
            power_factor_l2=nan,
            frequency_hz=nan,
        )
    ident = Identity.from_config(core.config)
    return MeterEndpoint(RegisterImage.build(snap, ident), device_identification(ident))


def test_one_meter_tcp_port_answers_unit_0_and_255_as_its_meter() -> None:
    written: list[tuple[int, list[int]]] = []
    ep = endpoint()
    ep.write = lambda address, values: written.append((address, values))
    d = Dispatcher({7: ep}, port=5020)
    answer = d.answer(7, READ)
    assert answer is not None and answer[:2] == bytes((3, 8))
    assert d.answer(0, READ) == answer and d.answer(255, READ) == answer
    assert d.answer(0, WRITE) == WRITE and written == [(200, [21212])]
    assert d.answer(8, READ) == GATEWAY  # any other unit: as before


def test_aliases_off_and_where_they_do_not_apply() -> None:
    one, other = endpoint(), endpoint()
    assert Dispatcher({1: one}, unit_aliases=frozenset()).answer(255, READ) == GATEWAY
    two = Dispatcher({1: one, 2: other})  # two meters: which one 255 means is unknown
    assert two.answer(0, READ) == GATEWAY and two.answer(255, READ) == GATEWAY
    line = Dispatcher({1: one}, serial_line=True)  # RTU: 0 stays broadcast, 255 foreign
    assert line.answer(0, READ) is None and line.answer(255, READ) is None
    served_255 = Dispatcher({255: other}, port=5020)  # a real unit 255 is itself
    assert served_255.answer(255, READ) == other.respond(READ)


def _scan(port: int, unit: int) -> dict[str, object]:
    import sunspec2.modbus.client as sunspec_client
    from sunspec2 import mdef

    device = sunspec_client.SunSpecModbusClientDeviceTCP(slave_id=unit, ipport=port, timeout=5)
    try:
        device.scan()
        values: dict[str, object] = {}
        for model_id, models in device.models.items():
            if not isinstance(model_id, int):
                continue
            for name, p in models[0].points.items():
                if p.pdef.get(mdef.MANDATORY) == mdef.MANDATORY_TRUE:
                    values[f"{model_id}.{name}"] = p.value
        return values
    finally:
        device.close()


@pytest.mark.parametrize("model", ["MMD-200A", "MMS-100A"])
async def test_pysunspec2_reads_every_mandatory_point_over_unit_255(model: str) -> None:
    server = ModbusTcpServer({1: endpoint(model)}, port=0)
    await server.start()
    try:
        values = await asyncio.to_thread(_scan, server.port, 255)
    finally:
        await server.close()
    meter = "202" if model.startswith("MMD") else "201"
    assert f"{meter}.TotWhExp" in values and f"{meter}.W" in values and "1.SN" in values
    missing = sorted(name for name, value in values.items() if value is None)
    assert missing == []


async def test_pysunspec2_unpowered_meter_reads_not_implemented_but_energy() -> None:
    server = ModbusTcpServer({1: endpoint(powered=False)}, port=0)
    await server.start()
    try:
        values = await asyncio.to_thread(_scan, server.port, 1)
    finally:
        await server.close()
    missing = {name for name, value in values.items() if value is None}
    assert {"202.W", "202.A", "202.Hz", "202.PhV"} <= missing
    assert values["202.TotWhImp"] and values["202.TotWhExp"] == 1
    assert isinstance(values["202.Evt"], int) and values["202.Evt"] & 1 << 2


@pytest.mark.parametrize(("aliases", "answered"), [(None, True), (frozenset(), False)])
async def test_twin_config_unit_aliases(aliases: frozenset[int] | None, answered: bool) -> None:
    from twin.runtime.config import TwinConfig
    from twin.runtime.twin import Twin

    cfg = TwinConfig(port=0, speed=None, state_dir=None)
    if aliases is not None:
        cfg = TwinConfig(port=0, speed=None, state_dir=None, unit_aliases=aliases)
    async with Twin(cfg) as twin:
        reader, writer = await asyncio.open_connection("127.0.0.1", twin.port)
        writer.write(struct.pack(">HHHB", 5, 0, 6, 255) + READ)
        head = await asyncio.wait_for(reader.readexactly(8), 5)
        assert (head[7] == 3) is answered and (head[7] == 0x83) is not answered
        writer.close()
