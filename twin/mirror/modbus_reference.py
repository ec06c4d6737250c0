"""A reference meter read over Modbus: the cross-check's load, measured beside the meter.

Theory of operation
-------------------
``--reference modbus-meter://HOST:PORT?unit=1&energy=0&type=uint64&scale=1&poll=1s&
uncertainty=0.2`` names a meter on the same circuit as the mirrored one: its energy
register (``energy=ADDR``) or its power register (``power=ADDR``), the register type
and word order, the scale (Wh or W per register unit), the poll period and the
reference's stated uncertainty in % (its accuracy class), optionally its power factor
register (``pf=ADDR``, float32) for the class limit's PF. :meth:`ModbusMeterSpec.parse`
refuses a bad URL with one error naming the part that is wrong.

A task polls the reference every ``poll``; each :class:`Poll` keeps the mirror time
the request was sent and the answer came, and the energy then (the register, or for a
power register the trapezoid integral of the polled powers). A register value was
taken somewhere between send and answer, and energy never decreases, so the energy
at a time ``t`` lies between the last poll answered by ``t`` and the first poll sent
at or after ``t``, widened by one register unit of resolution each side. A mark whose
edge is known in ``[lo_s, hi_s]`` gets the interval ``[E(lo_s)-, E(hi_s)+]``: the
cross-check's timing term, which so also covers the reference's poll period. Marks
wait (:meth:`ModbusMeterReference.ready`) until a poll was sent after them.

An integrated power is exact only for a load linear between polls; it restarts at 0
with the mirror (``persistent`` False: a restarted mirror starts a new window),
while an energy register is absolute and a window continues across a restart.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from devices.urls import DeviceUrl
from twin.errors import ConfigError, DeviceError
from twin.modbus.client import ExceptionReply, MeterClient
from twin.registers import RegisterKind, WordOrder
from twin.registers.codec import REGISTER_COUNTS, decode

log = logging.getLogger(__name__)

SCHEME: Final = "modbus-meter"
DEFAULT_PORT: Final = 502
DEFAULT_POLL_S: Final = 1.0
MIN_POLL_S: Final = 0.01
MAX_POLL_S: Final = 3600.0
#: The largest stated uncertainty a reference may have, in %.
MAX_UNCERTAINTY_PCT: Final = 5.0
#: Polls kept (a mark older than the oldest poll kept starts a new window).
MAX_POLLS: Final = 100_000
#: Register types a reference's energy or power may have.
KINDS: Final = (
    RegisterKind.UINT16,
    RegisterKind.INT16,
    RegisterKind.UINT32,
    RegisterKind.UINT64,
    RegisterKind.FLOAT32,
)
#: A PF register below this is taken as this (no current: PF is NaN or 0).
MIN_PF: Final = 0.05
_FLOAT32_RESOLUTION: Final = 2.0**-23


class Quantity(StrEnum):
    ENERGY = "energy"
    POWER = "power"


@dataclass(frozen=True, slots=True)
class ModbusMeterSpec:
    """A reference meter's URL, parsed and checked."""

    text: str
    host: str
    port: int
    unit: int
    quantity: Quantity
    address: int
    kind: RegisterKind
    fc: int
    word_order: WordOrder
    scale: float  # Wh (energy) or W (power) per register unit
    poll_s: float
    uncertainty_pct: float
    pf_address: int | None = None

    @classmethod
    def parse(cls, text: str, *, uncertainty_pct: float | None = None) -> ModbusMeterSpec:
        """Raises ConfigError naming the URL's wrong part; ``uncertainty_pct`` is the
        default of the URL's ``uncertainty`` (``--reference-uncertainty``)."""
        try:
            return cls._parse(DeviceUrl.parse(text), uncertainty_pct)
        except DeviceError as exc:
            raise ConfigError(f"--reference: {exc}") from None

    @classmethod
    def _parse(cls, url: DeviceUrl, uncertainty_pct: float | None) -> ModbusMeterSpec:
        if url.scheme != SCHEME:
            raise url.error(f"scheme {url.scheme!r}", f"{SCHEME}://HOST[:PORT]?energy=ADDR")
        host = url.require_host()
        given = [q for q in Quantity if q.value in url.params]
        if len(given) != 1:
            raise url.error(
                "energy/power" if given else "no register named",
                "exactly one of energy=ADDR (an energy register) or power=ADDR",
            )
        quantity = given[0]
        address = url.int_param(quantity.value, None, low=0, high=65535)
        default_kind = RegisterKind.UINT64 if quantity is Quantity.ENERGY else RegisterKind.FLOAT32
        kind = url.enum_param("type", RegisterKind, default_kind)
        if kind not in KINDS:
            raise url.error(f"type={kind.value!r}", f"one of {', '.join(k.value for k in KINDS)}")
        fc = url.int_param("fc", 3, low=3, high=4)
        order = url.enum_param("order", WordOrder, WordOrder.BIG)
        scale = url.float_param("scale", 1.0)
        poll_s = url.duration_param("poll", DEFAULT_POLL_S)
        if poll_s is None or not MIN_POLL_S <= poll_s <= MAX_POLL_S:
            raise url.error(f"poll={url.params.get('poll')!r}", f"{MIN_POLL_S} s to 1 h")
        uncertainty = url.params.get("uncertainty")
        stated = uncertainty_pct if uncertainty is None else _float(url, "uncertainty")
        if stated is None or not (math.isfinite(stated) and 0 <= stated <= MAX_UNCERTAINTY_PCT):
            raise url.error(f"uncertainty={uncertainty!r}", "the reference's accuracy, 0 to 5 (%)")
        pf = url.params.get("pf")
        pf_address = None if pf is None else url.int_param("pf", None, low=0, high=65535)
        unit = url.int_param("unit", 1, low=0, high=255)
        url.finish()
        return cls(
            url.text,
            host,
            url.port_or(DEFAULT_PORT),
            unit,
            quantity,
            address,
            kind,
            fc,
            order,
            scale,
            poll_s,
            stated,
            pf_address,
        )


