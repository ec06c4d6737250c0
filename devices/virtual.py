"""An in-process wire: sinks and sources that share a channel name share the edges.

As python-can's ``VirtualBus``: ``virtual://bench`` opened as a sink and as a source
in one process behave like an output wired to a counter input. Each edge carries the
time the sink was given (the twin's clock), with no uncertainty. Edges driven while
no source listens are lost, as on a wire with nothing connected. A source that
closes leaves its channel; :func:`open_channels` lists channels still in use, so a
test can check that nothing leaked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Self

from devices.base import Clock, PulseSinkBase, PulseSourceBase
from devices.config import EdgeKind, SinkConfig, SourceConfig
from devices.readings import EdgeSample, Observation
from devices.store import CounterStore
from devices.urls import DeviceUrl, source_config

# Module-level on purpose: the channel table *is* the in-process wire (as VirtualBus's).
_channels: dict[str, set[asyncio.Queue[EdgeSample]]] = {}


def open_channels() -> list[str]:
    """Names of channels some virtual source is listening on."""
    return sorted(name for name, queues in _channels.items() if queues)


def _channel_name(url: DeviceUrl) -> str:
    name = url.host or url.path.strip("/")
    if not name:
        raise url.error("no channel name", "virtual://NAME")
    return name


class VirtualPulseSource(PulseSourceBase):
    """Counts the edges virtual sinks drive on ``channel``."""

    def __init__(
        self,
        config: SourceConfig,
        channel: str,
        *,
        store: CounterStore | None = None,
        clock: Clock | None = None,
        wall_clock: Clock | None = None,
    ) -> None:
        super().__init__(config, store=store, clock=clock, wall_clock=wall_clock)
        self.channel = channel
        self._queue: asyncio.Queue[EdgeSample] = asyncio.Queue()

    @classmethod
    def from_url(
        cls,
        url: DeviceUrl,
        *,
        store: CounterStore | None = None,
        clock: Clock | None = None,
        wall_clock: Clock | None = None,
    ) -> Self:
        channel = _channel_name(url)
        config = source_config(url, f"virtual://{channel}", counter=False)
        url.finish()
        return cls(config, channel, store=store, clock=clock, wall_clock=wall_clock)

    async def _open(self) -> None:
        _channels.setdefault(self.channel, set()).add(self._queue)

    async def _close(self) -> None:
        queues = _channels.get(self.channel, set())
        queues.discard(self._queue)
        if not queues:
            _channels.pop(self.channel, None)

    async def _next_observations(self) -> Sequence[Observation]:
        edges: list[Observation] = [await self._queue.get()]
        while not self._queue.empty():
            edges.append(self._queue.get_nowait())
        return edges


class VirtualPulseSink(PulseSinkBase):
    """Drives edges onto ``channel`` for every virtual source listening there."""

    def __init__(self, config: SinkConfig, channel: str, *, clock: Clock | None = None) -> None:
        super().__init__(config, clock=clock)
        self.channel = channel

    @classmethod
    def from_url(cls, url: DeviceUrl, *, clock: Clock | None = None) -> Self:
        channel = _channel_name(url)
        sink_id = url.text_param("id", f"virtual://{channel}")
        url.finish()
        return cls(SinkConfig(sink_id), channel, clock=clock)

    async def _open(self) -> None:
        """A virtual output needs nothing acquired."""

    async def _close(self) -> None:
        """Nothing to release."""

    async def _write(self, closed: bool, at_s: float) -> None:
        edge = EdgeSample(EdgeKind.RISING if closed else EdgeKind.FALLING, at_s)
        for queue in _channels.get(self.channel, set()):
            queue.put_nowait(edge)
