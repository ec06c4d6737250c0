"""Register map v1 (REGISTER_MAP.md) as data, its encoders, and the prebuilt register image.

Theory of operation. :data:`REGISTERS` is the single source of truth: every register
with its 0-based PDU address, size, type, unit and block; the docs table, the CLI
listing and the image layout all derive from it. :class:`RegisterImage` turns a core
:class:`~twin.core.Snapshot` into the bytes the Modbus server answers with: block A
is packed by one precompiled ``struct`` format (the encoding plan, built once at
import); block B and the SunSpec header are packed once per identity and cached. A
rebuild costs microseconds; a read is a bounds check and a bytes slice. Pure: no
sockets, no pymodbus; protocol errors are :class:`ModbusException` carrying the
Modbus exception code, which the server turns into an exception response.

Word order: multi-register numbers are big-endian, most significant word first.
``WordOrder.LITTLE`` swaps the words (not the bytes inside a word) of the numbers of
blocks A-C; strings never, SunSpec block D never (SunSpec clients assume the standard).
Writes (block C) are validated whole by :func:`decode_write` into core commands.
"""

from __future__ import annotations

import array
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from functools import lru_cache
from operator import attrgetter, itemgetter
from typing import Final

from twin.core import (
    ClearEnergy,
    ClearPulseCounts,
    Command,
    MeterConfig,
    MeterModel,
    NewDemandSubinterval,
    Reconfigure,
    ResetMaxDemand,
    Snapshot,
)
from twin.errors import ConfigError
from twin.registers import sunspec as _ss

MAP_VERSION: Final = 1
MAX_READ_REGISTERS: Final = 125
MAX_WRITE_REGISTERS: Final = 123
MAX_READ_BITS: Final = 2000
#: The defined blocks, inclusive. Reads anywhere else answer exception 02.
BLOCK_RANGES: Final = {"A": (0, 99), "B": (100, 199), "C": (200, 299), "D": (40000, 40178)}
MAIN_REGISTERS: Final = 300  # blocks A-C are one contiguous run 0..299
COILS: Final = 4  # FC01: output_states bits
DISCRETE_INPUTS: Final = 32  # FC02: status_bits bits

ILLEGAL_FUNCTION: Final = 0x01
ILLEGAL_DATA_ADDRESS: Final = 0x02
ILLEGAL_DATA_VALUE: Final = 0x03


class ModbusException(Exception):
    """A request the map refuses; ``code`` is the Modbus exception code (1, 2 or 3)."""

    def __init__(self, code: int, message: str = "") -> None:
        super().__init__(f"exception {code:#04x}: {message}" if message else f"{code:#04x}")
        self.code = code


class WordOrder(Enum):
    BIG = "big"
    LITTLE = "little"


@dataclass(frozen=True, slots=True)
class Register:
    """One entry of the map. ``count`` is in 16-bit registers."""

    name: str
    address: int
    count: int
    kind: str  # uint16 uint32 uint64 float32 string | block D: int16 sunssf acc32 bitfield32 pad
    unit: str
    description: str
    block: str  # "A" | "B" | "C" | "D"
    writable: bool = False

    @property
    def end(self) -> int:
        return self.address + self.count


def _rows(block: str, rows: str, writable: Sequence[str] = ()) -> list[Register]:
    """Parse ``addr|regs|type|name|unit|description`` lines (compact, reviewable as a table)."""
    out: list[Register] = []
    for line in rows.strip().splitlines():
        if line.startswith(" "):  # continuation of the previous description
            last = out.pop()
            out.append(replace(last, description=f"{last.description} {line.strip()}"))
            continue
        addr, regs, kind, name, unit, desc = (c.strip() for c in line.split("|"))
        out.append(Register(name, int(addr), int(regs), kind, unit, desc, block, name in writable))
    return out


