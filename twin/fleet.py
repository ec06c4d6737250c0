"""Fleets: many meters served from one process, from `--meters N` or a fleet file.

A fleet file is YAML, parsed once with ``yaml.safe_load`` into frozen objects::

    fleet: 1                       # schema version
    defaults:                      # optional; any meter key
      model: MMD-200A
      profile: default
    unknown_unit: exception        # exception (0x0B) | silent
    meters:
      - {unit: 1, port: 5020, model: MMD-200A, profile: residential-day, seed: 1}
      - {unit: 2, port: 5020, word_order: little, on_power_loss: silent,
         faults: ["delay:ms=100", {kind: exception, code: 4, fc: 3}]}
      - {unit: 1, port: 5021, model: MMS-100A, serial: BENCH-7}

Each meter gets its own serial (given, or derived from port and unit id), seed and
store record. Errors name the file, the key path and what was expected.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from twin.core import DEFAULT_MODEL, MeterModel
from twin.errors import ConfigError
from twin.faults import FaultSpec, fault_from_mapping, parse_fault

FLEET_SCHEMA = 1
MAX_METERS = 10_000
_METER_KEYS = {
    "unit", "port", "model", "profile", "seed", "serial", "word_order", "on_power_loss", "faults",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class MeterSpec:
    unit: int
    port: int
    model: MeterModel
    profile: str
    seed: int
    serial: str
    word_order: str = "big"
    on_power_loss: str = "answer"  # answer (frozen registers, status bit 13) | silent
    faults: tuple[FaultSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class FleetSpec:
    meters: tuple[MeterSpec, ...]
    unknown_unit: str = "exception"

    @property
    def ports(self) -> list[int]:
        return sorted({m.port for m in self.meters})


def default_serial(port: int, unit: int) -> str:
    return f"MM{port:05d}{unit:03d}"


def uniform_fleet(
    count: int,
    *,
    port: int,
    model: str = DEFAULT_MODEL,
    profile: str = "default",
    seed: int = 0,
    word_order: str = "big",
    on_power_loss: str = "answer",
    faults: Sequence[FaultSpec] = (),
    unknown_unit: str = "exception",
) -> FleetSpec:
    """``--meters N``: N meters on unit ids 1..N of one port, seeds seed+1..seed+N."""
    if not 1 <= count <= 247:
        raise ConfigError(f"--meters: {count} out of range; expected 1..247 (unit ids on one port)")
    parsed = MeterModel.parse(model)
    return FleetSpec(
        meters=tuple(
            MeterSpec(
                unit=u,
                port=port,
                model=parsed,
                profile=profile,
                seed=seed + u,
                serial=default_serial(port, u),
                word_order=word_order,
                on_power_loss=on_power_loss,
                faults=tuple(faults),
            )
            for u in range(1, count + 1)
        ),
        unknown_unit=unknown_unit,
    )


def _choice(where: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(f"{where}: {value!r} invalid; expected one of {', '.join(allowed)}")
    return str(value)


def _int(where: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: {value!r} is not an integer; expected {lo}..{hi}")
    if not lo <= value <= hi:
        raise ConfigError(f"{where}: {value} out of range; expected {lo}..{hi}")
    return value


def _meter(where: str, raw: Any, defaults: Mapping[str, Any], index: int) -> MeterSpec:
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{where}: expected a mapping of meter settings, got {type(raw).__name__}"
        )
    unknown = sorted(set(raw) - _METER_KEYS)
    if unknown:
        raise ConfigError(
            f"{where}.{unknown[0]}: unknown key; expected some of {sorted(_METER_KEYS)}"
        )
    data = {**defaults, **raw}
    for key in ("unit", "port"):
        if key not in data:
            raise ConfigError(f"{where}.{key}: missing; every meter needs a unit id and a port")
    unit = _int(f"{where}.unit", data["unit"], 1, 247)
    port = _int(f"{where}.port", data["port"], 1, 65535)
    try:
        model = MeterModel.parse(str(data.get("model", DEFAULT_MODEL)))
    except ValueError as exc:
        raise ConfigError(f"{where}.{exc}") from None
    profile = data.get("profile", "default")
    if not isinstance(profile, str) or not profile:
        raise ConfigError(
            f"{where}.profile: {profile!r}; expected a shipped profile name or a path"
        )
    raw_faults = data.get("faults", [])
    if not isinstance(raw_faults, list):
        raise ConfigError(f"{where}.faults: expected a list of fault specs")
    faults: list[FaultSpec] = []
    for j, f in enumerate(raw_faults):
        fw = f"{where}.faults[{j}]"
        if isinstance(f, str):
            try:
                faults.append(parse_fault(f))
            except ConfigError as exc:
                raise ConfigError(f"{fw}: {exc}") from None
        elif isinstance(f, Mapping):
            faults.append(fault_from_mapping(f, where=fw))
        else:
            raise ConfigError(f"{fw}: expected a spec string or a mapping")
    serial = str(data.get("serial", default_serial(port, unit)))
    if not 1 <= len(serial) <= 32 or not serial.isascii():
        raise ConfigError(f"{where}.serial: {serial!r}; expected 1..32 ASCII characters")
    return MeterSpec(
        unit=unit,
        port=port,
        model=model,
        profile=profile,
        seed=_int(f"{where}.seed", data.get("seed", index + 1), 0, 2**63 - 1),
        serial=serial,
        word_order=_choice(f"{where}.word_order", data.get("word_order", "big"), ("big", "little")),
        on_power_loss=_choice(
            f"{where}.on_power_loss", data.get("on_power_loss", "answer"), ("answer", "silent")
        ),
        faults=tuple(faults),
    )


def parse_fleet(data: Any, source: str) -> FleetSpec:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping with 'fleet' and 'meters' at the top")
    unknown = sorted(set(data) - {"fleet", "defaults", "unknown_unit", "meters"})
    if unknown:
        raise ConfigError(
            f"{source}: {unknown[0]}: unknown key; expected fleet, defaults, unknown_unit, meters"
        )
    version = data.get("fleet")
    if version != FLEET_SCHEMA:
        raise ConfigError(
            f"{source}: fleet: {version!r} unsupported; expected fleet: {FLEET_SCHEMA}"
            + (
                " (written by a newer minimeter?)"
                if isinstance(version, int) and version > 1
                else ""
            )
        )
    defaults = data.get("defaults", {}) or {}
    if not isinstance(defaults, Mapping) or set(defaults) - (_METER_KEYS - {"unit"}):
        raise ConfigError(f"{source}: defaults: expected a mapping of meter keys (not unit)")
    meters_raw = data.get("meters")
    if not isinstance(meters_raw, list) or not meters_raw:
        raise ConfigError(f"{source}: meters: expected a non-empty list")
    if len(meters_raw) > MAX_METERS:
        raise ConfigError(f"{source}: meters: {len(meters_raw)} meters; at most {MAX_METERS}")
    meters = [_meter(f"{source}: meters[{i}]", m, defaults, i) for i, m in enumerate(meters_raw)]
    seen: dict[tuple[int, int], int] = {}
    for i, m in enumerate(meters):
        key = (m.port, m.unit)
        if key in seen:
            raise ConfigError(
                f"{source}: meters[{i}]: unit {m.unit} on port {m.port} already used by "
                f"meters[{seen[key]}]; expected unique (port, unit) pairs"
            )
        seen[key] = i
    serials = [m.serial for m in meters]
    if len(set(serials)) != len(serials):
        dup = next(s for s in serials if serials.count(s) > 1)
        raise ConfigError(f"{source}: serial {dup!r} used twice; each meter needs its own serial")
    return FleetSpec(
        meters=tuple(meters),
        unknown_unit=_choice(
            f"{source}: unknown_unit",
            data.get("unknown_unit", "exception"),
            ("exception", "silent"),
        ),
    )


def load_fleet(path: str | os.PathLike[str]) -> FleetSpec:
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read fleet file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(
            f"{source}{line}: not valid YAML ({getattr(exc, 'problem', exc)})"
        ) from None
    return parse_fleet(data, source)