def _float(url: DeviceUrl, name: str) -> float:
    value = url.text_param(name)
    try:
        return float(value)
    except ValueError:
        raise url.error(f"{name}={value!r}", "a number") from None


@dataclass(frozen=True, slots=True)
class Poll:
    """One reading of the reference: sent and answered (mirror time), energy, apparent."""

    sent_s: float
    got_s: float
    energy_wh: float
    apparent_vah: float
    resolution_wh: float  # +- of energy_wh from the register's resolution


class ModbusMeterReference:
    """The energy a reference meter registered, polled over Modbus TCP."""

    def __init__(self, spec: ModbusMeterSpec, *, clock: Callable[[], float]) -> None:
        self.spec = spec
        self._clock = clock
        self._polls: deque[Poll] = deque(maxlen=MAX_POLLS)
        self._power_w: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._client: MeterClient | None = None
        self.errors = 0
        self.last_error: str | None = None

    @property
    def uncertainty_pct(self) -> float:
        return self.spec.uncertainty_pct

    @property
    def persistent(self) -> bool:
        """An energy register is absolute; an integral of power restarts with the mirror."""
        return self.spec.quantity is Quantity.ENERGY

    @property
    def polls(self) -> int:
        return len(self._polls)

    def ready(self, t_s: float) -> bool:
        return bool(self._polls) and self._polls[-1].sent_s >= t_s

    def mark_energy(self, lo_s: float, hi_s: float) -> tuple[float, float, float] | None:
        """(lowest Wh at lo_s, highest Wh at hi_s, VAh at hi_s); None before the first poll
        kept or after the last one sent."""
        polls = self._polls
        # the last poll answered by lo_s: its value was taken no later than lo_s
        i = bisect.bisect_right(polls, lo_s, key=lambda p: p.got_s) - 1
        # the first poll sent at or after hi_s: its value was taken no earlier than hi_s
        j = bisect.bisect_left(polls, hi_s, key=lambda p: p.sent_s)
        if i < 0 or j >= len(polls):
            return None
        lo, hi = polls[i], polls[j]
        return lo.energy_wh - lo.resolution_wh, hi.energy_wh + hi.resolution_wh, hi.apparent_vah

    async def start(self, on_poll: Callable[[], None]) -> None:
        self._task = asyncio.create_task(self._poll_loop(on_poll), name="mirror-reference")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._client is not None:
            self._client.close()
            self._client = None

    async def _poll_loop(self, on_poll: Callable[[], None]) -> None:
        while True:
            try:
                await self.poll()
                on_poll()
            except (TimeoutError, OSError, ExceptionReply, ConnectionError) as exc:
                self.errors += 1
                text = f"{type(exc).__name__}: {exc}"
                if text != self.last_error:
                    log.warning("reference %s: %s (retrying)", self.spec.text, text)
                self.last_error = text
                if self._client is not None:
                    self._client.close()
                    self._client = None
            await asyncio.sleep(self.spec.poll_s)

    async def _read(self, client: MeterClient, address: int, kind: RegisterKind) -> float:
        words = await client.read_registers(address, REGISTER_COUNTS[kind], self.spec.fc)
        return float(decode(kind, words, self.spec.word_order))

    async def poll(self) -> None:
        """Read the reference once and keep the poll."""
        spec = self.spec
        if self._client is None:
            client = MeterClient(spec.host, spec.port, spec.unit, timeout_s=max(1.0, spec.poll_s))
            await client.connect()
            self._client = client
        sent = self._clock()
        value = await self._read(self._client, spec.address, spec.kind) * spec.scale
        pf = 1.0
        if spec.pf_address is not None:
            pf = abs(await self._read(self._client, spec.pf_address, RegisterKind.FLOAT32))
            pf = pf if math.isfinite(pf) and pf >= MIN_PF else 1.0
        got = self._clock()
        if not math.isfinite(value):
            raise ConnectionError(f"register {spec.address} reads {value}")
        self.last_error = None
        self._add(sent, got, value, min(1.0, pf))

    def _add(self, sent: float, got: float, value: float, pf: float) -> None:
        spec, last = self.spec, self._polls[-1] if self._polls else None
        if spec.kind is RegisterKind.FLOAT32:
            resolution = abs(value) * _FLOAT32_RESOLUTION
        else:
            resolution = spec.scale
        if spec.quantity is Quantity.ENERGY:
            energy = value
        else:  # trapezoid over the polls' mid-times; powers below 0 deliver nothing
            power = max(0.0, value)
            energy = 0.0
            if last is not None and self._power_w is not None:
                dt = (sent + got) / 2 - (last.sent_s + last.got_s) / 2
                energy = last.energy_wh + (self._power_w + power) / 2 * max(0.0, dt) / 3600
            self._power_w = power
            resolution = 0.0
        if last is not None and energy < last.energy_wh:
            # a reset or a wrap of the reference: marks before it start a new window
            log.warning("reference energy went back (%g -> %g Wh)", last.energy_wh, energy)
            self._polls.clear()
            last = None
        if last is not None:
            apparent = last.apparent_vah + max(0.0, energy - last.energy_wh) / pf
        else:
            apparent = energy
        self._polls.append(Poll(sent, got, energy, apparent, resolution))
