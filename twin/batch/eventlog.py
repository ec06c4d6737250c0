"""A run's event log, and the lines of ``events.jsonl`` made from it.

Theory of operation. The core reports a run's demand sub-interval closes as columns
(:class:`~twin.core.DemandCloses`, 10^5 a year at 1 s); everything else (errors,
power, commands) is a handful of scalar events. :class:`EventLog` keeps both in the
order the recorder saw them, the closes as the core's columns, so a year's log holds
no Python object per close: a close's ``DemandClosed`` record is made only when the
log is iterated, and ``of_types`` finds the few other events without making any.

A line of ``events.jsonl`` is what ``json.dumps(event_dict(ev))`` prints, written
from a template per event type with one ``%`` for many lines (what ``json.dumps``
prints for a finite float is its ``repr``). A run of closes is formatted from its
columns: its times as ``%d.0`` when they are whole numbers below 10^16 (what
``repr`` prints for them), its maximum demand once per run of equal values (it
changes a few hundred times a year); a run holding NaN or an infinity goes line by
line through ``json.dumps``. :class:`EventLines` formats the log piece by piece as
the pieces come and assembles the file: the events' lines in the log's order, the
pulse edges' after them, then sorted by time, stably (lines already in order are
kept as they are). Both the events process (``twin.batch.eventswriter``) and the
in-process :func:`write_events` write through it: the same bytes either way.
"""

from __future__ import annotations

import itertools
import json
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np

from twin.core import DemandClosed, DemandCloses, PulseEdges, ScalarEvent

#: One entry of a log: a scalar event, or a run of demand closes as columns.
Piece = ScalarEvent | DemandCloses
#: Below this a whole-number float's ``repr`` is its digits and ``.0`` (above: ``1e+16``).
_WHOLE_REPR_BELOW = 1e16


class EventLog(Sequence[ScalarEvent]):
    """A run's scalar events in order; runs of demand closes kept as the core's columns.

    A sequence of ``ScalarEvent``: iterating it (or indexing it) makes the closes'
    ``DemandClosed`` records; ``pieces`` gives the entries as kept."""

    def __init__(self, pieces: Iterable[Piece] = ()) -> None:
        self._pieces: list[Piece] = []
        self._len = 0
        self._records: list[ScalarEvent] | None = None  # made on the first indexing
        for piece in pieces:
            self.add(piece)

    def add(self, piece: Piece) -> None:
        self._pieces.append(piece)
        self._len += len(piece) if type(piece) is DemandCloses else 1
        self._records = None

    def pieces(self, start: int = 0) -> list[Piece]:
        """The entries from the ``start``-th on (a scalar event or a run of closes each)."""
        return self._pieces[start:]

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[ScalarEvent]:
        for piece in self._pieces:
            if type(piece) is DemandCloses:
                yield from piece.each()
            else:
                yield piece  # type: ignore[misc]  # not DemandCloses: a scalar event

    @overload
    def __getitem__(self, index: int) -> ScalarEvent: ...
    @overload
    def __getitem__(self, index: slice) -> list[ScalarEvent]: ...
    def __getitem__(self, index: int | slice) -> ScalarEvent | list[ScalarEvent]:
        if self._records is None:
            self._records = list(self)
        return self._records[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, EventLog | list):
            return list(self) == list(other)
        return NotImplemented

    def of_types(self, *kinds: type) -> list[ScalarEvent]:
        """The events of exactly these types, in order (the closes' records made only
        when ``DemandClosed`` is among them)."""
        wanted = set(kinds)
        out: list[ScalarEvent] = []
        for piece in self._pieces:
            if type(piece) is DemandCloses:
                if DemandClosed in wanted:
                    out += piece.each()
            elif type(piece) in wanted:
                out.append(piece)  # type: ignore[arg-type]  # not DemandCloses
        return out


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def event_dict(ev: ScalarEvent) -> dict[str, Any]:
    fields = {k: getattr(ev, k) for k in type(ev).__slots__ if k != "time_s"}
    return {"time_s": ev.time_s, "event": _snake(type(ev).__name__), **fields}


