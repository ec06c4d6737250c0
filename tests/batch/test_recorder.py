"""The batch recorder's rows against the core's own events and registers, worked out
here one edge, one block at a time (issue 16: the recorder's per-block work)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from twin.batch.recorder import COUNT_COLUMNS, Recorder, last_at
from twin.batch.simulate import SimSettings, make_core, simulate
from twin.core import (
    ErrorCleared,
    ErrorRaised,
    MeterConfig,
    RegistrationMode,
    SampleBlock,
    highest_error,
)
from twin.loadprofile import load_profile
from twin.units import uj_to_wh

# Loads that cross every output's edges at different rates, an outage (no edges for a
# while), a clear of the pulse counts, and rows that straddle the day blocks.
EDGES_PROFILE = """\
schema: 1
name: edges-days
defaults:
  L1: {voltage: 120, pf: 0.97}
  L2: {voltage: 120, pf: 0.93}
segments:
  - kind: steps
    steps:
      - {duration: 5h, L1: {power: 150}, L2: {power: 90}}
      - {duration: 7h, L1: {power: 4200}, L2: {power: 3100}}
      - {duration: 12h, L1: {power: 700}, L2: {power: 0}}
      - {duration: 24h, L1: {power: 2600}, L2: {power: 1900}}
events:
  - {at: 9h, kind: outage, duration: 2h}
  - {at: 30h, kind: clear_pulse_counts}
"""


@pytest.fixture(scope="module")
def edges_profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("profiles") / "edges-days.yaml"
    path.write_text(EDGES_PROFILE)
    return path


@pytest.mark.parametrize(("step_s", "interval_s"), [(1.0, 60.0), (1.0, 420.0), (7.0, 3600.0)])
def test_row_counts_and_count_times_follow_the_edges(
    edges_profile: Path, step_s: float, interval_s: float
) -> None:
    """Per output and row: the counts (closures; the counter's openings), the first
    and the last count's time, from the run's own pulse edges one by one."""
    profile = load_profile(edges_profile)
    settings = SimSettings(step_s=step_s, interval_s=interval_s, edges=True)
    result = simulate(profile, settings)
    row_s = result.interval_s
    rows = result.columns["time_s"].shape[0]
    for name, output in zip(COUNT_COLUMNS, ("10", "100", "1000", "counter"), strict=True):
        counts = [0] * rows
        first = [math.nan] * rows
        last = [math.nan] * rows
        for edges in result.edges:
            if edges.output != output:
                continue
            for t, closed in zip(edges.time_s.tolist(), edges.closed.tolist(), strict=True):
                if closed == (output == "counter"):
                    continue  # a count is a closure; the counter's, its opening
                # The row whose (start, end] holds t, within 1e-9 of a row.
                row = min(max(math.ceil(t / row_s - 1e-9) - 1, 0), rows - 1)
                counts[row] += 1
                if math.isnan(first[row]):
                    first[row] = t
                last[row] = t
        assert sum(counts) > 0, name
        assert result.columns[name].tolist() == counts, name
        got_first, got_last = result.count_times[name]
        np.testing.assert_array_equal(got_first, first, err_msg=name)
        np.testing.assert_array_equal(got_last, last, err_msg=name)


def test_energies_end_each_block_on_the_registers() -> None:
    """Bidirectional, exporting in some blocks only (a register that gains nothing in
    a block is not summed): at each block's last row every energy column is the
    core's register after that block."""
    n_blocks, m, dt = 6, 3600, 1.0
    config = MeterConfig(registration_mode=RegistrationMode.BIDIRECTIONAL)
    rec = Recorder(n_blocks * m, dt, 60, config.model)
    core = make_core(config, rec)
    ends = []
    for k in range(n_blocks):
        cos_phi = -0.9 if k in (1, 4) else 0.95  # exports: received grows in these only
        amps = [20.0 + k, 0.0 if k == 2 else 11.0]  # L2 idle in block 2
        core.advance(SampleBlock.build(m, dt, current_a=amps, cos_phi=cos_phi))
        ends.append(core.snapshot())
    cols = rec.columns()
    received = [snap.energy_received_uj for snap in ends]
    assert received[0] == 0 < received[1] == received[2] == received[3] < received[4]
    for k, snap in enumerate(ends):
        last_row = (k + 1) * m // 60 - 1
        for name in ("delivered", "received", "l1", "l2"):
            want = uj_to_wh(np.array([getattr(snap, f"energy_{name}_uj")], np.float64))
            assert cols[f"energy_{name}_wh"][last_row] == want[0], (k, name)


@pytest.mark.parametrize("seed", range(4))
def test_last_at_is_the_last_time_at_or_before_each_end(seed: int) -> None:
    """Ties (a point exactly at an end, several points at one time), ends with no new
    point, points after the last end: as a search of each end among the times."""
    rng = np.random.default_rng(seed)
    ends = np.cumsum(rng.choice([0.5, 1.0, 60.0], 400))
    times = np.sort(np.concatenate(([0.0], rng.choice(ends, 50), rng.uniform(0, 2 * ends[-1], 90))))
    at = last_at(times, ends)
    want = [max(i for i, t in enumerate(times.tolist()) if t <= end) for end in ends.tolist()]
    assert at.tolist() == want


@pytest.mark.parametrize("name", ["meter-faults", "brownout-outage"])
def test_error_codes_and_unpowered_seconds_per_row(name: str) -> None:
    """Each row's error code (the highest of the errors active at its end) and its
    unpowered seconds, worked out here one row at a time from the run's events:
    errors that overlap, clear and stay (meter-faults), outages (brownout-outage)."""
    result = simulate(load_profile(name), SimSettings(interval_s=60.0))
    cols = result.columns
    raised = [(ev.time_s, ev.code, True) for ev in result.events if isinstance(ev, ErrorRaised)]
    cleared = [(ev.time_s, ev.code, False) for ev in result.events if isinstance(ev, ErrorCleared)]
    changes = sorted(raised + cleared, key=lambda change: change[0])
    spans = result.unpowered_spans
    if name == "meter-faults":
        assert len({code for _, code, _ in raised}) >= 2 and cleared
    else:
        assert sum(b - a for a, b in spans) > 0
    start = 0.0
    for row, end in enumerate(cols["time_s"].tolist()):
        active: set[int] = set()
        for t, code, on in changes:
            if t <= end + 1e-9:
                (active.add if on else active.discard)(code)
        assert cols["error_code"][row] == highest_error(active), row
        unpowered = sum(max(0.0, min(b, end) - max(a, start)) for a, b in spans)
        assert cols["unpowered_s"][row] == pytest.approx(unpowered, abs=1e-9), row
        start = end
