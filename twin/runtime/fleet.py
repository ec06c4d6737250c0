"""Fleets: many meters served from one process, from `--meters N` or a fleet file.

Theory of operation
-------------------
A single meter is a fleet of one: the runtime always serves a :class:`FleetSpec`.
``minimeter run`` builds it with :func:`uniform_fleet` (``--meters N``: unit ids
``--unit``..``--unit``+N-1 on one port, serials counted up from ``--serial-number``) or
:func:`load_fleet` (``--fleet FILE``). A fleet file is YAML, parsed once with
``read_fleet_yaml`` (twin.runtime.fleetfile: bounded, libyaml's safe loader when
present) into frozen objects::

    fleet: 1                       # schema version
    defaults:                      # optional; any meter key but unit
      model: MMD-200A
      profile: default
    unknown_unit: exception        # exception (0x0B) | silent
    meters:
      - {unit: 1, port: 5020, model: MMD-200A, profile: residential-day, seed: 1}
      - {unit: 2, port: 5020, word_order: little, on_power_loss: silent,
         faults: ["delay:ms=100", {kind: exception, code: 4, fc: 3}]}
      - {unit: 1, port: 5021, model: MMS-100A, serial: BENCH-7}

Every meter needs a unit id and a TCP port, given per meter or in ``defaults``; the
command line's ``--port`` is never a fallback (a forgotten port is an error, not a
silent 5020). An RTU-only fleet (``minimeter run --no-tcp --serial DEV --fleet F``,
:func:`without_tcp`) needs no ports: its meters share the one unit-id space of the
line, so their unit ids must be unique across the whole file.

Each meter gets its own serial (given, or ``MM`` + port + unit id, port 0 when it has
none), seed (given, or the profile's seed plus the meter's position in the fleet, so
meters on one noisy profile differ) and store record (keyed by serial). A meter's
faults apply to that meter only: its unit id on its TCP port and on the RTU line
(port 0, see :data:`twin.modbus.RTU_PORT`). Errors name the file, the key path and
what was expected.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import Enum, StrEnum
from typing import Any, TypeVar

from twin.control import CHOICE_KEYS, MeterChoices, profile_choices, resolve
from twin.core import DEFAULT_MODEL, AccuracyConfig, MeterConfig, MeterModel
from twin.errors import ConfigError
from twin.loadprofile import DEFAULT_PROFILE, Profile
from twin.modbus.endpoint import UnknownUnit
from twin.modbus.faults import FaultSpec, fault_from_mapping, parse_fault
from twin.registers import WordOrder
from twin.runtime.fleetfile import read_fleet_yaml
from twin.units import SEED_MAX, SEED_MIN

FLEET_SCHEMA = 1
MAX_METERS = 10_000
_METER_KEYS = (
    "unit", "port", "model", "profile", "seed", "serial", "word_order", "on_power_loss", "faults",
    *CHOICE_KEYS,
)  # fmt: skip
_TOP_KEYS = ("fleet", "defaults", "unknown_unit", "meters")
_DIGITS = re.compile(r"^(.*?)(\d*)$")
_E = TypeVar("_E", bound=Enum)


class OnPowerLoss(StrEnum):
    """What a meter's comms do while it is unpowered."""

    ANSWER = "answer"  # frozen registers, status bit 13
    SILENT = "silent"  # no answer (its comms have no supply)


@dataclass(frozen=True, slots=True)
class MeterSpec:
    """One meter of a fleet, validated."""

    unit: int
    port: int | None  # None: no TCP (RTU only)
    model: MeterModel
    profile: str
    serial: str
    seed: int | None = None  # None: the profile's seed + this meter's position
    word_order: WordOrder = WordOrder.BIG
    on_power_loss: OnPowerLoss = OnPowerLoss.ANSWER
    faults: tuple[FaultSpec, ...] = ()
    # the fleet file's settings for this meter (its own keys over the file's defaults)
    choices: MeterChoices | None = None
    # its place in the whole fleet (error curve accuracy_seed + position); None: its
    # index in the fleet it is in. A shard pins it, so a meter is the same in every shard.
    position: int | None = None


