"""The meter-settings options `run` and `simulate` share, and the layer they make.

``--registration-mode``, ``--demand-method``, ``--demand-interval``,
``--demand-subintervals``, ``--demand-max-window``, ``--power-up``, ``--power-down``
and ``--hold-up`` are the command line's :class:`~twin.control.MeterChoices` layer:
above a fleet file's keys and the profile's own, above the model's defaults (which
the help shows, taken from the core's configuration objects, never restated).
"""

from __future__ import annotations

import argparse

from twin.control import MeterChoices, enum_choices
from twin.core import DemandConfig, MeterConfig, SupplyConfig

_ABOVE = "the fleet file's or the profile's, else"


def add_meter_options(parser: argparse.ArgumentParser, *, fleet: bool = True) -> None:
    """Add the options to ``parser`` (``fleet``: mention fleet files in the help)."""
    above = _ABOVE if fleet else "the profile's, else"
    demand, meter, supply = DemandConfig(), MeterConfig(), SupplyConfig()
    g = parser.add_argument_group(
        "meter settings (over a fleet file's and the profile's; see README)"
        if fleet
        else "meter settings (over the profile's; see README)"
    )
    a = g.add_argument
    a(
        "--registration-mode",
        choices=enum_choices("registration_mode"),
        help=f"how energy registers (default: {above} {meter.registration_mode.name.lower()})",
    )
    a(
        "--demand-method",
        choices=enum_choices("demand_method"),
        help=f"demand method (default: {above} {demand.method.name.lower()})",
    )
    a(
        "--demand-interval",
        type=int,
        metavar="MIN",
        help=f"demand interval in minutes (default: {above} {demand.interval_min} min)",
    )
    a(
        "--demand-subintervals",
        type=int,
        metavar="N",
        help=f"sub-intervals of a sliding demand interval (default: {above} {demand.subintervals})",
    )
    a(
        "--demand-max-window",
        type=int,
        metavar="H",
        help=f"hours the maximum demand is held, 0 = until reset (default: {above} "
        f"{demand.max_window_h} h)",
    )
    a(
        "--power-up",
        metavar="V",
        help=f"supply voltage that powers the meter up (default: {supply.power_up_v:g} V)",
    )
    a(
        "--power-down",
        metavar="V",
        help=f"supply voltage below which a dip starts (default: {supply.power_down_v:g} V)",
    )
    a(
        "--hold-up",
        metavar="DURATION",
        help="how long the meter rides through a dip, e.g. 100ms, 0.5 "
        f"(default: {supply.hold_up_s * 1000:g}ms)",
    )


def choices_from_args(args: argparse.Namespace) -> MeterChoices | None:
    """The command line's layer (None when no setting was given)."""
    values = {
        "registration_mode": args.registration_mode,
        "demand_method": args.demand_method,
        "demand_interval_min": args.demand_interval,
        "demand_subintervals": args.demand_subintervals,
        "demand_max_window_h": args.demand_max_window,
        "power_up_v": args.power_up,
        "power_down_v": args.power_down,
        "hold_up_s": args.hold_up,
    }
    given = {k: v for k, v in values.items() if v is not None}
    if not given:
        return None
    return MeterChoices.parse("the command line", given, names=OPTION_NAMES)


#: The option of each setting, for messages.
OPTION_NAMES = {
    "registration_mode": "--registration-mode",
    "demand_method": "--demand-method",
    "demand_interval_min": "--demand-interval",
    "demand_subintervals": "--demand-subintervals",
    "demand_max_window_h": "--demand-max-window",
    "power_up_v": "--power-up",
    "power_down_v": "--power-down",
    "hold_up_s": "--hold-up",
}
