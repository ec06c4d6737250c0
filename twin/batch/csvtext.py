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
- ``%d`` truncates toward zero, as ``int(x)`` does;
- each column has a fixed-width field per row: a sign (only when some row of the
  chunk is negative), the digits (most significant first, the decimal point before
  the last ``N``) and a separator; unused places (no sign, leading zeros) hold byte
  0, and deleting every 0 byte of the matrix (``bytes.translate``, a tenth of the
  time of a boolean mask) leaves the rows as Python writes them;
- what every row of the chunk shares is written once, as a template row: the
  separators and points, and each column's digits above the lowest place where its
  smallest and largest value agree (a constant voltage has no digit computed per
  row; a year's energies or times vary in their low places only);
- the sign is Python's: ``'%.3f' % -0.0001`` is ``-0.000``, so it follows the sign
  bit for decimals; ``'%d'`` of -0.5 is ``0``.

A chunk holding a number this cannot represent (NaN, infinities, magnitudes of
2**52 and more in fixed point) is formatted by ``%`` instead: slower, same text.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
#: Fixed-point magnitudes below this are exact in a float64 and an int64.
MAX_FIXED = 2.0**52
_ZERO, _MINUS, _DOT, _COMMA, _NEWLINE = 48, 45, 46, 44, 10


def _fixed(x: FloatArray, decimals: int | None) -> tuple[npt.NDArray[np.int64], FloatArray] | None:
    """(|r|, negative) per value: the fixed-point integer Python prints, or None when a
    value is out of reach (``decimals`` None means ``%d``)."""
    if decimals is None:
        whole = np.trunc(x)
        magnitude = np.abs(whole)
        if not bool((magnitude < MAX_FIXED).all()):  # NaN compares False too
            return None
        return magnitude.astype(np.int64), np.less(whole, 0.0)
    y = np.abs(x) * (10.0**decimals)
    if not bool((y < MAX_FIXED).all()):
        return None
    r = np.rint(y)
    tie = np.abs(y - np.floor(y) - 0.5) <= np.spacing(y)
    out = r.astype(np.int64)
    for i in np.flatnonzero(tie).tolist():
        out[i] = int(f"{abs(float(x[i])):.{decimals}f}".replace(".", ""))
    return out, np.signbit(x)


def _digits(value: int) -> int:
    return len(str(value))


def _percent_rows(columns: Sequence[FloatArray], formats: Sequence[str]) -> bytes:
    row = ",".join(formats) + "\n"
    data = np.column_stack(columns)
    text: str = (row * data.shape[0]) % tuple(data.ravel().tolist())
    return text.encode("ascii")


def _digit_byte(rest: int, place: int, always: int) -> int:
    """The byte at one place of a field whose value above it is ``rest``: the digit, or
    0 (left out) for a leading zero past the places every row prints."""
    return 0 if place >= always and rest == 0 else rest % 10 + _ZERO


def format_rows(columns: Sequence[FloatArray], decimals: Sequence[int | None]) -> bytes:
    """The CSV rows (``,`` between fields, ``\\n`` after each row) of equal-length
    columns; ``decimals[k]`` None formats column k as ``%d``, N as ``%.Nf``."""
    pairs = list(zip(columns, decimals, strict=True))
    maybe = [_fixed(np.asarray(x, dtype=np.float64), d) for x, d in pairs]
    fixed = [f for f in maybe if f is not None]
    if len(fixed) < len(maybe):
        return _percent_rows(columns, ["%d" if d is None else f"%.{d}f" for d in decimals])
    rows = columns[0].shape[0] if columns else 0
    if rows == 0:
        return b""
    # Field of a column: sign, digits (a point before the last N), separator. What is
    # the same in every row (separators, points, a sign nobody has, the digits above
    # the places where the smallest and largest value differ) is one template row.
    total = 0
    fields = []
    for (r, negative), d in zip(fixed, decimals, strict=True):
        places = d or 0
        lo, hi = int(r.min()), int(r.max())
        # Digits of the widest value (at least one before the point), and of the
        # narrowest: below that no row has a leading zero to leave out.
        width, always = max(_digits(hi), places + 1), max(_digits(lo), places + 1)
        varying = 0  # low places whose digit differs between rows: above, lo's digits
        while lo // 10**varying != hi // 10**varying:
            varying += 1
        signed = bool(negative.any())  # no row negative: no place for a sign
        end = total + signed + width + (1 if places else 0)  # the field's last digit
        fields.append((r, negative if signed else None, places, width, always, varying, lo, end))
        total = end + 2
    template = np.zeros(total, dtype=np.uint8)
    for k, (_, _, d, width, always, varying, lo, end) in enumerate(fields):
        if d:
            template[end - d] = _DOT
        template[end + 1] = _NEWLINE if k == len(fields) - 1 else _COMMA
        for place in range(varying, width):
            column = end - place - (1 if d and place >= d else 0)
            template[column] = _digit_byte(lo // 10**place, place, always)
    text = np.empty((rows, total), dtype=np.uint8)
    text[:] = template
    for r, minus, d, width, always, varying, lo, end in fields:
        if minus is not None:
            text[:, end - width - (1 if d else 0)] = np.where(minus, _MINUS, 0)
        # The places below ``varying`` of r, i.e. r less the common prefix. A nonzero
        # prefix means every row is wider than those places: none of them is left out.
        rest = r if lo < 10**varying else r % 10**varying
        if varying <= 9:  # uint32 arithmetic where it fits: several times faster
            rest = rest.astype(np.uint32)
        for place in range(varying):
            column = end - place - (1 if d and place >= d else 0)
            higher = rest // 10
            digit = rest - higher * 10 + _ZERO
            if place >= always:  # a leading zero in some rows: left out
                digit = np.where(rest > 0, digit, 0)
            text[:, column] = digit
            rest = higher
    return text.tobytes().translate(None, b"\0")  # the left-out places deleted