_TEMPLATES: dict[type, tuple[str, Callable[[Any], tuple[Any, ...]]]] = {}
_FLOAT = {float}


def _one_tuple(get: Callable[[Any], Any]) -> Callable[[Any], tuple[Any, ...]]:
    return lambda ev: (get(ev),)


def _line_template(kind: Any) -> tuple[str, Callable[[Any], tuple[Any, ...]]]:
    """The JSON line of an event type with ``%s`` per value, and a getter of the values."""
    if kind not in _TEMPLATES:
        names = ("time_s", *(k for k in kind.__slots__ if k != "time_s"))
        parts = [f'"time_s": %s, "event": "{_snake(kind.__name__)}"']
        parts += [f"{json.dumps(k)}: %s" for k in names[1:]]
        getter: Callable[[Any], tuple[Any, ...]] = operator.attrgetter(*names)
        if len(names) == 1:  # attrgetter of one name returns the value, not a tuple
            getter = _one_tuple(getter)
        _TEMPLATES[kind] = "{" + ", ".join(parts) + "}", getter
    return _TEMPLATES[kind]


def event_line(ev: ScalarEvent) -> str:
    """``json.dumps(event_dict(ev))``; written directly when every value is a plain float
    (what json.dumps prints for a finite one is ``float.__repr__``; 'nan' and 'inf' have
    an n, no finite repr has one)."""
    template, getter = _line_template(type(ev))
    values = getter(ev)
    if _FLOAT.issuperset(map(type, values)):
        texts = tuple(map(float.__repr__, values))
        if "n" not in "".join(texts):
            return template % texts
    return json.dumps(event_dict(ev))


def event_lines(events: Sequence[ScalarEvent]) -> list[str]:
    """``event_line`` of each event, the events of one type formatted together: their
    values gathered into one tuple and the line template repeated, one ``%`` for the
    lot (``%r`` of a plain finite float is its ``float.__repr__``). A type with any
    other value (an int, a string, NaN) goes line by line."""
    events = list(events)
    by_type: dict[type, list[int]] = {}
    for i, kind in enumerate(map(type, events)):
        by_type.setdefault(kind, []).append(i)
    lines = [""] * len(events)
    for kind, indexes in by_type.items():
        group = [events[i] for i in indexes]
        template, getter = _line_template(kind)
        values = list(itertools.chain.from_iterable(map(getter, group)))
        if _FLOAT.issuperset(map(type, values)) and bool(np.isfinite(values).all()):
            text = "\n".join([template.replace("%s", "%r")] * len(group)) % tuple(values)
            texts = text.split("\n")  # no value or template holds a newline
        else:
            texts = [event_line(ev) for ev in group]
        if len(by_type) == 1:
            return texts
        for i, line in zip(indexes, texts, strict=True):
            lines[i] = line
    return lines


