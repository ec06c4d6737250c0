"""Profiles: the minimal schema, sampling semantics, split invariance, events, commands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers import implied_energy
from twin.core import ClearError, InjectError, MeterErrorKind, ResetMaxDemand
from twin.drive import register
from twin.errors import ProfileError
from twin.loadprofile import load_profile, shipped_profiles

MINIMAL = """\
schema: 1
name: full-load-then-faults
segments:
  - kind: constant
    duration: 1h
    L1: {voltage: 120, current: 30, pf: 1.0}
    L2: {voltage: 120, current: 30, pf: 0.5, leading: true}
events:
  - {at: 20min, kind: outage, duration: 5min}
  - {at: 40min, kind: ct_reversed, line: L2, duration: 10min}
"""


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_minimal_profile_is_accepted_exactly(tmp_path: Path) -> None:
    profile = load_profile(write(tmp_path, MINIMAL))
    assert profile.name == "full-load-then-faults"
    assert profile.duration_s == 3600.0
    block = profile.sampler().block(0.0, 1.0, 3600)
    assert block.voltage_v[:, 0].tolist() == [120.0, 120.0]
    assert block.current_a[:, 0].tolist() == [30.0, 30.0]
    assert block.cos_phi[:, 0].tolist() == [1.0, 0.5]
    assert block.leading[:, 0].tolist() == [False, True]
    # Outage 20..25 min: both lines at 0 V, value at the start of each sample.
    assert block.voltage_v[:, 1199].tolist() == [120.0, 120.0]
    assert block.voltage_v[:, 1200:1500].max() == 0.0
    assert block.voltage_v[:, 1500].tolist() == [120.0, 120.0]
    # Reversed CT on L2 40..50 min: the load is unchanged, the L2 CT is turned round.
    assert block.cos_phi[:, 2400].tolist() == [1.0, 0.5]
    assert block.ct_reversed is not None and block.ct_line is None
    assert block.ct_reversed[:, 2399].tolist() == [False, False]
    assert block.ct_reversed[:, 2400].tolist() == [False, True]
    assert block.ct_reversed[:, 2999].tolist() == [False, True]
    assert block.ct_reversed[:, 3000].tolist() == [False, False]


def test_energy_of_minimal_profile(tmp_path: Path) -> None:
    sampler = load_profile(write(tmp_path, MINIMAL)).sampler()
    l1_wh = 3600 * 55 / 60
    l2_wh = 1800 * 45 / 60 - 1800 * 10 / 60
    total_wh = 5400 * 35 / 60 + 1800 * 10 / 60 + 5400 * 10 / 60
    implied = implied_energy(sampler, 1.0)
    assert implied.l1_wh == pytest.approx(l1_wh)
    assert implied.l2_wh == pytest.approx(l2_wh)
    assert implied.total_wh == pytest.approx(total_wh)
    assert implied.peak_w == pytest.approx(5400)
    # The core, driven over the same samples, registers the same.
    registered = register(sampler, 0.0, 1.0, 3600)
    assert registered.l1_wh == pytest.approx(l1_wh)
    assert registered.l2_wh == pytest.approx(l2_wh)
    assert registered.delivered_wh == pytest.approx(total_wh)
    assert registered.peak_w == pytest.approx(5400)


def test_constant_block_is_a_cheap_broadcast(tmp_path: Path) -> None:
    block = load_profile(write(tmp_path, MINIMAL)).sampler().block(0.0, 1.0, 1000)
    assert block.voltage_v.strides[1] == 0  # no per-sample memory


def test_wraps_around(tmp_path: Path) -> None:
    sampler = load_profile(write(tmp_path, MINIMAL)).sampler()
    a = sampler.block(0.0, 1.0, 3600)
    b = sampler.block(3600.0 * 5, 1.0, 3600)
    np.testing.assert_array_equal(a.voltage_v, b.voltage_v)
    np.testing.assert_array_equal(a.cos_phi, b.cos_phi)


def test_unknown_shipped_name_lists_the_names() -> None:
    with pytest.raises(ProfileError, match=r"no such shipped profile.*default"):
        load_profile("no-such-profile")


def test_default_profile_is_shipped() -> None:
    names = [p.name for p in shipped_profiles()]
    assert "default" in names
    assert load_profile("default").duration_s == 86_400


def test_commands_between_wraps(tmp_path: Path) -> None:
    text = MINIMAL + (
        "  - {at: 10min, kind: memory_error, duration: 1min}\n  - {at: 30min, kind: demand_reset}\n"
    )
    sampler = load_profile(write(tmp_path, text)).sampler()
    cmds = sampler.commands_between(0, 7200)
    assert cmds == [
        (600.0, InjectError(MeterErrorKind.MEMORY)),
        (660.0, ClearError(MeterErrorKind.MEMORY)),
        (1800.0, ResetMaxDemand()),
        (4200.0, InjectError(MeterErrorKind.MEMORY)),
        (4260.0, ClearError(MeterErrorKind.MEMORY)),
        (5400.0, ResetMaxDemand()),
    ]
    assert sampler.commands_between(600.0, 660.0) == [(600.0, InjectError(MeterErrorKind.MEMORY))]
