"""Cancellation that always wins, and stopping that cannot hang.

On Python 3.11 ``asyncio.wait_for`` loses a cancellation that arrives in the loop
iteration its inner future completes in (fixed in 3.12, where it is built on
``asyncio.timeout``), and pymodbus and aiomqtt use it for every connect and request:
pymodbus then even reports the cancelled connect as a failed one, which a retry loop
would retry for ever, so ``task.cancel()`` (a stale timeout, ``stop()``, pytest's
teardown) never ends the task. The task still counts the request, though:
``Task.cancelling()`` stays raised. :func:`honour_cancellation` compares it with the
count taken before a backend call and re-raises what a library swallowed; the
sources' read loop and the sinks' ``drive`` do so after every backend call.

Stopping is bounded: :func:`cancel_and_wait` and :func:`bounded_close` wait at most
``STOP_TIMEOUT_S`` and then log and move on rather than hang the caller.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Coroutine
from typing import Any, Final

LOG = logging.getLogger(__name__)

#: How long stopping waits for a device to be released or a cancelled task to end.
STOP_TIMEOUT_S: Final = 5.0


def cancel_requests() -> int:
    """The current task's pending cancellation requests (0 outside a task)."""
    task = asyncio.current_task()
    return task.cancelling() if task is not None else 0


def honour_cancellation(before: int) -> None:
    """Raise CancelledError if a cancellation was requested since ``before`` was taken.

    Call it after awaiting library code: a request still pending there was swallowed.
    """
    if cancel_requests() > before:
        raise asyncio.CancelledError


async def cancel_and_wait(
    tasks: Collection[asyncio.Task[Any]], timeout_s: float = STOP_TIMEOUT_S
) -> None:
    """Cancel ``tasks`` and wait at most ``timeout_s`` for them to end.

    Unlike ``suppress(CancelledError)`` around ``await task`` this never swallows the
    caller's own cancellation, and a task that ignores its cancellation is logged and
    left behind instead of hanging the caller. A task's own error is re-raised.
    """
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    done, pending = await asyncio.wait(tasks, timeout=timeout_s)
    for task in pending:
        LOG.error("%s ignored its cancellation for %g s: left running", task, timeout_s)
    for task in done:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            raise error


async def bounded_close(
    closing: Coroutine[Any, Any, None], what: str, timeout_s: float = STOP_TIMEOUT_S
) -> None:
    """Await ``closing`` for at most ``timeout_s``: a hung peer must not hang a stop."""
    deadline = asyncio.timeout(timeout_s)
    try:
        async with deadline:
            await closing
    except TimeoutError:
        if not deadline.expired():
            raise
        LOG.warning("%s: not released within %g s: abandoned", what, timeout_s)
