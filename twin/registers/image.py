"""The prebuilt register image a meter is read from, and what the meter says it is.

Theory of operation. :class:`RegisterImage` turns a core :class:`~twin.core.Snapshot`
into the bytes the Modbus endpoint answers with: block A is packed by one precompiled
``struct`` format (the encoding plan, built once at import from
:data:`~twin.registers.map.REGISTERS`); block B and the SunSpec header are packed once
per :class:`Identity` and cached; the SunSpec meter model (block D) is packed on the
first read of block D, since most clients never read it. A rebuild costs
microseconds; a read is a bounds check and a bytes slice. Pure: no sockets, no
pymodbus; a refused read raises :class:`~twin.registers.map.ModbusException`
carrying the Modbus exception code.

Word order: ``WordOrder.LITTLE`` swaps the words (not the bytes inside a word) of the
numbers of blocks A-C; strings never, SunSpec block D never (SunSpec clients assume
the standard).
"""

from __future__ import annotations

import array
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from operator import attrgetter, itemgetter
from typing import Final

from twin.core import MeterConfig, MeterModel, Snapshot
from twin.errors import ConfigError
from twin.registers import sunspec as _ss
from twin.registers.codec import STRUCT_FORMATS, UNSIGNED_MASKS, WordOrder
from twin.registers.map import (
    COILS,
    DISCRETE_INPUTS,
    EXTRA_DEFAULTS,
    MAIN_REGISTERS,
    MAP_VERSION,
    MAX_READ_BITS,
    MAX_READ_REGISTERS,
    Block,
    ExceptionCode,
    ModbusException,
    Register,
    block_registers,
)

# ------------------------------------------------------------------ identity


@dataclass(frozen=True, slots=True)
class Identity:
    """What the meter says it is: block B, model 1 of SunSpec, FC43/14."""

    model: MeterModel
    serial_number: str
    firmware_version: str = "twin-1.0"
    vendor_name: str = "Leviton (twin)"
    product_name: str = "Mini Meter twin"
    catalog_number: str = field(default="")  # "" = the model's catalog number
    unit_id: int = 1

    def __post_init__(self) -> None:
        if not self.catalog_number:
            object.__setattr__(self, "catalog_number", self.model.catalog_number)
        for name, limit in (
            ("serial_number", 32),
            ("firmware_version", 16),
            ("vendor_name", 32),
            ("product_name", 32),
            ("catalog_number", 32),
        ):
            value = getattr(self, name)
            if not (1 <= len(value) <= limit and value.isascii() and "\0" not in value):
                raise ConfigError(f"identity {name}: {value!r} invalid; expected 1..{limit} ASCII")
        if not 0 <= self.unit_id <= 247:
            raise ConfigError(f"identity unit_id: {self.unit_id} out of range; expected 0..247")

    @classmethod
    def from_config(cls, config: MeterConfig, unit_id: int = 1) -> Identity:
        return cls(
            model=config.model,
            serial_number=config.serial_number,
            firmware_version=config.firmware_version,
            unit_id=unit_id,
        )


def device_identification(identity: Identity) -> dict[int, bytes]:
    """FC43/14 (MEI 0x0E) objects: basic 0-2 plus ProductName (4) and ModelName (5)."""
    return {
        0x00: identity.vendor_name.encode("ascii"),
        0x01: identity.catalog_number.encode("ascii"),
        0x02: identity.firmware_version.encode("ascii"),
        0x04: identity.product_name.encode("ascii"),
        0x05: identity.model.name.encode("ascii"),
    }


# ------------------------------------------------------------------ the encoding plan

# Block A: one struct format over 0..99 with pad bytes for the gaps, the snapshot
# attributes fetched by one attrgetter and the extras appended after them.
_A_SORTED: Final = block_registers(Block.A)
_EXTRA_NAMES: Final = tuple(EXTRA_DEFAULTS)
_SNAP_NAMES: Final = tuple(r.name for r in _A_SORTED if r.name not in EXTRA_DEFAULTS)


