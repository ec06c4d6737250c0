"""The register map rendered for people: docs/registers.md, CSV and JSON.

Everything here derives from ``twin.registers.map.REGISTERS`` (the single source of
truth): ``minimeter registers --format md|csv|json`` prints it and
``docs/registers.md`` is this module's Markdown (a test fails when it is stale).
"""

from __future__ import annotations

import csv
import io
import json
from typing import Final

from twin.core import ErrorCode, StatusBit
from twin.errors import ConfigError
from twin.registers import sunspec as _ss
from twin.registers.map import MAP_VERSION, REGISTERS, TWIN_HEALTH_MEANINGS, Block, Register

_BLOCK_TITLES: Final = {
    Block.A: "Block A — live data, 0–99 (read-only)",
    Block.B: "Block B — identity, 100–199 (read-only)",
    Block.C: "Block C — configuration and commands, 200–299",
    Block.D: "Block D — SunSpec, 40000–40178 (on by default, `--no-sunspec` drops it)",
}
CONVENTIONS: Final = """\
- Addresses are 0-based PDU addresses; the "4xxxx" column is address + 40001. SunSpec
  documents number block D 1-based: their register 40001 is our address 40000.
- FC03 (holding) and FC04 (input) serve the identical map. FC02 discrete inputs 0–31
  mirror `status_bits`; FC01 coils 0–3 mirror `output_states` (read-only).
- Multi-register numbers are big-endian, most significant word first. `--word-order
  little` swaps the word order of every multi-register number of blocks A–C; strings
  and the SunSpec block D are never swapped (SunSpec fixes big-endian).
- Not available: float32 NaN 0x7FC00000, uint16 0xFFFF, uint32 0xFFFFFFFF; in block D
  the SunSpec "not implemented" values (int16 and sunssf 0x8000, acc32 0). While a
  meter is unpowered every instantaneous quantity (power, voltage, current, PF,
  frequency, temperature) reads not available; energies, counts and demand hold.
- Unit ids: a TCP port serving one meter answers unit ids 0 and 255 as that meter (the
  Modbus TCP guide's rule for directly connected servers); with the alias off, or on a
  port with several meters, they answer exception 0x0B like any unit not served. On
  RTU, unit 0 is the broadcast.
- A read touching an address outside the blocks answers exception 02; reserved
  addresses inside a block read 0; a count of 0 or over 125 answers exception 03.
- Writes: only block C, only when the server runs with writes enabled (else 01);
  02 for a read-only or undefined address (a write partly outside 200–205 too);
  03 for a value out of range, an unknown command, a command register written together
  with other registers, or 30078 while energy reset is locked. A multi-register write
  is validated as a whole; a refused write changes nothing.
- SunSpec: model 201 for single-element meters, 202 for dual; phase A = L1, B = L2.
  W positive = delivered (import); VAR positive lagging; PF in percent with the sign
  of W. TotWhImp = `energy_delivered_wh`, TotWhExp = `energy_received_wh`, in
  Wh × 10^TotWh_SF, TotWh_SF the smallest exponent ≥ 0 keeping five years at full
  rated power below 2^32 (0 for the 100 A and 200 A models); accumulators never
  decrease except by an energy clear and roll over modulo 2^32. An implemented
  accumulator never reads 0 (SunSpec's "not implemented"): a count of 0 reads 1, so
  pysunspec2 reads every mandatory point (TotWhExp of a meter that registers no export
  reads 1). Model 202 marks AphC mandatory: it reads 0 A (no phase C). A_SF and W_SF are
  the smallest exponents keeping twice the rated value within int16; V_SF −1,
  Hz_SF −2, PF_SF −1.
"""

HEALTH_NOTE: Final = """\
The twin's own conditions, apart from the meter's `status_bits`: a failing store does
**not** set status bit 10 (non-volatile memory error) or error code 1. Those are the
simulated meter's, what a physical Mini Meter would show (`inject_error` sets them on
purpose); a rig that asserts the meter's status must not see it change because the
host's disk filled up. The twin's memory is intact meanwhile: the meters serve and
count on from memory, and the state is saved again when the store recovers. The same
bits are `twin_health` and `twin_conditions` in the MQTT state and the HTTP API."""


def _access(r: Register) -> str:
    if r.name == "command":
        return "W"
    return "R/W" if r.writable else "R"


def render_table(fmt: str = "md") -> str:
    """The map as Markdown (this is docs/registers.md), CSV or JSON."""
    columns = ("block", "address", "count", "kind", "name", "unit", "access", "description")
    rows = [
        (r.block, r.address, r.count, r.kind, r.name, r.unit, _access(r), r.description)
        for r in REGISTERS
    ]
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
        return out.getvalue()
    if fmt == "json":
        return json.dumps([dict(zip(columns, row, strict=True)) for row in rows], indent=1) + "\n"
    if fmt != "md":
        raise ConfigError(f"format: {fmt!r} unknown; expected md, csv or json")
    lines = [
        f"# Register map v{MAP_VERSION}",
        "",
        "Generated from `twin/registers/map.py` by "
        "`minimeter registers --format md` (`make docs`);",
        "do not edit by hand: a test fails when this file and the code disagree.",
        "",
        "## Conventions",
        "",
        CONVENTIONS,
    ]
    for block, title in _BLOCK_TITLES.items():
        lines += [
            f"## {title}",
            "",
            "| addr | 4xxxx | regs | type | name | unit | access | meaning |",
        ]
        lines.append("|---|---|---|---|---|---|---|---|")
        for r in REGISTERS:
            if r.block == block:
                ref = "—" if block is Block.D else r.address + 40001
                cells = (r.address, ref, r.count, r.kind, f"`{r.name}`", r.unit)
                row = " | ".join(str(c) for c in cells)
                lines.append(f"| {row} | {_access(r)} | {r.description} |")
        lines.append("")
    lines += ["## Status bits (`status_bits`, FC02 inputs)", "", "| bit | meaning |", "|---|---|"]
    lines += [f"| {int(b)} | {b.name.lower()} |" for b in StatusBit]
    lines += ["", "## Twin health bits (`twin_health`, register 79)", ""]
    lines += [HEALTH_NOTE, "", "| bit | name | meaning |", "|---|---|---|"]
    lines += [
        f"| {flag.bit_length() - 1} | {str(flag.name).lower()} | {text} |"
        for flag, text in TWIN_HEALTH_MEANINGS.items()
    ]
    lines += ["", "## Error codes (`error_code`, highest priority first)", ""]
    lines += ["| code | meaning |", "|---|---|"]
    lines += [f"| {int(c)} | {c.name.lower()} |" for c in ErrorCode if c]
    lines += [
        "",
        "## SunSpec Evt bits (from `status_bits`)",
        "",
        "| Evt bit | meaning |",
        "|---|---|",
    ]
    lines += [f"| {bit} | {text} |" for _, bit, text in _ss.EVT_MAP]
    lines.append("")
    return "\n".join(lines)
