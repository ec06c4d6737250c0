"""The per-sample registration series a core hands out (``emit_series``): every value
of every register's row set, zero where nothing registered, and the arrays the
caller's to keep (the batch recorder reads them; the core never writes them again)."""

from __future__ import annotations

import numpy as np
import pytest

from twin.core import Event, MeterConfig, MeterCore, MeterModel, Registration, SampleBlock


def series_of(events: list[Event]) -> Registration:
    (reg,) = [e for e in events if isinstance(e, Registration)]
    return reg


@pytest.mark.parametrize("model", ["MMD-200A", "MMS-200A"])
def test_series_is_zero_where_nothing_registers(model: str) -> None:
    """Outages, a register that never gains (received, and L2 of a single element):
    their samples and rows are zero, the rest sums to the registers."""
    core = MeterCore(MeterConfig(model=MeterModel.parse(model)), emit_series=True)
    n = 900
    volts = np.where(np.arange(n) % 300 < 200, 120.0, 0.0)  # an outage every 300 s
    amps = np.vstack([np.linspace(2.0, 50.0, n), np.full(n, 15.0)])
    block = SampleBlock.build(n, 1.0, voltage_v=volts, current_a=amps)
    reg = series_of(core.advance(block))
    snap = core.snapshot()
    off = volts == 0.0
    for row in (reg.delivered_uj, reg.received_uj, reg.l1_uj, reg.l2_uj):
        assert row.shape == (n,) and not row[off].any()
    assert not reg.received_uj.any()
    assert reg.l2_uj.any() == (snap.elements == 2)
    assert int(reg.delivered_uj.sum()) == snap.energy_delivered_uj > 0
    assert int(reg.l1_uj.sum()) == snap.energy_l1_uj
    assert int(reg.l2_uj.sum()) == snap.energy_l2_uj
    assert not reg.power_w[:, off].any() and reg.power_w[:, ~off].all()


def test_a_blocks_series_outlives_the_next_block() -> None:
    core = MeterCore(MeterConfig(), emit_series=True)
    first = series_of(core.advance(SampleBlock.build(500, 1.0, current_a=[10.0, 4.0])))
    kept = [a.copy() for a in (first.power_w, first.delivered_uj, first.l1_uj, first.l2_uj)]
    core.advance(SampleBlock.build(500, 1.0, current_a=[30.0, 25.0]))
    again = (first.power_w, first.delivered_uj, first.l1_uj, first.l2_uj)
    for was, now in zip(kept, again, strict=True):
        np.testing.assert_array_equal(now, was)
