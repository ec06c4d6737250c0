"""What went wrong with a store file, said so the user can act on it.

`sqlite_reason` turns SQLite's terse errors (``database or disk is full``, ``attempt to
write a readonly database``, ``disk I/O error``) into a reason with what to do;
`refuse_truncated` refuses a 0-byte store file before SQLite would take it for a new,
empty store.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from twin.errors import StoreError


def sqlite_reason(exc: sqlite3.Error) -> str:
    """SQLite's reason, with what the user can do for the usual ones."""
    text = str(exc)
    code = getattr(exc, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_FULL or "disk is full" in text:
        return f"disk full ({text}); free space on that filesystem"
    if code == sqlite3.SQLITE_READONLY or "readonly" in text:
        return f"read-only ({text}); make the file and its directory writable"
    if code == sqlite3.SQLITE_IOERR or "disk I/O error" in text:
        return f"I/O error ({text}): the filesystem refused the write (full, read-only?)"
    return text


def refuse_truncated(path: Path) -> None:
    """A store file of 0 bytes is a truncated store (SQLite writes the header at once
    when it creates one): refuse it rather than start every meter again at 0 Wh."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"store {path}: cannot stat: {exc}") from exc
    if size == 0:
        raise StoreError(
            f"store {path}: 0 bytes (truncated?), not a store; left untouched: restore a "
            "backup, or delete it to start every meter again at 0 Wh"
        )
