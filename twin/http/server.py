"""`HttpServer`: the twin's HTTP part, entered on the twin's exit stack like its other parts.

``async with HttpServer(twin, config) as http:`` listens (an ephemeral port when the
config says 0; :attr:`HttpServer.port` tells which) and on exit closes the streams
first (their loops end at once) and then the listener. Access logs are off: one log
line per start and stop, never per request. :func:`http_part` is the twin's part (one
entry of ``twin.runtime.twin.PARTS``): a no-op while the twin's config has no ``http``;
it sees the twin through :class:`HttpTwin`, so this package does not import the runtime.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Protocol

from aiohttp import web

from twin.control import Locks
from twin.errors import ServeError
from twin.http.app import build_app
from twin.http.config import HttpConfig
from twin.http.target import HttpTarget

log = logging.getLogger(__name__)
_SHUTDOWN_S = 2.0  # open requests get this long to finish when the twin stops


class HttpServer:
    """The JSON API, live stream, /metrics and front panel of one running twin."""

    def __init__(self, target: HttpTarget, config: HttpConfig) -> None:
        self.config = config
        self.app = build_app(target, config)
        self.host = config.host
        self.port = config.port
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    async def start(self) -> None:
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(
            runner, self.host, self.port, shutdown_timeout=_SHUTDOWN_S, reuse_address=True
        )
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            where = f"--http {self.host}:{self.port}"
            if exc.errno == errno.EADDRINUSE:
                raise ServeError(f"{where} is in use; choose another port") from None
            raise ServeError(f"cannot listen on {where}: {exc.strerror}") from None
        self._runner = runner
        if self.port == 0:
            self.port = int(runner.addresses[0][1])
        log.info("HTTP API and front panel on %s", self.url)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            log.info("HTTP on %s closed", self.url)

    async def __aenter__(self) -> HttpServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class HasHttpConfig(Locks, Protocol):
    @property
    def http(self) -> HttpConfig | None: ...


class HttpTwin(HttpTarget, Protocol):
    """A running twin as its HTTP part needs it: ``twin.http`` is set while it serves."""

    http: HttpServer | None

    @property
    def config(self) -> HasHttpConfig: ...


@asynccontextmanager
async def http_part(twin: HttpTwin) -> AsyncIterator[None]:
    config = twin.config.http
    if config is None:
        yield
        return
    async with HttpServer(twin, config) as server:
        twin.http = server
        try:
            yield
        finally:
            twin.http = None
