"""ANSI C12.1 accuracy points and averages (limits from the meter's spec; see c12.py).

On the twin target each point plays its constant load on a fresh meter, lets the boot
pass, then measures the registered energy over a window long enough for the
register's resolution; the expected energy is V·I·PF·t computed here. On the pulses
target each point is the window of the recording where the rig's load holds its
conditions (``pulses.py``). Rows go to the report's C12.1 table.
"""

from __future__ import annotations

import pytest

from hil_tests.c12 import (
    ACCURACY,
    AVERAGES,
    CREEP,
    LIMIT_AVERAGE_PCT,
    SETTLE_S,
    Point,
    Row,
    points,
    starting_power_w,
    weighted_error,
)
from hil_tests.pulses import Measured, measure
from hil_tests.report import Average, Collector
from hil_tests.targets import Target, open_meter
from twin.core import MeterModel

RESOLUTION_WH = 1.0  # energy_delivered_wh counts whole watt-hours


def _points() -> list[str]:
    # Keys only: the same list for every model (L2 only skips on a single-element one).
    return [p.key for p in points(200.0, 2)]


@pytest.mark.parametrize("key", _points())
async def test_c12_point(
    key: str, target: Target, collector: Collector, request: pytest.FixtureRequest
) -> None:
    if target.kind != "pulses":
        target.require_drive()
    model = MeterModel.parse(target.model)
    by_key = {p.key: p for p in points(model.ct_primary_a, model.elements)}
    if key not in by_key:
        pytest.skip(f"{key}: not applicable to the single-element {model.name}")
    point: Point = by_key[key]
    if target.kind == "pulses":
        measured = measure(point, request.getfixturevalue("pulse_run"), model)
        if isinstance(measured, str):
            pytest.skip(measured)
    else:
        measured = await _measure_registers(point, target, model)
    collector.rows[key] = measured.row
    assert measured.row.passed, measured.message


async def _measure_registers(point: Point, target: Target, model: MeterModel) -> Measured:
    els = model.elements
    start_w = starting_power_w(model.ct_primary_a, els)
    duration_s = point.duration_s(els, RESOLUTION_WH, start_w)
    async with open_meter(target, point.scenario()) as meter:
        await meter.elapse(SETTLE_S)
        before = await meter.read()
        await meter.elapse(duration_s)
        after = await meter.read()
    expected_wh = point.power_w(els) * duration_s / 3600.0
    registered_wh = float(after["energy_delivered_wh"] - before["energy_delivered_wh"])
    pulses = after["pulses_10wh"] - before["pulses_10wh"]
    if point.kind == ACCURACY:
        error_pct = 100.0 * (registered_wh - expected_wh) / expected_wh
        passed = abs(error_pct) <= point.limit_pct
        limit = f"±{point.limit_pct:g} %"
        message = f"{point.title}: error {error_pct:+.3f} % outside ±{point.limit_pct:g} %"
    elif point.kind == CREEP:
        passed = registered_wh == 0 and pulses == 0
        passed = passed and after["output_states"] == before["output_states"]
        limit = "0 Wh, 0 pulses"
        message = f"{point.title}: registered {registered_wh:g} Wh, {pulses} pulses at no load"
    else:
        passed = registered_wh > 0
        limit = "registers"
        message = f"{point.title}: nothing registered at the starting current"
    row = Row(
        point.key,
        point.title,
        point.conditions(els),
        duration_s,
        expected_wh,
        registered_wh,
        limit,
        passed,
    )
    return Measured(
        row, f"{message} (expected {expected_wh:.1f} Wh, registered {registered_wh:g} Wh)"
    )


@pytest.mark.parametrize("key", list(AVERAGES))
def test_c12_average(key: str, target: Target, collector: Collector) -> None:
    if target.kind != "pulses":
        target.require_drive()
    formula, weights = AVERAGES[key]
    missing = [k for k in weights if k not in collector.rows]
    if missing:
        pytest.skip(f"{formula}: point(s) {', '.join(missing)} not measured in this run")
    error_pct, bound_pct = weighted_error(collector.rows, weights)
    passed = abs(error_pct) + bound_pct <= LIMIT_AVERAGE_PCT
    average = Average(key, formula, error_pct, bound_pct, LIMIT_AVERAGE_PCT, passed)
    collector.averages.append(average)
    assert passed, (
        f"{formula}: {error_pct:+.3f} ± {bound_pct:.3f} % not within ±{LIMIT_AVERAGE_PCT:g} %"
    )
