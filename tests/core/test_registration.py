"""Power and whole microjoules per sample against values computed apart from the core.

``element_power`` and ``energy_uj`` take shortcuts on long arrays (a magic-constant
rounding instead of numpy's cast, a broadcast power factor or current tested once, the
accuracy curve applied a chunk at a time). Here the expected power is written out over
whole arrays in the documented order, ``(V x I) x cos(delta)``, zero below the starting
current, times the accuracy ratio and the injected calibration factor, and each energy
is Python's ``round`` (to nearest, ties to even) of power x dt, sample by sample. Sizes
sit around the chunk and the shortcut thresholds, so a boundary that changed a single
value would fail, and so would a block whose result depended on how it was split.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.helpers import accuracy_ratio
from twin.core import AccuracyConfig, MeterConfig, SampleBlock
from twin.core.accuracy import CHUNK_SAMPLES, ErrorCurve
from twin.core.registration import element_power, energy_uj

MODEL = MeterConfig().model
SIZES = [1, 7, 1023, 1024, 1025, CHUNK_SAMPLES - 1, CHUNK_SAMPLES, CHUNK_SAMPLES + 1]
#: 1 s and 10 ms round with the magic constant on long arrays; 60 s is past its limit.
DT_S = (1.0, 0.01, 60.0)


def inputs(n: int, constant: str, seed: int) -> SampleBlock:
    """Random inputs with currents below the starting current and negative power factors;
    ``constant`` names the inputs given as one value per line (broadcast rows)."""
    rng = np.random.default_rng(seed)
    volts = rng.uniform(90.0, 140.0, (2, n))
    amps = rng.uniform(0.0, 220.0, (2, n))
    low = rng.random((2, n)) < 0.2
    amps[low] = rng.uniform(0.0, MODEL.starting_current_a, int(low.sum()))
    pf = rng.uniform(-1.0, 1.0, (2, n))
    if constant in ("current", "all"):
        amps = np.array([MODEL.starting_current_a / 2.0, 47.3])  # L1 below starting current
    if constant in ("pf", "all"):
        pf = np.array([0.97, -0.42])
    if constant == "all":
        volts = np.array([121.5, 118.25])
    return SampleBlock.build(n, 1.0, voltage_v=volts, current_a=amps, cos_phi=pf)


def expected_power(
    block: SampleBlock, curve: ErrorCurve | None, calibration_pct: float
) -> np.ndarray:
    volts = np.asarray(block.voltage_v, np.float64)
    amps = np.asarray(block.current_a, np.float64)
    pf = np.asarray(block.cos_phi, np.float64)
    power = (volts * amps) * pf
    power = np.where(amps < MODEL.starting_current_a, 0.0, power)
    if curve is not None:
        power = power * accuracy_ratio(curve, amps, pf)
    if calibration_pct:
        power = power * (1.0 + calibration_pct / 100.0)
    return power


def rounded_uj(power_w: np.ndarray, dt_us: int) -> list[list[int]]:
    return [[round(p * dt_us) for p in row] for row in power_w.tolist()]


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("constant", ["none", "current", "pf", "all"])
def test_power_and_energy_match_the_formula(n: int, constant: str) -> None:
    block = inputs(n, constant, seed=n)
    curves = [
        (None, 0.0),
        (None, -3.5),
        (ErrorCurve.from_config(AccuracyConfig(seed=7, calibration_error_pct=1.5), MODEL), 2.0),
    ]
    for curve, calibration_pct in curves:
        power, _, _ = element_power(block, MODEL, curve, calibration_pct)
        want = expected_power(block, curve, calibration_pct)
        np.testing.assert_array_equal(power, want)  # the same floats, not close ones
        for dt_s in DT_S:
            dt_us = round(dt_s * 1e6)
            assert energy_uj(power, dt_us).tolist() == rounded_uj(want, dt_us)


@pytest.mark.parametrize("constant", ["none", "pf"])
def test_a_block_measures_as_its_pieces_do(constant: str) -> None:
    """Energies of one long block equal those of the same samples split at the chunk
    and shortcut boundaries, written into reused buffers as the core does."""
    n = 3 * CHUNK_SAMPLES + 5
    whole = inputs(n, constant, seed=3)
    curve = ErrorCurve.from_config(AccuracyConfig(seed=2), MODEL)
    cuts = [0, 1, 1000, 1000 + CHUNK_SAMPLES, 1001 + 2 * CHUNK_SAMPLES, n]
    power_buf = np.empty((2, n))
    energy_buf = np.empty((2, n), np.int64)
    for c in (None, curve):
        power, _, _ = element_power(whole, MODEL, c, 0.0, out=power_buf)
        energy = energy_uj(power, 1_000_000, out=energy_buf)
        pieces = []
        for a, b in itertools.pairwise(cuts):
            part = SampleBlock.build(
                b - a,
                1.0,
                voltage_v=whole.voltage_v[:, a:b],
                current_a=whole.current_a[:, a:b],
                cos_phi=whole.cos_phi[:, a:b],
            )
            p, _, _ = element_power(part, MODEL, c, 0.0)
            np.testing.assert_array_equal(p, power[:, a:b])
            pieces.append(energy_uj(p, 1_000_000))
        np.testing.assert_array_equal(np.concatenate(pieces, axis=1), energy)
