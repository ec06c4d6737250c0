"""The mirror's configuration: frozen, validated once, every error naming the option."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from twin.core import DEFAULT_MODEL, DemandConfig, MeterModel
from twin.errors import ConfigError
from twin.loadprofile import Profile, load_profile
from twin.mirror.modbus_reference import ModbusMeterSpec
from twin.registers import WordOrder

#: The rolling window's default length in counts (the sequential ladder covers shorter).
DEFAULT_ROLLING_COUNTS: Final = 400
#: A reference's stated uncertainty above this is not a reference.
MAX_REFERENCE_UNCERTAINTY_PCT: Final = 5.0


@dataclass(frozen=True, slots=True)
class MirrorConfig:
    """What ``minimeter mirror`` was asked for.

    Attributes:
        source_url: The pulse source (``devices`` URL: ``adam6051://...``, ``virtual://...``).
        profile: The profile the rig applies (shipped name or path), for the cross-check.
        profile_seed: Its noise seed (default: the profile's own).
        profile_offset_s: Profile time at mirror time 0.
        reference_url: A reference meter read over Modbus (``modbus-meter://...``), the
            other kind of cross-check load; parsed into ``reference_meter``.
        reference_uncertainty_pct: The rig's stated accuracy applying the profile, in %
            (a reference meter's default, when its URL has no ``uncertainty``).
        rolling_counts / rolling_s: The rolling window (last N counts or T seconds).
        sample_s: Sample period of the reference's core.
        refresh_s: Wall seconds between image refreshes while no reading comes (None: never).
    """

    source_url: str
    model: str = DEFAULT_MODEL
    serial_number: str = "MIRROR0001"
    unit: int = 1
    profile: str | None = None
    profile_seed: int | None = None
    profile_offset_s: float = 0.0
    reference_url: str | None = None
    reference_uncertainty_pct: float = 0.0
    rolling_counts: int | None = DEFAULT_ROLLING_COUNTS
    rolling_s: float | None = None
    sample_s: float = 1.0
    refresh_s: float | None = 1.0
    state_dir: Path | None = None
    word_order: WordOrder = WordOrder.BIG
    sunspec: bool = True
    demand: DemandConfig = field(default_factory=DemandConfig)
    reference_meter: ModbusMeterSpec | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if not self.source_url:
            raise ConfigError("--source: empty; expected a pulse source URL, e.g. virtual://bench")
        try:
            MeterModel.parse(self.model)
        except ValueError as exc:
            raise ConfigError(f"--model {self.model}: {exc}") from None
        u = self.reference_uncertainty_pct
        if not (math.isfinite(u) and 0 <= u <= MAX_REFERENCE_UNCERTAINTY_PCT):
            raise ConfigError(
                f"--reference-uncertainty {u}: expected 0 to {MAX_REFERENCE_UNCERTAINTY_PCT} %"
            )
        if self.reference_url is not None:
            if self.profile is not None:
                raise ConfigError("--profile and --reference exclude each other: one reference")
            spec = ModbusMeterSpec.parse(self.reference_url, uncertainty_pct=u)
            object.__setattr__(self, "reference_meter", spec)
        if self.rolling_counts is not None and self.rolling_counts < 1:
            raise ConfigError(f"--rolling {self.rolling_counts}: expected at least 1 count")
        if self.rolling_s is not None and not (
            math.isfinite(self.rolling_s) and self.rolling_s > 0
        ):
            raise ConfigError(f"--rolling-time {self.rolling_s}: expected seconds > 0")
        if not (math.isfinite(self.sample_s) and 0.001 <= self.sample_s <= 60):
            raise ConfigError(f"--sample {self.sample_s}: expected 0.001 to 60 s")
        if not math.isfinite(self.profile_offset_s) or self.profile_offset_s < 0:
            raise ConfigError(f"--profile-offset {self.profile_offset_s}: expected seconds >= 0")
        if not 1 <= self.unit <= 247:
            raise ConfigError(f"--unit {self.unit}: expected 1..247")

    def load_profile(self) -> Profile:
        if self.profile is None:
            raise ConfigError("no --profile given")
        return load_profile(self.profile)
