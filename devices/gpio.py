"""Linux GPIO through libgpiod v2 (the optional ``gpio`` extra: ``gpiod>=2``).

- Source ``gpio:///dev/gpiochip0?line=17&kh=10[&bias=pull-up&active_low=1&debounce=10ms]``:
  the kernel timestamps every edge (CLOCK_MONOTONIC) and filters bounces
  (``debounce_period``); the base applies the same debounce again, harmlessly. Wire the
  Mini Meter's open-collector output between the line and ground with a pull-up and
  ``active_low=1``: then "rising" is the output closing. The kernel drops the *oldest*
  events if its buffer overflows; a gap in the line's sequence numbers is logged.
  While no edge comes, reading the line value proves the chip alive (a heartbeat), so
  the source goes stale only if the chip fails, not because the load is small.
- Sink ``gpio:///dev/gpiochip0?line=18[&active_low=1]``: the line is an output,
  active while the twin's output is closed.

``line`` is an offset or a line name.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Final, Self

import gpiod
from gpiod.line import Bias, Direction, Edge, Value

from devices.base import Clock, PulseSinkBase, PulseSourceBase
from devices.config import EdgeKind, SinkConfig, SourceConfig
from devices.readings import DeviceIOError, EdgeSample, Heartbeat, Observation
from devices.store import CounterStore
from devices.urls import DeviceUrl, source_config
from twin.errors import DeviceError

LOG = logging.getLogger(__name__)

CONSUMER: Final = "minimeter"
#: Longest wait for an edge before reading the line as a heartbeat.
HEARTBEAT_S: Final = 30.0
NS_PER_S: Final = 1_000_000_000


class LineBias(StrEnum):
    """The line's internal bias (``bias=``)."""

    AS_IS = "as-is"
    DISABLED = "disabled"
    PULL_UP = "pull-up"
    PULL_DOWN = "pull-down"


_GPIOD_BIAS: Final = {
    LineBias.AS_IS: Bias.AS_IS,
    LineBias.DISABLED: Bias.DISABLED,
    LineBias.PULL_UP: Bias.PULL_UP,
    LineBias.PULL_DOWN: Bias.PULL_DOWN,
}


@dataclass(frozen=True, slots=True)
class GpioLine:
    """One line of one chip, and how to treat it."""

    chip_path: str
    line: int | str
    active_low: bool = False
    bias: LineBias = LineBias.AS_IS

    @classmethod
    def from_url(cls, url: DeviceUrl, *, default_bias: LineBias) -> GpioLine:
        if not url.path.startswith("/dev/"):
            raise url.error(f"chip path {url.path!r}", "gpio:///dev/gpiochipN?line=...")
        line_text = url.text_param("line")
        return cls(
            chip_path=url.path,
            line=int(line_text) if line_text.isdigit() else line_text,
            active_low=url.bool_param("active_low", False),
            bias=url.enum_param("bias", LineBias, default_bias),
        )

    def request(self, settings: gpiod.LineSettings) -> gpiod.LineRequest:
        try:
            return gpiod.request_lines(self.chip_path, {self.line: settings}, consumer=CONSUMER)
        except (OSError, ValueError) as exc:
            raise DeviceError(f"gpio {self.chip_path} line {self.line}: {exc}") from exc

    def describe(self) -> str:
        return f"gpio://{self.chip_path}/{self.line}"


