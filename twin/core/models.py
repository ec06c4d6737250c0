"""Model catalog and meter configuration.

A meter is a model name from the catalog (``MMD-200A``, ``MMS-100A``, ``MMU-0.1A:400``
...) plus options (registration mode, demand method, accuracy). Everything is
parsed once into frozen, validated objects; the core never sees raw strings.

Names: ``<family>-<ct class>[:<ct primary A>][/<counter Wh>]``. Family MMS is
single element, MMD dual element, MMU dual element without the +12 VDC output.
CT classes 100A and 200A are primary rated (max 110 A / 220 A); 0.1A and 0.2A
are secondary rated and take a CT primary (default 100 A or 200 A). The counter
output defaults to 1000 Wh per count; ``/100`` selects the 0.1 kWh counter.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from enum import IntEnum

from twin.core.limits import (
    CALIBRATION_ERROR_RANGE_PCT,
    DEMAND_INTERVAL_RANGE_MIN,
    DEMAND_MAX_WINDOW_RANGE_H,
    DEMAND_SUBINTERVALS_RANGE,
    HOLD_UP_RANGE_S,
    MAX_CT_PRIMARY_A,
    SEED_MAX,
    SUPPLY_HOLD_UP_S,
    SUPPLY_MAX_V,
    SUPPLY_POWER_DOWN_V,
    SUPPLY_POWER_UP_V,
    VOLTAGE_MISSING_BELOW_V,
)


class Family(IntEnum):
    MMS = 1
    MMD = 2
    MMU = 3


class RegistrationMode(IntEnum):
    SUM_THEN_CLAMP = 0
    PER_ELEMENT_CLAMP = 1
    BIDIRECTIONAL = 2


class DemandMethod(IntEnum):
    SLIDING = 0
    BLOCK = 1
    THERMAL = 2


_NAME = re.compile(
    r"^(?P<family>MMS|MMD|MMU)-(?P<ct>100A|200A|0\.1A|0\.2A)"
    r"(?::(?P<primary>\d+))?(?:/(?P<counter>100|1000))?$"
)


@dataclass(frozen=True, slots=True)
class MeterModel:
    """One catalog entry, resolved from its name."""

    name: str
    family: Family
    elements: int
    ct_primary_a: int
    ct_secondary_ma: int  # 0 for primary-rated models
    counter_wh_per_count: int
    has_12vdc_output: bool

    @property
    def max_current_a(self) -> float:
        """Maximum rated primary current: 110 % of the CT rating."""
        return 1.1 * self.ct_primary_a

    @property
    def test_amperes_a(self) -> float:
        """C12.1 test amperes: TA 30 for a 200 A class, scaled for others."""
        return 0.15 * self.ct_primary_a

    @property
    def starting_current_a(self) -> float:
        """Below this current an element registers nothing (0.1 % of TA)."""
        return 0.001 * self.test_amperes_a

    @property
    def catalog_number(self) -> str:
        return self.name

    @classmethod
    def parse(cls, name: str) -> MeterModel:
        m = _NAME.match(name.strip()) if isinstance(name, str) else None
        if m is None:
            raise ValueError(
                f"model: unknown model name {name!r}; expected <MMS|MMD|MMU>-<100A|200A|0.1A|0.2A>"
                "[:<CT primary A>][/<100|1000 Wh per count>], e.g. MMD-200A"
            )
        family = Family[m["family"]]
        ct = m["ct"]
        if ct in ("100A", "200A"):
            if m["primary"] is not None:
                raise ValueError(
                    f"model: {name!r} is primary rated; a CT primary (':N') applies only "
                    "to the 0.1A and 0.2A secondary-rated models"
                )
            primary, secondary_ma = int(ct[:-1]), 0
        else:
            secondary_ma = 100 if ct == "0.1A" else 200
            primary = int(m["primary"]) if m["primary"] else secondary_ma
            if not 1 <= primary <= MAX_CT_PRIMARY_A:
                raise ValueError(
                    f"model: CT primary {primary} A out of range; expected 1..{MAX_CT_PRIMARY_A} A"
                )
        counter = int(m["counter"]) if m["counter"] else 1000
        return cls(
            name=name.strip(),
            family=family,
            elements=1 if family is Family.MMS else 2,
            ct_primary_a=primary,
            ct_secondary_ma=secondary_ma,
            counter_wh_per_count=counter,
            has_12vdc_output=family is not Family.MMU,
        )


CATALOG: tuple[str, ...] = tuple(
    f"{fam}-{ct}" for fam in ("MMS", "MMD", "MMU") for ct in ("100A", "200A", "0.1A", "0.2A")
)
DEFAULT_MODEL = "MMD-200A"


def _setting(name: str, value: object, lo: int, hi: int, extra: str = "") -> int:
    expected = f"{extra}{lo}..{hi}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} {value!r}; expected an integer {expected}")
    if not (lo <= value <= hi or (extra and value == 0)):
        raise ValueError(f"{name} {value}; expected {expected}")
    return value


def validate_demand_settings(
    interval_min: int | None = None,
    subintervals: int | None = None,
    method: int | None = None,
    max_window_h: int | None = None,
    registration_mode: int | None = None,
) -> None:
    """The rules of register block C 201-205, defined once; None skips a setting.

    Raises ValueError naming the setting and what was expected. Modbus writes,
    ``twin.control`` and :class:`DemandConfig` all check through here, so a bad
    setting is refused with the same words on every channel.
    """
    if interval_min is not None:
        _setting("demand_interval_min", interval_min, *DEMAND_INTERVAL_RANGE_MIN)
    if subintervals is not None:
        _setting("demand_subintervals", subintervals, *DEMAND_SUBINTERVALS_RANGE)
        if interval_min is not None and interval_min % subintervals:
            raise ValueError(
                f"demand_subintervals {subintervals} does not divide {interval_min} min"
            )
    if method is not None:
        _setting("demand_method", method, 0, len(DemandMethod) - 1)
    if max_window_h is not None:
        _setting("demand_max_window_h", max_window_h, *DEMAND_MAX_WINDOW_RANGE_H, extra="0 or ")
    if registration_mode is not None:
        _setting("registration_mode", registration_mode, 0, len(RegistrationMode) - 1)


@dataclass(frozen=True, slots=True)
class DemandConfig:
    """Demand settings (register block C, 201-204)."""

    interval_min: int = 15
    subintervals: int = 3
    method: DemandMethod = DemandMethod.SLIDING
    max_window_h: int = 24  # 0 = until reset

    def __post_init__(self) -> None:
        validate_demand_settings(
            self.interval_min, self.subintervals, self.method, self.max_window_h
        )
        object.__setattr__(self, "method", DemandMethod(self.method))

    @property
    def subinterval_us(self) -> int:
        return self.interval_min * 60_000_000 // self.subintervals

    def as_tuple(self) -> tuple[int, int, int, int]:
        """(interval_min, subintervals, method, max_window_h), as NvState stores it."""
        return (self.interval_min, self.subintervals, int(self.method), self.max_window_h)


@dataclass(frozen=True, slots=True)
class AccuracyConfig:
    """Accuracy model. Ideal by default.

    ``seed`` draws a per-meter error curve inside the class limits (±0.5 % at PF 1,
    ±0.75 % at PF 0.5, 2-200 A); ``calibration_error_pct`` adds a fixed error on
    top, e.g. to make a negative test fail on purpose.
    """

    seed: int | None = None
    calibration_error_pct: float = 0.0

    def __post_init__(self) -> None:
        if self.seed is not None and (
            isinstance(self.seed, bool)
            or not isinstance(self.seed, int)
            or not 0 <= self.seed <= SEED_MAX
        ):
            raise ValueError(
                f"accuracy seed: {self.seed!r} invalid; expected an integer 0..{SEED_MAX}"
            )
        lo, hi = CALIBRATION_ERROR_RANGE_PCT
        if not (
            math.isfinite(self.calibration_error_pct) and lo <= self.calibration_error_pct <= hi
        ):
            raise ValueError(
                f"calibration_error_pct: {self.calibration_error_pct} out of range; "
                f"expected {lo:g}..{hi:g} %"
            )


@dataclass(frozen=True, slots=True)
class SupplyConfig:
    """The meter's supply: power-up/power-down thresholds (V) and hold-up time (s).

    Defaults and their sources: ``twin.core.limits`` (SUPPLY_POWER_UP_V ...).
    """

    power_up_v: float = SUPPLY_POWER_UP_V
    power_down_v: float = SUPPLY_POWER_DOWN_V
    hold_up_s: float = SUPPLY_HOLD_UP_S

    def __post_init__(self) -> None:
        if not (
            math.isfinite(self.power_up_v)
            and VOLTAGE_MISSING_BELOW_V <= self.power_up_v <= SUPPLY_MAX_V
        ):
            raise ValueError(
                f"supply power_up_v: {self.power_up_v} out of range; expected "
                f"{VOLTAGE_MISSING_BELOW_V:g}..{SUPPLY_MAX_V:g} V"
            )
        if not (
            math.isfinite(self.power_down_v)
            and VOLTAGE_MISSING_BELOW_V <= self.power_down_v <= self.power_up_v
        ):
            raise ValueError(
                f"supply power_down_v: {self.power_down_v} out of range; expected "
                f"{VOLTAGE_MISSING_BELOW_V:g}..{self.power_up_v:g} V (at most power_up_v)"
            )
        lo, hi = HOLD_UP_RANGE_S
        if not (math.isfinite(self.hold_up_s) and lo <= self.hold_up_s <= hi):
            raise ValueError(
                f"supply hold_up_s: {self.hold_up_s} out of range; expected {lo:g}..{hi:g} s"
            )

    @property
    def hold_up_us(self) -> int:
        return round(self.hold_up_s * 1e6)


@dataclass(frozen=True, slots=True)
class MeterConfig:
    model: MeterModel = field(default_factory=lambda: MeterModel.parse(DEFAULT_MODEL))
    serial_number: str = "MM00000001"
    registration_mode: RegistrationMode = RegistrationMode.SUM_THEN_CLAMP
    demand: DemandConfig = field(default_factory=DemandConfig)
    accuracy: AccuracyConfig = field(default_factory=AccuracyConfig)
    supply: SupplyConfig = field(default_factory=SupplyConfig)
    boot_s: float = 5.0
    lcd_screen_s: float = 5.0
    firmware_version: str = "twin-1.0"

    def __post_init__(self) -> None:
        object.__setattr__(self, "registration_mode", RegistrationMode(self.registration_mode))
        if not 0 <= self.boot_s <= 60:
            raise ValueError(f"boot_s: {self.boot_s} out of range; expected 0..60 s")
        if not 1 <= self.lcd_screen_s <= 60:
            raise ValueError(f"lcd_screen_s: {self.lcd_screen_s} out of range; expected 1..60 s")
        if not (1 <= len(self.serial_number) <= 32 and self.serial_number.isascii()):
            raise ValueError(
                f"serial_number: {self.serial_number!r} invalid; expected 1..32 ASCII characters"
            )