@dataclass(frozen=True, slots=True)
class FleetSpec:
    meters: tuple[MeterSpec, ...]
    unknown_unit: UnknownUnit = UnknownUnit.EXCEPTION

    @property
    def ports(self) -> list[int]:
        return sorted({m.port for m in self.meters if m.port is not None})


def default_serial(port: int, unit: int) -> str:
    return f"MM{port:05d}{unit:03d}"


def counted_serial(base: str, offset: int) -> str:
    """``base`` with its trailing number counted up by ``offset`` (width kept)."""
    if offset == 0:
        return base
    m = _DIGITS.match(base)
    assert m is not None  # the pattern matches any string
    head, digits = m[1], m[2]
    if not digits:
        return f"{base}-{offset + 1}"
    return f"{head}{int(digits) + offset:0{len(digits)}d}"


def _parse_model(where: str, name: object) -> MeterModel:
    try:
        return MeterModel.parse(str(name))
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def uniform_fleet(
    count: int,
    *,
    port: int | None,
    first_unit: int = 1,
    serial: str = "MM00000001",
    model: str = DEFAULT_MODEL,
    profile: str = "default",
    seed: int | None = None,
    word_order: WordOrder = WordOrder.BIG,
    on_power_loss: OnPowerLoss = OnPowerLoss.ANSWER,
    unknown_unit: UnknownUnit = UnknownUnit.EXCEPTION,
) -> FleetSpec:
    """``--meters N``: unit ids first_unit.. on one port, serials and seeds counted up."""
    if not 1 <= count <= 247:
        raise ConfigError(f"--meters {count}: out of range; expected 1..247 (unit ids on a port)")
    if not 1 <= first_unit <= 248 - count:
        raise ConfigError(
            f"--unit {first_unit} with --meters {count}: unit ids would pass 247; "
            f"expected --unit 1..{248 - count}"
        )
    parsed = _parse_model("--model", model)
    meters = []
    for i in range(count):
        name = counted_serial(serial, i)
        if not 1 <= len(name) <= 32 or not name.isascii():
            raise ConfigError(f"--serial-number: {name!r}; expected 1..32 ASCII characters")
        meters.append(
            MeterSpec(
                unit=first_unit + i,
                port=port,
                model=parsed,
                profile=profile,
                serial=name,
                seed=None if seed is None else seed + i,
                word_order=word_order,
                on_power_loss=on_power_loss,
            )
        )
    return FleetSpec(tuple(meters), unknown_unit=unknown_unit)


def _choice(where: str, value: Any, enum: type[_E]) -> _E:
    if isinstance(value, enum):
        return value
    allowed = [str(m.value) for m in enum]
    if not isinstance(value, str) or value not in allowed:
        raise ConfigError(f"{where}: {value!r} invalid; expected one of {', '.join(allowed)}")
    return enum(value)


