"""The vectorised CSV formatter prints exactly what Python's ``%`` prints."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.batch.csvtext import format_rows


def by_percent(columns: list[np.ndarray], decimals: list[int | None]) -> bytes:
    """The reference: one ``%`` per number, as the CSV was written before."""
    formats = ["%d" if d is None else f"%.{d}f" for d in decimals]
    rows = zip(*(c.tolist() for c in columns), strict=True)
    return "".join(",".join(f % v for f, v in zip(formats, row, strict=True)) + "\n"
                   for row in rows).encode("ascii")  # fmt: skip


def near_ties(decimals: int) -> np.ndarray:
    """Values at, just below and just above k + 0.5 units of the last decimal."""
    halves = (np.arange(-3000, 3000) + 0.5) / 10.0**decimals
    return np.concatenate([halves, np.nextafter(halves, -np.inf), np.nextafter(halves, np.inf)])


@pytest.mark.parametrize("decimals", [1, 3, 6])
def test_ties_round_as_python_rounds_the_binary_value(decimals: int) -> None:
    x = near_ties(decimals)
    assert format_rows([x], [decimals]) == by_percent([x], [decimals])


def test_signs_zeros_and_widths() -> None:
    x = np.array([0.0, -0.0, -0.0001, 0.0004, -0.0005, 1e-300, -1e-300, 9.9995, 99999.9996, 123.0])
    counts = np.array([0.0, -0.5, 3.9, -3.9, 1e15, -7.0, 12.0, 0.0, 5.0, 9.0])
    cols, places = [x, x, counts], [3, 6, None]
    assert format_rows(cols, places) == by_percent(cols, places)


def test_values_out_of_fixed_point_reach_fall_back_to_percent() -> None:
    x = np.array([1.0, np.nan, np.inf, -np.inf, 1e300])
    assert format_rows([x], [3]) == b"1.000\nnan\ninf\n-inf\n" + (b"%.3f\n" % 1e300)
    with pytest.raises(ValueError):  # as `'%d' % nan` does
        format_rows([np.array([np.nan])], [None])


def test_no_rows_is_no_text() -> None:
    assert format_rows([np.array([]), np.array([])], [3, None]) == b""


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(
        st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12),
        min_size=1,
        max_size=60,
    ),
    places=st.lists(st.sampled_from([None, 0, 1, 2, 3, 6]), min_size=1, max_size=4),
)
def test_any_finite_values(values: list[float], places: list[int | None]) -> None:
    x = np.array(values)
    cols = [x if k % 2 == 0 else -x[::-1] for k in range(len(places))]
    assert format_rows(cols, places) == by_percent(cols, places)


def test_constant_columns_and_common_prefixes() -> None:
    """What the rows share is laid out once: constants, a sign every row has, the
    leading digits of values close together (energies over a day, times)."""
    rng = np.random.default_rng(5)
    n = 200
    cols = [
        np.full(n, 121.0),
        np.full(n, -0.0),
        np.full(n, -3.25),
        np.zeros(n),
        123456.789 + rng.random(n) * 0.5,
        -(9_999_999.0 + rng.random(n) * 2.0),  # crosses 10**7: a digit more in some rows
        1e9 + np.arange(n) * 60.0,
        np.where(rng.random(n) < 0.5, 1.0, 0.0),
        8_765_432_101.123456 + rng.random(n) * 1e3,  # more than 9 varying places
    ]
    places: list[int | None] = [3, 3, 6, None, 6, 3, 3, None, 6]
    assert format_rows(cols, places) == by_percent(cols, places)


@settings(max_examples=60, deadline=None)
@given(
    offset=st.floats(min_value=-1e11, max_value=1e11, allow_nan=False),
    spread=st.sampled_from([0.0, 1e-6, 1e-3, 1.0, 1e3, 1e6]),
    count=st.integers(min_value=1, max_value=40),
    places=st.sampled_from([None, 0, 3, 6]),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_values_close_together(
    offset: float, spread: float, count: int, places: int | None, seed: int
) -> None:
    x = offset + np.random.default_rng(seed).random(count) * spread
    assert format_rows([x, -x], [places, places]) == by_percent([x, -x], [places, places])


@pytest.mark.parametrize("places", [None, 0, 1, 3, 4, 6])
@pytest.mark.parametrize("digits", range(1, 17))
def test_every_width_and_point_position(places: int | None, digits: int) -> None:
    """Fields of 1 to 16 digits, the point anywhere among them (digits are made four
    at a time, the point counted as one), rows narrower than others (leading zeros
    left out), and rows that share their leading digits."""
    rng = np.random.default_rng(digits)
    scale = 10.0 ** -(places or 0)
    top = min(10**digits, 2**52)
    spread = rng.integers(0, top, 64).astype(np.float64) * scale  # some rows narrower
    shared = (top // 2 + rng.integers(0, 10 ** max(digits // 2, 1), 64)) * scale  # a prefix
    cols = [spread, shared, -shared]
    decimals = [places] * 3
    assert format_rows(cols, decimals) == by_percent(cols, decimals)


@pytest.mark.parametrize("places", [None, 3, 6])
def test_values_around_two_to_the_32_in_fixed_point(places: int | None) -> None:
    """Around 2**32 units of the last decimal (where 32-bit arithmetic would wrap),
    with few places that differ between rows."""
    unit = 10.0 ** -(places or 0)
    x = (2**32 + np.arange(-40, 40) * 997) * unit
    assert format_rows([x, -x], [places, places]) == by_percent([x, -x], [places, places])
