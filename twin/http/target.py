"""What the HTTP part needs of a running twin, as Protocols (``twin.runtime.Twin`` fits).

`twin.http` sits below `twin.runtime` in the layers, so it never imports the twin; it
sees it through :class:`HttpTarget`: control's ``ControlTarget`` (commands go through
`twin.control.run_command` with the same object) plus what the panel, the stream and
``/metrics`` read: each meter's config, the clock, the lag, the Modbus servers (their
dispatchers count requests and exceptions) and the event subscription.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from twin.control import ControlTarget, MeterTarget
from twin.core import Event, MeterConfig, MeterModel
from twin.modbus.rtu import ModbusRtuServer
from twin.modbus.tcp import ModbusTcpServer

EventListener = Callable[["MeterView", list[Event]], None]


class MeterSpecView(Protocol):
    @property
    def unit(self) -> int: ...
    @property
    def port(self) -> int | None: ...
    @property
    def model(self) -> MeterModel: ...
    @property
    def profile(self) -> str: ...


class MeterView(MeterTarget, Protocol):
    """One live meter: what control acts on, plus its place and config."""

    @property
    def spec(self) -> MeterSpecView: ...
    @property
    def config(self) -> MeterConfig: ...
    @property
    def extra(self) -> Mapping[str, float | int]: ...


class ClockView(Protocol):
    @property
    def speed(self) -> float: ...


class HealthView(Protocol):
    @property
    def bits(self) -> int:
        """twin_health (register 79): the twin's own conditions."""
        ...

    @property
    def conditions(self) -> list[str]: ...


class HttpTarget(ControlTarget, Protocol):
    """A running twin as the HTTP server reads and commands it."""

    @property
    def meters(self) -> Sequence[MeterView]: ...
    @property
    def clock(self) -> ClockView: ...
    @property
    def meter_time_s(self) -> float: ...
    @property
    def lag_s(self) -> float: ...
    @property
    def servers(self) -> Mapping[int, ModbusTcpServer]: ...
    @property
    def rtu(self) -> ModbusRtuServer | None: ...
    @property
    def store_error(self) -> str | None: ...
    @property
    def health(self) -> HealthView: ...

    def subscribe(self, listener: EventListener) -> Callable[[], None]: ...
