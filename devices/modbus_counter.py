"""Modbus TCP DI-counter modules as pulse sources, and a DO coil as a pulse sink.

A counter module counts the meter output's edges in hardware; we poll the counter
every ``poll_s`` and the base turns successive values into counts (rollover, reset,
restart). A count seen at a poll happened after the previous successful poll, so
each reading's timing uncertainty is the poll period (longer after an outage).

- ``adam6051://HOST[:502]?channel=N&kh=10``: Advantech ADAM-6051, holding registers
  (FC03) ``2N, 2N+1``, 32 bits, low word first.
- ``iologik://HOST[:502]?channel=N&kh=100``: Moxa ioLogik E1200, input registers
  (FC04) ``0x10 + 2N``, 32 bits, high word first.
- ``modbus-counter://HOST[:502]?unit=1&fc=3&addr=16&width=32&order=little&kh=10&poll=1s``.
- ``modbus-coil://HOST[:502]?unit=1&coil=0``: a sink writing the output state to a coil.

Common options: ``unit`` (1), ``poll`` (1s), ``timeout`` (2s); the source options
of :func:`devices.urls.source_config`. This is devices' only pymodbus import; the
client's own retries and reconnects are off, the base's retry loop is the one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Self

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from devices.base import Clock, PulseSinkBase, PulseSourceBase
from devices.config import (
    CounterWidth,
    FunctionCode,
    SinkConfig,
    SourceConfig,
    WordOrder,
    check_positive,
)
from devices.readings import CounterSample, DeviceIOError, Observation
from devices.store import CounterStore
from devices.urls import DeviceUrl, source_config
from twin.errors import DeviceError

MODBUS_PORT: Final = 502
DEFAULT_POLL_S: Final = 1.0
MIN_POLL_S: Final = 0.01
DEFAULT_TIMEOUT_S: Final = 2.0
MAX_UNIT_ID: Final = 247
MAX_ADDRESS: Final = 0xFFFF
#: Channels per module: ADAM-6051 has 12 counter-capable inputs, ioLogik E1210 16.
ADAM6051_CHANNELS: Final = 12
IOLOGIK_CHANNELS: Final = 16
#: First counter register of the ioLogik E1200 (30017 = 0x0010, CH0 high word).
IOLOGIK_COUNTER_BASE: Final = 0x0010
#: Exception replies that mean the URL is wrong (illegal function, illegal address).
CONFIG_EXCEPTION_CODES: Final = frozenset({1, 2})


@dataclass(frozen=True, slots=True)
class ModbusTarget:
    """Where a module answers: host, port, unit id and the per-request timeout."""

    host: str
    port: int = MODBUS_PORT
    unit: int = 1
    timeout_s: float = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        if not 0 <= self.unit <= MAX_UNIT_ID:
            raise DeviceError(f"unit={self.unit}: expected 0..{MAX_UNIT_ID}")
        check_positive("timeout", self.timeout_s)

    @classmethod
    def from_url(cls, url: DeviceUrl) -> ModbusTarget:
        timeout = url.duration_param("timeout", DEFAULT_TIMEOUT_S)
        return cls(
            host=url.require_host(),
            port=url.port_or(MODBUS_PORT),
            unit=url.int_param("unit", 1, low=0, high=MAX_UNIT_ID),
            timeout_s=DEFAULT_TIMEOUT_S if timeout is None else timeout,
        )


@dataclass(frozen=True, slots=True)
class CounterRegisters:
    """Where the counter is: function code, first register, word order, poll period."""

    function: FunctionCode
    address: int
    word_order: WordOrder
    poll_s: float = DEFAULT_POLL_S

    def __post_init__(self) -> None:
        if not 0 <= self.address < MAX_ADDRESS:
            raise DeviceError(f"addr={self.address}: expected 0..{MAX_ADDRESS - 1}")
        if self.poll_s < MIN_POLL_S:
            raise DeviceError(f"poll={self.poll_s} s: expected at least {MIN_POLL_S} s")


class ModbusLink:
    """One pymodbus TCP client, connected on demand; failures become DeviceIOError."""

    def __init__(self, target: ModbusTarget) -> None:
        self.target = target
        self._client: AsyncModbusTcpClient | None = None
        self._busy = False

    async def read_registers(self, function: FunctionCode, address: int, count: int) -> list[int]:
        client = await self._connected()
        read = (
            client.read_holding_registers
            if function is FunctionCode.HOLDING_REGISTERS
            else client.read_input_registers
        )
        self._busy = True  # stays set if cancelled mid-request (not in a finally)
        try:
            reply = await read(address, count=count, device_id=self.target.unit)
        except (ModbusException, OSError, TimeoutError) as exc:
            self.close()
            raise DeviceIOError(f"{self._where()}: read failed: {exc}") from exc
        self._busy = False
        if reply.isError():
            self._refuse(int(function), address, int(reply.exception_code))
        return list(reply.registers[:count])

    async def write_coil(self, address: int, value: bool) -> None:
        client = await self._connected()
        self._busy = True
        try:
            reply = await client.write_coil(address, value, device_id=self.target.unit)
        except (ModbusException, OSError, TimeoutError) as exc:
            self.close()
            raise DeviceIOError(f"{self._where()}: write coil {address} failed: {exc}") from exc
        self._busy = False
        if reply.isError():
            self._refuse(5, address, int(reply.exception_code))

    def close(self) -> None:
        self._busy = False
        if self._client is not None:
            self._client.close()
            self._client = None

    async def _connected(self) -> AsyncModbusTcpClient:
        if self._busy:  # the last request was cancelled mid-flight: its reply may still come
            self.close()
        if self._client is not None and self._client.connected:
            return self._client
        self.close()
        t = self.target
        client = AsyncModbusTcpClient(
            t.host, port=t.port, timeout=t.timeout_s, retries=0, reconnect_delay=0
        )
        try:
            connected = await client.connect()
        except (ModbusException, OSError) as exc:
            client.close()
            raise DeviceIOError(f"{self._where()}: cannot connect: {exc}") from exc
        except BaseException:  # cancelled: leave no half-open client behind
            client.close()
            raise
        if not connected:
            client.close()
            raise DeviceIOError(f"{self._where()}: cannot connect")
        self._client = client
        return client

    def _refuse(self, function: int, address: int, code: int) -> None:
        what = f"{self._where()}: function {function} at address {address}: exception {code:02d}"
        if code in CONFIG_EXCEPTION_CODES:
            raise DeviceError(f"{what}: the module has no such register (check addr/channel/fc)")
        raise DeviceIOError(what)

    def _where(self) -> str:
        t = self.target
        return f"modbus://{t.host}:{t.port} unit {t.unit}"


def decode_counter(words: Sequence[int], order: WordOrder) -> int:
    """Registers -> counter value (one word, or two in ``order``)."""
    if len(words) == 1:
        return int(words[0])
    low, high = (words[0], words[1]) if order is WordOrder.LITTLE else (words[1], words[0])
    return (int(high) << 16) | int(low)


class ModbusCounterPulseSource(PulseSourceBase):
    """A counter in registers of any Modbus TCP module (``modbus-counter://``)."""

    # The poll schedule paces retries: a failed poll is retried at the next poll time.
    retry_delay_s = 0.0

    def __init__(
        self,
        config: SourceConfig,
        target: ModbusTarget,
        registers: CounterRegisters,
        *,
        store: CounterStore | None = None,
        clock: Clock | None = None,
        wall_clock: Clock | None = None,
    ) -> None:
        super().__init__(config, store=store, clock=clock, wall_clock=wall_clock)
        self.target = target
        self.registers = registers
        self._link = ModbusLink(target)
        self._next_poll_at = 0.0

    @classmethod
    def from_url(
        cls,
        url: DeviceUrl,
        *,
        store: CounterStore | None = None,
        clock: Clock | None = None,
        wall_clock: Clock | None = None,
    ) -> Self:
        target = ModbusTarget.from_url(url)
        fc = url.int_param("fc", 3, low=3, high=4)
        registers = CounterRegisters(
            function=FunctionCode(fc),
            address=url.int_param("addr", None, low=0, high=MAX_ADDRESS - 1),
            word_order=url.enum_param("order", WordOrder, WordOrder.BIG),
            poll_s=_poll_s(url),
        )
        default_id = (
            f"{url.scheme}://{target.host}:{target.port}/{target.unit}/{fc}/{registers.address}"
        )
        config = source_config(url, default_id, counter=True)
        url.finish()
        return cls(config, target, registers, store=store, clock=clock, wall_clock=wall_clock)

    @classmethod
    def for_channel(
        cls,
        url: DeviceUrl,
        registers: CounterRegisters,
        channel: int,
        *,
        store: CounterStore | None,
        clock: Clock | None,
        wall_clock: Clock | None,
    ) -> Self:
        """A module-specific URL (``channel=N``): 32-bit counter at fixed registers."""
        target = ModbusTarget.from_url(url)
        config = source_config(
            url,
            f"{url.scheme}://{target.host}:{target.port}/{target.unit}/ch{channel}",
            counter=False,
        )
        url.finish()
        return cls(config, target, registers, store=store, clock=clock, wall_clock=wall_clock)

    async def _open(self) -> None:
        self._next_poll_at = asyncio.get_running_loop().time()

    async def _close(self) -> None:
        self._link.close()

    async def _next_observations(self) -> Sequence[Observation]:
        loop = asyncio.get_running_loop()
        delay_s = self._next_poll_at - loop.time()
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        self._next_poll_at = max(self._next_poll_at + self.registers.poll_s, loop.time())
        count = 1 if self.config.width is CounterWidth.BITS_16 else 2
        regs = self.registers
        words = await self._link.read_registers(regs.function, regs.address, count)
        return [CounterSample(decode_counter(words, regs.word_order), self.clock())]


def _poll_s(url: DeviceUrl) -> float:
    poll = url.duration_param("poll", DEFAULT_POLL_S)
    if poll is None or poll < MIN_POLL_S:
        raise url.error(f"poll={url.params.get('poll')!r}", f"a period of at least {MIN_POLL_S} s")
    return poll


class Adam6051PulseSource(ModbusCounterPulseSource):
    """Advantech ADAM-6051 counter channel: FC03 at ``2 x channel``, low word first."""

    @classmethod
    def from_url(
        cls,
        url: DeviceUrl,
        *,
        store: CounterStore | None = None,
        clock: Clock | None = None,
        wall_clock: Clock | None = None,
    ) -> Self:
        channel = url.int_param("channel", None, low=0, high=ADAM6051_CHANNELS - 1)
        registers = CounterRegisters(
            FunctionCode.HOLDING_REGISTERS, 2 * channel, WordOrder.LITTLE, _poll_s(url)
        )
        return cls.for_channel(
            url, registers, channel, store=store, clock=clock, wall_clock=wall_clock
        )


class IologikPulseSource(ModbusCounterPulseSource):
    """Moxa ioLogik E1200 counter channel: FC04 at ``0x10 + 2 x channel``, high word first."""

    @classmethod
    def from_url(
        cls,
        url: DeviceUrl,
        *,
        store: CounterStore | None = None,
        clock: Clock | None = None,
        wall_clock: Clock | None = None,
    ) -> Self:
        channel = url.int_param("channel", None, low=0, high=IOLOGIK_CHANNELS - 1)
        registers = CounterRegisters(
            FunctionCode.INPUT_REGISTERS,
            IOLOGIK_COUNTER_BASE + 2 * channel,
            WordOrder.BIG,
            _poll_s(url),
        )
        return cls.for_channel(
            url, registers, channel, store=store, clock=clock, wall_clock=wall_clock
        )


class ModbusCoilPulseSink(PulseSinkBase):
    """Writes each closure to a coil of a Modbus DO module (FC05): closed = 1."""

    def __init__(
        self, config: SinkConfig, target: ModbusTarget, coil: int, *, clock: Clock | None = None
    ) -> None:
        super().__init__(config, clock=clock)
        self.target = target
        self.coil = coil
        self._link = ModbusLink(target)

    @classmethod
    def from_url(cls, url: DeviceUrl, *, clock: Clock | None = None) -> Self:
        target = ModbusTarget.from_url(url)
        coil = url.int_param("coil", None, low=0, high=MAX_ADDRESS)
        sink_id = url.text_param(
            "id", f"modbus-coil://{target.host}:{target.port}/{target.unit}/{coil}"
        )
        url.finish()
        return cls(SinkConfig(sink_id), target, coil, clock=clock)

    async def _open(self) -> None:
        """Connected on the first write, so a sink can start before its module is up."""

    async def _close(self) -> None:
        self._link.close()

    async def _write(self, closed: bool, at_s: float) -> None:
        await self._link.write_coil(self.coil, closed)
