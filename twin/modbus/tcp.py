"""Modbus TCP transport (plain or TLS): the listening port, its connection slots and TLS.

Theory of operation
-------------------
:class:`ModbusTcpServer` listens on one port and gives each client a
:class:`~twin.modbus.mbap.MbapConnection` (MBAP framing, the memoised fast path and
backpressure live there). Who answers what is decided by the port's
:class:`~twin.modbus.dispatch.Dispatcher`, the same code the RTU line uses.

Nobody holds the twin hostage (each limit a named constant below):

- Slots: an idle timeout (:data:`DEFAULT_IDLE_TIMEOUT_S`, counted from the last
  complete request, so a byte-a-second client is idle too), a timeout for an
  incomplete frame (:data:`FRAME_TIMEOUT_S`), TCP keepalive for vanished peers (set
  once on the listening sockets: accepted sockets inherit it, no system call per
  connection), and at the connection limit the longest-idle connection is closed to
  admit the new one. One sweeper task per server enforces the timeouts (a coarse
  clock, no timer per connection).
- TLS (Modbus/TCP Security, :mod:`twin.modbus.security`): the handshake requires a
  client certificate from the configured CA; the role in it decides whether the
  connection may write. A read-only connection's writes answer exception 0x01.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import time
from typing import Final

from devices import cancel_and_wait
from twin.errors import ServeError
from twin.modbus.dispatch import TCP_UNIT_ALIASES, Dispatcher, TraceHook, unit_ids_text
from twin.modbus.endpoint import MeterEndpoint, UnknownUnit
from twin.modbus.mbap import MbapConnection
from twin.modbus.security import TlsPolicy

log = logging.getLogger(__name__)

DEFAULT_IDLE_TIMEOUT_S: Final = 60.0  # no complete request for this long: closed
FRAME_TIMEOUT_S: Final = 5.0  # an incomplete frame older than this: closed
TLS_HANDSHAKE_TIMEOUT_S: Final = 10.0
SWEEP_S: Final = 0.25  # the sweeper's longest period (at most a quarter of a timeout)
KEEPALIVE_IDLE_S: Final = 30
KEEPALIVE_INTERVAL_S: Final = 10
KEEPALIVE_PROBES: Final = 3


class ModbusTcpServer:
    """One listening TCP port serving many unit ids (plain TCP, or TLS with ``tls``)."""

    def __init__(
        self,
        units: dict[int, MeterEndpoint],
        host: str = "127.0.0.1",
        port: int = 5020,
        *,
        unknown_unit: UnknownUnit = UnknownUnit.EXCEPTION,
        max_connections: int = 256,
        idle_timeout_s: float | None = DEFAULT_IDLE_TIMEOUT_S,
        frame_timeout_s: float = FRAME_TIMEOUT_S,
        unit_aliases: frozenset[int] = TCP_UNIT_ALIASES,
        tls: TlsPolicy | None = None,
    ) -> None:
        self.dispatcher = Dispatcher(
            units, unknown_unit=unknown_unit, port=port, unit_aliases=unit_aliases
        )
        self.host, self.port = host, port
        self.max_connections = max_connections
        self.idle_timeout_s = idle_timeout_s
        self.frame_timeout_s = frame_timeout_s
        self.tls = tls
        self._trace: TraceHook | None = None
        self.connections: set[MbapConnection] = set()
        self.evicted = 0  # connections closed to admit a new one at max_connections
        self.timed_out = 0  # connections closed by the idle or incomplete-frame timeout
        self.now = time.monotonic()  # the coarse clock the sweeper advances
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def trace(self) -> TraceHook | None:
        """Called with every frame in and out while set (:mod:`twin.modbus.hooks`)."""
        return self._trace

    @trace.setter
    def trace(self, trace: TraceHook | None) -> None:
        self._trace = trace
        self.dispatcher.frames.clear()  # a memoised answer would bypass the trace

    @property
    def scheme(self) -> str:
        return "Modbus/TCP Security (TLS)" if self.tls is not None else "Modbus TCP"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        context = self.tls.context if self.tls is not None else None
        try:
            self._server = await loop.create_server(
                lambda: MbapConnection(self),
                self.host,
                self.port,
                reuse_address=True,
                ssl=context,
                ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT_S if context else None,
            )
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ServeError(
                    f"{self.host}:{self.port} is in use; choose another --port"
                ) from None
            raise ServeError(f"cannot listen on {self.host}:{self.port}: {exc.strerror}") from None
        for sock in self._server.sockets:
            _keepalive(sock)
        if self.port == 0:  # an ephemeral port: report the one the OS chose
            self.port = self.dispatcher.port = int(self._server.sockets[0].getsockname()[1])
        self._sweeper = asyncio.create_task(self._sweep())
        log.info(
            "%s serving on %s:%d, unit ids %s",
            self.scheme,
            self.host,
            self.port,
            unit_ids_text(self.dispatcher.units),
        )

    async def close(self) -> None:
        if self._sweeper is not None:
            # never swallows a cancellation of the caller (unlike suppress around await)
            await cancel_and_wait([self._sweeper])
            self._sweeper = None
        if self._server is not None:
            self._server.close()
            for conn in list(self.connections):
                conn.close()
            await self._server.wait_closed()
            self._server = None
            log.info("%s on %s:%d closed", self.scheme, self.host, self.port)

    async def _sweep(self) -> None:
        # The coarse clock lags by up to one period, so a timeout fires within one
        # period of its nominal value; a period of a quarter keeps that within 25 %.
        timeouts = [t for t in (self.idle_timeout_s, self.frame_timeout_s) if t]
        period = min([SWEEP_S, *(t / 4 for t in timeouts)])
        while True:
            await asyncio.sleep(period)
            self.sweep()

    def sweep(self) -> None:
        """Advance the coarse clock; close idle connections and stale incomplete frames."""
        now = self.now = time.monotonic()
        idle, frame = self.idle_timeout_s, self.frame_timeout_s
        for conn in list(self.connections):
            stale_frame = conn.partial_since and now - conn.partial_since > frame
            if stale_frame or (idle and now - conn.last_request > idle):
                self.timed_out += 1
                conn.close()

    def admit(self, conn: MbapConnection) -> None:
        """Room for ``conn``: at the limit, the longest-idle connection makes way."""
        if len(self.connections) >= self.max_connections:
            oldest = min(self.connections, key=lambda c: c.last_request)
            self.connections.discard(oldest)
            self.evicted += 1
            oldest.abort()
        self.connections.add(conn)

    def release(self, conn: MbapConnection) -> None:
        """``conn`` is gone: its slot is free, per-connection fault counts can go."""
        self.connections.discard(conn)
        self.dispatcher.connection_closed(conn.number)


def _keepalive(sock: socket.socket) -> None:
    """TCP keepalive, so a peer that vanished (no FIN, no RST) frees its slot. Set on a
    listening socket, every accepted socket inherits it (Linux copies the options)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_IDLE_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE_INTERVAL_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPALIVE_PROBES)
