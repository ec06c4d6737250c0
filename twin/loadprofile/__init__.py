"""Load profiles: the YAML scenarios that drive a meter, validated once, sampled purely.

This package owns the profile schema (segments, events, noise; see docs/profiles.md),
finding and reading profile files (shipped by name or by path, the one place with
file IO), and the :class:`Sampler` that turns a :class:`Profile` into the core's
sample blocks as a pure function of time, plus the profile's command events for
:func:`twin.drive.drive` to apply. Invalid files raise
:class:`~twin.errors.ProfileError` naming file, line, key path and what was expected.
"""

from twin.loadprofile.events import EventKind, ProfileEvent
from twin.loadprofile.noise import NoiseQuantity, NoiseSpec
from twin.loadprofile.sampler import Profile, Sampler
from twin.loadprofile.schema import SCHEMA_VERSION, ProfileSpec, SegmentKind
from twin.loadprofile.settings import MeterSettings
from twin.loadprofile.shipped import (
    DEFAULT_PROFILE,
    load_profile,
    shipped_names,
    shipped_profiles,
)
from twin.loadprofile.wiring import SERVICES, Wiring

__all__ = [
    "DEFAULT_PROFILE",
    "SCHEMA_VERSION",
    "SERVICES",
    "EventKind",
    "MeterSettings",
    "NoiseQuantity",
    "NoiseSpec",
    "Profile",
    "ProfileEvent",
    "ProfileSpec",
    "Sampler",
    "SegmentKind",
    "Wiring",
    "load_profile",
    "shipped_names",
    "shipped_profiles",
]