_BLOCK_A = _rows(
    "A",
    """
0|4|uint64|energy_delivered_wh|Wh|L1+L2, what the pulse outputs count; never decreases
4|4|uint64|energy_received_wh|Wh|nonzero only in bidirectional registration
8|4|uint64|energy_l1_wh|Wh|delivered on element 1
12|4|uint64|energy_l2_wh|Wh|delivered on element 2
16|2|uint32|energy_delivered_hwh|0.1 kWh|energy delivered in 0.1 kWh counts
18|2|float32|energy_delivered_kwh|kWh|float: loses Wh resolution above 16,777 kWh
20|2|float32|power_w|W|total, signed (+ = delivered)
22|2|float32|power_l1_w|W|signed
24|2|float32|power_l2_w|W|signed; NaN on a single-element meter
26|2|float32|voltage_l1_v|V|L1-N
28|2|float32|voltage_l2_v|V|L2-N
30|2|float32|voltage_l1_l2_v|V|L1-L2
32|2|float32|current_l1_a|A|primary
34|2|float32|current_l2_a|A|primary
36|2|float32|power_factor_l1||0..1 magnitude (lead/lag in indicators); NaN with no current
38|2|float32|power_factor_l2||0..1 magnitude; NaN with no current
40|2|float32|frequency_hz|Hz|line frequency
42|2|float32|demand_kw|kW|present demand (15-min sliding window, 3 x 5 min)
44|2|float32|demand_max_kw|kW|maximum demand (24-h runtime window)
46|2|uint32|demand_max_at_s|s|uptime seconds when the maximum was set
48|1|uint16|demand_subinterval_elapsed_s|s|seconds into the current sub-interval
49|1|uint16|demand_valid||0 until the first full window has elapsed
50|2|uint32|status_bits|bits|see status bits (also FC02 inputs 0-31)
52|1|uint16|error_code||highest-priority active error, 0 = none (the LCD error)
53|1|uint16|lcd_screen||0 off, 1 boot, 2 total kWh, 3 max demand kW, 4 instantaneous kW, 5 error
54|1|uint16|indicators|bits|b0 load LED, b1 reverse arrow, b2 L1, b3 L2, b4 L1 blink,
  b5 L2 blink, b6 LCD on, b7 L1 leading, b8 L2 leading
55|1|uint16|output_states|bits|b0 10 Wh closed, b1 100 Wh, b2 1000 Wh, b3 counter coil
  (also FC01 coils 0-3)
56|2|uint32|pulses_10wh|count|closures of the 10 Wh output
58|2|uint32|pulses_100wh|count|closures of the 100 Wh output
60|2|uint32|pulses_1000wh|count|closures of the 1000 Wh output
62|2|uint32|counter_counts|count|mechanical counter, 1 count = 100 or 1000 Wh
64|2|uint32|uptime_s|s|since last power-up
66|2|uint32|power_up_count|count|power-ups since the meter was made
68|2|float32|temperature_c|°C|meter temperature
70|1|uint16|source_mode||0 simulated from a profile, 1 mirroring a physical meter
72|2|float32|mirror_registration_pct|%|physical / model energy x 100 over the check window;
  NaN if not mirroring
74|2|float32|mirror_bound_pct|%|± bound of that figure (accuracy class + pulse quantisation)
76|1|uint16|mirror_verdict||0 none, 1 within class, 2 outside class, 3 input stale
77|2|uint32|mirror_pulses|count|physical pulses counted
""",
)
_BLOCK_B = _rows(
    "B",
    """
100|1|uint16|map_version||register map version (1)
101|1|uint16|model||1 MMS, 2 MMD, 3 MMU
102|1|uint16|elements||1 or 2
103|1|uint16|ct_primary_a|A|100, 200, or the CT primary of a secondary-rated model
104|1|uint16|ct_secondary_ma|mA|0 for primary-rated models, 100 or 200
105|1|uint16|counter_wh_per_count|Wh|100 or 1000
106|1|uint16|has_12vdc_output||0/1
108|16|string|serial_number||ASCII, NUL-padded, 2 chars per register, first char in the high byte
124|8|string|firmware_version||ASCII, NUL-padded
132|16|string|catalog_number||ASCII, NUL-padded
""",
)
_CONFIG_NAMES: Final = (
    "demand_interval_min",
    "demand_subintervals",
    "demand_method",
    "demand_max_window_h",
    "registration_mode",
)
_BLOCK_C = _rows(
    "C",
    """
200|1|uint16|command||write-only, reads 0: 21211 new demand sub-interval,
  21212 reset max demand, 16498 clear pulse counts,
  30078 clear energy (only if unlocked at start-up)
201|1|uint16|demand_interval_min|min|1-60, default 15
202|1|uint16|demand_subintervals||1-15 and dividing the interval, default 3
203|1|uint16|demand_method||0 sliding, 1 block, 2 thermal
204|1|uint16|demand_max_window_h|h|0 (until reset) or 1-168, default 24
205|1|uint16|registration_mode||0 sum_then_clamp, 1 per_element_clamp, 2 bidirectional
""",
    writable=("command", *_CONFIG_NAMES),
)