def closes_text(closes: DemandCloses) -> str:
    """The lines of a run of closes, joined by newlines: ``event_line`` of each of its
    records, made from the columns."""
    columns = [
        np.asarray(c, dtype=np.float64)
        for c in (closes.time_s, closes.subinterval_kw, closes.demand_kw, closes.demand_max_kw)
    ]
    n = columns[0].shape[0]
    if n == 0:
        return ""
    if not all(bool(np.isfinite(c).all()) for c in columns):
        return "\n".join(map(event_line, closes.each()))
    values: list[Any] = [None] * (4 * n)
    time_s, maximum = columns[0], columns[3]
    time_format = "%r"
    if bool((time_s > 0).all() and (time_s < _WHOLE_REPR_BELOW).all()) and bool(
        (np.trunc(time_s) == time_s).all()
    ):
        values[0::4] = time_s.astype(np.int64).tolist()
        time_format = "%d.0"
    else:
        values[0::4] = time_s.tolist()
    values[1::4] = columns[1].tolist()
    values[2::4] = columns[2].tolist()
    # One repr per run of equal bits (-0.0 and 0.0 are equal numbers, not equal text).
    bits = maximum.view(np.int64)
    starts = np.append(0, np.flatnonzero(bits[1:] != bits[:-1]) + 1)
    lengths = np.diff(np.append(starts, n)).tolist()
    texts: list[str] = []
    for text, length in zip(map(float.__repr__, maximum[starts].tolist()), lengths, strict=True):
        texts += [text] * length
    values[3::4] = texts
    parts = _line_template(DemandClosed)[0].split("%s")
    formats = (time_format, "%r", "%r", "%s")
    template = "".join(itertools.chain(*zip(parts, formats, strict=False))) + parts[-1]
    return "\n".join([template] * n) % tuple(values)


def edges_text(edges: PulseEdges) -> str:
    """The lines of one output's pulse edges, joined by newlines."""
    output = json.dumps(edges.output).replace("%", "%%")
    template = f'{{"time_s": %r, "event": "pulse_edge", "output": {output}, "closed": %s}}'
    values: list[Any] = [None] * (2 * len(edges))
    values[0::2] = edges.time_s.tolist()
    values[1::2] = map(("false", "true").__getitem__, edges.closed.tolist())
    return "\n".join([template] * len(edges)) % tuple(values)


class EventLines:
    """``events.jsonl`` made a piece of the log at a time (:meth:`add`), then assembled
    with the pulse edges (:meth:`text`)."""

    def __init__(self) -> None:
        self.pieces = 0  # the log's entries added
        self._texts: list[str] = []  # lines joined by newlines, a run of the log's each
        self._times: list[Any] = []  # the times of their lines
        self._scalars: list[ScalarEvent] = []  # formatted together with the next ones

    def add(self, pieces: Iterable[Piece]) -> None:
        for piece in pieces:
            self.pieces += 1
            if type(piece) is DemandCloses:
                self._format_scalars()
                if len(piece):
                    self._texts.append(closes_text(piece))
                    self._times.append(piece.time_s)
            else:
                self._scalars.append(piece)  # type: ignore[arg-type]  # not DemandCloses

    def _format_scalars(self) -> None:
        if self._scalars:
            self._texts.append("\n".join(event_lines(self._scalars)))
            self._times.append([ev.time_s for ev in self._scalars])
            self._scalars = []

    def texts(self, edges: Sequence[PulseEdges] = ()) -> list[str]:
        """The file, as texts each followed by a newline: every line added, and the
        edges', in time order (stable)."""
        self._format_scalars()
        texts, times = list(self._texts), list(self._times)
        for e in edges:
            if len(e):
                texts.append(edges_text(e))
                times.append(e.time_s)
        if not texts:
            return []
        at_s = np.concatenate([np.asarray(t, dtype=np.float64) for t in times])
        if bool((at_s[1:] >= at_s[:-1]).all()):  # in order already: what a stable sort keeps
            return texts
        lines = "\n".join(texts).split("\n")  # no line holds a newline
        return ["\n".join([lines[i] for i in np.argsort(at_s, kind="stable").tolist()])]

    def write(self, path: Path, edges: Sequence[PulseEdges] = ()) -> None:
        """Write the file (a text at a time: no copy of the whole file in memory)."""
        with path.open("w", encoding="utf-8") as f:
            for text in self.texts(edges):
                f.write(text)
                f.write("\n")


def write_events(
    path: Path, events: EventLog | Sequence[ScalarEvent], edges: Sequence[PulseEdges]
) -> None:
    """JSON lines in time order; pulse edges (if any were kept) merged in."""
    lines = EventLines()
    lines.add(events.pieces() if isinstance(events, EventLog) else events)
    lines.write(path, edges)
