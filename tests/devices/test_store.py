"""The JSON counter file: round trip, atomic replace, refusal of foreign files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devices import CounterRecord, JsonFileCounterStore
from twin.errors import DeviceError


def test_records_round_trip_through_a_new_store_object(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    store = JsonFileCounterStore(path)
    assert store.load("a") is None
    store.save("a", CounterRecord(12, 65535, 1.5))
    store.save("b", CounterRecord(3, None, 2.5))
    again = JsonFileCounterStore(path)
    assert again.load("a") == CounterRecord(12, 65535, 1.5)
    assert again.load("b") == CounterRecord(3, None, 2.5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json"]  # no temp file left


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"schema": 2, "sources": {}}', "schema 2: expected 1"),
        ("[1, 2]", "not a counter file"),
        ('{"schema": 1, "sources": {"a": {"total_counts": "x"}}}', "not a counter file"),
        ("{", "not a counter file"),
    ],
)
def test_a_foreign_or_newer_file_is_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(text)
    with pytest.raises(DeviceError, match=message) as caught:
        JsonFileCounterStore(path)
    assert str(path) in str(caught.value)


def test_the_file_layout_is_documented_json(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    JsonFileCounterStore(path).save("adam6051://h:502/1/ch0", CounterRecord(5, 7, 9.0))
    assert json.loads(path.read_text()) == {
        "schema": 1,
        "sources": {
            "adam6051://h:502/1/ch0": {"total_counts": 5, "last_raw": 7, "saved_at_unix_s": 9.0}
        },
    }


def test_a_negative_record_is_refused() -> None:
    with pytest.raises(DeviceError, match="total_counts=-1: expected 0 or more"):
        CounterRecord(-1)
