"""The drop fault: after N requests on a connection, each further request closes it
with probability p; a connection's counts are forgotten when it closes."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from twin.modbus.faults import FaultInjector, parse_fault
from twin.runtime.config import TwinConfig
from twin.runtime.twin import Twin

READ = bytes((3, 0, 0, 0, 4))


def _fires(injector: FaultInjector, connection: int, requests: int) -> list[bool]:
    return [injector(1, READ, connection, 5020) is not None for _ in range(requests)]


def test_p_applies_per_request_after_the_first_n() -> None:
    injector = FaultInjector(seed=7)
    injector.add(parse_fault("drop:after=2,p=0.5"))
    fired = _fires(injector, 1, 400)
    assert fired[:2] == [False, False]  # the N answered requests
    # A request past N that was spared leaves the count at N: the very next one may
    # drop (before the fix the count restarted, so N more were always answered).
    after_spare = [i for i in range(2, 399) if not fired[i] and fired[i + 1] and _past_n(fired, i)]
    assert after_spare, "a spared request was always followed by N more answered ones"
    # After each drop the connection would be closed; on the same number (RTU) N
    # requests are answered afresh.
    for i, f in enumerate(fired[:-2]):
        if f:
            assert fired[i + 1 : i + 3] == [False, False]
    share = sum(fired) / len(fired)
    assert 0.15 < share < 0.35  # ~1 drop per 2 answered + 2 tries at p=0.5: 0.25


def _past_n(fired: list[bool], i: int) -> bool:
    """True when request i is past the N=2 answered ones since the last drop."""
    last = max((j for j in range(i) if fired[j]), default=-1)
    return i - last > 2


def test_p_zero_never_drops_and_keeps_one_count() -> None:
    injector = FaultInjector(seed=1)
    injector.add(parse_fault("drop:after=3,p=0"))
    assert not any(_fires(injector, 9, 50))
    assert injector.drop_counts == {(1, 9): 3}  # bounded: the count stops at N


def test_closed_connections_are_forgotten() -> None:
    injector = FaultInjector(seed=1)
    injector.add(parse_fault("drop:after=5"))
    for connection in range(100):
        _fires(injector, connection, 2)
    assert len(injector.drop_counts) == 100
    for connection in range(100):
        injector.connection_closed(connection)
    assert injector.drop_counts == {}


@pytest.fixture
async def twin(tmp_path: Path) -> AsyncIterator[Twin]:
    async with Twin(TwinConfig(port=0, speed=None)) as t:
        yield t


async def _one_request_then_close(port: int, tid: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(struct.pack(">HHHB", tid, 0, 6, 1) + READ)
    assert len(await reader.readexactly(17)) == 17
    writer.close()
    await writer.wait_closed()


async def test_many_short_connections_leave_no_drop_counts(twin: Twin) -> None:
    twin.hooks.add_fault("drop:after=100")
    for tid in range(40):
        await _one_request_then_close(twin.port, tid)
    for _ in range(50):  # the server sees each close a moment later
        if not twin.hooks.faults.drop_counts:
            break
        await asyncio.sleep(0.01)
    assert twin.hooks.faults.drop_counts == {}
    twin.hooks.clear_faults()  # unarmed: the server goes back to its fast path
    assert twin.tcp is not None and twin.tcp.dispatcher.interceptor is None
