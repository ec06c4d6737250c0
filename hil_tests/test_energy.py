"""Energy: never decreases, and agrees with the power the meter reports over a window.

On a drivable target the load changes in steps (including a net export, which must
not move the delivered register back); on a Modbus target the device's own load plays
while the suite follows its clock (``uptime_s``). On the pulses target there is no
power register: the pulses' energy is cross-checked against the model of the rig's
load over every window of the mirror's sequential test, within the class bound.
"""

from __future__ import annotations

import pytest

from hil_tests.pulses import cross_check
from hil_tests.scenario import Scenario, Segment
from hil_tests.targets import Target, open_meter
from twin.core import MeterModel
from twin.hil import Load
from twin.mirror import Verdict

STEPS = Scenario(
    "steps",
    (
        Segment(600, Load(120, 30), Load(120, 10)),
        Segment(600, Load(120, 5, 0.5), Load(120, 0)),
        Segment(600, Load(120, 0), Load(120, 0)),
        Segment(86_400, Load(120, 50, 0.95), Load(121, 40, 0.9, True)),
    ),
)
MIN_COUNTS = 3  # a load worth this many counts must show at least two marks
ENERGY = ("energy_delivered_wh", "energy_l1_wh", "energy_l2_wh", "pulses_10wh", "pulses_100wh")


async def test_energy_never_decreases(target: Target) -> None:
    target.require_registers()
    async with open_meter(target, STEPS if target.drivable else None) as meter:
        last = await meter.read()
        for _ in range(12):
            await meter.elapse(200 if target.drivable else 1)
            now = await meter.read()
            for name in ENERGY:
                assert now[name] >= last[name], f"{name} went back: {last[name]} -> {now[name]}"
            last = now


async def test_energy_consistent_with_power(target: Target, request: pytest.FixtureRequest) -> None:
    """Δenergy lies between the smallest and largest power seen × Δt (plus resolution)."""
    if target.kind == "pulses":
        run = request.getfixturevalue("pulse_run")
        check, model_wh = cross_check(run, MeterModel.parse(target.model))
        expected_counts = int(model_wh // run.wh_per_count)
        assert len(run.marks) >= 2 or expected_counts < MIN_COUNTS, (
            f"the load should have given {expected_counts} counts; the source saw "
            f"{len(run.marks)} reading(s) with counts"
        )
        figures = (
            f"registration {check.registration_pct:.3f} ± {check.bound_pct:.3f} % over "
            f"{check.counts} counts in {check.window_s:g} s"
        )
        if check.verdict is Verdict.UNDECIDED:
            pytest.skip(f"the load is too short to decide: {figures}")
        assert check.verdict is Verdict.WITHIN_CLASS, f"{check.verdict.name}: {figures}"
        return
    window_s, polls = (3600.0, 12) if target.drivable else (20.0, 20)
    scenario = Scenario.constant("power", Load(120, 30, 0.9), Load(119, 25, 0.8, True))
    async with open_meter(target, scenario if target.drivable else None) as meter:
        await meter.elapse(10)
        first = await meter.read()
        powers = [first["power_w"]]
        for _ in range(polls):
            await meter.elapse(window_s / polls)
            powers.append((await meter.read())["power_w"])
        last = await meter.read()
    powers.append(last["power_w"])
    dt_s = last["uptime_s"] - first["uptime_s"]
    assert dt_s > 0, "uptime did not move over the window"
    slack_s = 0 if target.drivable else 2  # uptime_s is whole seconds on a live device
    delta_wh = last["energy_delivered_wh"] - first["energy_delivered_wh"]
    low = max(min(powers), 0.0) * max(dt_s - slack_s, 0) / 3600.0 - 1
    high = max(max(powers), 0.0) * (dt_s + slack_s) / 3600.0 + 1
    assert low <= delta_wh <= high, (delta_wh, low, high, dt_s, min(powers), max(powers))
    if target.drivable:
        true_w = 120 * 30 * 0.9 + 119 * 25 * 0.8
        assert abs(delta_wh - true_w * window_s / 3600.0) <= 1.0
