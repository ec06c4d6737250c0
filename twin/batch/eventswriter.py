"""events.jsonl written by a small process forked before the run and fed as it goes.

Theory of operation. A year's event lines cost ~0.15 s of CPU (a ``repr`` per float),
more than anything else in the file. :meth:`EventsWriter.start` forks a process
before the run, while this one is small (imports only: the fork costs little, and
it copies no page of the run's arrays). The run's per-block hook (:meth:`__call__`)
sends it the log's new entries (``twin.batch.eventlog``) a week at a time
(``SEND_EVENTS``): each day's closes as the core's four float columns and the few
other events, pickled, ~64 kB a message; it formats their lines as they come, on
the core the run leaves idle. After the run,
:meth:`write` sends the rest of the log, the pulse edges and the file's path (only
once the earlier run's outputs are removed), and the process writes the file
through the same :class:`~twin.batch.eventlog.EventLines` as the in-process
``write_events``: the same bytes either way.

The run never waits for it: the pipe is enlarged (``PIPE_BYTES``) and written
without blocking; what does not fit stays here and goes with the next block's
entries, and whatever is left after the run goes in :meth:`finish`, called when
this process's own files are written. Any failure (the process killed, an error in
it, a message that cannot be sent) makes :meth:`finish` return False, and the
caller writes the file in-process, as without the process. Ctrl-C: the process
ignores SIGINT; the run's cancel path ends it (:meth:`stop`), and it also ends on
its own when this process dies (end of file on the pipe, once the processes forked
after it, which inherit a copy of the pipe's end, have ended too: they end on their
own pipes the same way; 1.5-1.8 s after a SIGKILL of a year run). Only a single-threaded
Linux process may fork (``twin.forking.can_fork``: the caller asks), and only
a run of a month or more pays for the fork (``MIN_DURATION_S``).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from twin.batch.eventlog import EventLines, EventLog
from twin.core import PulseEdges
from twin.forking import interrupts_held, release_interrupts

#: The pipe's capacity asked for (Linux's default limit for an unprivileged process):
#: a year's closes are ~3.4 MB, so the process may fall a third of a year behind
#: before a byte waits here.
PIPE_BYTES = 1 << 20
#: The shortest run (simulated time) worth the process: forking it and feeding it cost
#: ~10-20 ms of CPU, what the lines of a month's closes cost in-process.
MIN_DURATION_S = 30 * 86_400.0
#: Events sent at a time during the run (~64 kB of closes, a week's): each message
#: wakes the process, and a wake-up costs more than the few lines of a block.
SEND_EVENTS = 2048
#: A message's header: its length in bytes.
_HEADER_BYTES = 8
_PIECES, _WRITE = "pieces", "write"


def _read_message(stream: BinaryIO) -> tuple[object, ...] | None:
    """The next message, or None at the end of the pipe (the sender closed it)."""
    header = stream.read(_HEADER_BYTES)
    if len(header) < _HEADER_BYTES:
        return None
    size = int.from_bytes(header, "little")
    body = stream.read(size)
    if len(body) < size:
        return None
    message = pickle.loads(body)
    if not isinstance(message, tuple):
        raise TypeError(f"events process: a {type(message).__name__}; expected a tuple")
    return message


def _serve(fd: int) -> int:
    """The process's body: format the entries as they come, write the file when told
    (exit status 0), or stop at the end of the pipe (1: nothing was written)."""
    lines = EventLines()
    with os.fdopen(fd, "rb") as stream:
        while (message := _read_message(stream)) is not None:
            if message[0] == _PIECES:
                lines.add(message[1])  # type: ignore[arg-type]
                continue
            _, path, count, edges = message
            if lines.pieces != count:  # not the log the run had
                return 1
            lines.write(Path(str(path)), edges)  # type: ignore[arg-type]
            return 0
    return 1


class EventsWriter:
    """The events process: fed the log during the run, it writes ``events.jsonl``."""

    def __init__(self, pid: int, fd: int) -> None:
        self.pid: int | None = pid  # None once it has ended
        self._fd = fd
        self._pending = bytearray()  # what the pipe had no room for yet
        self._sent = 0  # entries of the log sent
        self._sent_events = 0  # the events in them
        self._told = False  # the path sent: it writes the file

    @classmethod
    def start(cls, duration_s: float | None = None) -> EventsWriter | None:
        """Fork the process (call before the run, when the caller may fork); None for a
        run shorter than ``MIN_DURATION_S`` (``duration_s``, when known) or when the
        system refuses a pipe or a process."""
        if duration_s is not None and duration_s < MIN_DURATION_S:
            return None
        import fcntl  # Unix only, as is the fork

        try:
            read_fd, write_fd = os.pipe()
        except OSError:
            return None
        with contextlib.suppress(OSError):  # a smaller pipe only makes a wait likelier
            fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        with interrupts_held() as undo:
            try:
                pid = os.fork()
            except OSError:
                os.close(read_fd)
                os.close(write_fd)
                return None
            if pid == 0:  # the process: never returns, never prints a traceback
                status = 1
                try:
                    release_interrupts(ignore=True)  # the run's cancel ends it
                    os.close(write_fd)
                    status = _serve(read_fd)
                finally:
                    os._exit(status)
            os.close(read_fd)
            os.set_blocking(write_fd, False)
            writer = cls(pid, write_fd)
            undo.append(writer.stop)
        return writer

    def __call__(self, done: int, total: int, events: EventLog) -> None:
        """The run's per-block hook: send the log's new entries, ``SEND_EVENTS`` or more
        at a time (never waits)."""
        if len(events) - self._sent_events >= SEND_EVENTS:
            self._send_pieces(events)
        self._flush()

    def write(self, path: Path, events: EventLog, edges: Sequence[PulseEdges]) -> None:
        """Send the rest of the log, the edges and the file's path: the process writes
        the file meanwhile (see :meth:`finish`)."""
        self._send_pieces(events)
        self._push((_WRITE, str(path), self._sent, list(edges)))
        self._told = self.pid is not None
        self._flush()

    def finish(self) -> bool:
        """Wait for the process; True when it wrote the file :meth:`write` named."""
        if self.pid is None or not self._told:
            self.stop()
            return False
        try:
            os.set_blocking(self._fd, True)
            while self._pending:
                del self._pending[: os.write(self._fd, self._pending)]
        except OSError:  # it died: it exits with a failure
            pass
        return self._wait() == 0

    def stop(self) -> None:
        """End the process now (a cancel or a failure); nothing once it has ended."""
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self._wait()

    def _wait(self) -> int:
        self._close()
        if self.pid is None:
            return 1
        _, status = os.waitpid(self.pid, 0)
        self.pid = None
        return os.waitstatus_to_exitcode(status)

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _send_pieces(self, events: EventLog) -> None:
        pieces = events.pieces(self._sent)
        if pieces:
            self._sent += len(pieces)
            self._sent_events = len(events)
            self._push((_PIECES, pieces))

    def _push(self, message: tuple[object, ...]) -> None:
        if self.pid is None:
            return
        try:
            body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # an event that cannot be sent: the caller writes the file
            self.stop()
            return
        self._pending += len(body).to_bytes(_HEADER_BYTES, "little")
        self._pending += body

    def _flush(self) -> None:
        """Write what the pipe has room for now."""
        while self._pending and self.pid is not None:
            try:
                written = os.write(self._fd, self._pending)
            except BlockingIOError:
                return
            except OSError:  # the process is gone
                self.stop()
                return
            del self._pending[:written]
