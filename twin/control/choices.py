"""The meter settings a user chooses at start, and which choice wins.

Theory of operation
-------------------
Every front end lets the user choose the same settings of a meter, under the same
names as register block C and ``set_demand`` (``registration_mode``,
``demand_method``, ``demand_interval_min``, ``demand_subintervals``,
``demand_max_window_h``) plus its supply (``power_up_v``, ``power_down_v``,
``hold_up_s``). Each source of choices is one :class:`MeterChoices` layer:

1. the command line (``--registration-mode``, ``--demand-method``,
   ``--demand-interval``, ``--demand-subintervals``, ``--demand-max-window``,
   ``--power-up``, ``--power-down``, ``--hold-up``);
2. a fleet file: a meter's own keys, then the file's ``defaults``;
3. the profile's own keys (``profile.meter_settings``, see docs/profiles.md);
4. the model's defaults (:class:`twin.core.MeterConfig`).

:func:`resolve` takes the layers highest first; for each setting the first layer
that gives it wins, and the combination is checked once by the core's rules
(:func:`twin.core.validate_demand_settings` through ``DemandConfig``, and
``SupplyConfig``), so a refusal quotes the core's words and names the layers the
settings came from. Settings are merged before the check: a fleet file's
``demand_interval_min: 10`` with ``--demand-subintervals 5`` is 10/5, never the
intermediate 10/3.

Names: the enums are chosen by their lowercase member names (``sliding``,
``per_element_clamp``), as in profiles, or by their register value (0, 1, 2).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from enum import IntEnum
from typing import Final

from twin.core import (
    DemandConfig,
    DemandMethod,
    MeterConfig,
    Reconfigure,
    RegistrationMode,
    SupplyConfig,
    validate_demand_settings,
)
from twin.errors import ConfigError
from twin.loadprofile import Profile
from twin.units import parse_duration_s

#: The block-C settings, by the names of Reconfigure / set_demand / profiles.
DEMAND_KEYS: Final = tuple(f.name for f in fields(Reconfigure))
SUPPLY_KEYS: Final = ("power_up_v", "power_down_v", "hold_up_s")
CHOICE_KEYS: Final = (*DEMAND_KEYS, *SUPPLY_KEYS)
_ENUMS: Final[dict[str, type[IntEnum]]] = {
    "registration_mode": RegistrationMode,
    "demand_method": DemandMethod,
}


def enum_choices(key: str) -> list[str]:
    """The names a setting's enum is chosen by (``sliding``, ``block``, ``thermal``)."""
    return [m.name.lower() for m in _ENUMS[key]]


@dataclass(frozen=True, slots=True)
class MeterChoices:
    """One layer of choices; None leaves a setting to the layers below."""

    source: str  # what the user gave, for messages: "command line", "fleet.yaml meters[2]"
    demand: Reconfigure = field(default_factory=Reconfigure)
    power_up_v: float | None = None
    power_down_v: float | None = None
    hold_up_s: float | None = None

    def given(self) -> dict[str, int | float]:
        """The settings this layer gives, by key."""
        out: dict[str, int | float] = {
            k: getattr(self.demand, k) for k in DEMAND_KEYS if getattr(self.demand, k) is not None
        }
        out.update({k: getattr(self, k) for k in SUPPLY_KEYS if getattr(self, k) is not None})
        return out

    @classmethod
    def parse(
        cls,
        source: str,
        values: Mapping[str, object],
        where: str = "",
        names: Mapping[str, str] | None = None,
    ) -> MeterChoices:
        """A layer from raw values by key (a fleet file's, the command line's); None
        values are skipped. Messages name a key as ``where`` + key, or as ``names[key]``
        (an option, e.g. ``--demand-interval``)."""
        unknown = sorted(str(k) for k in values if k not in CHOICE_KEYS)
        if unknown:
            raise ConfigError(
                f"{where}{unknown[0]}: unknown setting; expected one of {', '.join(CHOICE_KEYS)}"
            )
        demand: dict[str, int] = {}
        supply: dict[str, float] = {}
        for key, raw in values.items():
            if raw is None:
                continue
            label = (names or {}).get(key, f"{where}{key}")
            if key in _ENUMS:
                demand[key] = _enum_value(label, key, raw)
            elif key in DEMAND_KEYS:
                demand[key] = _whole(label, key, raw)
            elif key == "hold_up_s":
                supply[key] = _seconds(label, raw)
            else:
                supply[key] = _volts(label, raw)
        return cls(source, Reconfigure(**demand), **supply)

    @classmethod
    def of(cls, source: str, demand: Reconfigure | None) -> MeterChoices:
        """A layer of block-C settings only (a profile's ``meter_settings.reconfigure()``)."""
        return cls(source, demand or Reconfigure())


