"""Sampler semantics: split invariance, wrap-around, each segment kind, events, noise, drive."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.core import (
    ErrorCleared,
    ErrorRaised,
    InjectError,
    MaxDemandReset,
    MeterConfig,
    MeterCore,
    MeterErrorKind,
    PowerLost,
)
from twin.drive import drive
from twin.loadprofile import load_profile, shipped_names

FIELDS = ("voltage_v", "current_a", "cos_phi", "leading", "frequency_hz", "temperature_c",
          "ct_line", "ct_reversed")  # fmt: skip


def values(block: object) -> dict[str, np.ndarray]:
    """Every per-sample array of a block, the CT placement spelled out (None = straight)."""
    n = block.n  # type: ignore[attr-defined]
    out = {f: getattr(block, f) for f in FIELDS}
    if out["ct_line"] is None:
        out["ct_line"] = np.broadcast_to(np.array([[0], [1]]), (2, n))
    if out["ct_reversed"] is None:
        out["ct_reversed"] = np.zeros((2, n), bool)
    return out


def profile_from(tmp_path: Path, body: str, name: str = "t") -> object:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"schema: 1\nname: {name}\n{body}")
    return load_profile(path)


def assert_blocks_equal(a: object, b: object) -> None:
    va, vb = values(a), values(b)
    for f in FIELDS:
        np.testing.assert_array_equal(va[f], vb[f], err_msg=f)


def joined(sampler: object, t0: float, dt: float, n: int, k: int) -> dict[str, np.ndarray]:
    a = sampler.block(t0, dt, k)  # type: ignore[attr-defined]
    b = sampler.block(t0 + k * dt, dt, n - k)  # type: ignore[attr-defined]
    va, vb = values(a), values(b)
    return {f: np.concatenate([va[f], vb[f]], axis=-1) for f in FIELDS}


@pytest.mark.parametrize("name", shipped_names())
def test_split_invariance_of_every_shipped_profile(name: str) -> None:
    sampler = load_profile(name).sampler()
    span = min(sampler.duration_s, 86_400.0)
    dt = 7.0  # not a divisor of most boundaries: samples straddle segment and event edges
    n = int(span / dt) + 50  # crosses the wrap-around for profiles up to a day
    whole = sampler.block(0.0, dt, n)
    for k in (1, n // 3, n // 2 + 1, n - 1):
        parts = joined(sampler, 0.0, dt, n, k)
        for f in FIELDS:
            np.testing.assert_array_equal(values(whole)[f], parts[f], err_msg=f"{f} k={k}")


@settings(max_examples=40, deadline=None)
@given(
    t0=st.integers(0, 10**7),
    dt=st.sampled_from([0.1, 0.25, 1.0, 3.0, 60.0]),
    n=st.integers(2, 3000),
    frac=st.floats(0.01, 0.99),
)
def test_split_invariance_property(t0: int, dt: float, n: int, frac: float) -> None:
    sampler = load_profile("residential-day").sampler(seed=3)  # noise, daily curve
    k = max(1, min(n - 1, int(n * frac)))
    whole = sampler.block(t0 * 0.1, dt, n)
    parts = joined(sampler, t0 * 0.1, dt, n, k)
    for f in FIELDS:
        np.testing.assert_array_equal(values(whole)[f], parts[f])


def test_profile_repeats_past_its_end() -> None:
    sampler = load_profile("motor-start").sampler()
    assert_blocks_equal(sampler.block(0.0, 1.0, 1800), sampler.block(1800.0 * 3, 1.0, 1800))


def test_steps_ramp_and_periodic(tmp_path: Path) -> None:
    p = profile_from(
        tmp_path,
        """segments:
  - kind: steps
    step: 10
    steps: [{L1: {current: 1}}, {L1: {current: 2}}]
  - kind: ramp
    duration: 100
    from: {L1: {current: 0}, temperature: 20}
    to: {L1: {current: 100}, temperature: 30}
  - kind: periodic
    duration: 40
    period: 20
    waveform: square
    duty: 0.25
    low: {L2: {current: 1}}
    high: {L2: {current: 9}}
