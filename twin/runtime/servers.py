"""The Modbus side of a twin: protocol faults and traces, the TCP servers, the RTU line.

Three of the twin's parts (see :data:`twin.runtime.twin.PARTS`), each an async context
manager entered on the twin's exit stack. They see the twin through :class:`ServerHost`:
its config, its meters' endpoints, its fault hooks and the servers it keeps, so this
module does not import the `Twin` class (which lists these parts).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Protocol

from twin.modbus.endpoint import MeterEndpoint
from twin.modbus.hooks import WireHooks
from twin.modbus.rtu import ModbusRtuServer
from twin.modbus.tcp import ModbusTcpServer
from twin.runtime.config import TwinConfig
from twin.runtime.meters import LiveMeter


class ServerHost(Protocol):
    """What the server parts need of a twin."""

    config: TwinConfig
    hooks: WireHooks
    servers: dict[int, ModbusTcpServer]
    rtu: ModbusRtuServer | None

    @property
    def meters(self) -> Sequence[LiveMeter]: ...


@asynccontextmanager
async def hooks_part(twin: ServerHost) -> AsyncIterator[None]:
    cfg = twin.config
    twin.hooks.add_faults([*cfg.faults, *(f for m in twin.meters for f in m.spec.faults)])
    try:
        if cfg.trace_path is not None:
            twin.hooks.open_trace_file(cfg.trace_path)
        yield
    finally:
        twin.hooks.close()


def _endpoints_by_port(twin: ServerHost) -> dict[int | None, dict[int, MeterEndpoint]]:
    by_port: dict[int | None, dict[int, MeterEndpoint]] = {}
    for m in twin.meters:
        by_port.setdefault(m.spec.port, {})[m.spec.unit] = m.endpoint
    return by_port


@asynccontextmanager
async def tcp_part(twin: ServerHost) -> AsyncIterator[None]:
    cfg = twin.config
    try:
        for port, units in _endpoints_by_port(twin).items():
            if port is None:
                continue
            server = ModbusTcpServer(
                units,
                cfg.host,
                port,
                unknown_unit=cfg.resolved.unknown_unit,
                max_connections=cfg.max_connections,
                idle_timeout_s=cfg.idle_timeout_s,
                unit_aliases=cfg.unit_aliases,
                tls=cfg.tls.policy() if cfg.tls is not None else None,
            )
            twin.servers[port] = server
            await server.start()
        twin.hooks.servers.extend(twin.servers.values())
        twin.hooks.sync()
        yield
    finally:
        for server in twin.servers.values():
            await server.close()
            if server in twin.hooks.servers:
                twin.hooks.servers.remove(server)


@asynccontextmanager
async def rtu_part(twin: ServerHost) -> AsyncIterator[None]:
    settings = twin.config.serial
    if settings is None:
        yield
        return
    server = twin.rtu = ModbusRtuServer(next(iter(_endpoints_by_port(twin).values())), settings)
    try:
        await server.start()
        twin.hooks.servers.append(server)
        twin.hooks.sync()
        yield
    finally:
        await server.close()
        if server in twin.hooks.servers:
            twin.hooks.servers.remove(server)
