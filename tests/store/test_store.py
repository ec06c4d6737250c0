"""The durable store: exact round trips, refusal of files it must not touch."""

from __future__ import annotations

import json
import math
import sqlite3
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from twin.core import MeterConfig, MeterCore, NvState, SampleBlock
from twin.errors import StoreError
from twin.store import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    Store,
    default_state_dir,
    store_path,
)

BIG = 2**64 + 12345  # does not fit SQLite's signed 64-bit INTEGER


def _nv(energy_uj: int = 0, **kw: object) -> NvState:
    return NvState(energy_delivered_uj=energy_uj, **kw)  # type: ignore[arg-type]


def _rich_nv() -> NvState:
    return NvState(
        energy_delivered_uj=BIG,
        energy_received_uj=2**200 + 1,
        energy_l1_uj=BIG // 3,
        energy_l2_uj=BIG - BIG // 3,
        energy_l1_received_uj=7,
        energy_l2_received_uj=2**63,
        pulse_offsets=(1, 2**70, 3),
        counter_offset=99,
        demand_max_w=0.1 + 0.2,  # not exactly representable: repr must round-trip
        demand_max_at_us=2**62,
        demand_period_max_w=1e-300,
        demand_period_max_at_us=5,
        demand_window_start_us=6,
        power_up_count=42,
        uptime_us=10**15,
        powered=True,
        injected_errors=("calibration", "memory"),
        registration_mode=2,
        demand_config=(30, 6, 1, 12),
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "meters.sqlite3"


@pytest.fixture
def store(db: Path) -> Iterator[Store]:
    with Store(db) as s:
        yield s


def _write_raw_row(db: Path, serial: str, text: str, crc: int | None = None) -> None:
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(
            "INSERT OR REPLACE INTO meters (serial, nv_json, nv_crc32, saved_at_unix_s) "
            "VALUES (?, ?, ?, 0)",
            (serial, text, zlib.crc32(text.encode()) if crc is None else crc),
        )
    conn.close()


# -- round trips -------------------------------------------------------------------------


def test_big_ints_and_floats_round_trip_exactly_across_reopen(db: Path) -> None:
    nv = _rich_nv()
    with Store(db) as s:
        s.save("MM1", nv)
        assert s.load("MM1") == nv
    with Store(db) as s:
        back = s.load("MM1")
    assert back == nv
    assert back is not None and back.energy_received_uj == 2**200 + 1
    assert back.demand_max_w == 0.1 + 0.2 and back.demand_period_max_w == 1e-300
    assert type(back.pulse_offsets) is tuple and type(back.injected_errors) is tuple


def test_creates_parent_dirs_in_wal_mode_with_schema_version(db: Path) -> None:
    assert not db.parent.exists()
    Store(db).close()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    conn.close()


def test_several_serials_are_independent(store: Store) -> None:
    assert store.load("A") is None
    store.save_many([("A", _nv(1)), ("B", _nv(2)), ("C", _nv(3))])
    store.save("B", _nv(20))
    assert [store.load(s) for s in ("A", "B", "C")] == [_nv(1), _nv(20), _nv(3)]
    assert store.serials() == ["A", "B", "C"]
    assert store.load("D") is None
    store.save_many([])  # nothing to do, no error
    assert store.serials() == ["A", "B", "C"]


def test_save_many_is_all_or_nothing_on_bad_item(store: Store) -> None:
    store.save("A", _nv(1))
    bad = [("A", _nv(100)), ("B", "not an NvState")]
    with pytest.raises(TypeError, match="meter B"):
        store.save_many(bad)  # type: ignore[arg-type]
    assert store.load("A") == _nv(1) and store.load("B") is None


def test_save_many_is_all_or_nothing_when_the_iterable_fails(store: Store) -> None:
    def items() -> Iterator[tuple[str, NvState]]:
        yield ("A", _nv(5))
        raise RuntimeError("fleet snapshot failed")

    with pytest.raises(RuntimeError):
        store.save_many(items())
    assert store.load("A") is None


@pytest.mark.parametrize("serial", ["", "a\x00b", 7])
def test_bad_serial_is_a_value_error(store: Store, serial: object) -> None:
    with pytest.raises(ValueError, match="serial"):
        store.save(serial, _nv())  # type: ignore[arg-type]


def test_non_finite_demand_is_refused_not_stored(store: Store) -> None:
    with pytest.raises(StoreError, match="non-finite"):
        store.save("A", NvState(demand_max_w=math.nan))
    assert store.load("A") is None


def test_meter_core_restores_from_the_store(db: Path) -> None:
    core = MeterCore(MeterConfig(serial_number="MM42"), emit_edges=False)
    core.advance(SampleBlock.build(3600, 1.0, voltage_v=120.0, current_a=30.0))
    with Store(db) as s:
        s.save("MM42", core.nv_state())
    with Store(db) as s:
        nv = s.load("MM42")
    restored = MeterCore(MeterConfig(serial_number="MM42"), nv=nv, emit_edges=False)
    assert restored.snapshot().energy_delivered_wh == core.snapshot().energy_delivered_wh > 0
    assert restored.nv_state() == core.nv_state()


# -- files the store must refuse and leave untouched ---------------------------------------


def _refuses_untouched(path: Path, *patterns: str) -> StoreError:
    before = path.read_bytes()
    lock_name = path.name + ".lock"  # ours, kept forever by design (see the module docs)
    siblings = sorted(p.name for p in path.parent.iterdir() if p.name != lock_name)
    with pytest.raises(StoreError) as info:
        Store(path)
    msg = str(info.value)
    assert str(path) in msg and "\n" not in msg
    for pattern in patterns:
        assert pattern in msg
    assert path.read_bytes() == before
    after = sorted(p.name for p in path.parent.iterdir() if p.name != lock_name)
    assert after == siblings  # no -wal/-shm left
    with pytest.raises(StoreError) as again:  # the refused open released its lock
        Store(path)
    assert str(again.value) == msg
    return info.value


def test_newer_schema_is_refused_and_untouched(db: Path) -> None:
    with Store(db) as s:
        s.save("A", _nv(1))
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    _refuses_untouched(db, "newer", f"schema version {SCHEMA_VERSION + 1}")


def test_not_a_database_is_refused_and_untouched(db: Path) -> None:
    db.parent.mkdir(parents=True)
    db.write_bytes(b"this is a text file, not SQLite\n" * 200)
    _refuses_untouched(db, "not a usable SQLite database")


def test_another_applications_database_is_refused(db: Path) -> None:
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE invoices (id INTEGER)")
    conn.commit()
    conn.close()
    _refuses_untouched(db, "not a minimeter-twin store")


def test_corrupt_page_fails_quick_check_and_is_untouched(db: Path) -> None:
    with Store(db) as s:  # enough rows for a multi-page table b-tree
        s.save_many([(f"S{i:04d}", _nv(i, injected_errors=("x" * 200,))) for i in range(300)])
    data = bytearray(db.read_bytes())
    page_size = 4096
    assert len(data) > 10 * page_size
    # A leaf-table page header with a bogus cell count and garbage cells.
    data[2 * page_size : 3 * page_size] = b"\x0d\x00\x00\x00\x20" + b"\xa5" * (page_size - 5)
    db.write_bytes(bytes(data))
    _refuses_untouched(db, "corrupt", "quick_check")


def test_zero_byte_file_is_refused_as_truncated_and_untouched(db: Path) -> None:
    """SQLite writes the header when it creates a store: 0 bytes is a truncated one,
    and taking it as new would start every meter again at 0 Wh."""
    db.parent.mkdir(parents=True)
    db.touch()
    _refuses_untouched(db, "0 bytes", "truncated")


def test_directory_in_place_of_the_file_is_refused(db: Path) -> None:
    db.mkdir(parents=True)
    with pytest.raises(StoreError, match="not a regular file"):
        Store(db)


_GOOD = json.dumps(_nv(5).to_dict())


@pytest.mark.parametrize(
    ("text", "crc", "pattern"),
    [
        ("{not json", None, "not valid JSON"),
        ("[1, 2]", None, "not a JSON object"),
        (_GOOD.replace('"energy_delivered_uj": 5', '"energy_delivered_uj": "5"'), None, "field"),
        (_GOOD.replace('"energy_delivered_uj": 5', '"energy_delivered_uj": -5'), None, ">= 0"),
        (_GOOD.replace('"powered": false', '"powered": 0'), None, "powered"),
        (_GOOD.replace('"pulse_offsets": [0, 0, 0]', '"pulse_offsets": [0, 0]'), None, "pulse"),
        (_GOOD.replace('"demand_max_w": 0.0', '"demand_max_w": NaN'), None, "NaN"),
        (_GOOD.replace('"energy_l1_uj": 0, ', ""), None, "lacks fields ['energy_l1_uj']"),
        (_GOOD.replace("}", ', "mystery": 1}'), None, "mystery"),
        (_GOOD, 12345, "checksum mismatch"),
        # A valid CRC over bad semantics: the core would crash restoring these.
        (_GOOD.replace("[15, 3, 0, 24]", "[15, 4, 0, 24]"), None, "field demand_config"),
        (_GOOD.replace("[15, 3, 0, 24]", "[15, 3, 7, 24]"), None, "field demand_config"),
        (_GOOD.replace("[15, 3, 0, 24]", "[0, 1, 0, 24]"), None, "field demand_config"),
        (_GOOD.replace('"registration_mode": 0', '"registration_mode": 9'), None, "field regis"),
        (_GOOD.replace('"injected_errors": []', '"injected_errors": ["x"]'), None, "field inj"),
    ],
)
def test_bad_row_is_a_store_error_naming_file_and_meter(
    db: Path, text: str, crc: int | None, pattern: str
) -> None:
    Store(db).close()
    _write_raw_row(db, "MM7", text, crc)
    before = db.read_bytes()
    with Store(db) as s, pytest.raises(StoreError) as info:
        s.load("MM7")
    assert str(db) in str(info.value) and "meter MM7" in str(info.value)
    assert pattern in str(info.value)
    conn = sqlite3.connect(db)  # the row is still there, as it was
    assert conn.execute("SELECT nv_json FROM meters").fetchone()[0] == text
    conn.close()
    assert len(db.read_bytes()) == len(before)


# -- state directory -----------------------------------------------------------------------


def test_default_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_state_dir() == tmp_path / "xdg" / "minimeter-twin"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/dir")  # invalid per the XDG spec
    assert default_state_dir() == tmp_path / "home" / ".local" / "state" / "minimeter-twin"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert default_state_dir() == tmp_path / "home" / ".local" / "state" / "minimeter-twin"
    assert store_path(tmp_path).parent == tmp_path
