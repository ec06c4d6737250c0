"""Fault durations share the profiles' duration parser; ``ms=``/``jitter=`` stay
milliseconds."""

from __future__ import annotations

import pytest

from twin.errors import ConfigError
from twin.modbus.faults import fault_from_mapping, parse_fault
from twin.units import parse_duration_s


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1h30min", 5400.0),
        ("1d", 86_400.0),
        ("500ms", 0.5),
        ("2.5", 2.5),
        ("5min", 300.0),
        ("1w", 604_800.0),
    ],
)
def test_for_takes_every_profile_duration(text: str, seconds: float) -> None:
    assert parse_fault(f"silent:for={text}").duration_s == seconds == parse_duration_s(text)


def test_for_in_a_mapping_takes_numbers_and_strings() -> None:
    assert fault_from_mapping({"kind": "silent", "for": 30}).duration_s == 30.0
    assert fault_from_mapping({"kind": "silent", "for": "1h 30min"}).duration_s == 5400.0


@pytest.mark.parametrize("text", ["soon", "0", "0s", "-5s", "1x", "inf"])
def test_bad_durations_name_the_fault(text: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_fault(f"silent:for={text}", where="meters[3].faults[0]")
    assert str(exc.value).startswith(f"meters[3].faults[0]: for={text!r} is not a positive")
    with pytest.raises(ConfigError, match="for=True is not a positive duration"):
        fault_from_mapping({"kind": "silent", "for": True}, where="fleet")


def test_delay_and_jitter_stay_milliseconds() -> None:
    spec = parse_fault("delay:ms=200,jitter=50,for=1h30min")
    assert (spec.delay_ms, spec.jitter_ms, spec.duration_s) == (200.0, 50.0, 5400.0)