def _sunspec_rows() -> list[Register]:
    rows = [
        Register("SunS", _ss.BASE_ADDRESS, 2, "string", "", "SunSpec marker 0x5375 0x6E53", "D")
    ]
    for prefix, base, points in (
        ("common", _ss.MODEL1_ADDRESS, _ss.MODEL1_POINTS),
        ("ac_meter", _ss.METER_ADDRESS, _ss.METER_POINTS),
    ):
        rows += [
            Register(
                f"{prefix}.{p.name}", base + p.offset, p.size, p.kind, p.unit, p.description, "D"
            )
            for p in points
        ]
    rows.append(Register("end.ID", _ss.END_ADDRESS, 1, "uint16", "", "end model 0xFFFF", "D"))
    rows.append(Register("end.L", _ss.LAST_ADDRESS, 1, "uint16", "", "end model length 0", "D"))
    return rows


REGISTERS: Final[tuple[Register, ...]] = (*_BLOCK_A, *_BLOCK_B, *_BLOCK_C, *_sunspec_rows())
BY_NAME: Final = {r.name: r for r in REGISTERS}

#: Block A registers not in the core snapshot, and what they read when not supplied.
EXTRA_DEFAULTS: Final[Mapping[str, float | int]] = {
    "source_mode": 0,
    "mirror_registration_pct": math.nan,
    "mirror_bound_pct": math.nan,
    "mirror_verdict": 0,
    "mirror_pulses": 0,
}


def field_names() -> list[str]:
    """Block A register names (MQTT field names)."""
    return [r.name for r in _BLOCK_A]


# ------------------------------------------------------------------ encoders

