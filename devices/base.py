"""The two hardware roles, and the behaviour every backend shares.

A :class:`PulseSource` reads a meter's pulse output back: ``async with source:`` then
``async for reading in source`` yields :class:`PulseReading` s, each with the new
counts, the running total, a timestamp and its uncertainty. A :class:`PulseSink`
drives an output (a PLC's counter input) from the twin's closures.

Template methods, as python-can's ``BusABC.recv`` over ``_recv_internal``: a backend
implements only ``_open``/``_close`` and ``_next_observations`` (raw counter values,
edges or heartbeats) or ``_write``; :class:`PulseSourceBase` applies, once for all,
debounce, rollover at the declared width, reset detection (never a negative jump),
persistence through a :class:`~devices.store.CounterStore` (so a restart neither
loses nor double-counts) and staleness after ``stale_after_s`` of silence. Transient
IO failures are :class:`DeviceIOError`: the base logs them, waits ``retry_delay_s``
and tries again; the silence shows up as staleness, and the counts a hardware
counter kept meanwhile are counted when it answers again.

Cancellation always wins, even one a library swallowed, and stopping is bounded
(see :mod:`devices.cancellation`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from types import TracebackType
from typing import Final, Protocol, Self

from devices.cancellation import bounded_close, cancel_requests, honour_cancellation
from devices.config import CounterEvent, SinkConfig, SourceConfig
from devices.counting import CounterTracker, CountStep
from devices.readings import (
    CounterSample,
    DeviceIOError,
    EdgeSample,
    Observation,
    PulseReading,
)
from devices.store import CounterStore, MemoryCounterStore
from devices.urls import DeviceUrl
from twin.errors import DeviceError

LOG = logging.getLogger(__name__)

#: Pause before retrying a source whose last attempt failed (backends may override).
DEFAULT_RETRY_DELAY_S: Final = 1.0

#: A clock returning seconds; sources default to ``time.monotonic``.
Clock = Callable[[], float]


class PulseSource(Protocol):
    """Reads pulses back from a meter output; ``async with`` it, then iterate."""

    @property
    def source_id(self) -> str: ...
    @property
    def config(self) -> SourceConfig: ...
    @property
    def total_counts(self) -> int: ...
    @property
    def stale(self) -> bool: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def read(self) -> PulseReading: ...
    def __aiter__(self) -> AsyncIterator[PulseReading]: ...
    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class PulseSink(Protocol):
    """Drives an output from the twin's closures (``closed`` = output conducting)."""

    @property
    def sink_id(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    @property
    def closures(self) -> int: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def drive(self, closed: bool, at_s: float | None = None) -> None: ...
    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class PulseSourceBase(ABC):
    """Shared source behaviour; backends implement ``_open``, ``_close``, ``_next_observations``."""

    #: Pause after a failed attempt before the next one.
    retry_delay_s: float = DEFAULT_RETRY_DELAY_S

    def __init__(
        self,
        config: SourceConfig,
        *,
        store: CounterStore | None = None,
        clock: Clock | None = None,
        wall_clock: Clock | None = None,
    ) -> None:
        self._config = config
        self._store: CounterStore = store if store is not None else MemoryCounterStore()
        self.clock: Clock = clock if clock is not None else time.monotonic
        self._wall_clock: Clock = wall_clock if wall_clock is not None else time.time
        self._tracker: CounterTracker | None = None
        self._pending: deque[Observation] = deque()
        self._last_heard_s = 0.0
        self._stale = False
        self._saved: tuple[int, int | None] | None = None
        self.last_error: str | None = None

    @classmethod
    @abstractmethod
    def from_url(
        cls,
        url: DeviceUrl,
        *,
        store: CounterStore | None = None,
        clock: Clock | None = None,
        wall_clock: Clock | None = None,
    ) -> Self:
        """Build the source a URL describes (the registry calls this; see docs/devices.md)."""

    @property
    def source_id(self) -> str:
        return self._config.source_id

    @property
    def config(self) -> SourceConfig:
        return self._config

    @property
    def total_counts(self) -> int:
        """Counts so far, including those restored from the store (0 before start)."""
        return self._tracker.total_counts if self._tracker else 0

    @property
    def stale(self) -> bool:
        """True once nothing was heard for ``stale_after_s``, until the source answers."""
        return self._stale

    async def start(self) -> None:
        if self._tracker is not None:
            raise DeviceError(f"source {self.source_id}: already started")
        record = self._store.load(self.source_id)
        tracker = CounterTracker(self._config, record, wall_now_s=self._wall_clock())
        if record is not None:
            self._saved = (record.total_counts, record.last_raw)
        await self._open()
        self._tracker = tracker
        self._last_heard_s = self.clock()

    async def stop(self) -> None:
        if self._tracker is None:
            return
        try:
            await bounded_close(self._close(), f"source {self.source_id}")
        finally:
            self._save(self._tracker)
            self._tracker = None
            self._pending.clear()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def __aiter__(self) -> AsyncIterator[PulseReading]:
        return self._readings()

    async def _readings(self) -> AsyncIterator[PulseReading]:
        while self._tracker is not None:
            yield await self.read()

    async def read(self) -> PulseReading:
        """The next reading with new counts or news (baseline, reset, stale, resumed)."""
        tracker = self._tracker
        if tracker is None:
            raise DeviceError(f"source {self.source_id}: not started (use async with)")
        cancels = cancel_requests()
        while True:
            while self._pending:
                reading = self._apply(tracker, self._pending.popleft())
                if reading is not None:
                    return reading
            observations = await self._wait_observations(cancels)
            if observations is None:
                self._stale = True
                LOG.warning("source %s: stale (%s)", self.source_id, self.last_error or "silent")
                return self._status(tracker, CounterEvent.STALE, self.clock())
            self._pending.extend(observations)  # kept for the next read if cancelled now
            honour_cancellation(cancels)
            if observations:
                self._last_heard_s = self.clock()
                if self._stale:
                    self._stale = False
                    return self._status(tracker, CounterEvent.RESUMED, self._last_heard_s)

    async def _wait_observations(self, cancels: int) -> Sequence[Observation] | None:
        """Observations, or None once the source has been silent for ``stale_after_s``."""
        timeout_s: float | None = None
        if self._config.stale_after_s is not None and not self._stale:
            timeout_s = max(0.0, self._last_heard_s + self._config.stale_after_s - self.clock())
        # asyncio.timeout, not wait_for: no inner task, so no cancellation lost (3.11).
        deadline = asyncio.timeout(timeout_s)
        try:
            async with deadline:
                return await self._observe_retrying(cancels)
        except TimeoutError:
            if not deadline.expired():
                raise
            return None

    async def _observe_retrying(self, cancels: int) -> Sequence[Observation]:
        while True:
            try:
                observations = await self._next_observations()
            except DeviceIOError as exc:
                honour_cancellation(cancels)  # the "failure" may be a cancelled connect
                if self.last_error != str(exc):
                    LOG.warning("source %s: %s (retrying)", self.source_id, exc)
                self.last_error = str(exc)
                await asyncio.sleep(self.retry_delay_s)
                continue
            if observations:
                self.last_error = None
            return observations

    def _apply(self, tracker: CounterTracker, observation: Observation) -> PulseReading | None:
        step: CountStep | None
        if isinstance(observation, CounterSample):
            step = tracker.counter(observation.raw, observation.at_s)
        elif isinstance(observation, EdgeSample):
            step = tracker.edge(observation.kind, observation.at_s, observation.uncertainty_s)
        else:
            step = None
        if step is None or (step.counts == 0 and step.event is CounterEvent.COUNT):
            return None
        if step.event in (CounterEvent.RESET, CounterEvent.ROLLOVER):
            LOG.info("source %s: counter %s", self.source_id, step.event.value)
        self._save(tracker)
        return PulseReading(
            source_id=self.source_id,
            at_s=observation.at_s,
            uncertainty_s=step.uncertainty_s,
            counts=step.counts,
            total_counts=tracker.total_counts,
            wh_per_count=self._config.wh_per_count,
            event=step.event,
            raw_counter=tracker.last_raw,
        )

    def _status(self, tracker: CounterTracker, event: CounterEvent, at_s: float) -> PulseReading:
        return PulseReading(
            source_id=self.source_id,
            at_s=at_s,
            uncertainty_s=0.0,
            counts=0,
            total_counts=tracker.total_counts,
            wh_per_count=self._config.wh_per_count,
            event=event,
            stale=self._stale,
            raw_counter=tracker.last_raw,
        )

    def _save(self, tracker: CounterTracker) -> None:
        state = (tracker.total_counts, tracker.last_raw)
        if state != self._saved:
            self._store.save(self.source_id, tracker.record(self._wall_clock()))
            self._saved = state

    @abstractmethod
    async def _open(self) -> None:
        """Acquire the device (connect, subscribe, request the line)."""

    @abstractmethod
    async def _close(self) -> None:
        """Release everything ``_open`` acquired; must not raise for a lost device."""

    @abstractmethod
    async def _next_observations(self) -> Sequence[Observation]:
        """Wait for and return the next observations (raise DeviceIOError if it failed)."""


class PulseSinkBase(ABC):
    """Shared sink behaviour: state, closure count, no duplicate writes; backends ``_write``."""

    def __init__(self, config: SinkConfig, *, clock: Clock | None = None) -> None:
        self._config = config
        self.clock: Clock = clock if clock is not None else time.monotonic
        self._closed = False
        self._closures = 0
        self._started = False

    @classmethod
    @abstractmethod
    def from_url(cls, url: DeviceUrl, *, clock: Clock | None = None) -> Self:
        """Build the sink a URL describes (the registry calls this)."""

    @property
    def sink_id(self) -> str:
        return self._config.sink_id

    @property
    def closed(self) -> bool:
        """The state last driven (False, open, before the first drive)."""
        return self._closed

    @property
    def closures(self) -> int:
        """Open-to-closed transitions driven so far."""
        return self._closures

    async def start(self) -> None:
        if self._started:
            raise DeviceError(f"sink {self.sink_id}: already started")
        await self._open()
        self._started = True

    async def stop(self) -> None:
        if self._started:
            self._started = False
            await bounded_close(self._close(), f"sink {self.sink_id}")

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def drive(self, closed: bool, at_s: float | None = None) -> None:
        """Set the output; a repeat of the current state writes nothing.

        ``at_s`` is when the twin's output changed (its clock); backends that carry
        time (virtual, MQTT) pass it on, the others act now.
        """
        if not self._started:
            raise DeviceError(f"sink {self.sink_id}: not started (use async with)")
        if closed == self._closed:
            return
        cancels = cancel_requests()
        await self._write(closed, self.clock() if at_s is None else at_s)
        self._closed = closed
        if closed:
            self._closures += 1
        honour_cancellation(cancels)  # written, and counted, but the caller was cancelled

    @abstractmethod
    async def _open(self) -> None:
        """Acquire the output."""

    @abstractmethod
    async def _close(self) -> None:
        """Release the output."""

    @abstractmethod
    async def _write(self, closed: bool, at_s: float) -> None:
        """Drive the output to ``closed`` (raise DeviceIOError if it failed)."""