def profile_choices(profile: Profile) -> MeterChoices:
    """The profile's own layer: its ``registration_mode`` and ``demand_*`` keys."""
    return MeterChoices.of(f"profile {profile.name!r}", profile.meter_settings.reconfigure())


def chosen_demand(layers: Sequence[MeterChoices]) -> Reconfigure | None:
    """The block-C settings the layers give (highest first wins), None when none.

    A restored meter keeps the block C it was saved with (Modbus writes included)
    unless the start chooses settings: then these, and only these, are applied.
    """
    chosen: dict[str, int] = {}
    for layer in layers:
        for key in DEMAND_KEYS:
            value = getattr(layer.demand, key)
            if value is not None:
                chosen.setdefault(key, value)
    return Reconfigure(**chosen) if chosen else None


def resolve(config: MeterConfig, layers: Sequence[MeterChoices]) -> MeterConfig:
    """``config`` with the layers' choices (highest first); ConfigError when the core
    refuses the combination, naming the layers that gave the settings."""
    chosen: dict[str, int | float] = {}
    sources: list[str] = []
    for layer in layers:
        given = {k: v for k, v in layer.given().items() if k not in chosen}
        if given:
            chosen.update(given)
            sources.append(layer.source)
    if not chosen:
        return config
    d = config.demand

    def pick(key: str, default: int) -> int:
        value = chosen.get(key, default)
        assert isinstance(value, int)  # parse() made every demand setting an int
        return value

    interval = pick("demand_interval_min", d.interval_min)
    subintervals = pick("demand_subintervals", d.subintervals)
    method = pick("demand_method", int(d.method))
    window = pick("demand_max_window_h", d.max_window_h)
    mode = pick("registration_mode", int(config.registration_mode))
    s = config.supply
    try:
        validate_demand_settings(interval, subintervals, method, window, mode)
        supply = SupplyConfig(
            power_up_v=float(chosen.get("power_up_v", s.power_up_v)),
            power_down_v=float(chosen.get("power_down_v", s.power_down_v)),
            hold_up_s=float(chosen.get("hold_up_s", s.hold_up_s)),
        )
    except ValueError as exc:
        raise ConfigError(f"meter settings (from {', '.join(sources)}): {exc}") from None
    return replace(
        config,
        registration_mode=RegistrationMode(mode),
        demand=DemandConfig(interval, subintervals, DemandMethod(method), window),
        supply=supply,
    )


def _enum_value(where: str, key: str, raw: object) -> int:
    kind = _ENUMS[key]
    if isinstance(raw, str) and raw.strip().lower() in enum_choices(key):
        return int(kind[raw.strip().upper()])
    if isinstance(raw, int) and not isinstance(raw, bool) and raw in {int(m) for m in kind}:
        return raw
    names = ", ".join(f"{m.name.lower()} ({int(m)})" for m in kind)
    raise ConfigError(f"{where}: {raw!r} unknown; expected one of {names}")


def _whole(where: str, key: str, raw: object) -> int:
    value: object = raw
    if isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
        value = int(raw)
    try:  # the core's rule for this one setting, in its words
        validate_demand_settings(**{_CORE_ARG[key]: value})  # type: ignore[arg-type]
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    assert isinstance(value, int)
    return value


_CORE_ARG: Final = {
    "demand_interval_min": "interval_min",
    "demand_subintervals": "subintervals",
    "demand_method": "method",
    "demand_max_window_h": "max_window_h",
    "registration_mode": "registration_mode",
}


def _seconds(where: str, raw: object) -> float:
    value = parse_duration_s(raw)
    if value is None or not math.isfinite(value):
        raise ConfigError(f"{where}: {raw!r} invalid; expected a duration like 100ms, 0.5, 2s")
    return value


def _volts(where: str, raw: object) -> float:
    value: object = raw
    if isinstance(raw, str):
        text = raw.strip().removesuffix("V").removesuffix("v").strip()
        try:
            value = float(text)
        except ValueError:
            value = None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{where}: {raw!r} invalid; expected volts, e.g. 96 or 96V")
    return float(value)
