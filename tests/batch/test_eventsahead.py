"""events.jsonl's first lines formatted by a process forked during the run
(twin.batch.eventsahead): the same file as write_events makes alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin.batch.eventsahead import AHEAD_FRACTION, EventsAhead
from twin.batch.report import can_fork, event_lines, write_all, write_events
from twin.batch.simulate import SimResult, SimSettings, simulate
from twin.loadprofile import load_profile

pytestmark = pytest.mark.skipif(
    not can_fork(), reason="no fork here (not Linux, one core, or another thread running)"
)


def run(ahead: EventsAhead, profile: str, edges: bool = False) -> SimResult:
    """Three days: several blocks, so the head process is forked during the run."""
    settings = SimSettings(duration_s=3 * 86_400.0, interval_s=60.0, edges=edges)
    return simulate(load_profile(profile), settings, each_block=ahead)


@pytest.mark.parametrize(
    ("profile", "edges"),
    [("residential-day", False), ("brownout-outage", False), ("meter-faults", True)],
)
def test_the_heads_lines_and_the_rest_give_the_same_file(
    tmp_path: Path, profile: str, edges: bool
) -> None:
    """Events in time order, out of it (sorted when written), pulse edges merged in."""
    ahead = EventsAhead()
    result = run(ahead, profile, edges)
    try:
        # forked after the first block past the fraction: most events, not all
        assert AHEAD_FRACTION * len(result.events) / 2 < ahead.count < len(result.events)
        head = ahead.receive()
    finally:
        ahead.finish()
    assert head == event_lines(result.events[: ahead.count])
    write_events(tmp_path / "ahead.jsonl", result.events, result.edges, head)
    write_events(tmp_path / "plain.jsonl", result.events, result.edges)
    assert (tmp_path / "ahead.jsonl").read_bytes() == (tmp_path / "plain.jsonl").read_bytes()


def test_write_all_with_the_head_writes_the_same_events_file(tmp_path: Path) -> None:
    ahead = EventsAhead()
    result = run(ahead, "brownout-outage")
    assert ahead.count > 0
    write_all(tmp_path / "out", result, plots=False, ahead=ahead)
    write_events(tmp_path / "plain.jsonl", result.events, result.edges)
    got = (tmp_path / "out" / "events.jsonl").read_bytes()
    assert got == (tmp_path / "plain.jsonl").read_bytes()
    assert got.count(b"\n") == len(result.events) > 100


def test_a_head_nobody_reads_stops_when_its_reader_closes() -> None:
    """A run that fails after the fork: finish() returns (the head's send fails)."""
    ahead = EventsAhead()
    run(ahead, "residential-day")
    assert ahead.count > 0
    ahead.finish()  # would hang if the head process held the read end itself


def test_a_short_run_forks_nothing() -> None:
    """Before ``AHEAD_FRACTION`` of the samples nothing is forked, nor at the end."""
    ahead = EventsAhead()
    ahead(10, 100, [])
    ahead(100, 100, [])
    assert ahead.count == 0 and ahead.receive() == []
    ahead.finish()
