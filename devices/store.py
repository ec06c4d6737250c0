"""Where a source keeps its counter across restarts: last raw value and total counts.

A source saves its :class:`CounterRecord` after every reading that changes it and
loads it when it starts, so a restart neither loses counts (the hardware counter
kept counting; the difference to the stored raw value is counted) nor counts twice
(totals continue from the stored ones, not from the raw value). The mirror backs
:class:`CounterStore` with the twin's durable store; the two implementations here
serve tests and the CLI. The JSON file is replaced atomically on every save.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from twin.errors import DeviceError

#: Version of the JSON file layout; a newer file is refused rather than misread.
COUNTER_FILE_SCHEMA: Final = 1


@dataclass(frozen=True, slots=True)
class CounterRecord:
    """One source's persisted counter state.

    Attributes:
        total_counts: Counts accumulated since the record was created (never decreases).
        last_raw: Last hardware counter value seen; None for edge sources.
        saved_at_unix_s: Wall-clock time of the save (bounds a rollover across a restart).
    """

    total_counts: int = 0
    last_raw: int | None = None
    saved_at_unix_s: float = 0.0

    def __post_init__(self) -> None:
        if self.total_counts < 0:
            raise DeviceError(f"total_counts={self.total_counts}: expected 0 or more")
        if self.last_raw is not None and self.last_raw < 0:
            raise DeviceError(f"last_raw={self.last_raw}: expected 0 or more")
        if not math.isfinite(self.saved_at_unix_s):
            raise DeviceError(f"saved_at_unix_s={self.saved_at_unix_s}: expected a finite time")


class CounterStore(Protocol):
    """Durable counter records keyed by source id."""

    def load(self, source_id: str) -> CounterRecord | None:
        """The record saved for ``source_id``, or None if there is none."""
        ...

    def save(self, source_id: str, record: CounterRecord) -> None:
        """Persist ``record`` before returning (a crash after it keeps the record)."""
        ...


class MemoryCounterStore:
    """A store that lives as long as the object (tests, one-shot runs)."""

    def __init__(self) -> None:
        self._records: dict[str, CounterRecord] = {}

    def load(self, source_id: str) -> CounterRecord | None:
        return self._records.get(source_id)

    def save(self, source_id: str, record: CounterRecord) -> None:
        self._records[source_id] = record


class JsonFileCounterStore:
    """Records in one JSON file: ``{"schema": 1, "sources": {id: record}}``."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._records = self._read()

    def load(self, source_id: str) -> CounterRecord | None:
        return self._records.get(source_id)

    def save(self, source_id: str, record: CounterRecord) -> None:
        self._records[source_id] = record
        document = {
            "schema": COUNTER_FILE_SCHEMA,
            "sources": {
                key: {
                    "total_counts": rec.total_counts,
                    "last_raw": rec.last_raw,
                    "saved_at_unix_s": rec.saved_at_unix_s,
                }
                for key, rec in sorted(self._records.items())
            },
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with tmp.open("w", encoding="utf-8") as fh:
                json.dump(document, fh, indent=1)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            raise DeviceError(f"counter file {self.path}: cannot write: {exc}") from exc

    def _read(self) -> dict[str, CounterRecord]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise DeviceError(f"counter file {self.path}: cannot read: {exc}") from exc
        try:
            document = json.loads(text)
            schema = document["schema"]
            sources = document["sources"]
            if schema != COUNTER_FILE_SCHEMA:
                raise DeviceError(
                    f"counter file {self.path}: schema {schema!r}: "
                    f"expected {COUNTER_FILE_SCHEMA} (written by another version?)"
                )
            return {
                str(key): CounterRecord(
                    total_counts=int(rec["total_counts"]),
                    last_raw=None if rec["last_raw"] is None else int(rec["last_raw"]),
                    saved_at_unix_s=float(rec["saved_at_unix_s"]),
                )
                for key, rec in sources.items()
            }
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DeviceError(
                f"counter file {self.path}: not a counter file ({exc!r}): expected "
                '{"schema": 1, "sources": {ID: {"total_counts", "last_raw", "saved_at_unix_s"}}}'
            ) from exc