_FMT: Final = {
    "uint16": "H",
    "int16": "h",
    "sunssf": "h",
    "uint32": "I",
    "acc32": "I",
    "bitfield32": "I",
    "uint64": "Q",
    "float32": "f",
}
_COUNT: Final = {k: struct.calcsize(">" + f) // 2 for k, f in _FMT.items()}


def encode(
    kind: str, value: float | str, word_order: WordOrder = WordOrder.BIG, count: int = 0
) -> list[int]:
    """A value as 16-bit register words. Strings: ASCII NUL-padded to ``count`` registers."""
    if kind == "string":
        raw = str(value).encode("ascii")
        n = count or (len(raw) + 1) // 2
        if len(raw) > 2 * n:
            raise ValueError(f"string {value!r} longer than {n} registers ({2 * n} chars)")
        return list(struct.unpack(f">{n}H", raw.ljust(2 * n, b"\0")))
    fmt = _FMT.get(kind)
    if fmt is None:
        raise ValueError(f"unknown register type {kind!r}; expected one of {sorted(_FMT)}")
    try:
        raw = struct.pack(">" + fmt, value)
    except struct.error as exc:
        raise ValueError(f"{kind}: value {value!r} out of range") from exc
    words = list(struct.unpack(f">{len(raw) // 2}H", raw))
    return words[::-1] if word_order is WordOrder.LITTLE else words


def decode(kind: str, words: Sequence[int], word_order: WordOrder = WordOrder.BIG) -> float | str:
    """The inverse of :func:`encode` (strings lose their trailing NULs)."""
    raw = struct.pack(f">{len(words)}H", *words)
    if kind == "string":
        return raw.rstrip(b"\0").decode("ascii", errors="replace")
    fmt = _FMT.get(kind)
    if fmt is None or len(words) != _COUNT[kind]:
        raise ValueError(f"{kind}: cannot decode {len(words)} registers")
    if word_order is WordOrder.LITTLE:
        raw = struct.pack(f">{len(words)}H", *reversed(words))
    value: float | int = struct.unpack(">" + fmt, raw)[0]
    return value


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


# ------------------------------------------------------------------ the image

# Block A encoding plan: one struct format over 0..99 with pad bytes for the gaps, the
# snapshot attributes fetched by one attrgetter and the extras appended after them.
_A_SORTED: Final = sorted(_BLOCK_A, key=lambda r: r.address)
_EXTRA_NAMES: Final = tuple(EXTRA_DEFAULTS)
_SNAP_NAMES: Final = tuple(r.name for r in _A_SORTED if r.name not in EXTRA_DEFAULTS)


def _plan_format(regs: Sequence[Register], start: int, stop: int) -> str:
    fmt, at = [], start
    for r in regs:
        fmt.append("x" * 2 * (r.address - at) + _FMT[r.kind])
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
_A_MASK: Final = tuple(
    {"uint16": 0xFFFF, "uint32": 0xFFFFFFFF, "uint64": 2**64 - 1}.get(r.kind, 0) for r in _A_SORTED
)
_C_STRUCT: Final = struct.Struct(">6H" + "x" * 2 * (100 - 6))


def _pack_a(values: tuple[float | int, ...], word_order: WordOrder) -> bytes:
    ordered = _A_ORDER(values)
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


@lru_cache(maxsize=4096)
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


@lru_cache(maxsize=4096)
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


class RegisterImage:
    """The bytes every read is answered from; rebuilt when the snapshot changes."""

    __slots__ = ("_main", "_sunspec", "config", "identity", "output_states", "status_bits")

    def __init__(
        self,
        main: bytes,
        sunspec_block: bytes | None,
        status_bits: int,
        output_states: int,
        config: tuple[int, int, int, int, int],
        identity: Identity,
    ) -> None:
        self._main = main
        self._sunspec = sunspec_block
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
        block_a = _pack_a(_SNAP_GET(snapshot) + extra_values, word_order)
        config = (
            snapshot.demand_interval_min,
            snapshot.demand_subintervals,
            int(snapshot.demand_method),
            snapshot.demand_max_window_h,
            int(snapshot.registration_mode),
        )
        block_c = _C_STRUCT.pack(0, *config)
        block_d = None
        if sunspec:
            header, sf = _sunspec_static(identity)
            block_d = header + _ss.meter_model(snapshot, identity.model, sf)
        return cls(
            block_a + _block_b(identity) + block_c,
            block_d,
            snapshot.status_bits,
            snapshot.output_states,
            config,
            identity,
        )

    def read_registers(self, address: int, count: int) -> bytes:
        """``count`` registers from ``address`` as big-endian bytes, ready for a PDU."""
        if not 0 < count <= MAX_READ_REGISTERS:
            raise ModbusException(ILLEGAL_DATA_VALUE, f"count {count}; expected 1..125")
        end = address + count
        if address >= 0 and end <= MAIN_REGISTERS:
            return self._main[2 * address : 2 * end]
        block_d = self._sunspec
        if block_d is not None and address >= _ss.BASE_ADDRESS and end <= _ss.LAST_ADDRESS + 1:
            base = _ss.BASE_ADDRESS
            return block_d[2 * (address - base) : 2 * (end - base)]
        raise ModbusException(ILLEGAL_DATA_ADDRESS, f"registers {address}..{end - 1} undefined")

    def read_bits(self, fc: int, address: int, count: int) -> bytes:
        """FC01 coils (output_states) or FC02 discrete inputs (status_bits), LSB first."""
        if fc == 1:
            value, size = self.output_states, COILS
        elif fc == 2:
            value, size = self.status_bits, DISCRETE_INPUTS
        else:
            raise ModbusException(ILLEGAL_FUNCTION, f"function {fc} is not a bit read")
        if not 0 < count <= MAX_READ_BITS:
            raise ModbusException(ILLEGAL_DATA_VALUE, f"count {count}; expected 1..2000")
        if address < 0 or address + count > size:
            raise ModbusException(ILLEGAL_DATA_ADDRESS, f"bits {address}..{address + count - 1}")
        bits = (value >> address) & ((1 << count) - 1)
        return bits.to_bytes((count + 7) // 8, "little")

    def decode_write(
        self, address: int, values: Sequence[int], *, energy_reset_unlocked: bool
    ) -> Command:
        """:func:`decode_write` checked against this image's current block C values."""
        return decode_write(
            address, values, energy_reset_unlocked=energy_reset_unlocked, current=self.config
        )


# ------------------------------------------------------------------ writes

COMMANDS: Final[Mapping[int, Command]] = {
    21211: NewDemandSubinterval(),
    21212: ResetMaxDemand(),
    16498: ClearPulseCounts(),
    30078: ClearEnergy(),
}
ENERGY_RESET_CODE: Final = 30078
_COMMAND_ADDRESS: Final = 200
_CONFIG_FIRST: Final = 201


def decode_write(
    address: int,
    values: Sequence[int],
    *,
    energy_reset_unlocked: bool,
    current: Sequence[int] | None = None,
) -> Command:
    """Validate a FC06/FC16 write as a whole and return the core command it means.

    ``current``: block C 201..205 as they are now, so a write of one demand register
    is checked against the other (subintervals must divide the interval). Raises
    :class:`ModbusException` 02 for any address outside 200..205, 03 for a bad value
    or count, a command mixed with config registers, or 30078 while locked.
    """
    n = len(values)
    if not 0 < n <= MAX_WRITE_REGISTERS:
        raise ModbusException(ILLEGAL_DATA_VALUE, f"count {n}; expected 1..123")
    end = address + n
    if address < _COMMAND_ADDRESS or end > _CONFIG_FIRST + len(_CONFIG_NAMES):
        raise ModbusException(ILLEGAL_DATA_ADDRESS, f"registers {address}..{end - 1} read-only")
    if any(not 0 <= v <= 0xFFFF for v in values):
        raise ModbusException(ILLEGAL_DATA_VALUE, "register values are 0..65535")
    if address == _COMMAND_ADDRESS:
        if n != 1:
            raise ModbusException(ILLEGAL_DATA_VALUE, "the command register is written alone")
        code = values[0]
        command = COMMANDS.get(code)
        if command is None:
            raise ModbusException(ILLEGAL_DATA_VALUE, f"unknown command {code}")
        if code == ENERGY_RESET_CODE and not energy_reset_unlocked:
            raise ModbusException(ILLEGAL_DATA_VALUE, "energy reset is locked")
        return command
    written = dict(zip(_CONFIG_NAMES[address - _CONFIG_FIRST :], values, strict=False))
    merged = dict(zip(_CONFIG_NAMES, current, strict=True)) if current is not None else {}
    merged.update(written)
    _check_config(merged)
    return Reconfigure(**written)


def _check_config(cfg: Mapping[str, int]) -> None:
    def bad(what: str) -> ModbusException:
        return ModbusException(ILLEGAL_DATA_VALUE, what)

    interval = cfg.get("demand_interval_min")
    subs = cfg.get("demand_subintervals")
    if interval is not None and not 1 <= interval <= 60:
        raise bad(f"demand_interval_min {interval}; expected 1..60")
    if subs is not None and not 1 <= subs <= 15:
        raise bad(f"demand_subintervals {subs}; expected 1..15")
    if interval is not None and subs is not None and interval % subs:
        raise bad(f"demand_subintervals {subs} does not divide {interval} min")
    if cfg.get("demand_method", 0) > 2:
        raise bad("demand_method; expected 0..2")
    window = cfg.get("demand_max_window_h", 0)
    if window > 168:
        raise bad(f"demand_max_window_h {window}; expected 0 or 1..168")
    if cfg.get("registration_mode", 0) > 2:
        raise bad("registration_mode; expected 0..2")