def _int(where: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: {value!r} is not an integer; expected {lo}..{hi}")
    if not lo <= value <= hi:
        raise ConfigError(f"{where}: {value} out of range; expected {lo}..{hi}")
    return value


def _faults(where: str, raw: Any) -> list[FaultSpec]:
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: expected a list of fault specs")
    faults: list[FaultSpec] = []
    for j, f in enumerate(raw):
        fw = f"{where}[{j}]"
        if isinstance(f, str):
            faults.append(parse_fault(f, where=f"{fw} {f!r}"))
        elif isinstance(f, Mapping):
            faults.append(fault_from_mapping(f, where=fw))
        else:
            raise ConfigError(f"{fw}: expected a spec string like 'delay:ms=100' or a mapping")
    return faults


def _meter(where: str, raw: Any, defaults: Mapping[str, Any], *, tcp: bool) -> MeterSpec:
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{where}: expected a mapping of meter settings, got {type(raw).__name__}"
        )
    unknown = sorted(str(k) for k in set(raw) - set(_METER_KEYS))
    if unknown:
        raise ConfigError(
            f"{where}.{unknown[0]}: unknown key; expected some of {', '.join(_METER_KEYS)}"
        )
    data = {**defaults, **raw}
    for key in ("unit", "port") if tcp else ("unit",):
        if key not in data:
            raise ConfigError(
                f"{where}.{key}: missing; every meter needs a unit id and a port "
                "(per meter or in defaults)"
            )
    unit = _int(f"{where}.unit", data["unit"], 1, 247)
    port = _int(f"{where}.port", data["port"], 1, 65535) if "port" in data else None
    profile = data.get("profile", DEFAULT_PROFILE)
    if not isinstance(profile, str) or not profile:
        raise ConfigError(
            f"{where}.profile: {profile!r}; expected a shipped profile name or a path"
        )
    serial = data.get("serial", default_serial(port or 0, unit))
    if not isinstance(serial, str | int) or isinstance(serial, bool):
        raise ConfigError(f"{where}.serial: {serial!r}; expected 1..32 ASCII characters")
    serial = str(serial)
    if not 1 <= len(serial) <= 32 or not serial.isascii() or "\0" in serial:
        raise ConfigError(f"{where}.serial: {serial!r}; expected 1..32 ASCII characters")
    seed = data.get("seed")
    faults = _faults(f"{where}.faults", data.get("faults", []))
    given = {k: data[k] for k in CHOICE_KEYS if k in data}
    choices = MeterChoices.parse(where, given, where=f"{where}.") if given else None
    return MeterSpec(
        unit=unit,
        port=port,
        model=_parse_model(f"{where}.model", data.get("model", DEFAULT_MODEL)),
        profile=profile,
        serial=serial,
        seed=None if seed is None else _int(f"{where}.seed", seed, SEED_MIN, SEED_MAX),
        word_order=_choice(f"{where}.word_order", data.get("word_order", "big"), WordOrder),
        on_power_loss=_choice(
            f"{where}.on_power_loss", data.get("on_power_loss", "answer"), OnPowerLoss
        ),
        faults=tuple(f.for_meter(port, unit) for f in faults),
        choices=choices,
    )