def _plan_format(regs: Sequence[Register], start: int, stop: int) -> str:
    fmt, at = [], start
    for r in regs:
        fmt.append("x" * 2 * (r.address - at) + STRUCT_FORMATS[r.kind])
        at = r.end
    fmt.append("x" * 2 * (stop - at))
    return "".join(fmt)


_A_FMT: Final = _plan_format(_A_SORTED, 0, 100)
_A_BIG: Final = struct.Struct(">" + _A_FMT)
_A_LITTLE: Final = struct.Struct("<" + _A_FMT)  # + a byte swap per word = words swapped
_A_SOURCE: Final = (*_SNAP_NAMES, *_EXTRA_NAMES)
_A_ORDER: Final = itemgetter(*(_A_SOURCE.index(r.name) for r in _A_SORTED))
_SNAP_GET: Final = attrgetter(*_SNAP_NAMES)
_EXTRA_DEFAULT_VALUES: Final = tuple(EXTRA_DEFAULTS.values())
_A_MASK: Final = tuple(UNSIGNED_MASKS.get(r.kind, 0) for r in _A_SORTED)
_C_STRUCT: Final = struct.Struct(">6H" + "x" * 2 * (100 - 6))


def _not_available(ordered: tuple[float | int, ...]) -> tuple[float | int, ...]:
    """NaN is "not available" (REGISTER_MAP.md): float32 0x7FC00000 whatever the NaN's sign
    or payload, all ones in an unsigned register (uint16 0xFFFF, uint32 0xFFFFFFFF)."""
    return tuple((m or math.nan) if v != v else v for v, m in zip(ordered, _A_MASK, strict=True))


def _pack_a(values: tuple[float | int, ...], word_order: WordOrder, nan: bool) -> bytes:
    """Block A; ``nan``: some value may be a NaN to encode as "not available"."""
    ordered = _A_ORDER(values)
    if nan:  # an unpowered meter, an absent L2, no current
        ordered = _not_available(ordered)
    try:
        return _pack_ordered(ordered, word_order)
    except struct.error:
        # Slow path, only if a counter outgrew its register: wrap it like a meter would.
        fixed = tuple(
            v & m if m and isinstance(v, int) else v for v, m in zip(ordered, _A_MASK, strict=True)
        )
        return _pack_ordered(fixed, word_order)


def _pack_ordered(ordered: tuple[float | int, ...], word_order: WordOrder) -> bytes:
    if word_order is WordOrder.BIG:
        return _A_BIG.pack(*ordered)
    # Little-endian packing, then swapping the two bytes of every register, gives
    # big-endian registers in least-significant-word-first order (on any host).
    words = array.array("H", _A_LITTLE.pack(*ordered))
    words.byteswap()
    return words.tobytes()


# Both caches hold one entry per meter of a process's fleet, so stepping a big fleet
# never evicts them (10,000 meters: a few MB).
_IDENTITIES_CACHED: Final = 16_384


@lru_cache(maxsize=_IDENTITIES_CACHED)
def _block_b(identity: Identity) -> bytes:
    m = identity.model

    def text(value: str, regs: int) -> bytes:
        return value.encode("ascii")[: 2 * regs].ljust(2 * regs, b"\0")

    head = struct.pack(
        ">7H2x",
        MAP_VERSION,
        int(m.family),
        m.elements,
        min(m.ct_primary_a, 0xFFFF),
        m.ct_secondary_ma,
        m.counter_wh_per_count,
        int(m.has_12vdc_output),
    )
    tail = text(identity.serial_number, 16) + text(identity.firmware_version, 8)
    body = head + tail + text(identity.catalog_number, 16)
    return body.ljust(200, b"\0")


@lru_cache(maxsize=_IDENTITIES_CACHED)
def _sunspec_static(identity: Identity) -> tuple[bytes, _ss.ScaleFactors]:
    header = _ss.static_header(
        identity.vendor_name,
        identity.catalog_number,
        identity.product_name[:16],
        identity.firmware_version,
        identity.serial_number,
        identity.unit_id,
    )
    return header, _ss.ScaleFactors.for_model(identity.model)


# ------------------------------------------------------------------ the image


