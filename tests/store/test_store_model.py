"""A store remembers each serial's model and refuses another model on the same state."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from twin.core import MeterModel, NvState
from twin.errors import StoreError
from twin.store import SCHEMA_VERSION, Store, store_path

MMD = MeterModel.parse("MMD-200A")
MMS = MeterModel.parse("MMS-200A")


def test_a_loaded_serial_saves_its_model_and_another_model_is_refused(tmp_path: Path) -> None:
    path = store_path(tmp_path)
    with Store(path) as store:
        assert store.load("MM1", model=MMD) is None
        store.save("MM1", NvState(energy_l2_uj=300 * 3_600_000_000))
        assert store.model_of("MM1") == "MMD-200A"
    with Store(path) as store:
        with pytest.raises(StoreError) as info:
            store.load("MM1", model=MMS)
        message = str(info.value)
        for part in ("MM1", "MMD-200A", "MMS-200A", "--state-dir", "--no-state", str(path)):
            assert part in message
        assert "\n" not in message
        # the refusal changed nothing: the same model continues the meter
        assert store.load("MM1", model=MMD) == NvState(energy_l2_uj=300 * 3_600_000_000)


def test_equivalent_model_names_are_the_same_meter(tmp_path: Path) -> None:
    path = store_path(tmp_path)
    with Store(path) as store:
        store.load("A", model=MeterModel.parse("MMU-0.2A"))
        store.save("A", NvState(energy_delivered_uj=1))
    with Store(path) as store:
        assert store.load("A", model=MeterModel.parse("MMU-0.2A:200")) is not None
        with pytest.raises(StoreError, match=r"MMU-0\.2A:400"):
            store.load("A", model=MeterModel.parse("MMU-0.2A:400"))


def test_a_save_without_a_claim_keeps_the_stored_model(tmp_path: Path) -> None:
    path = store_path(tmp_path)
    with Store(path) as store:
        store.load("A", model=MMS)
        store.save("A", NvState())
    with Store(path) as store:
        store.save("A", NvState(energy_delivered_uj=5))  # no load(model=...) this time
        assert store.model_of("A") == "MMS-200A"


def test_a_schema_1_store_is_upgraded_and_its_rows_take_the_next_model(tmp_path: Path) -> None:
    path = store_path(tmp_path)
    with Store(path) as store:
        store.save("A", NvState(energy_delivered_uj=7))
    conn = sqlite3.connect(path)  # what version 1 wrote: no model column
    with conn:
        conn.execute(
            "CREATE TABLE old (serial TEXT PRIMARY KEY NOT NULL, nv_json TEXT NOT NULL, "
            "nv_crc32 INTEGER NOT NULL, saved_at_unix_s REAL NOT NULL)"
        )
        conn.execute(
            "INSERT INTO old SELECT serial, nv_json, nv_crc32, saved_at_unix_s FROM meters"
        )
        conn.execute("DROP TABLE meters")
        conn.execute("ALTER TABLE old RENAME TO meters")
        conn.execute("PRAGMA user_version = 1")
    conn.close()
    with Store(path, read_only=True) as reader:
        assert reader.model_of("A") is None
        assert reader.load("A", model=MMS) == NvState(energy_delivered_uj=7)
    with Store(path) as store:
        assert store.load("A", model=MMS) == NvState(energy_delivered_uj=7)  # unknown: taken
        store.save("A", NvState(energy_delivered_uj=8))
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    conn.close()
    with Store(path) as store, pytest.raises(StoreError, match="saved as a MMS-200A"):
        store.load("A", model=MMD)
