"""The run's event log and events.jsonl's lines: exactly what json.dumps prints, in time
order, whichever way the lines are made (a type at a time, from a run's columns)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from twin.batch.eventlog import EventLog, closes_text, event_dict, event_lines, write_events
from twin.core import (
    DemandClosed,
    DemandCloses,
    ErrorCleared,
    ErrorRaised,
    MaxDemandReset,
    PowerLost,
    PowerRestored,
    PulseEdges,
    PulseOutput,
    ScalarEvent,
)


def reference(events: list[ScalarEvent]) -> list[str]:
    return [json.dumps(event_dict(ev)) for ev in events]


def records(closes: DemandCloses) -> list[ScalarEvent]:
    """The closes' records, made field by field here (not by DemandCloses.each)."""
    columns = (closes.time_s, closes.subinterval_kw, closes.demand_kw, closes.demand_max_kw)
    return [DemandClosed(*(float(c[i]) for c in columns)) for i in range(len(closes))]


def closes(*columns: list[float]) -> DemandCloses:
    return DemandCloses(*(np.array(c, dtype=np.float64) for c in columns))


def test_mixed_types_in_their_order() -> None:
    rng = np.random.default_rng(3)
    events: list[ScalarEvent] = [PowerRestored(0.0, 1)]
    for k in range(1, 400):
        t = k * 300.0
        values = (rng.random(3) * 10.0 ** rng.integers(-8, 8, 3)).tolist()
        events.append(DemandClosed(t, *values))
        if k % 37 == 0:
            events += [PowerLost(t + 0.25), PowerRestored(t + 1.5, k), MaxDemandReset(t + 2.0)]
        if k % 91 == 0:
            events += [ErrorRaised(t, 3, "memory"), ErrorCleared(t + 60.0, 3, "memory")]
    assert event_lines(events) == reference(events)


def test_values_json_prints_differently_go_line_by_line() -> None:
    """A NaN (json: NaN), an int where a float is expected, float subclasses: per line."""
    events: list[ScalarEvent] = [
        DemandClosed(300.0, float("nan"), 0.5, 0.5),
        DemandClosed(600.0, 1, 0.25, float("inf")),
        DemandClosed(900.0, 1e-300, -0.0, 1e22),
        DemandClosed(1200.0, np.float64(0.1), 0.2, 0.3),
    ]
    assert event_lines(events) == reference(events)
    assert event_lines(events[2:3]) == reference(events[2:3])  # all plain floats: together
    assert event_lines([]) == []


def test_a_run_of_closes_is_the_lines_of_its_records() -> None:
    """Whole times (up to the last below 1e16, where repr turns to an exponent), runs of
    equal maxima (0.0 and -0.0 are equal numbers but print differently), any floats."""
    rng = np.random.default_rng(7)
    n = 500
    maximum = np.repeat(rng.random(10) * 10.0 ** rng.integers(-6, 6, 10), n // 10)
    maximum[100:120], maximum[120:130] = 0.0, -0.0
    other = rng.random((2, n)) * 10.0 ** rng.integers(-9, 9, (2, n))
    for time_s in (
        np.arange(1, n + 1) * 300.0,
        np.linspace(1e15, 9999999999999998.0, n).round(),
        np.arange(n) * 300.0,  # a zero first
        np.arange(1, n + 1) * 0.1,
        9999999999999998.0 + np.arange(n) * 2.0,  # past 1e16
    ):
        run = DemandCloses(time_s, other[0], other[1], maximum)
        assert closes_text(run).split("\n") == reference(records(run)), time_s[:3]
    assert closes_text(closes([], [], [], [])) == ""


def test_a_run_of_closes_with_nan_or_inf_goes_line_by_line() -> None:
    run = closes(
        [300.0, 600.0, 900.0], [1.0, float("nan"), 2.0], [0.5, 0.5, -float("inf")], [1.0] * 3
    )
    assert closes_text(run).split("\n") == reference(records(run))


def test_the_log_is_its_records_in_order() -> None:
    a = closes([300.0, 600.0], [1.0, 2.0], [1.0, 1.5], [1.0, 1.5])
    b = closes([900.0], [3.0], [2.0], [2.0])
    log = EventLog([PowerRestored(0.0, 1), a, ErrorRaised(650.0, 2, "calibration"), b])
    expected = [PowerRestored(0.0, 1), *records(a), ErrorRaised(650.0, 2, "calibration")]
    expected += records(b)
    assert len(log) == 5 and list(log) == expected and log == expected
    assert log[1] == expected[1] and log[-1] == expected[-1] and log[1:3] == expected[1:3]
    assert log == EventLog([expected[0], *expected[1:3], expected[3], b])  # same records
    assert log != EventLog(expected[:4])
    assert log.of_types(ErrorRaised, PowerRestored) == [expected[0], expected[3]]
    assert log.of_types(DemandClosed) == [expected[i] for i in (1, 2, 4)]
    assert log.pieces(2) == [expected[3], b]


def file_reference(events: list[ScalarEvent], edges: list[PulseEdges]) -> bytes:
    """The file as json.dumps and a stable sort by time make it."""
    lines = [(ev.time_s, json.dumps(event_dict(ev))) for ev in events]
    for e in edges:
        for t, c in zip(e.time_s.tolist(), e.closed.tolist(), strict=True):
            line = {"time_s": t, "event": "pulse_edge", "output": e.output, "closed": c}
            lines.append((t, json.dumps(line)))
    return "".join(line + "\n" for _, line in sorted(lines, key=lambda x: x[0])).encode()


def test_the_file_is_sorted_by_time_with_the_edges_merged(tmp_path: Path) -> None:
    """Events out of order (a block's power loss before its closes), ties kept in log
    order, ints and strings, a NaN, pulse edges of two outputs."""
    a = closes([300.0, 600.0, 900.0], [1.0, 2.0, float("nan")], [1.0, 1.5, 2.0], [1.0, 1.5, 2.0])
    log = EventLog([PowerLost(450.0), a, PowerRestored(600.0, 2), ErrorRaised(600.0, 5, "é")])
    edges = [
        PulseEdges(
            PulseOutput.KH_10, np.array([10.0, 600.0, 950.5]), np.array([True, False, True])
        ),
        PulseEdges(PulseOutput.COUNTER, np.array([0.25]), np.array([False])),
    ]
    write_events(tmp_path / "events.jsonl", log, edges)
    assert (tmp_path / "events.jsonl").read_bytes() == file_reference(list(log), edges)
    write_events(tmp_path / "events.jsonl", log, [])
    assert (tmp_path / "events.jsonl").read_bytes() == file_reference(list(log), [])
    write_events(tmp_path / "events.jsonl", list(log), [])  # a plain list of records
    assert (tmp_path / "events.jsonl").read_bytes() == file_reference(list(log), [])
    write_events(tmp_path / "events.jsonl", EventLog(), [])
    assert (tmp_path / "events.jsonl").read_bytes() == b""
