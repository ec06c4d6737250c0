"""The meter settings a profile may choose: registration mode and demand.

Optional top-level keys, the same names as register block C, ``twin.control``'s
``set_demand`` and the fleet file: ``registration_mode`` (``sum_then_clamp``,
``per_element_clamp``, ``bidirectional``), ``demand_method`` (``sliding``,
``block``, ``thermal``), ``demand_interval_min``, ``demand_subintervals`` and
``demand_max_window_h`` (0 = until reset). Names are the core's enum members,
lowercase; the numbers are checked by the core's one rule set
(:func:`twin.core.validate_demand_settings`), whose words the messages quote. A
sub-interval count given without an interval (or the reverse) is checked against
the core's default for the other.

A profile's choices are a :class:`MeterSettings`; front ends apply them to the
meter's configuration with :meth:`MeterSettings.apply` (or to a running meter with
:meth:`MeterSettings.reconfigure`). Keys the profile leaves out keep the front
end's value.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from enum import IntEnum
from typing import Any, Final, TypeVar

from twin.core import (
    DemandConfig,
    DemandMethod,
    MeterConfig,
    Reconfigure,
    RegistrationMode,
    validate_demand_settings,
)
from twin.loadprofile.reader import Ctx, LineDict

SETTING_KEYS: Final = ("registration_mode", "demand_method", "demand_interval_min",
                       "demand_subintervals", "demand_max_window_h")  # fmt: skip

N = TypeVar("N", bound=IntEnum)


def enum_names(kind: type[IntEnum]) -> dict[str, Any]:
    """The profile's names of an enum of the core: its member names, lowercase."""
    return {m.name.lower(): m for m in kind}


@dataclass(frozen=True, slots=True)
class MeterSettings:
    """What a profile chooses for the meter; None: the profile leaves it to the front end."""

    registration_mode: RegistrationMode | None = None
    demand_method: DemandMethod | None = None
    demand_interval_min: int | None = None
    demand_subintervals: int | None = None
    demand_max_window_h: int | None = None

    def given(self) -> dict[str, object]:
        """The settings the profile gives, by key (enums as their profile names)."""
        out: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = value.name.lower() if isinstance(value, IntEnum) else value
        return out

    def apply(self, config: MeterConfig) -> MeterConfig:
        """``config`` with this profile's choices; ValueError (the core's words) if refused."""
        old = config.demand
        # DemandConfig validates the combination with the core's rules.
        demand = DemandConfig(
            interval_min=_pick(self.demand_interval_min, old.interval_min),
            subintervals=_pick(self.demand_subintervals, old.subintervals),
            method=_pick(self.demand_method, old.method),
            max_window_h=_pick(self.demand_max_window_h, old.max_window_h),
        )
        mode = _pick(self.registration_mode, config.registration_mode)
        return replace(config, demand=demand, registration_mode=mode)

    def reconfigure(self) -> Reconfigure | None:
        """The core command that applies these choices to a running meter (None: none given)."""
        if not self.given():
            return None
        return Reconfigure(
            demand_interval_min=self.demand_interval_min,
            demand_subintervals=self.demand_subintervals,
            demand_method=None if self.demand_method is None else int(self.demand_method),
            demand_max_window_h=self.demand_max_window_h,
            registration_mode=(
                None if self.registration_mode is None else int(self.registration_mode)
            ),
        )


T = TypeVar("T")


def _pick(value: T | None, default: T) -> T:
    return default if value is None else value


def _core_check(ctx: Ctx, note: str = "", **setting: int | None) -> None:
    """Run the core's rules; a refusal names the key, line and the core's reason."""
    try:
        validate_demand_settings(**setting)
    except ValueError as exc:
        ctx.fail(f"{exc}{note}")


def _name(ctx: Ctx, data: LineDict, key: str, kind: type[N]) -> N | None:
    if key not in data:
        return None
    names = enum_names(kind)
    member: N = names[ctx.at(key, data).choice(data[key], names)]
    return member


def _whole(ctx: Ctx, data: LineDict, key: str, arg: str) -> int | None:
    if key not in data:
        return None
    value = data[key]
    # The core reads the number; the key and line are ours.
    _core_check(Ctx(ctx.source, "", ctx.at(key, data).line), **{arg: value})
    return int(value)


def parse_settings(ctx: Ctx, data: LineDict) -> MeterSettings:
    """The optional setting keys of a profile's top-level mapping."""
    settings = MeterSettings(
        registration_mode=_name(ctx, data, "registration_mode", RegistrationMode),
        demand_method=_name(ctx, data, "demand_method", DemandMethod),
        demand_interval_min=_whole(ctx, data, "demand_interval_min", "interval_min"),
        demand_subintervals=_whole(ctx, data, "demand_subintervals", "subintervals"),
        demand_max_window_h=_whole(ctx, data, "demand_max_window_h", "max_window_h"),
    )
    interval, subs = settings.demand_interval_min, settings.demand_subintervals
    if interval is not None or subs is not None:
        default = DemandConfig()
        key = "demand_subintervals" if subs is not None else "demand_interval_min"
        other = "demand_interval_min" if interval is None else "demand_subintervals"
        note = "" if None not in (interval, subs) else f" (the default {other}; give {other} too)"
        _core_check(
            Ctx(ctx.source, "", ctx.at(key, data).line),
            note,
            interval_min=default.interval_min if interval is None else interval,
            subintervals=default.subintervals if subs is None else subs,
        )
    return settings
