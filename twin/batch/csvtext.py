"""CSV text of numeric columns, vectorised: byte for byte what ``'%.Nf' % x`` prints.

Theory of operation. A year at one minute is 525,600 rows of 19 numbers; formatting
them one ``%`` at a time costs about 0.1 µs a number, longer than the simulation's
slowest part. Here each column of a chunk of rows becomes digits with numpy
integer arithmetic and the whole chunk is laid out as a byte matrix:

- a number ``x`` with ``N`` decimals is the integer ``r = round(|x| * 10**N)`` in
  fixed point. The product is rounded once, so ``numpy.rint`` picks Python's digit
  except when the product lies within one unit in the last place of a tie
  (``k + 0.5``); those few numbers are rounded by Python's own ``%`` (which rounds
  the exact binary value, ties to even) and put back as integers;
- ``%d`` truncates toward zero, as ``int(x)`` does (an int64 column is its own value);
- each column has a fixed-width field per row: a sign (only when some row of the
  chunk is negative), the digits (most significant first, the decimal point before
  the last ``N``) and a separator; unused places (no sign, leading zeros) hold byte
  0, and deleting every 0 byte of the matrix (``bytearray.translate``, a tenth of
  the time of a boolean mask) leaves the rows as Python writes them;
- what every row of the chunk shares is written once, as a template row: the
  separators and points, a column holding one value (its ``%`` text), and each
  column's digits above the lowest place where its smallest and largest value agree
  (a constant voltage has no digit computed per row; a year's energies or times
  vary in their low places only);
- the places every row prints are made four at a time, as four ASCII bytes in one
  uint32 per row (a point among them is a digit 0 printed as ``.``): a store per
  row and column costs more than the arithmetic, so four bytes go in one store;
- the sign is Python's: ``'%.3f' % -0.0001`` is ``-0.000``, so it follows the sign
  bit for decimals; ``'%d'`` of -0.5 is ``0``.

A chunk holding a number this cannot represent (NaN, infinities, magnitudes of
2**52 and more in fixed point) is formatted by ``%`` instead: slower, same text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
#: A column: float64, or int64 for a ``%d`` column of integers.
NumberArray = npt.NDArray[Any]
UIntArray = npt.NDArray[np.uint64]
BoolArray = npt.NDArray[np.bool_]
#: Fixed-point magnitudes below this are exact in a float64 and an int64.
MAX_FIXED = 2.0**52
_ZERO, _MINUS, _DOT, _COMMA, _NEWLINE = 48, 45, 46, 44, 10
#: Bytes of a field made and written at once: four digits, one uint32 per row.
_GROUP = 4


def _fixed(x: NumberArray, decimals: int | None) -> tuple[UIntArray, BoolArray | None] | None:
    """(|r|, negative) per value: the fixed-point integer Python prints (unsigned, as
    the digits are made), negative None when no row is; or None when a value is out
    of reach (``decimals`` None means ``%d``)."""
    if decimals is None:
        if x.dtype.kind == "i":  # exact in a float below MAX_FIXED: '%d' prints the integer
            low = int(x.min())
            if low <= -MAX_FIXED or int(x.max()) >= MAX_FIXED:
                return None
            return np.abs(x).view(np.uint64), np.less(x, 0) if low < 0 else None
        whole = np.trunc(x)
        magnitude = np.abs(whole)
        if not magnitude.max() < MAX_FIXED:  # NaN compares False too (max propagates it)
            return None
        negative = np.less(whole, 0.0)
        return magnitude.astype(np.uint64), negative if negative.any() else None
    y = np.abs(x)
    y *= 10.0**decimals
    top = y.max()
    if not top < MAX_FIXED:
        return None
    r = np.rint(y)
    # A tie is y within spacing(y) of k + 0.5, i.e. |y - r| >= 0.5 - spacing(y) (y - r is
    # exact); spacing(y) <= spacing(top), so the few rows past 0.5 - spacing(top) hold
    # every tie, and only they are tested exactly.
    off = np.subtract(y, r)
    np.abs(off, out=off)
    near = np.flatnonzero(off >= 0.5 - np.spacing(top))
    out = r.astype(np.uint64)
    if near.shape[0]:
        yn = y[near]
        for i in near[np.abs(yn - np.floor(yn) - 0.5) <= np.spacing(yn)].tolist():
            out[i] = int(f"{abs(float(x[i])):.{decimals}f}".replace(".", ""))
    # A sign bit set is a negative int64 of the same bits: no row has one, no sign.
    return out, np.signbit(x) if int(x.view(np.int64).min()) < 0 else None


def _constant(x: NumberArray, decimals: int | None) -> bytes | None:
    """The text of every row when the column holds one value (the same bits: -0.0 is
    not 0.0), else None; formatted by ``%``, so NaN and infinities too."""
    bits = x.view(np.int64) if x.dtype == np.float64 else x
    if bits[0] != bits[-1] or bits.min() != bits.max():
        return None
    text: str = ("%d" if decimals is None else f"%.{decimals}f") % float(x[0])
    return text.encode("ascii")


def _digits(value: int) -> int:
    return len(str(value))


def _percent_rows(columns: Sequence[NumberArray], formats: Sequence[str]) -> bytes:
    row = ",".join(formats) + "\n"
    data = np.column_stack([np.asarray(x, dtype=np.float64) for x in columns])
    text: str = (row * data.shape[0]) % tuple(data.ravel().tolist())
    return text.encode("ascii")


def _digit_byte(rest: int, place: int, always: int) -> int:
    """The byte at one place of a field whose value above it is ``rest``: the digit, or
    0 (left out) for a leading zero past the places every row prints."""
    return 0 if place >= always and rest == 0 else rest % 10 + _ZERO


class _Digits(NamedTuple):
    """A column's field laid out: its digits per row and where they go."""

    r: UIntArray  # |value| in fixed point
    minus: BoolArray | None  # None: no row negative, no place for a sign
    places: int  # decimals
    width: int  # digits of the widest value (at least one before the point)
    always: int  # digits every row prints: below, no leading zero to leave out
    varying: int  # low places whose digit differs between rows: above, lo's digits
    lo: int  # the smallest r
    end: int  # the field's last digit in the row


