"""A twin on its own event loop thread, so any test (sync or async) can drive it.

Theory of operation
-------------------
The pytest fixtures hand a test a running twin. Running it on the test's own event
loop would tie the fixture to pytest-asyncio's loop scopes and forbid synchronous
tests; instead a :class:`LoopThread` owns one event loop in a daemon thread, the twin
is started, stepped, commanded and stopped there, and the test thread waits for each
call's result (:meth:`LoopThread.call`). The twin's servers answer on that loop, so a
test's own Modbus client (in the test's loop, or synchronous) talks to it over TCP like
any SCADA client would. Exceptions raised on the loop are re-raised in the caller.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import TypeVar

T = TypeVar("T")

CALL_TIMEOUT_S = 120.0  # one step of a long manual-clock window stays far below this


class LoopThread:
    """One event loop in a daemon thread; :meth:`call` runs work there and waits."""

    def __init__(self, name: str = "minimeter-twin") -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()
        self._loop.close()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def run(self, factory: Callable[[], Awaitable[T]], timeout_s: float = CALL_TIMEOUT_S) -> T:
        """Await ``factory()`` on the loop; return its result or raise its exception."""

        async def runner() -> T:
            return await factory()

        return asyncio.run_coroutine_threadsafe(runner(), self._loop).result(timeout_s)

    def call(self, func: Callable[[], T], timeout_s: float = CALL_TIMEOUT_S) -> T:
        """Call ``func()`` on the loop thread (between requests); return its result."""
        done: Future[T] = Future()

        def invoke() -> None:
            try:
                done.set_result(func())
            except BaseException as exc:  # handed to the caller, raised there
                done.set_exception(exc)

        self._loop.call_soon_threadsafe(invoke)
        return done.result(timeout_s)

    def close(self) -> None:
        """Stop the loop and join the thread (idempotent)."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
