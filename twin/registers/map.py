"""Register map v1 (REGISTER_MAP.md) as data: every register, block and protocol limit.

Theory of operation. :data:`REGISTERS` is the single source of truth: every register
with its 0-based PDU address, size, kind, unit and block; the docs table, the CLI
listing, the MQTT field names and the image layout all derive from it. The Modbus
limits (registers per read and write, bits per read) and exception codes live here
too, once: the image, the writes decoder and the Modbus endpoint all use these.
Pure data; the encoders are :mod:`twin.registers.codec`, the served bytes
:mod:`twin.registers.image`, the block C writes :mod:`twin.registers.writes`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import IntEnum, IntFlag, StrEnum
from typing import Final

from twin.registers import sunspec as _ss
from twin.registers.codec import RegisterKind

MAP_VERSION: Final = 1
MAX_READ_REGISTERS: Final = 125  # FC03/FC04 count limit (Modbus spec)
MAX_WRITE_REGISTERS: Final = 123  # FC16 count limit
MAX_READ_BITS: Final = 2000  # FC01/FC02 count limit


class Block(StrEnum):
    A = "A"  # live data
    B = "B"  # identity
    C = "C"  # configuration and commands
    D = "D"  # SunSpec


#: The defined blocks, inclusive. Reads anywhere else answer exception 02.
BLOCK_RANGES: Final[Mapping[Block, tuple[int, int]]] = {
    Block.A: (0, 99),
    Block.B: (100, 199),
    Block.C: (200, 299),
    Block.D: (_ss.BASE_ADDRESS, _ss.LAST_ADDRESS),
}
MAIN_REGISTERS: Final = 300  # blocks A-C are one contiguous run 0..299
COILS: Final = 4  # FC01: output_states bits
DISCRETE_INPUTS: Final = 32  # FC02: status_bits bits
COMMAND_ADDRESS: Final = 200  # block C: the write-only command register
CONFIG_ADDRESS: Final = 201  # block C: the first demand/registration setting


class ExceptionCode(IntEnum):
    """The Modbus exception codes the twin answers."""

    ILLEGAL_FUNCTION = 0x01
    ILLEGAL_DATA_ADDRESS = 0x02
    ILLEGAL_DATA_VALUE = 0x03
    SERVER_DEVICE_FAILURE = 0x04
    GATEWAY_TARGET_FAILED = 0x0B


class ModbusException(Exception):
    """A request the map refuses; ``code`` is the Modbus exception code."""

    def __init__(self, code: ExceptionCode, message: str = "") -> None:
        super().__init__(f"exception {code:#04x}: {message}" if message else f"{code:#04x}")
        self.code = code


@dataclass(frozen=True, slots=True)
class Register:
    """One entry of the map. ``count`` is in 16-bit registers."""

    name: str
    address: int
    count: int
    kind: RegisterKind
    unit: str
    description: str
    block: Block
    writable: bool = False

    @property
    def end(self) -> int:
        return self.address + self.count


def _rows(block: Block, rows: str, writable: Sequence[str] = ()) -> list[Register]:
    """Parse ``addr|regs|type|name|unit|description`` lines (compact, reviewable as a table)."""
    out: list[Register] = []
    for line in rows.strip().splitlines():
        if line.startswith(" "):  # continuation of the previous description
            last = out.pop()
            out.append(replace(last, description=f"{last.description} {line.strip()}"))
            continue
        addr, regs, kind, name, unit, desc = (c.strip() for c in line.split("|"))
        out.append(
            Register(
                name, int(addr), int(regs), RegisterKind(kind), unit, desc, block, name in writable
            )
        )
    return out


_BLOCK_A = _rows(
    Block.A,
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
74|2|float32|mirror_bound_pct|%|± bound of that figure (edge quantisation + timing + reference)
76|1|uint16|mirror_verdict||0 none, 1 within class, 2 outside class, 3 input stale,
  4 undecided (not enough pulses yet)
77|2|uint32|mirror_pulses|count|physical pulses counted
79|1|uint16|twin_health|bits|the twin's own conditions (not the meter's), 0 = all well; see twin
  health bits
""",
)


