"""The cross-check's durable state: its window's marks and the mirror's time origin.

Theory of operation
-------------------
A mirror restart (even SIGKILL) must continue the cumulative window rather than start
a new one, and must keep mirror time running across the downtime (a profile reference
plays the profile on mirror time; the rig did not stop). :class:`MirrorState` holds the
wall-clock time of mirror time 0 (``epoch_unix_s``), what the marks' model energies
are of (``reference``: another reference, or another profile, starts a new window),
and the marks (the cumulative window's first, then the newest few for the rolling and
sequential windows). It is one small JSON file in the state directory
(:data:`STATE_FILE`), written whole to a temporary file and renamed over the old one,
so a crash leaves the old or the new file, never a torn one.

Marks since the last save are lost in a crash; that costs nothing but resolution in
the rolling windows: the cumulative window's first mark is saved with the first
mark, and its end is always the newest edge.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

from twin.errors import StoreError
from twin.mirror.crosscheck import EdgeMark

log = logging.getLogger(__name__)

#: The file in the state directory.
STATE_FILE: Final = "mirror-state.json"
#: Version of its layout; another version is refused rather than misread.
STATE_SCHEMA: Final = 1
#: Newest marks kept beside the first (the rolling window and the ladder's shorter rungs).
KEEP_MARKS: Final = 512


@dataclass(frozen=True, slots=True)
class MirrorState:
    epoch_unix_s: float
    reference: str | None
    marks: tuple[EdgeMark, ...] = ()


def load_state(path: Path) -> MirrorState | None:
    """The saved state, None if there is none; StoreError naming the file if unreadable."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"{path}: cannot read the mirror state ({exc.strerror})") from None
    try:
        data = json.loads(text)
        if data.get("schema") != STATE_SCHEMA:
            raise ValueError(f"schema {data.get('schema')!r}, expected {STATE_SCHEMA}")
        return MirrorState(
            float(data["epoch_unix_s"]),
            data["reference"],
            tuple(EdgeMark(**mark) for mark in data["marks"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StoreError(
            f"{path}: not a mirror state file ({exc}); move it away to start afresh"
        ) from None


def save_state(path: Path, state: MirrorState) -> None:
    """Write ``state`` atomically (temporary file, fsync, rename)."""
    document = {
        "schema": STATE_SCHEMA,
        "epoch_unix_s": state.epoch_unix_s,
        "reference": state.reference,
        "marks": [asdict(mark) for mark in state.marks],
    }
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("w") as file:
            json.dump(document, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise StoreError(f"{path}: cannot save the mirror state ({exc.strerror})") from None
