"""One writer per store: an exclusive ``flock`` on a lock file beside the store file.

Two twins on one state dir would both restore the same rows and overwrite each other's
commits, so a meter's stored energy could go backwards. :class:`WriterLock` takes an
exclusive, non-blocking ``flock`` on ``<store>.lock`` and writes the holder's pid into
it, for the next opener's message. The kernel drops the lock when the holder exits,
however it dies (SIGKILL too), so a crash leaves no stale lock; the lock file itself is
never deleted (unlinking it would let two openers lock two different inodes).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from twin.errors import StoreError


class WriterLock:
    """The exclusive lock of the store at ``path`` (held from construction to release)."""

    def __init__(self, path: Path, lock_path: Path) -> None:
        self.path = path
        self.lock_path = lock_path
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"store {path}: cannot open lock file: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_pid(fd)
            os.close(fd)
            if isinstance(exc, BlockingIOError):
                who = f"pid {holder}" if holder else "another process (pid unknown)"
                raise StoreError(
                    f"store {path}: state dir {path.parent} is in use by {who} "
                    f"(lock {lock_path}); stop it or use another --state-dir"
                ) from None
            raise StoreError(f"store {path}: cannot lock {lock_path}: {exc}") from exc
        try:
            # Who holds it, for the next opener's message; advisory, so best effort.
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass
        self._fd: int | None = fd

    def release(self) -> None:
        """Drop the lock (idempotent): closing the last descriptor drops the flock."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
