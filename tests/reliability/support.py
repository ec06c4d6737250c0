"""Helpers of the reliability tests: small real filesystems, drained twin processes.

``small_filesystem`` loop-mounts a fresh ext4 image of a few MB on a temporary directory
(needs root or CAP_SYS_ADMIN; the tests skip otherwise) so a full disk and a state dir
that cannot be written are real: ENOSPC and EPERM from the kernel, not a mock.
``fill`` writes a filler file until the filesystem has not one byte left;
``immutable`` sets ext4's immutable flag (``chattr +i``), which fails even writes
through descriptors a process already holds (a remount read-only is refused while a
file is open for writing, so this is how a state dir turns unwritable under a
running twin). ``Drained`` reads a subprocess's stdout and
stderr in threads, so a test can wait for a line on either without blocking the pipe.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

from tests.helpers import REPO

ENERGY_ADDRESS = 0  # energy_delivered_wh: uint64 in 4 registers (the register map)
ENERGY_WORDS = 4


@contextlib.contextmanager
def small_filesystem(size_kib: int) -> Iterator[Path]:
    """A fresh ext4 filesystem of ``size_kib`` KiB (no blocks reserved for root),
    loop-mounted on a temporary directory; unmounted and removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="mm-smallfs-"))
    image, where = base / "fs.img", base / "mnt"
    where.mkdir()
    with image.open("wb") as f:
        f.truncate(size_kib * 1024)
    for argv in (
        ["mkfs.ext4", "-q", "-F", "-m", "0", str(image)],
        ["mount", "-o", "loop", str(image), str(where)],
    ):
        try:
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
        except FileNotFoundError as exc:
            done = subprocess.CompletedProcess(argv, 1, "", str(exc))
        if done.returncode != 0:
            shutil.rmtree(base)
            pytest.skip(f"cannot make a small filesystem here (needs root): {done.stderr}")
    try:
        yield where
    finally:
        for path in where.iterdir():
            immutable(path, on=False)
        if subprocess.run(["umount", str(where)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], check=False)
        shutil.rmtree(base, ignore_errors=True)


def immutable(path: Path, *, on: bool) -> None:
    """Set or clear ext4's immutable flag: writes fail with EPERM, open files too."""
    subprocess.run(["chattr", "+i" if on else "-i", str(path)], check=True)


def fill(where: Path) -> Path:
    """Write ``where/filler`` until the filesystem is full (0 bytes free); returns it."""
    filler = where / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        for chunk in (1 << 16, 1 << 12, 1 << 9, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * chunk)
    finally:
        os.close(fd)
    assert os.statvfs(where).f_bavail == 0
    return filler


def minimeter(*args: str) -> list[str]:
    return [sys.executable, "-m", "twin", *args]


class Drained:
    """A subprocess whose stdout and stderr lines are collected by threads."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.proc = subprocess.Popen(
            argv,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._new: queue.Queue[None] = queue.Queue()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._threads = [
            threading.Thread(target=self._drain, args=(s, lines), daemon=True)
            for s, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))
        ]
        for t in self._threads:
            t.start()

    def _drain(self, stream: IO[str], lines: list[str]) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))
            self._new.put(None)
        self._new.put(None)

    def wait_line(
        self, match: Callable[[str], bool], *, stderr: bool = False, timeout_s: float = 20.0
    ) -> str:
        """The first line (from the start) that ``match`` accepts; fails on exit/timeout."""
        lines = self.err if stderr else self.out
        deadline = time.monotonic() + timeout_s
        seen = 0
        while True:
            for line in lines[seen:]:
                if match(line):
                    return line
            seen = len(lines)
            if self.proc.poll() is not None and not any(t.is_alive() for t in self._threads):
                raise AssertionError(
                    f"{self.argv[3:5]} exited {self.proc.returncode}; stderr: {self.err[-5:]}"
                )
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no such line within {timeout_s} s; stderr: {self.err[-5:]}")
            with contextlib.suppress(queue.Empty):
                self._new.get(timeout=min(left, 0.2))

    def stop(self, sig: int, timeout_s: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout_s)
        self._close()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._close()

    def _close(self) -> None:
        for t in self._threads:
            t.join(timeout=5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
