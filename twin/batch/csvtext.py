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
- each column has a fixed-width field per row: a sign, the digits (most
  significant first, the decimal point before the last ``N``) and a separator;
  unused places (no sign, leading zeros) hold byte 0, and deleting every 0 byte of
  the matrix leaves the rows as Python writes them;
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
    parts = []
    for (r, negative), d in zip(fixed, decimals, strict=True):
        # Digits of the widest value (at least one before the point), and of the
        # narrowest: below that no row has a leading zero to leave out.
        low, high = (_digits(int(v)) for v in (r.min(), r.max()))
        places = d or 0
        # uint32 arithmetic where it fits: its division is several times faster.
        r = r.astype(np.uint32) if high <= 9 else r
        parts.append((r, negative, places, max(high, places + 1), max(low, places + 1)))
    # Field of a column: sign, digits (a point before the last N), separator.
    total = sum(1 + width + (1 if d else 0) + 1 for _, _, d, width, _ in parts)
    text = np.empty((rows, total), dtype=np.uint8)
    at = 0
    for k, (r, negative, d, width, always) in enumerate(parts):
        text[:, at] = np.where(negative, _MINUS, 0)
        end = at + width + (1 if d else 0)  # the field's last digit
        if d:
            text[:, end - d] = _DOT
        rest = r
        for place in range(width):
            column = end - place - (1 if d and place >= d else 0)
            higher = rest // 10
            digit = rest - higher * 10 + _ZERO
            if place >= always:  # a leading zero in some rows: left out
                digit = np.where(rest > 0, digit, 0)
            text[:, column] = digit
            rest = higher
        text[:, end + 1] = _NEWLINE if k == len(parts) - 1 else _COMMA
        at = end + 2
    flat = text.reshape(-1)
    out: bytes = flat[flat != 0].tobytes()
    return out