class TwinHealth(IntFlag):
    """Bits of ``twin_health`` (register 79): what is wrong with the twin itself.

    The meter's ``status_bits`` are the simulated meter's own (what a physical Mini
    Meter would say); these are the twin's, so a rig can tell a meter condition it
    asked for from a failure of the rig around it.
    """

    STORE_FAILING = 1 << 0
    MQTT_DISCONNECTED = 1 << 1
    PULSE_SOURCE_STALE = 1 << 2
    REFERENCE_DOWN = 1 << 3
    PULSE_SINK_FAILING = 1 << 4
    LAGGING = 1 << 5


#: What each ``twin_health`` bit means (the docs table and the HTTP/MQTT condition names).
TWIN_HEALTH_MEANINGS: Final[Mapping[TwinHealth, str]] = {
    TwinHealth.STORE_FAILING: "checkpoints fail (a full disk, a read-only state dir); "
    "the meters serve on from memory and the store is retried every second",
    TwinHealth.MQTT_DISCONNECTED: "`--mqtt` given and the broker not connected (reconnecting)",
    TwinHealth.PULSE_SOURCE_STALE: "a mirror's pulse source does not answer (also status bit "
    "14 and `mirror_verdict` 3)",
    TwinHealth.REFERENCE_DOWN: "a mirror's reference meter does not answer",
    TwinHealth.PULSE_SINK_FAILING: "the `--pulse-out` sink does not take the edges (they are "
    "lost until it answers)",
    TwinHealth.LAGGING: "the meters fell behind the clock (meter time lags; set for the rest "
    "of the run, as the warning is said once)",
}


def health_conditions(bits: int) -> list[str]:
    """The names of the ``twin_health`` bits set in ``bits`` (``store_failing`` ...)."""
    return [str(flag.name).lower() for flag in TwinHealth if bits & flag]


_BLOCK_B = _rows(
    Block.B,
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
#: Block C settings from :data:`CONFIG_ADDRESS` on, in address order.
CONFIG_NAMES: Final = (
    "demand_interval_min",
    "demand_subintervals",
    "demand_method",
    "demand_max_window_h",
    "registration_mode",
)
_BLOCK_C = _rows(
    Block.C,
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
    writable=("command", *CONFIG_NAMES),
)


def _sunspec_rows() -> list[Register]:
    def row(name: str, address: int, count: int, kind: RegisterKind, desc: str) -> Register:
        return Register(name, address, count, kind, "", desc, Block.D)

    rows = [row("SunS", _ss.BASE_ADDRESS, 2, RegisterKind.STRING, "SunSpec marker 0x5375 0x6E53")]
    for prefix, base, points in (
        ("common", _ss.MODEL1_ADDRESS, _ss.MODEL1_POINTS),
        ("ac_meter", _ss.METER_ADDRESS, _ss.METER_POINTS),
    ):
        rows += [
            Register(
                f"{prefix}.{p.name}",
                base + p.offset,
                p.size,
                p.kind,
                p.unit,
                p.description,
                Block.D,
            )
            for p in points
        ]
    rows.append(row("end.ID", _ss.END_ADDRESS, 1, RegisterKind.UINT16, "end model 0xFFFF"))
    rows.append(row("end.L", _ss.LAST_ADDRESS, 1, RegisterKind.UINT16, "end model length 0"))
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
    "twin_health": 0,
}


def block_registers(block: Block) -> tuple[Register, ...]:
    """The registers of one block, in address order."""
    return tuple(sorted((r for r in REGISTERS if r.block == block), key=lambda r: r.address))


def field_names() -> list[str]:
    """Block A register names (MQTT field names)."""
    return [r.name for r in _BLOCK_A]
