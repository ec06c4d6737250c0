"""Register kinds and word orders: one value as 16-bit register words and back.

Theory of operation. Every number the map serves is a ``struct`` format character
(:data:`STRUCT_FORMATS`) packed big-endian, most significant word first; a
:class:`WordOrder` of ``LITTLE`` swaps the words (never the bytes inside a word).
Strings are ASCII, NUL-padded, two characters per register, first character in the
high byte, and are never swapped. The image packs whole blocks from the same
formats (:mod:`twin.registers.image`); :func:`encode` and :func:`decode` are the
one-value forms clients, docs and tests use.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from enum import Enum, StrEnum
from typing import Final


class RegisterKind(StrEnum):
    """The type of a register: blocks A-C use the first five, SunSpec block D the rest."""

    UINT16 = "uint16"
    UINT32 = "uint32"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    STRING = "string"
    INT16 = "int16"
    SUNSSF = "sunssf"
    ACC32 = "acc32"
    BITFIELD32 = "bitfield32"
    PAD = "pad"


class WordOrder(Enum):
    """Order of the 16-bit words of a multi-register number (``--word-order``)."""

    BIG = "big"
    LITTLE = "little"


#: ``struct`` format character of each numeric kind (strings and pad have none).
STRUCT_FORMATS: Final[Mapping[RegisterKind, str]] = {
    RegisterKind.UINT16: "H",
    RegisterKind.INT16: "h",
    RegisterKind.SUNSSF: "h",
    RegisterKind.UINT32: "I",
    RegisterKind.ACC32: "I",
    RegisterKind.BITFIELD32: "I",
    RegisterKind.UINT64: "Q",
    RegisterKind.FLOAT32: "f",
}
#: Registers one value of each numeric kind takes.
REGISTER_COUNTS: Final[Mapping[RegisterKind, int]] = {
    k: struct.calcsize(">" + f) // 2 for k, f in STRUCT_FORMATS.items()
}
#: The bits an unsigned integer kind keeps (a counter outgrowing it wraps).
UNSIGNED_MASKS: Final[Mapping[RegisterKind, int]] = {
    RegisterKind.UINT16: 0xFFFF,
    RegisterKind.UINT32: 0xFFFF_FFFF,
    RegisterKind.UINT64: 2**64 - 1,
}


def encode(
    kind: RegisterKind, value: float | str, word_order: WordOrder = WordOrder.BIG, count: int = 0
) -> list[int]:
    """A value as 16-bit register words. Strings: ASCII NUL-padded to ``count`` registers."""
    if kind == RegisterKind.STRING:
        raw = str(value).encode("ascii")
        n = count or (len(raw) + 1) // 2
        if len(raw) > 2 * n:
            raise ValueError(f"string {value!r} longer than {n} registers ({2 * n} chars)")
        return list(struct.unpack(f">{n}H", raw.ljust(2 * n, b"\0")))
    fmt = STRUCT_FORMATS.get(kind)
    if fmt is None:
        known = sorted(k.value for k in STRUCT_FORMATS)
        raise ValueError(f"unknown register type {kind!r}; expected one of {known}")
    try:
        raw = struct.pack(">" + fmt, value)
    except struct.error as exc:
        raise ValueError(f"{kind}: value {value!r} out of range") from exc
    words = list(struct.unpack(f">{len(raw) // 2}H", raw))
    return words[::-1] if word_order is WordOrder.LITTLE else words


def decode(
    kind: RegisterKind, words: Sequence[int], word_order: WordOrder = WordOrder.BIG
) -> float | str:
    """The inverse of :func:`encode` (strings lose their trailing NULs)."""
    raw = struct.pack(f">{len(words)}H", *words)
    if kind == RegisterKind.STRING:
        return raw.rstrip(b"\0").decode("ascii", errors="replace")
    fmt = STRUCT_FORMATS.get(kind)
    if fmt is None or len(words) != REGISTER_COUNTS[kind]:
        raise ValueError(f"{kind}: cannot decode {len(words)} registers")
    if word_order is WordOrder.LITTLE:
        raw = struct.pack(f">{len(words)}H", *reversed(words))
    value: float | int = struct.unpack(">" + fmt, raw)[0]
    return value
