"""twin.units: the one duration syntax (`90`, `15min`, `1h30min`, `7d`...), its printed
form, microjoule conversions and the shared seed range."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from twin.units import (
    SEED_MAX,
    SEED_MIN,
    SEED_RANGE_TEXT,
    UJ_PER_WH,
    format_duration,
    parse_duration_s,
    uj_to_kwh,
    uj_to_wh,
    wh_to_uj,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90.0),
        (90, 90.0),
        ("90s", 90.0),
        ("90sec", 90.0),
        ("500ms", 0.5),
        ("15min", 900.0),
        ("2m", 120.0),
        ("1.5h", 5400.0),
        ("1h30min", 5400.0),
        ("7d", 604_800.0),
        ("1w", 604_800.0),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "1x", "1 hour", "abc", "1h-5min"])
def test_not_durations(text: str) -> None:
    assert parse_duration_s(text) is None


@pytest.mark.parametrize("value", [True, None, [1], "  "])
def test_non_text_values_are_not_durations(value: object) -> None:
    assert parse_duration_s(value) is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.5, "0.5s"),
        (45, "45s"),
        (90, "1min30s"),
        (3600, "1h"),
        (5400, "1h30min"),
        (86_400, "1d"),
        (90_061, "1d1h1min1s"),
        (31_536_000, "365d"),
        (60.5, "60.5s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.integers(0, 10**9))
def test_format_then_parse_is_the_identity(seconds: int) -> None:
    assert parse_duration_s(format_duration(seconds)) == seconds


def test_energy_conversions() -> None:
    assert UJ_PER_WH == 3600 * 10**6  # 1 Wh = 3600 J = 3.6e9 uJ
    assert uj_to_wh(7_200_000_000) == 2.0
    assert uj_to_kwh(3_600_000_000_000) == 1.0
    assert wh_to_uj(1.5) == 5_400_000_000
    assert wh_to_uj(uj_to_wh(123_456_789)) == 123_456_789
    np.testing.assert_array_equal(uj_to_wh(np.array([0, 3_600_000_000])), [0.0, 1.0])


def test_seed_range_is_a_signed_64_bit_integer() -> None:
    assert (SEED_MIN, SEED_MAX) == (0, 2**63 - 1)
    assert SEED_RANGE_TEXT == "0..2^63-1"
    np.int64(SEED_MAX)  # fits numpy's and SQLite's signed 64-bit integers
    with pytest.raises(OverflowError):
        np.int64(SEED_MAX + 1)
