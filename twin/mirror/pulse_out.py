"""A meter's pulse output driven onto a real (or virtual) counter input: ``run --pulse-out``.

The core reports each output's edges with their meter time (:class:`PulseEdges`).
:class:`PulseOut` takes those of one output from the twin's event listeners
(synchronous, on the event loop thread), queues them in order and drives a
:class:`devices.PulseSink` from a task, so a slow sink (a Modbus coil write) never
holds up the meter; the closures reach the sink in the order and number the core
made them. ``await pulse_out.flush()`` waits until every queued edge was driven.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from types import TracebackType
from typing import Self

from devices import PulseSink, cancel_and_wait
from twin.core import Event, PulseEdges, PulseOutput
from twin.errors import DeviceError

log = logging.getLogger(__name__)


class PulseOut:
    """Drives ``sink`` from the edges of ``output``; ``async with`` it, then feed events."""

    def __init__(self, sink: PulseSink, output: PulseOutput = PulseOutput.KH_10) -> None:
        self.sink = sink
        self.output = output
        self._queue: asyncio.Queue[tuple[bool, float]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.failing = False  # the last edge could not be driven (the sink is down)
        self._failed_before = 0
        self.edges = 0
        self.failed = 0

    def on_events(self, events: Sequence[Event]) -> None:
        """Queue the edges of this output from a batch of core events."""
        for ev in events:
            if isinstance(ev, PulseEdges) and ev.output == self.output:
                for t, closed in zip(ev.time_s.tolist(), ev.closed.tolist(), strict=True):
                    self._queue.put_nowait((bool(closed), float(t)))

    async def flush(self) -> None:
        """Return once every queued edge has been driven."""
        await self._queue.join()

    async def _drain(self) -> None:
        # The flag, not only the cancel: Python 3.11's wait_for (in pymodbus) loses a
        # cancellation that lands as its answer arrives, and the loop would go on.
        while not self._stopping:
            closed, at_s = await self._queue.get()
            writes = closed != self.sink.closed  # a repeat writes nothing: proves nothing
            try:
                await self.sink.drive(closed, at_s)
                self.edges += 1
                if self.failing and writes:  # one line when the sink answers again
                    self.failing = False
                    log.warning(
                        "pulse out %s: driving again (%d edges lost while it failed)",
                        self.sink.sink_id,
                        self.failed - self._failed_before,
                    )
            except DeviceError as exc:  # the wire lost this edge; the next ones still go
                self.failed += 1
                if not self.failing:  # one line per outage, not one per edge
                    self.failing, self._failed_before = True, self.failed - 1
                    log.warning(
                        "pulse out %s: %s; edges are lost until it answers again",
                        self.sink.sink_id,
                        exc,
                    )
            finally:
                self._queue.task_done()

    async def __aenter__(self) -> Self:
        await self.sink.start()
        self._task = asyncio.create_task(self._drain(), name=f"pulse-out-{self.sink.sink_id}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopping = True
        task, self._task = self._task, None
        try:
            await cancel_and_wait([] if task is None else [task])
        finally:
            await self.sink.stop()
