"""A Modbus server process for the fuzz and soak runs: ``python -m tests.modbus.fuzz_server``.

One live meter (a core stepped every 0.1 s, its image rebuilt each time, so the
answer memo is dropped as in a running twin) behind the twin's TCP server (plain or
TLS, ``--tls-dir`` holding server.pem, server.key and ca.pem) or its RTU server on a
serial device. Writes are on: block C addresses are accepted (nothing changes), any
other address is refused with exception 02, so FC06/FC16 are checked to the end.
Prints ``serving PORT`` when ready; stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from twin.core import MeterConfig, MeterCore, SampleBlock
from twin.modbus import MeterEndpoint, SerialSettings
from twin.modbus.security import TlsSettings
from twin.modbus.tcp import ModbusTcpServer
from twin.registers import ExceptionCode, Identity, ModbusException, RegisterImage
from twin.registers import device_identification as device_id

UNIT = 1


def _write(address: int, values: list[int]) -> None:
    if not (address >= 200 and address + len(values) <= 206):
        raise ModbusException(ExceptionCode.ILLEGAL_DATA_ADDRESS, "not block C")


async def serve(args: argparse.Namespace) -> None:
    core = MeterCore(MeterConfig())
    ident = Identity.from_config(core.config)
    block = SampleBlock.build(1, 1.0, voltage_v=[120.0, 120.0], current_a=[20.0, 10.0])
    core.advance(block)
    ep = MeterEndpoint(RegisterImage.build(core.snapshot(), ident), device_id(ident), _write)
    server: ModbusTcpServer | None = None
    if args.serial:
        from twin.modbus.rtu import ModbusRtuServer

        rtu = ModbusRtuServer({UNIT: ep}, SerialSettings(args.serial, 115200, "N", 1))
        await rtu.start()
        print("serving 0", flush=True)
    else:
        tls = None
        if args.tls_dir:
            d = Path(args.tls_dir)
            tls = TlsSettings(d / "server.pem", d / "server.key", d / "ca.pem").policy()
        server = ModbusTcpServer({UNIT: ep}, "127.0.0.1", 0, tls=tls)
        await server.start()
        print(f"serving {server.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    while not stop.is_set():
        await asyncio.sleep(0.1)
        core.advance(block)
        ep.set_image(RegisterImage.build(core.snapshot(), ident))
    if server is not None:
        await server.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--serial", default=None)
    ap.add_argument("--tls-dir", default=None)
    asyncio.run(serve(ap.parse_args()))


if __name__ == "__main__":
    main()