class GpioPulseSource(PulseSourceBase):
    """Edges of one input line, with kernel timestamps."""

    def __init__(
        self,
        config: SourceConfig,
        line: GpioLine,
        *,
        store: CounterStore | None = None,
        clock: Clock | None = None,
        wall_clock: Clock | None = None,
    ) -> None:
        super().__init__(config, store=store, clock=clock, wall_clock=wall_clock)
        self.line = line
        self._request: gpiod.LineRequest | None = None
        self._ready = asyncio.Event()
        self._last_seqno: int | None = None

    @classmethod
    def from_url(
        cls,
        url: DeviceUrl,
        *,
        store: CounterStore | None = None,
        clock: Clock | None = None,
        wall_clock: Clock | None = None,
    ) -> Self:
        line = GpioLine.from_url(url, default_bias=LineBias.PULL_UP)
        config = source_config(url, line.describe(), counter=False)
        url.finish()
        return cls(config, line, store=store, clock=clock, wall_clock=wall_clock)

    async def _open(self) -> None:
        settings = gpiod.LineSettings(
            direction=Direction.INPUT,
            edge_detection=Edge.BOTH,
            bias=_GPIOD_BIAS[self.line.bias],
            active_low=self.line.active_low,
            debounce_period=timedelta(seconds=self.config.debounce_s),
        )
        self._request = self.line.request(settings)
        asyncio.get_running_loop().add_reader(self._request.fd, self._ready.set)

    async def _close(self) -> None:
        request, self._request = self._request, None
        if request is not None:
            asyncio.get_running_loop().remove_reader(request.fd)
            request.release()

    async def _next_observations(self) -> Sequence[Observation]:
        request = self._request
        if request is None:
            raise DeviceError(f"source {self.source_id}: line not requested")
        try:
            async with asyncio.timeout(HEARTBEAT_S):  # not wait_for: see devices.cancellation
                await self._ready.wait()
        except TimeoutError:
            return [self._heartbeat(request)]
        self._ready.clear()
        try:
            events = request.read_edge_events()
        except OSError as exc:
            raise DeviceIOError(f"{self.line.describe()}: {exc}") from exc
        # Kernel timestamps are CLOCK_MONOTONIC; carry them onto the source clock.
        offset_s = self.clock() - time.monotonic_ns() / NS_PER_S
        return [self._edge(event, offset_s) for event in events]

    def _edge(self, event: gpiod.EdgeEvent, offset_s: float) -> EdgeSample:
        if self._last_seqno is not None and event.line_seqno > self._last_seqno + 1:
            LOG.warning(
                "%s: kernel dropped %d edge events (buffer overflow)",
                self.line.describe(),
                event.line_seqno - self._last_seqno - 1,
            )
        self._last_seqno = event.line_seqno
        rising = event.event_type is gpiod.EdgeEvent.Type.RISING_EDGE
        kind = EdgeKind.RISING if rising else EdgeKind.FALLING
        return EdgeSample(kind, event.timestamp_ns / NS_PER_S + offset_s, self.config.debounce_s)

    def _heartbeat(self, request: gpiod.LineRequest) -> Heartbeat:
        try:
            request.get_value(self.line.line)
        except OSError as exc:
            raise DeviceIOError(f"{self.line.describe()}: {exc}") from exc
        return Heartbeat(self.clock())


class GpioPulseSink(PulseSinkBase):
    """Drives one output line: active while the twin's output is closed."""

    def __init__(self, config: SinkConfig, line: GpioLine, *, clock: Clock | None = None) -> None:
        super().__init__(config, clock=clock)
        self.line = line
        self._request: gpiod.LineRequest | None = None

    @classmethod
    def from_url(cls, url: DeviceUrl, *, clock: Clock | None = None) -> Self:
        line = GpioLine.from_url(url, default_bias=LineBias.AS_IS)
        sink_id = url.text_param("id", line.describe())
        url.finish()
        return cls(SinkConfig(sink_id), line, clock=clock)

    async def _open(self) -> None:
        settings = gpiod.LineSettings(
            direction=Direction.OUTPUT,
            bias=_GPIOD_BIAS[self.line.bias],
            active_low=self.line.active_low,
            output_value=Value.INACTIVE,
        )
        self._request = self.line.request(settings)

    async def _close(self) -> None:
        request, self._request = self._request, None
        if request is not None:
            request.release()

    async def _write(self, closed: bool, at_s: float) -> None:
        if self._request is None:
            raise DeviceError(f"sink {self.sink_id}: line not requested")
        try:
            self._request.set_value(self.line.line, Value.ACTIVE if closed else Value.INACTIVE)
        except OSError as exc:
            raise DeviceIOError(f"{self.line.describe()}: {exc}") from exc