""",
    )
    b = p.sampler().block(0.0, 1.0, 160)  # type: ignore[attr-defined]
    assert b.current_a[0, 9] == 1 and b.current_a[0, 10] == 2
    assert b.current_a[0, 20] == 0 and b.current_a[0, 70] == pytest.approx(50)
    assert b.temperature_c[70] == pytest.approx(25)
    assert b.current_a[1, 120:125].tolist() == [9] * 5
    assert b.current_a[1, 125:140].tolist() == [1] * 15
    assert b.current_a[1, 140] == 9


def test_daily_curve_weekend_and_season(tmp_path: Path) -> None:
    hourly = list(range(100, 2500, 100))
    p = profile_from(
        tmp_path,
        f"""segments:
  - kind: daily
    duration: 365d
    quantity: current
    start_weekday: friday
    hourly: {{L1: {hourly}}}
    weekend_factor: 2
    monthly: [1, 1, 1, 1, 1, 1, 0.5, 0.5, 1, 1, 1, 1]
""",
    )
    s = p.sampler()  # type: ignore[attr-defined]
    # Day 0 is a Friday in mid January: hourly point 3 at 03:00, halfway at 03:30.
    assert s.block(10 * 86_400 + 3 * 3600.0, 1800.0, 2).current_a[0].tolist() == pytest.approx(
        [400 * 1.0, 450 * 1.0], rel=1e-3
    )
    sat = s.block(1 * 86_400 + 3 * 3600.0, 1.0, 1).current_a[0, 0]
    assert sat == pytest.approx(800, rel=1e-2)  # weekend factor 2
    late_july = s.block(213 * 86_400 + 3 * 3600.0, 1.0, 1).current_a[0, 0]
    assert late_july == pytest.approx(200, rel=1e-3)  # between mid-July and mid-August: 0.5


def test_csv_hold_and_linear(tmp_path: Path) -> None:
    (tmp_path / "s.csv").write_text("time[min],L1.current[A],frequency[Hz]\n0,10,60\n1,20,50\n")
    for mode, expected in (("hold", 10.0), ("linear", 15.0)):
        p = profile_from(
            tmp_path, f"segments:\n  - {{kind: csv, file: s.csv, interpolate: {mode}}}\n"
        )
        b = p.sampler().block(30.0, 30.0, 3)  # type: ignore[attr-defined]
        assert p.duration_s == 120  # type: ignore[attr-defined]
        assert b.current_a[0, 0] == pytest.approx(expected)
        assert b.current_a[0, 1] == 20 and b.frequency_hz[1] == 50


def test_sum_adds_real_and_reactive_power(tmp_path: Path) -> None:
    p = profile_from(
        tmp_path,
        """segments:
  - kind: sum
    segments:
      - {kind: constant, duration: 1h, L1: {current: 10, pf: 1}}
      - {kind: constant, duration: 1h, L1: {current: 10, pf: 0}}
""",
    )
    b = p.sampler().block(0.0, 1.0, 1)  # type: ignore[attr-defined]
    assert b.current_a[0, 0] == pytest.approx(10 * 2**0.5)
    assert b.cos_phi[0, 0] == pytest.approx(2**-0.5)


def test_input_events(tmp_path: Path) -> None:
    p = profile_from(
        tmp_path,
        """segments:
  - {kind: constant, duration: 100, L1: {current: 10}, L2: {current: 10}}
events:
  - {at: 10, kind: sag, line: L1, voltage: 90, duration: 5}
  - {at: 20, kind: surge, line: L2, factor: 3, duration: 5}
  - {at: 30, kind: frequency, hz: 50, duration: 5}
  - {at: 40, kind: temperature, celsius: 90, duration: 5}
  - {at: 50, kind: ct_wrong_phase, line: L1, duration: 5}
  - {at: 60, kind: swell, line: both, voltage: 140, duration: 5}