class RegisterImage:
    """The bytes every read is answered from; rebuilt when the snapshot changes."""

    __slots__ = (
        "_main",
        "_snapshot",
        "_sunspec",
        "config",
        "identity",
        "output_states",
        "status_bits",
    )

    def __init__(
        self,
        main: bytes,
        sunspec_of: Snapshot | None,
        status_bits: int,
        output_states: int,
        config: tuple[int, int, int, int, int],
        identity: Identity,
    ) -> None:
        self._main = main
        self._snapshot = sunspec_of  # block D is packed from it when first read
        self._sunspec: bytes | None = None
        self.status_bits = status_bits
        self.output_states = output_states
        self.config = config  # block C 201..205 as read back
        self.identity = identity

    @classmethod
    def build(
        cls,
        snapshot: Snapshot,
        identity: Identity,
        *,
        word_order: WordOrder = WordOrder.BIG,
        sunspec: bool = True,
        extra: Mapping[str, float | int] | None = None,
    ) -> RegisterImage:
        if extra:
            unknown = set(extra) - set(EXTRA_DEFAULTS)
            if unknown:
                raise ValueError(f"extra: unknown registers {sorted(unknown)}")
            extra_values = tuple(extra.get(n, d) for n, d in EXTRA_DEFAULTS.items())
        else:
            extra_values = _EXTRA_DEFAULT_VALUES
        snap_values = _SNAP_GET(snapshot)
        values = snap_values + extra_values
        # The default extras' NaNs are canonical already: only what varies is checked.
        suspect = snap_values if extra_values is _EXTRA_DEFAULT_VALUES else values
        block_a = _pack_a(values, word_order, any(map(math.isnan, suspect)))
        config = (
            snapshot.demand_interval_min,
            snapshot.demand_subintervals,
            int(snapshot.demand_method),
            snapshot.demand_max_window_h,
            int(snapshot.registration_mode),
        )
        block_c = _C_STRUCT.pack(0, *config)
        return cls(
            block_a + _block_b(identity) + block_c,
            snapshot if sunspec else None,
            snapshot.status_bits,
            snapshot.output_states,
            config,
            identity,
        )

    def read_registers(self, address: int, count: int) -> bytes:
        """``count`` registers from ``address`` as big-endian bytes, ready for a PDU."""
        if not 0 < count <= MAX_READ_REGISTERS:
            raise ModbusException(
                ExceptionCode.ILLEGAL_DATA_VALUE, f"count {count}; expected 1..{MAX_READ_REGISTERS}"
            )
        end = address + count
        if address >= 0 and end <= MAIN_REGISTERS:
            return self._main[2 * address : 2 * end]
        block_d = self._sunspec
        if block_d is None and self._snapshot is not None:
            header, sf = _sunspec_static(self.identity)
            block_d = self._sunspec = header + _ss.meter_model(
                self._snapshot, self.identity.model, sf
            )
        if block_d is not None and address >= _ss.BASE_ADDRESS and end <= _ss.LAST_ADDRESS + 1:
            base = _ss.BASE_ADDRESS
            return block_d[2 * (address - base) : 2 * (end - base)]
        raise ModbusException(
            ExceptionCode.ILLEGAL_DATA_ADDRESS, f"registers {address}..{end - 1} undefined"
        )

    def read_bits(self, fc: int, address: int, count: int) -> bytes:
        """FC01 coils (output_states) or FC02 discrete inputs (status_bits), LSB first."""
        if fc == 1:
            value, size = self.output_states, COILS
        elif fc == 2:
            value, size = self.status_bits, DISCRETE_INPUTS
        else:
            raise ModbusException(
                ExceptionCode.ILLEGAL_FUNCTION, f"function {fc} is not a bit read"
            )
        if not 0 < count <= MAX_READ_BITS:
            raise ModbusException(
                ExceptionCode.ILLEGAL_DATA_VALUE, f"count {count}; expected 1..{MAX_READ_BITS}"
            )
        if address < 0 or address + count > size:
            raise ModbusException(
                ExceptionCode.ILLEGAL_DATA_ADDRESS, f"bits {address}..{address + count - 1}"
            )
        bits = (value >> address) & ((1 << count) - 1)
        return bits.to_bytes((count + 7) // 8, "little")
