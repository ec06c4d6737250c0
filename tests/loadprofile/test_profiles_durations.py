"""The one duration parser every option and file uses: `90`, `15min`, `1h30min`, `7d`..."""

from __future__ import annotations

import pytest

from twin.loadprofile.reader import parse_duration_s


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
