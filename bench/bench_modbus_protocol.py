"""The Python cost of one Modbus TCP request in the twin, without sockets or scheduling.

Drives the twin's connection protocol (:class:`twin.modbus.mbap.MbapConnection`) with
a transport that only counts writes, so the figure is the interpreter's work per
request and hardly moves with the machine's load (the throughput benchmark's req/s
does). Three paths, ns per frame (best of ``--repeats``):

- ``memo``: a poller's FC03 read of 40 registers, alone in its chunk and asked before,
  answered from the port's memo of framed answers (what ``modbus_load`` sends);
- ``parsed``: the same reads two to a chunk (pipelined), so each is parsed and
  answered through the dispatcher;
- ``traced``: one read per chunk with a trace hook set (the slow path faults use).

    .venv/bin/python bench/bench_modbus_protocol.py [--frames 200000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
from collections.abc import Callable

from twin.core import MeterConfig, MeterCore, SampleBlock
from twin.modbus import MeterEndpoint
from twin.modbus.mbap import MbapConnection
from twin.modbus.tcp import ModbusTcpServer
from twin.registers import Identity, RegisterImage, device_identification


class CountingTransport:
    """What the protocol needs of a transport; writes are counted, not sent."""

    def __init__(self) -> None:
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def close(self) -> None:
        pass


def connection() -> tuple[ModbusTcpServer, MbapConnection]:
    core = MeterCore(MeterConfig())
    core.advance(SampleBlock.build(60, 1.0, voltage_v=[120.0, 120.0], current_a=[20.0, 10.0]))
    ident = Identity.from_config(core.config)
    ep = MeterEndpoint(RegisterImage.build(core.snapshot(), ident), device_identification(ident))
    server = ModbusTcpServer({1: ep}, "127.0.0.1", 0)
    conn = MbapConnection(server)
    conn.connection_made(CountingTransport())  # type: ignore[arg-type]
    return server, conn


def ns_per_frame(feed: Callable[[bytes], None], chunks: list[bytes], per_chunk: int) -> float:
    t0 = time.perf_counter()
    for chunk in chunks:
        feed(chunk)
    return (time.perf_counter() - t0) * 1e9 / (len(chunks) * per_chunk)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200_000, help="frames per timing (200000)")
    ap.add_argument("--repeats", type=int, default=7, help="timings per path; best kept (7)")
    args = ap.parse_args()
    reads = [struct.pack(">HHHBBHH", i & 0xFFFF, 0, 6, 1, 3, 0, 40) for i in range(args.frames)]
    pairs = [a + b for a, b in zip(reads[::2], reads[1::2], strict=True)]
    results: dict[str, float] = {}
    for path in ("memo", "parsed", "traced"):
        server, conn = connection()
        if path == "traced":
            server.trace = lambda direction, unit, frame, at: None
        chunks, per_chunk = (pairs, 2) if path == "parsed" else (reads, 1)
        conn.data_received(reads[0])  # the first answer fills the memo
        results[path] = min(
            ns_per_frame(conn.data_received, chunks, per_chunk) for _ in range(args.repeats)
        )
    print(f"MbapConnection.data_received, ns per FC03 frame (best of {args.repeats}):")
    for path, ns in results.items():
        print(f"  {path:<7} {ns:>6.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
