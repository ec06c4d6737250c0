"""A store row: one meter's `NvState` as checksummed JSON text, and its checks on load.

Theory of operation
-------------------
`twin.store.sqlite` keeps one row per meter serial: `encode_row` turns the meter's `NvState`
into canonical JSON (sorted keys, no spaces, no NaN/Infinity), and `row_crc32` is the
CRC-32 of that text's UTF-8 bytes, stored beside it to catch bit rot. JSON keeps the
energies (exact Python ints, microjoules, beyond SQLite's 64-bit INTEGER) as decimal
digits and the floats in their shortest round-trip repr, so a row round-trips bit for
bit.

`decode_row` is the way back and trusts nothing: a row is only an `NvState` after
  1. the checksum matches the text,
  2. the text is JSON (no non-finite constants) holding an object,
  3. every energy accumulator is present (fields the core adds later may be missing
     from old rows and take NvState's defaults),
  4. each value has the type of its NvState annotation (`NvState.from_dict` does not
     check types) and energies are >= 0,
  5. the values the core would reject when it restores the meter (demand config,
     registration mode, injected errors) are valid.
Any failure raises `StoreError` naming the meter (the caller's ``where``), the field
and what was wrong; nothing is repaired or defaulted silently.
"""

from __future__ import annotations

import json
import typing
import zlib
from collections.abc import Callable
from typing import Any, Final

from twin.core import (
    MeterErrorKind,
    MeterModel,
    NvState,
    RegistrationMode,
    validate_demand_settings,
)
from twin.errors import StoreError

# Rows must carry every energy accumulator (save writes all of NvState). Other fields
# the core adds later are not in old rows and take NvState's defaults.
_REQUIRED_FIELDS: Final = frozenset(
    name for name in NvState.__dataclass_fields__ if name.startswith("energy_")
)

_HINTS: Final = typing.get_type_hints(NvState)
# The row text is json of NvState.to_dict() with sorted keys. Its fields are flat (ints,
# floats, bools, strs and tuples of them), so reading them in sorted order gives the
# same text 5x faster than asdict()'s deep copy: a fleet commits every step.
_SORTED_FIELDS: Final = tuple(sorted(NvState.__dataclass_fields__))
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def check_serial(serial: object) -> None:
    """A serial is a row's key: a non-empty string without NUL."""
    if not isinstance(serial, str) or not serial or "\x00" in serial:
        raise ValueError(f"store serial: {serial!r} must be a non-empty string")


def encode_row(serial: str, nv: NvState) -> str:
    """The row text of ``nv``: canonical JSON of ``NvState.to_dict()``."""
    if not isinstance(nv, NvState):
        raise TypeError(f"store meter {serial}: expected NvState, got {type(nv).__name__}")
    try:
        return _ENCODER.encode({name: getattr(nv, name) for name in _SORTED_FIELDS})
    except ValueError as exc:
        raise StoreError(f"store meter {serial}: non-finite value in NvState: {exc}") from exc


def row_crc32(text: str) -> int:
    """The checksum stored beside a row's text."""
    return zlib.crc32(text.encode())


def decode_row(where: str, text: object, crc: object) -> NvState:
    """The NvState of a stored row, checked; ``where`` starts every error message."""
    if not isinstance(text, str) or row_crc32(text) != crc:
        raise StoreError(f"{where}: checksum mismatch (row corrupted); left untouched")
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise StoreError(f"{where}: non-volatile state is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise StoreError(f"{where}: non-volatile state is not a JSON object")
    missing = _REQUIRED_FIELDS - set(data)
    if missing:
        raise StoreError(f"{where}: non-volatile state lacks fields {sorted(missing)}")
    try:
        _check_types(data)
        nv = NvState.from_dict(data)
        _check_semantics(nv)
        return nv
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{where}: bad non-volatile state: {exc}") from exc


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")


def _check_types(data: dict[str, Any]) -> None:
    """Type-check a decoded row against NvState's annotations (from_dict does not)."""
    for key, value in data.items():
        hint = _HINTS.get(key)
        if hint is None:
            continue  # unknown key: NvState.from_dict names it
        if not _matches(hint, value):
            raise ValueError(f"field {key}: {value!r} is not a {hint}")
        if key.startswith("energy_") and value < 0:
            raise ValueError(f"field {key}: {value} must be >= 0")


def _check_semantics(nv: NvState) -> None:
    """Values the core would reject when it restores the meter: name the field now."""
    checks: list[tuple[str, object, Callable[[], object]]] = [
        # NvState keeps block C 201-204 in register order: the core's rules check them
        (
            "demand_config",
            list(nv.demand_config),
            lambda: validate_demand_settings(*nv.demand_config),
        ),
        ("registration_mode", nv.registration_mode, lambda: RegistrationMode(nv.registration_mode)),
        (
            "injected_errors",
            list(nv.injected_errors),
            lambda: list(map(MeterErrorKind, nv.injected_errors)),
        ),
    ]
    for field, shown, check in checks:
        try:
            check()
        except ValueError as exc:
            raise ValueError(f"field {field}: {shown!r}: {exc}") from exc


def _matches(hint: Any, value: Any) -> bool:
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, list | tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(args[0], v) for v in value)
        return len(value) == len(args) and all(
            _matches(a, v) for a, v in zip(args, value, strict=True)
        )
    return True  # a type this checker does not know: NvState validates it, if at all


def model_key(model: MeterModel) -> tuple[object, ...]:
    """What makes two model names the same meter (``MMU-0.2A`` is ``MMU-0.2A:200``)."""
    return (model.family, model.ct_primary_a, model.ct_secondary_ma, model.counter_wh_per_count)
