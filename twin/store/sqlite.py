"""Durable store of the meters' non-volatile registers (SQLite, WAL).

Theory of operation
-------------------
One SQLite file holds one row per meter serial number: the meter's `NvState` as a
JSON document, a CRC-32 of that text, and the wall time of the save. The runtime
commits the fleet's changed rows in ONE transaction (`save_many`, or `save_rows` of
rows made by `row`) after every step, makes them durable every checkpoint interval
and on clean shutdown (`twin.store.checkpoint.Checkpointer`), and restores each meter
with `load` at start. How a row is written and checked: `twin.store.rows`.

Invariants
- A commit is atomic: after a crash (SIGKILL, power loss) a reader sees either the
  previous commit or the new one for every meter, never a mix. SQLite's WAL gives
  this: a transaction is visible only once its commit frame is in the log.
- Two kinds of commit. A step's commit (`durable=False`) runs under
  `synchronous=NORMAL`: its frames are in the WAL, in the OS's page cache, not yet
  fsynced. That survives a process crash (SIGKILL, an exception, the OOM killer: the
  kernel still writes the pages), not a power cut or an OS crash, after which the
  store is still consistent but may be back at the last durable commit. A durable
  save (`durable=True`: every checkpoint interval and at a clean stop) is a
  `synchronous=FULL` commit followed by a passive WAL checkpoint, which fsyncs the
  WAL and then the database: after it returns, it and every commit before it survive
  a power cut. One fsync per interval is cheap; one per step would not be.
- The WAL is reused from its start after each durable save (the checkpoint moved its
  frames into the database). A step's commit that fails (a full disk: the WAL needed
  a new block) checkpoints and commits once more from the WAL's start, in the blocks
  it already has: on a full disk the steps go on being committed.
- Energies are exact Python ints (microjoules, past SQLite's 64-bit INTEGER within
  months of a large feeder) and REAL would round: a row is JSON text
  (`twin.store.rows`), which round-trips them and the floats bit for bit.
- The file is never silently overwritten, deleted or "repaired": a file that is not
  an SQLite database, another application's database, a store written by a newer
  schema version, a failed `PRAGMA quick_check`, or a row that does not parse, all
  raise `StoreError` naming the file and the problem. Nothing is written before the
  checks pass. The user decides (move the file aside, restore a backup).
- One writer per store (`twin.store.lock`): opening takes an exclusive `flock` on
  `meters.sqlite3.lock` beside the file for the Store's whole life; a second writer
  is refused naming the holder's pid. `read_only=True` opens a store that a running
  twin holds, to inspect it: no lock, no writes.
- A row remembers its meter's model (schema 2; a schema-1 file gains the column when
  a writer opens it, its rows' model unknown until the next checkpoint). A state
  continues one meter: `load(serial, model=...)` refuses a row saved by another model
  (a single-element meter would otherwise report the old meter's L2 energy), naming
  both models and how to start fresh, and claims the row for that model, which every
  later checkpoint of the serial writes.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from twin.core import MeterModel, NvState
from twin.errors import StoreError
from twin.store.diagnose import refuse_truncated, sqlite_reason
from twin.store.lock import WriterLock
from twin.store.rows import check_serial, decode_row, encode_row, model_key, row_crc32

SCHEMA_VERSION: Final = 2
#: PRAGMA application_id of a minimeter-twin store ("MMTW"): tells our file from others.
APPLICATION_ID: Final = 0x4D4D5457
STORE_FILENAME: Final = "meters.sqlite3"
LOCK_SUFFIX: Final = ".lock"
#: The WAL is cut back to this size when it restarts (after a large fleet's save).
WAL_SIZE_LIMIT_BYTES: Final = 1 << 20

_SCHEMA_V1: Final = """
CREATE TABLE IF NOT EXISTS meters (
    serial TEXT PRIMARY KEY NOT NULL,
    nv_json TEXT NOT NULL,      -- NvState.to_dict() as JSON: exact big ints
    nv_crc32 INTEGER NOT NULL,  -- zlib.crc32 of nv_json (UTF-8): catches bit rot
    saved_at_unix_s REAL NOT NULL,
    model TEXT                  -- the meter model's name (NULL: unknown, schema 1)
)
"""
_V1_TO_V2: Final = "ALTER TABLE meters ADD COLUMN model TEXT"
_UPSERT: Final = (
    "INSERT INTO meters (serial, nv_json, nv_crc32, saved_at_unix_s, model) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (serial) DO UPDATE SET "
    "nv_json = excluded.nv_json, nv_crc32 = excluded.nv_crc32, "
    "saved_at_unix_s = excluded.saved_at_unix_s, model = coalesce(excluded.model, meters.model)"
)

Items = Iterable[tuple[str, NvState]]
#: A row as written: serial, NvState JSON text, its CRC-32, saved at (unix s), model.
Row = tuple[str, str, int, float, str | None]


def default_state_dir() -> Path:
    """Per-user state directory: $XDG_STATE_HOME/minimeter-twin, else ~/.local/state/..."""
    xdg = os.environ.get("XDG_STATE_HOME", "")
    # The XDG spec says relative values are invalid and must be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".local" / "state"
    return base / "minimeter-twin"


def store_path(state_dir: Path) -> Path:
    """The store file inside a state directory (what `--state-dir` points at)."""
    return state_dir / STORE_FILENAME


class Store:
    """The SQLite store; safe to call from one thread at a time (an internal lock).

    Only one read-write Store per file at a time, across processes and within one
    (see the module docstring); a second raises StoreError naming the holder's pid.
    """

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + LOCK_SUFFIX)
        self.read_only = read_only
        self._lock = threading.Lock()
        self._writer: WriterLock | None = None
        self._models: dict[str, str] = {}  # serial -> model name claimed by load()
        self._has_model_column = True
        if read_only:
            if not self.path.is_file():
                raise StoreError(f"store {self.path}: no such store file")
        else:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"store {self.path}: cannot create directory: {exc}") from exc
            if self.path.exists() and not self.path.is_file():
                raise StoreError(f"store {self.path}: exists but is not a regular file")
            self._writer = WriterLock(self.path, self.lock_path)
            try:
                refuse_truncated(self.path)
            except BaseException:
                self._release_lock()
                raise
        try:
            # mode=ro: a reader must not create, convert or checkpoint the file.
            target = f"{self.path.absolute().as_uri()}?mode=ro" if read_only else str(self.path)
            try:
                self._conn = sqlite3.connect(
                    target,
                    timeout=5.0,
                    isolation_level=None,
                    check_same_thread=False,
                    uri=read_only,
                )
            except sqlite3.Error as exc:
                raise StoreError(f"store {self.path}: cannot open: {exc}") from exc
            try:
                self._open()
            except BaseException:
                self._conn.close()
                raise
        except BaseException:
            self._release_lock()
            raise

    def _release_lock(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.release()

    # -- opening ---------------------------------------------------------------------

    def _pragma(self, name: str) -> Any:
        row = self._conn.execute(f"PRAGMA {name}").fetchone()
        return None if row is None else row[0]

    def _open(self) -> None:
        try:
            # The first read parses the header: a non-database file fails here.
            app_id = int(self._pragma("application_id"))
            version = int(self._pragma("user_version"))
            tables = self._conn.execute(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table'"
            ).fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"store {self.path}: not a usable SQLite database ({exc}); "
                "left untouched: move it aside or restore a backup"
            ) from exc
        is_empty = app_id == 0 and version == 0 and tables == 0
        if is_empty and self.read_only:
            raise StoreError(f"store {self.path}: empty, not yet a minimeter-twin store")
        if not is_empty:
            self._check_existing(app_id, version)
        if self.read_only:
            self._has_model_column = is_empty or version >= 2
            return  # the writer set WAL (persistent); a reader changes nothing
        try:
            mode = str(self._pragma("journal_mode = WAL")).lower()
            if mode != "wal":
                raise StoreError(f"store {self.path}: cannot use WAL journal (got {mode!r})")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT_BYTES}")
            if is_empty:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.execute(_SCHEMA_V1)
                self._conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            elif version == 1:  # the model column: rows saved before it know no model
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.execute(_V1_TO_V2)
                self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            else:
                # A file that cannot be written (read-only, immutable, a read-only mount)
                # is refused now, not at the first checkpoint.
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.execute(f"PRAGMA user_version = {version}")
            if self._conn.in_transaction:
                self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.path}: cannot initialise: {sqlite_reason(exc)}") from exc

    def _check_existing(self, app_id: int, version: int) -> None:
        if app_id != APPLICATION_ID:
            raise StoreError(
                f"store {self.path}: not a minimeter-twin store (application_id "
                f"{app_id:#x}, expected {APPLICATION_ID:#x}); left untouched"
            )
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"store {self.path}: written by a newer minimeter-twin (schema version "
                f"{version}, this version reads up to {SCHEMA_VERSION}); upgrade, or "
                "point --state-dir elsewhere; left untouched"
            )
        if version < 1:
            raise StoreError(f"store {self.path}: schema version {version} is not valid")
        try:
            problems = [str(r[0]) for r in self._conn.execute("PRAGMA quick_check")]
        except sqlite3.DatabaseError as exc:
            problems = [str(exc)]
        if problems != ["ok"]:
            # quick_check may return one multi-line row: keep the message on one line.
            lines = [ln for p in problems for ln in p.splitlines() if not ln.startswith("***")]
            summary = "; ".join(lines[:3]) + (
                f"; ... {len(lines) - 3} more" if len(lines) > 3 else ""
            )
            raise StoreError(
                f"store {self.path}: corrupt (quick_check: {summary}); "
                "left untouched: move it aside or restore a backup"
            )

    # -- reading and writing -----------------------------------------------------------

    def load(self, serial: str, *, model: MeterModel | None = None) -> NvState | None:
        """The meter's last checkpoint, or None if this serial was never saved.

        With ``model``: StoreError if the row was saved by another model; otherwise
        the serial is claimed for ``model`` (later checkpoints write its name).
        """
        check_serial(serial)
        column = "model" if self._has_model_column else "NULL"
        with self._lock:
            try:
                row = self._conn.execute(
                    f"SELECT nv_json, nv_crc32, {column} FROM meters WHERE serial = ?", (serial,)
                ).fetchone()
            except sqlite3.Error as exc:
                raise StoreError(f"store {self.path}: cannot read meter {serial}: {exc}") from exc
        if model is not None and row is not None and row[2] is not None:
            self._check_model(serial, str(row[2]), model)
        if model is not None:
            self._models[serial] = model.name
        if row is None:
            return None
        return decode_row(f"store {self.path}: meter {serial}", row[0], row[1])

    def model_of(self, serial: str) -> str | None:
        """The model name a serial was last saved with (None: never saved, or unknown)."""
        check_serial(serial)
        if not self._has_model_column:
            return None
        with self._lock:
            try:
                row = self._conn.execute(
                    "SELECT model FROM meters WHERE serial = ?", (serial,)
                ).fetchone()
            except sqlite3.Error as exc:
                raise StoreError(f"store {self.path}: cannot read meter {serial}: {exc}") from exc
        return None if row is None or row[0] is None else str(row[0])

    def _check_model(self, serial: str, stored: str, model: MeterModel) -> None:
        try:
            same = model_key(MeterModel.parse(stored)) == model_key(model)
        except ValueError:
            same = False  # a name this version does not know is not the same meter
        if not same:
            raise StoreError(
                f"store {self.path}: meter {serial} was saved as a {stored}, but this run "
                f"configures it as a {model.name}; a state continues one meter, and another "
                f"model's registers would be wrong. Use --model {stored} to continue it, or "
                f"start fresh: --state-dir elsewhere (or --no-state), or delete {self.path} "
                "(it holds every meter of that state dir)"
            )

    def serials(self) -> list[str]:
        """Every serial with a checkpoint, sorted."""
        with self._lock:
            try:
                rows = self._conn.execute("SELECT serial FROM meters ORDER BY serial").fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"store {self.path}: cannot list meters: {exc}") from exc
        return [str(r[0]) for r in rows]

    def save(self, serial: str, nv: NvState) -> None:
        """Save one meter durably (one atomic transaction)."""
        self.save_many([(serial, nv)])

    def save_many(self, items: Items, *, durable: bool = True) -> None:
        """Save many meters in ONE transaction: all or none survive a crash.

        ``durable=False`` is a step's commit: in the WAL without fsync, kept across a
        process crash. ``durable=True`` is a FULL commit and a WAL checkpoint: kept
        across a power cut too, with every commit before it.
        """
        now_s = time.time()
        self.save_rows([self.row(serial, nv, now_s) for serial, nv in items], durable=durable)

    def row(self, serial: str, nv: NvState, saved_at_unix_s: float) -> Row:
        """The row that saves ``nv``: the Python half of a save, so a caller can make rows
        on the event loop and leave :meth:`save_rows` to a worker thread, which then
        holds the GIL only to bind each row (SQLite runs without it)."""
        check_serial(serial)
        text = encode_row(serial, nv)
        return serial, text, row_crc32(text), saved_at_unix_s, self._models.get(serial)

    def save_rows(self, rows: list[Row], *, durable: bool = True) -> None:
        """Save rows made by :meth:`row` in ONE transaction (as :meth:`save_many`)."""
        if self.read_only:
            raise StoreError(f"store {self.path}: opened read-only, cannot save")
        if not rows and not durable:
            return
        with self._lock:
            try:
                if rows:
                    self._commit(rows, durable)
                if durable:
                    self._wal_checkpoint()
            except sqlite3.Error as exc:
                if durable or not self._commit_again(rows):
                    raise StoreError(
                        f"store {self.path}: saving failed: {sqlite_reason(exc)}"
                    ) from exc

    def _commit_again(self, rows: list[Row]) -> bool:
        """After a step's commit failed (a full disk: the WAL needed a new block), move
        the WAL into the database and commit again from the WAL's start, in blocks it
        already has. True if that landed."""
        try:
            self._wal_checkpoint()
            self._commit(rows, durable=False)
        except sqlite3.Error:
            return False
        return True

    def _commit(self, rows: list[Row], durable: bool) -> None:
        conn = self._conn
        conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(_UPSERT, rows)
            conn.execute("COMMIT")
        except BaseException:
            # SQLite rolls back by itself on a full disk or an I/O error; a second
            # ROLLBACK would raise and hide the cause.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _wal_checkpoint(self) -> None:
        # Under synchronous=NORMAL a checkpoint fsyncs the WAL before it copies the frames
        # into the database (and the database after): every commit so far is durable,
        # and the next commit reuses the WAL from its start (no new disk blocks) instead
        # of growing it to the auto-checkpoint size.
        self._conn.execute("PRAGMA synchronous = NORMAL")
        self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    # -- lifetime ------------------------------------------------------------------------

    def close(self) -> None:
        """Close the database, then release the writer lock (idempotent)."""
        with self._lock:
            self._conn.close()
            self._release_lock()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
