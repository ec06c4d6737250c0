"""Cancellation always wins, even one a backend's library swallowed; stopping is bounded.

The backends here do what pymodbus does on Python 3.11 when a cancellation lands as
its connect completes: the cancellation comes back as an ordinary failure (a source)
or is lost in a request that then succeeds (a sink). Without the base's guard the
source's retry loop retries for ever and ``task.cancel()`` never ends the task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Self

import pytest

from devices import (
    CounterEvent,
    DeviceIOError,
    DeviceUrl,
    Observation,
    PulseSinkBase,
    PulseSourceBase,
    SinkConfig,
    SourceConfig,
    cancel_and_wait,
)
from tests.helpers import SETTLE_TIMEOUT_S, next_reading, until


class SwallowingSource(PulseSourceBase):
    """A module that is down, behind a library that turns a cancellation into a failure."""

    attempts = 0

    @classmethod
    def from_url(cls, url: DeviceUrl, **_: object) -> Self:
        raise NotImplementedError

    async def _open(self) -> None:
        """Nothing to acquire."""

    async def _close(self) -> None:
        """Nothing to release."""

    async def _next_observations(self) -> Sequence[Observation]:
        self.attempts += 1
        try:
            await asyncio.sleep(SETTLE_TIMEOUT_S)  # connecting
        except asyncio.CancelledError:
            raise DeviceIOError("cannot connect") from None
        raise DeviceIOError("cannot connect")


class SwallowingSink(PulseSinkBase):
    """A write that completes although the caller was cancelled during it."""

    @classmethod
    def from_url(cls, url: DeviceUrl, **_: object) -> Self:
        raise NotImplementedError

    async def _open(self) -> None:
        """Nothing to acquire."""

    async def _close(self) -> None:
        """Nothing to release."""

    async def _write(self, closed: bool, at_s: float) -> None:
        # The reply came in the loop iteration the cancellation did: the latter is lost.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(SETTLE_TIMEOUT_S)  # waiting for the reply


async def ended(task: asyncio.Task[object]) -> bool:
    done, _ = await asyncio.wait([task], timeout=SETTLE_TIMEOUT_S)
    return bool(done)


async def test_a_cancelled_read_ends_although_the_library_swallowed_it() -> None:
    async with SwallowingSource(SourceConfig("down", kh_wh=10, stale_after_s=None)) as source:
        reading = asyncio.create_task(source.read())
        await until(lambda: source.attempts == 1, "the first connect attempt")
        reading.cancel()
        assert await ended(reading) and reading.cancelled()
    assert source.attempts == 1  # not retried after the cancellation


async def test_the_stale_timeout_wins_over_a_swallowing_library() -> None:
    async with SwallowingSource(SourceConfig("down", kh_wh=10, stale_after_s=0.05)) as source:
        stale = await next_reading(source)
    assert stale.event is CounterEvent.STALE and source.stale


async def test_a_cancelled_drive_is_counted_and_still_cancelled() -> None:
    async with SwallowingSink(SinkConfig("coil")) as sink:
        drive = asyncio.create_task(sink.drive(True))
        await asyncio.sleep(0)  # into the write
        drive.cancel()
        assert await ended(drive) and drive.cancelled()
    assert sink.closed and sink.closures == 1  # the write happened: it is not lost


async def test_cancel_and_wait_leaves_a_task_that_ignores_cancellation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await release.wait()

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR):
        await cancel_and_wait([task], timeout_s=0.05)
    assert not task.done() and "ignored its cancellation" in caplog.text
    release.set()
    await task


async def test_cancel_and_wait_never_swallows_the_callers_cancellation() -> None:
    release = asyncio.Event()

    async def slow_to_stop() -> None:
        try:
            await release.wait()
        except asyncio.CancelledError:
            await release.wait()  # cleans up until released
            raise

    child = asyncio.create_task(slow_to_stop())
    await asyncio.sleep(0)
    stopping = asyncio.create_task(cancel_and_wait([child]))
    await asyncio.sleep(0)
    stopping.cancel()
    assert await ended(stopping) and stopping.cancelled()
    release.set()
    assert await ended(child) and child.cancelled()


async def test_cancel_and_wait_reraises_a_tasks_own_error() -> None:
    async def broken() -> None:
        raise DeviceIOError("lost the module")

    task = asyncio.create_task(broken())
    await asyncio.sleep(0)
    with pytest.raises(DeviceIOError, match="lost the module"):
        await cancel_and_wait([task])