def _numbers(x: npt.ArrayLike, decimals: int | None) -> NumberArray:
    """float64; an int64 column printed with ``%d`` kept as it is (no float arithmetic)."""
    a = np.asarray(x)
    if decimals is None and a.dtype == np.int64:
        return a
    return a.astype(np.float64, copy=False)


def format_rows(
    columns: Sequence[npt.ArrayLike], decimals: Sequence[int | None]
) -> bytes | bytearray:
    """The CSV rows (``,`` between fields, ``\\n`` after each row) of equal-length
    columns; ``decimals[k]`` None formats column k as ``%d``, N as ``%.Nf``."""
    arrays = [_numbers(x, d) for x, d in zip(columns, decimals, strict=True)]
    rows = arrays[0].shape[0] if arrays else 0
    if rows == 0:
        return b""
    # Field of a column: sign, digits (a point before the last N), separator. What is
    # the same in every row (separators, points, a sign nobody has, the digits above
    # the places where the smallest and largest value differ, a constant column's
    # text) is one template row.
    total = 0
    constants: list[tuple[int, bytes]] = []  # (first byte, text)
    fields: list[_Digits] = []
    for x, d in zip(arrays, decimals, strict=True):
        same = _constant(x, d)
        if same is not None:
            constants.append((total, same))
            total += len(same) + 1
            continue
        fixed = _fixed(x, d)
        if fixed is None:
            return _percent_rows(arrays, ["%d" if d is None else f"%.{d}f" for d in decimals])
        r, negative = fixed
        places = d or 0
        lo, hi = int(r.min()), int(r.max())
        # Digits of the widest value (at least one before the point), and of the
        # narrowest: below that no row has a leading zero to leave out.
        width, always = max(_digits(hi), places + 1), max(_digits(lo), places + 1)
        varying = 0
        while lo // 10**varying != hi // 10**varying:
            varying += 1
        end = total + (negative is not None) + width + (1 if places else 0)
        fields.append(_Digits(r, negative, places, width, always, varying, lo, end))
        total = end + 2
    template = np.zeros(total, dtype=np.uint8)
    for first, same in constants:
        template[first : first + len(same)] = np.frombuffer(same, dtype=np.uint8)
        template[first + len(same)] = _COMMA
    for f in fields:
        if f.places:
            template[f.end - f.places] = _DOT
        template[f.end + 1] = _COMMA
        for place in range(f.varying, f.width):
            column = f.end - place - (1 if f.places and place >= f.places else 0)
            template[column] = _digit_byte(f.lo // 10**place, place, f.always)
    template[total - 1] = _NEWLINE  # the last field's separator
    # A bytearray's own translate deletes the left-out places: a third faster than
    # bytes.translate, and no tobytes copy of the matrix.
    buffer = bytearray(template.tobytes()) * rows
    text = np.frombuffer(buffer, dtype=np.uint8).reshape(rows, total)
    for f in fields:
        if f.minus is not None:
            sign = text[:, f.end - f.width - (1 if f.places else 0)]
            np.multiply(f.minus, np.uint8(_MINUS), out=sign)
        _write_digits(text, f)
    return buffer.translate(None, b"\0")  # the left-out places deleted


def _write_digits(text: npt.NDArray[np.uint8], f: _Digits) -> None:
    """The places below ``f.varying`` of each row, written into ``text``."""
    # Unsigned: numpy divides those by a constant several times faster (uint32 the
    # fastest), and its ``%`` is slow, so a remainder is x - x // m * m.
    rest: npt.NDArray[Any] = f.r
    if f.lo >= 10**f.varying:  # r less the common prefix; every row is wider than
        rest = _mod(rest, 10**f.varying)  # these places: none of them is left out
    if f.varying < 9:  # below 10**9 with a point's digit added: uint32
        rest = rest.astype(np.uint32)
    # The places every row prints (below ``always``), four bytes at a time: as the
    # digits of e, r with a digit 0 where the point goes (printed as the point).
    low = min(f.varying, f.always)
    size = low + 1 if f.places and low > f.places else low  # bytes of those places
    if size >= _GROUP:
        e = _mod(rest, 10**low) if low < f.varying else rest
        if size > low:
            e = e + e // 10**f.places * (9 * 10**f.places)
        # Groups from the last byte; the first group overlaps the one after it rather
        # than reach past these places (both write the same bytes there).
        for a in [*range(0, size - _GROUP, _GROUP), size - _GROUP]:
            group = _mod(e // 10**a if a else e, 10**_GROUP).astype(np.uint32, copy=False)
            point = a + _GROUP - 1 - f.places if size > low and a <= f.places < a + _GROUP else -1
            first = f.end - a - (_GROUP - 1)  # the group's first byte in the row
            _ascii4(group, point, text[:, first : first + _GROUP].view("<u4")[:, 0])
        rest = rest // 10**low
    else:
        low = 0
    if f.varying - low <= 9:
        rest = rest.astype(np.uint32, copy=False)
    for place in range(low, f.varying):
        column = f.end - place - (1 if f.places and place >= f.places else 0)
        higher = rest // 10
        # Written straight into the text; a leading zero in some rows (a place past
        # ``always``) is left out there: its byte stays the template's 0.
        shown = rest > 0 if place >= f.always else True
        np.add(rest - higher * 10, _ZERO, out=text[:, column], where=shown, casting="unsafe")
        rest = higher


def _mod(x: npt.NDArray[Any], m: int) -> npt.NDArray[Any]:
    """``x % m`` (a new array), by a division numpy makes fast."""
    rest: npt.NDArray[Any] = x - x // m * m
    return rest


def _ascii4(g: npt.NDArray[np.uint32], point: int, out: npt.NDArray[np.uint32]) -> None:
    """Each ``g`` < 10**4 as four ASCII digits in one uint32 (SIMD within a register),
    the most significant first in memory (``out`` is little-endian); byte ``point``
    (-1: none) is the point instead of its digit, a 0. ``g`` is used up."""
    high = g * np.uint32(5243)
    high >>= np.uint32(19)  # g // 100 (exact below 43699)
    g -= high * np.uint32(100)
    g <<= np.uint32(16)
    g |= high  # two 16-bit lanes: g // 100 first, then g % 100
    tens = g * np.uint32(103)
    tens >>= np.uint32(10)
    tens &= np.uint32(0x000F000F)  # each lane // 10 (exact below 179)
    g -= tens * np.uint32(10)
    g <<= np.uint32(8)
    g |= tens  # four bytes: each lane's tens, then its units
    zeros = _ZERO * 0x01010101 - ((_ZERO - _DOT) << 8 * point if point >= 0 else 0)
    np.add(g, np.uint32(zeros), out=out)
