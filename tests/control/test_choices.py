"""Meter settings chosen at start: layers, precedence, one check by the core's rules."""

from __future__ import annotations

import pytest

from twin.control import MeterChoices, chosen_demand, resolve
from twin.core import DemandMethod, MeterConfig, Reconfigure, RegistrationMode, SupplyConfig
from twin.errors import ConfigError


def test_names_and_register_values_both_choose() -> None:
    by_name = MeterChoices.parse(
        "x", {"demand_method": "thermal", "registration_mode": "BIDIRECTIONAL"}
    )
    by_value = MeterChoices.parse("x", {"demand_method": 2, "registration_mode": 2})
    assert by_name.demand == by_value.demand == Reconfigure(demand_method=2, registration_mode=2)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            {"demand_method": "rolling"},
            "m.demand_method: 'rolling' unknown; expected one of sliding (0)",
        ),
        ({"registration_mode": 7}, "m.registration_mode: 7 unknown"),
        ({"demand_interval_min": 61}, "m.demand_interval_min: demand_interval_min 61; expected"),
        ({"demand_subintervals": True}, "m.demand_subintervals: demand_subintervals True"),
        ({"hold_up_s": "a while"}, "m.hold_up_s: 'a while' invalid; expected a duration"),
        ({"power_up_v": "high"}, "m.power_up_v: 'high' invalid; expected volts"),
        ({"demand": 3}, "m.demand: unknown setting; expected one of demand_interval_min,"),
    ],
)
def test_a_bad_value_names_its_key(values: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        MeterChoices.parse("x", values, where="m.")
    assert expected in str(info.value)


def test_the_highest_layer_giving_a_setting_wins() -> None:
    cli = MeterChoices.parse("the command line", {"demand_interval_min": 30, "hold_up_s": "2s"})
    fleet = MeterChoices.parse(
        "fleet.yaml meters[0]", {"demand_interval_min": 20, "demand_method": "block"}
    )
    profile = MeterChoices.of(
        "profile 'p'", Reconfigure(demand_method=2, demand_max_window_h=0, registration_mode=1)
    )
    config = resolve(MeterConfig(), [cli, fleet, profile])
    assert config.demand.interval_min == 30  # command line over fleet file
    assert config.demand.method is DemandMethod.BLOCK  # fleet file over profile
    assert config.demand.max_window_h == 0  # only the profile gives it
    assert config.registration_mode is RegistrationMode.PER_ELEMENT_CLAMP
    assert config.demand.subintervals == 3  # nobody gives it: the model's default
    assert config.supply == SupplyConfig(hold_up_s=2.0)
    assert chosen_demand([cli, fleet, profile]) == Reconfigure(30, None, 1, 0, 1)
    assert chosen_demand([MeterChoices("nothing")]) is None
    assert resolve(MeterConfig(), []) == MeterConfig()


def test_settings_are_merged_before_the_check() -> None:
    # 10 min with the default 3 sub-intervals would be refused; with 5 from above it is not.
    fleet = MeterChoices.parse("fleet.yaml", {"demand_interval_min": 10})
    cli = MeterChoices.parse("the command line", {"demand_subintervals": 5})
    config = resolve(MeterConfig(), [cli, fleet])
    assert (config.demand.interval_min, config.demand.subintervals) == (10, 5)


def test_a_refused_combination_names_the_layers() -> None:
    fleet = MeterChoices.parse("fleet.yaml meters[1]", {"demand_interval_min": 10})
    profile = MeterChoices.of("profile 'p'", Reconfigure(demand_subintervals=4))
    with pytest.raises(ConfigError) as info:
        resolve(MeterConfig(), [fleet, profile])
    assert str(info.value) == (
        "meter settings (from fleet.yaml meters[1], profile 'p'): "
        "demand_subintervals 4 does not divide 10 min"
    )
    supply = MeterChoices.parse("the command line", {"power_down_v": 110})
    with pytest.raises(ConfigError, match=r"the command line\): supply power_down_v: 110.0"):
        resolve(MeterConfig(), [supply])