def parse_fleet(
    data: Any, source: str, base: Mapping[str, Any] | None = None, *, tcp: bool = True
) -> FleetSpec:
    """Validate a loaded fleet document; ``base`` holds defaults beneath the file's own.

    ``tcp=False``: an RTU-only fleet; ports may be left out and are dropped.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping with 'fleet: 1' and 'meters' at the top")
    unknown = sorted(str(k) for k in set(data) - set(_TOP_KEYS))
    if unknown:
        raise ConfigError(f"{source}: {unknown[0]}: unknown key; expected {', '.join(_TOP_KEYS)}")
    version = data.get("fleet")
    if version != FLEET_SCHEMA or isinstance(version, bool):
        newer = isinstance(version, int) and version > FLEET_SCHEMA
        raise ConfigError(
            f"{source}: fleet: {version!r} unsupported; expected fleet: {FLEET_SCHEMA}"
            + (" (written by a newer minimeter?)" if newer else "")
        )
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, Mapping):
        raise ConfigError(f"{source}: defaults: expected a mapping of meter keys")
    bad = sorted(str(k) for k in set(defaults) - (set(_METER_KEYS) - {"unit", "serial"}))
    if bad:
        raise ConfigError(
            f"{source}: defaults.{bad[0]}: not a default; expected some of "
            + ", ".join(k for k in _METER_KEYS if k not in ("unit", "serial"))
        )
    meters_raw = data.get("meters")
    if not isinstance(meters_raw, list) or not meters_raw:
        raise ConfigError(f"{source}: meters: expected a non-empty list of meters")
    if len(meters_raw) > MAX_METERS:
        raise ConfigError(f"{source}: meters: {len(meters_raw)} meters; at most {MAX_METERS}")
    merged = {**(base or {}), **defaults}
    meters = [
        _meter(f"{source}: meters[{i}]", m, merged, tcp=tcp) for i, m in enumerate(meters_raw)
    ]
    if not tcp:
        return without_tcp(
            FleetSpec(tuple(meters), unknown_unit=_unknown_unit(source, data)), source
        )
    seen: dict[tuple[int | None, int], int] = {}
    serials: dict[str, int] = {}
    for i, m in enumerate(meters):
        key = (m.port, m.unit)
        if key in seen:
            raise ConfigError(
                f"{source}: meters[{i}]: unit {m.unit} on port {m.port} already used by "
                f"meters[{seen[key]}]; expected unique (port, unit) pairs"
            )
        seen[key] = i
        if m.serial in serials:
            raise ConfigError(
                f"{source}: meters[{i}].serial: {m.serial!r} already used by "
                f"meters[{serials[m.serial]}]; each meter needs its own serial"
            )
        serials[m.serial] = i
    return FleetSpec(meters=tuple(meters), unknown_unit=_unknown_unit(source, data))


def _unknown_unit(source: str, data: Mapping[str, Any]) -> UnknownUnit:
    return _choice(f"{source}: unknown_unit", data.get("unknown_unit", "exception"), UnknownUnit)


def without_tcp(fleet: FleetSpec, source: str = "fleet") -> FleetSpec:
    """The fleet on the RTU line only (``--no-tcp``): ports dropped, unit ids unique.

    Serials (and so store records) stay what they were with ports, and a meter's
    faults stay pinned to its unit id, which they also match on the line (port 0).
    """
    units: dict[int, int] = {}
    serials: dict[str, int] = {}
    for i, m in enumerate(fleet.meters):
        if m.unit in units:
            raise ConfigError(
                f"{source}: meters[{i}]: unit {m.unit} already used by meters[{units[m.unit]}]; "
                "an RTU-only fleet (--no-tcp) shares one unit-id space: expected unique unit ids"
            )
        units[m.unit] = i
        if m.serial in serials:
            raise ConfigError(
                f"{source}: meters[{i}].serial: {m.serial!r} already used by "
                f"meters[{serials[m.serial]}]; each meter needs its own serial"
            )
        serials[m.serial] = i
    meters = tuple(replace(m, port=None) for m in fleet.meters)
    return FleetSpec(meters, unknown_unit=fleet.unknown_unit)


def load_fleet(
    path: str | os.PathLike[str], base: Mapping[str, Any] | None = None, *, tcp: bool = True
) -> FleetSpec:
    """Read and validate a fleet file (``base``: defaults from the command line;
    ``tcp=False``: RTU only, ports optional and dropped)."""
    source = os.fspath(path)
    data = read_fleet_yaml(source, max_meters=MAX_METERS)
    return parse_fleet(data, source, base, tcp=tcp)


def meter_layers(
    spec: MeterSpec, choices: MeterChoices | None, profile: Profile | None
) -> list[MeterChoices]:
    """A meter's settings layers, highest first: command line, fleet file, profile."""
    layers = [c for c in (choices, spec.choices) if c is not None]
    if profile is not None:
        layers.append(profile_choices(profile))
    return layers


def meter_configs(
    fleet: FleetSpec,
    accuracy_seed: int | None,
    choices: MeterChoices | None = None,
    profiles: Mapping[str, Profile] | None = None,
) -> list[MeterConfig]:
    """Each meter's core configuration: an error curve per meter when seeded, and the
    settings chosen on the command line (``choices``), in the fleet file and (with
    ``profiles``, by the meter's profile reference) in its profile, in that order."""
    out = []
    for i, spec in enumerate(fleet.meters):
        try:
            base = MeterConfig(
                model=spec.model,
                serial_number=spec.serial,
                accuracy=AccuracyConfig(
                    seed=None if accuracy_seed is None else accuracy_seed + _position(spec, i)
                ),
            )
        except ValueError as exc:
            raise ConfigError(f"meter {spec.serial} (unit {spec.unit}): {exc}") from None
        profile = None if profiles is None else profiles[spec.profile]
        try:
            out.append(resolve(base, meter_layers(spec, choices, profile)))
        except ConfigError as exc:
            prefix = "" if len(fleet.meters) == 1 else f"meter {spec.serial} (unit {spec.unit}): "
            raise ConfigError(f"{prefix}{exc}") from None
    return out


def _position(spec: MeterSpec, index: int) -> int:
    return index if spec.position is None else spec.position