""",
    )
    b = p.sampler().block(0.0, 1.0, 100)  # type: ignore[attr-defined]
    assert b.voltage_v[:, 12].tolist() == [90, 120] and b.voltage_v[0, 15] == 120
    assert b.current_a[:, 22].tolist() == [10, 30]
    assert b.frequency_hz[32] == 50 and b.temperature_c[42] == 90
    # A CT on the wrong phase changes what element 1 measures, not the load.
    assert b.cos_phi[:, 52].tolist() == [1, 1]
    assert b.ct_line is not None and b.ct_reversed is None
    assert b.ct_line[:, 52].tolist() == [1, 1] and b.ct_line[:, 55].tolist() == [0, 1]
    assert b.voltage_v[:, 62].tolist() == [140, 140]


def test_noise_is_bounded_seeded_and_held(tmp_path: Path) -> None:
    p = profile_from(
        tmp_path,
        """segments:
  - {kind: constant, duration: 1h, L1: {current: 20}}
noise:
  - {quantity: L1.current, amplitude: 5%, period: 10s}
""",
    )
    a = p.sampler(seed=1).block(0.0, 1.0, 3600).current_a[0]  # type: ignore[attr-defined]
    b = p.sampler(seed=2).block(0.0, 1.0, 3600).current_a[0]  # type: ignore[attr-defined]
    assert 19.0 <= a.min() < 19.5 and 20.5 < a.max() <= 21.0
    assert not np.array_equal(a, b)
    assert np.all(a[:10] == a[0]) and a[10] != a[0]


def test_drive_applies_commands_at_their_time_and_is_split_invariant() -> None:
    sampler = load_profile("meter-faults").sampler()
    results = []
    # The sample-by-sample run covers the first 50 min only, to stay cheap.
    for max_block, n in ((86_400, 7200), (97, 7200), (1, 3000)):
        core = MeterCore(MeterConfig(), emit_edges=False)
        events = [e for block in drive(core, sampler, 0.0, 1.0, n, max_block) for e in block]
        results.append((core.snapshot(), events))
    raised = [e for e in results[0][1] if isinstance(e, ErrorRaised)]
    assert any(e.time_s == 40 * 60 for e in raised)
    cleared = [e for e in results[0][1] if isinstance(e, ErrorCleared)]
    assert any(e.time_s == 50 * 60 for e in cleared)
    assert [e.time_s for e in results[0][1] if isinstance(e, MaxDemandReset)] == [3600.0]
    assert results[0][0].energy_delivered_uj == results[1][0].energy_delivered_uj
    # The sample-by-sample run sees the same first 50 min as the day-block run.
    core = MeterCore(MeterConfig(), emit_edges=False)
    for _ in drive(core, sampler, 0.0, 1.0, 3000):
        pass
    assert core.snapshot().energy_delivered_uj == results[2][0].energy_delivered_uj


def test_drive_outage_loses_power_and_commands_wrap() -> None:
    sampler = load_profile("full-load-then-faults").sampler()
    core = MeterCore(MeterConfig(), emit_edges=False)
    events = [e for block in drive(core, sampler, 0.0, 1.0, 7200, 1000) for e in block]
    assert [e.time_s for e in events if isinstance(e, PowerLost)] == [1200.0, 4800.0]
    s = load_profile("meter-faults").sampler()
    cmds = s.commands_between(7200.0 + 2400.0, 7200.0 + 2401.0)
    assert cmds == [(9600.0, InjectError(MeterErrorKind.MEMORY))]


def test_cli_list_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    from twin.cli import main

    assert main(["profiles", "list"]) == 0
    out = capsys.readouterr().out
    assert "residential-year" in out and "365d" in out
    assert main(["profiles", "show", "full-load-then-faults"]) == 0
    out = capsys.readouterr().out
    assert "registered:  4.350000 kWh" in out
    assert "peak power:  5400.0 W" in out
    assert "40min ct_reversed L2 for 10min" in out
