"""Raw-frame traces (the hook API and `--trace FILE`), the connection limit, idle
timeouts, and one slow or half-open client never delaying the others."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
from pathlib import Path

from tests.helpers import TwinProcess
from twin.modbus.client import MeterClient
from twin.runtime.config import TwinConfig
from twin.runtime.twin import Twin


def _request(tid: int, unit: int = 1, address: int = 0, count: int = 4) -> bytes:
    return struct.pack(">HHHBBHH", tid, 0, 6, unit, 3, address, count)


async def _exchange(port: int, frame: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(frame)
    head = await asyncio.wait_for(reader.readexactly(6), 2)
    body = await asyncio.wait_for(reader.readexactly(struct.unpack(">H", head[4:6])[0]), 2)
    writer.close()
    return head + body


async def test_trace_hook_sees_every_frame_both_ways() -> None:
    frames: list[tuple[str, int, int, bytes, float]] = []
    async with Twin(TwinConfig(port=0, speed=None, meters=2)) as twin:

        def hook(direction: str, port: int, unit: int, frame: bytes, at: float) -> None:
            frames.append((direction, port, unit, frame, at))

        twin.hooks.add_trace(hook)
        t0 = time.time()
        reply1 = await _exchange(twin.port, _request(5, unit=2))
        reply9 = await _exchange(twin.port, _request(6, unit=9))  # unknown unit: 0x0B
        twin.hooks.remove_trace(hook)
        await _exchange(twin.port, _request(7))  # not traced any more
    assert [(d, p, u) for d, p, u, _, _ in frames] == [
        ("rx", twin.port, 2),
        ("tx", twin.port, 2),
        ("rx", twin.port, 9),
        ("tx", twin.port, 9),
    ]
    assert frames[0][3] == _request(5, unit=2) and frames[1][3] == reply1
    assert frames[3][3] == reply9 and reply9[7:] == b"\x83\x0b"
    assert all(t0 - 1 <= f[4] <= time.time() + 1 for f in frames)


def test_trace_file_writes_one_json_line_per_frame(tmp_path: Path, start_twin: object) -> None:
    trace = tmp_path / "trace.jsonl"
    tp: TwinProcess = start_twin(  # type: ignore[operator]
        "--trace", str(trace), "--fault", "delay:ms=50,unit=1,count=1"
    )

    async def poll() -> list[bytes]:
        # two requests pipelined on one connection: the first is delayed by the fault
        reader, writer = await asyncio.open_connection("127.0.0.1", tp.port)
        writer.write(_request(1) + _request(2))
        replies = [await asyncio.wait_for(reader.readexactly(17), 2) for _ in range(2)]
        writer.close()
        return replies

    replies = asyncio.run(poll())
    code, _, err = tp.stop()
    assert code == 0, err
    assert [r[:2] for r in replies] == [b"\x00\x02", b"\x00\x01"]  # the delayed one last
    lines = [json.loads(line) for line in trace.read_text().splitlines()]
    assert [(r["dir"], r["unit"], r["port"]) for r in lines] == [
        ("rx", 1, tp.port),
        ("rx", 1, tp.port),
        ("tx", 1, tp.port),
        ("tx", 1, tp.port),
    ]
    assert [bytes.fromhex(r["hex"]) for r in lines[:2]] == [_request(1), _request(2)]
    # the delayed answer is traced when it leaves, not when it was decided
    assert [bytes.fromhex(r["hex"]) for r in lines[2:]] == replies
    assert lines[2]["t"] <= lines[3]["t"]


async def test_connection_limit_evicts_the_longest_idle_connection() -> None:
    cfg = TwinConfig(port=0, speed=None, max_connections=2)
    async with Twin(cfg) as twin:
        idle = await asyncio.open_connection("127.0.0.1", twin.port)
        await asyncio.sleep(0.05)
        busy = await asyncio.open_connection("127.0.0.1", twin.port)
        busy[1].write(_request(1))
        assert len(await asyncio.wait_for(busy[0].readexactly(17), 2)) == 17
        # a third client at the limit is admitted; the idle one makes way
        assert len(await _exchange(twin.port, _request(3))) == 17
        assert await asyncio.wait_for(idle[0].read(), 2) == b""
        assert twin.tcp is not None and twin.tcp.evicted == 1
        busy[1].write(_request(2))  # the active one keeps working
        assert len(await asyncio.wait_for(busy[0].readexactly(17), 2)) == 17
        idle[1].close()
        busy[1].close()


async def test_idle_connections_time_out() -> None:
    async with Twin(TwinConfig(port=0, speed=None, idle_timeout_s=0.2)) as twin:
        reader, writer = await asyncio.open_connection("127.0.0.1", twin.port)
        for tid in range(3):  # activity keeps it open past the timeout
            writer.write(_request(tid))
            assert len(await asyncio.wait_for(reader.readexactly(17), 2)) == 17
            await asyncio.sleep(0.1)
        assert await asyncio.wait_for(reader.read(), 2) == b""  # idle: closed by the twin
        writer.close()


async def test_half_open_and_stalled_clients_do_not_delay_others() -> None:
    async with Twin(TwinConfig(port=0, speed=None, meters=3)) as twin:
        # half a frame, then nothing: the twin waits for the rest on that connection only
        stalled_r, stalled_w = await asyncio.open_connection("127.0.0.1", twin.port)
        stalled_w.write(_request(1)[:5])
        # a client that pipelines requests without end and never reads its answers
        loop = asyncio.get_running_loop()
        deaf = socket.create_connection(("127.0.0.1", twin.port))
        deaf.setblocking(False)
        burst = _request(2) * 1000

        async def flood() -> None:
            while True:
                await loop.sock_sendall(deaf, burst)

        flooding = asyncio.create_task(flood())
        await asyncio.sleep(0.2)
        # Another client keeps being answered meanwhile (each read within the client's
        # timeout; how fast is bench_modbus_latency's business, not a unit test's).
        async with MeterClient(port=twin.port, unit=3, timeout_s=1.0) as c:
            for _ in range(50):
                assert len(await c.read_registers(0, 40)) == 40
        # backpressure: the deaf client's answers stay bounded in the twin's memory
        assert twin.tcp is not None
        assert max(c.buffered_bytes for c in twin.tcp.connections) < 1_000_000
        flooding.cancel()
        stalled_w.write(_request(1)[5:])  # the stalled one completes its frame: answered
        assert len(await asyncio.wait_for(stalled_r.readexactly(17), 2)) == 17
        stalled_w.close()
        deaf.close()
