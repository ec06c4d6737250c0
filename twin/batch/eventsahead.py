"""The first lines of events.jsonl, formatted by a process forked during the run.

Theory of operation. A year's event lines cost ~0.3 s of CPU (a ``repr`` per float)
after the run, when the CSV, the figures and the events already share both cores;
during the run the second core is idle once the plot process has imported
matplotlib. So when ``AHEAD_FRACTION`` of the samples are done, :class:`EventsAhead`
(the run's per-block hook) forks a copy of the process that formats the events so
far and holds the bytes in a pipe; the events process of
:func:`twin.batch.report.write_all` reads them and formats only the rest.

A line is a function of its event alone, so ``write_events`` given the head's lines
and the rest's (then merging pulse edges and sorting by time as ever) writes the
same bytes. Only a single-threaded process on Linux forks (``can_fork``); elsewhere
nothing happens ahead, and the events process makes every line.
"""

from __future__ import annotations

import multiprocessing
import sys
from multiprocessing.connection import Connection

from twin.batch.report import can_fork, event_lines
from twin.core import ScalarEvent

#: Share of a run's samples after which the head process is forked: late enough for
#: most lines, early enough that it is done before the run is (the lines cost ~0.3x
#: the run's CPU; matplotlib's import shares the second core at the start).
AHEAD_FRACTION = 2 / 3


def _send_lines(pipe: tuple[Connection, Connection], events: list[ScalarEvent]) -> None:
    """The head process's body: its events' lines, sent when the events process reads
    (the read end closed here, so with no reader left the send fails, not hangs)."""
    receiver, sender = pipe
    receiver.close()
    try:
        sender.send_bytes("\n".join(event_lines(events)).encode("utf-8"))
    except BaseException:  # the events process fails; write_all then writes every line
        sys.exit(1)


class EventsAhead:
    """Called after each block with the run's progress and events so far; forks the
    head process once, past ``AHEAD_FRACTION`` of the samples."""

    def __init__(self) -> None:
        self.count = 0  # the events whose lines the head process makes
        self._proc: multiprocessing.process.BaseProcess | None = None
        self._receiver: Connection | None = None

    def __call__(self, done: int, total: int, events: list[ScalarEvent]) -> None:
        # At the end of the run a head process would only race the events process.
        if self._proc is not None or not AHEAD_FRACTION * total <= done < total:
            return
        if not can_fork():
            return
        context = multiprocessing.get_context("fork")
        self._receiver, sender = context.Pipe(duplex=False)
        self.count = len(events)
        self._proc = context.Process(
            target=_send_lines, args=((self._receiver, sender), events[: self.count]), daemon=True
        )
        self._proc.start()
        sender.close()

    def receive(self) -> list[str]:
        """In the events process: the lines of the first ``count`` events ([] when no
        head process was forked)."""
        if self._receiver is None or self.count == 0:
            return []
        return self._receiver.recv_bytes().decode("utf-8").split("\n")

    def finish(self, wait: bool = True) -> None:
        """Close this process's end (with no reader left the head process stops), and
        wait for it."""
        if self._receiver is not None:
            self._receiver.close()
        if self._proc is not None and wait:
            self._proc.join()
