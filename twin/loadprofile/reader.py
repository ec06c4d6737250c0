"""Reading profile YAML with line numbers, and the key-path context used to validate it.

Profiles are parsed once at the boundary. ``yaml.safe_load`` alone loses positions,
so :func:`parse_yaml` uses a ``SafeLoader`` subclass whose mappings and sequences
remember the line of every value (:class:`LineDict`, :class:`LineList`). Validation
walks the data with a :class:`Ctx` (file, key path, line) so every
:class:`~twin.errors.ProfileError` reads like
``profiles/x.yaml:12: segments[2].L1.pf: 1.7 out of range; expected 0..1``.

Typed getters live here too: numbers (finite, not bool), enum members, durations
(``90``, ``15min``, ``1h30min``, ``7d``; syntax in :mod:`twin.units`) and
percentages (``5%``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NoReturn, TypeVar

import yaml

from twin.errors import ProfileError
from twin.units import parse_duration_s


class LineDict(dict[Any, Any]):
    """A YAML mapping that remembers its own line and the line of each value."""

    line: int = 0
    lines: dict[Any, int]


class LineList(list[Any]):
    """A YAML sequence that remembers its own line and the line of each item."""

    line: int = 0
    lines: list[int]


class _Loader(yaml.SafeLoader):
    pass


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    out = LineDict()
    out.line = node.start_mark.line + 1
    out.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str | int | float | bool):
            raise ProfileError(f"{{file}}:{line}: mapping key {key!r} invalid; expected a name")
        if key in out:
            raise ProfileError(f"{{file}}:{line}: duplicate key {key!r}; expected each key once")
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = line
    return out


def _construct_seq(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    out = LineList(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.lines = [child.start_mark.line + 1 for child in node.value]
    return out


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


def parse_yaml(text: str, source: str) -> LineDict:
    """The top-level mapping of a profile file; ProfileError naming file and line."""
    try:
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: safe
    except RecursionError:
        raise ProfileError(
            f"{source}: nested too deeply; expected a mapping with keys schema, name, segments"
        ) from None
    except ProfileError as exc:
        raise ProfileError(str(exc).replace("{file}", source)) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        what = exc.problem or exc.context or "syntax error"
        raise ProfileError(f"{source}{line}: YAML syntax error: {what}") from None
    except yaml.YAMLError as exc:
        raise ProfileError(f"{source}: not valid YAML: {exc}") from None
    if data is None:
        raise ProfileError(f"{source}:1: empty file; expected a mapping starting with 'schema: 1'")
    if not isinstance(data, LineDict):
        raise ProfileError(
            f"{source}:1: top level is a {type(data).__name__}; "
            "expected a mapping with keys schema, name, segments"
        )
    return data


#: The longest duration a profile may state (a century of meter time).
MAX_DURATION_S = 100 * 366 * 86_400
#: A profile file's size at most (`profiles check /dev/zero` read without limit).
MAX_PROFILE_BYTES = 16 << 20

E = TypeVar("E", bound=StrEnum)


@dataclass(frozen=True, slots=True)
class Ctx:
    """Where we are in a profile file: source, key path and line (for messages)."""

    source: str
    path: str
    line: int

    def fail(self, message: str) -> NoReturn:
        where = f"{self.source}:{self.line}" if self.line else self.source
        prefix = f"{self.path}: " if self.path else ""
        raise ProfileError(f"{where}: {prefix}{message}")

    def at(self, key: str | int, container: Any) -> Ctx:
        """Context of ``container[key]`` (line of that value when known)."""
        line = self.line
        if isinstance(container, LineDict) and key in container.lines:
            line = container.lines[key]
        if isinstance(container, LineList) and isinstance(key, int):
            line = container.lines[key]
        path = f"{self.path}[{key}]" if isinstance(key, int) else f"{self.path}.{key}"
        return Ctx(self.source, path.lstrip("."), line)

    # ------------------------------------------------------------ mappings

    def mapping(self, value: Any, what: str = "a mapping") -> LineDict:
        if not isinstance(value, LineDict):
            self.fail(f"{_kind(value)} invalid; expected {what}")
        return value

    def keys(self, data: LineDict, allowed: Iterable[str], required: Iterable[str] = ()) -> None:
        allowed = tuple(allowed)
        for key in data:
            if key not in allowed:
                self.at(str(key), data).fail(
                    f"unknown key; expected one of {', '.join(sorted(allowed))}"
                )
        for key in required:
            if key not in data:
                self.fail(f"missing required key '{key}'")

    def sequence(self, value: Any, what: str = "a list") -> LineList:
        if not isinstance(value, LineList):
            self.fail(f"{_kind(value)} invalid; expected {what}")
        return value

    # -------------------------------------------------------------- scalars

    def number(self, value: Any, lo: float, hi: float, unit: str = "") -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(
                f"{_kind(value)} invalid; expected a number in {lo:g}..{hi:g} {unit}".rstrip()
            )
        x = float(value)
        if not math.isfinite(x):
            self.fail(
                f"{value} invalid; expected a finite number in {lo:g}..{hi:g} {unit}".rstrip()
            )
        if not lo <= x <= hi:
            self.fail(f"{x:g} out of range; expected {lo:g}..{hi:g} {unit}".rstrip())
        return x

    def integer(self, value: Any, lo: int, hi: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(f"{_kind(value)} invalid; expected a whole number in {lo}..{hi}")
        if not lo <= value <= hi:
            self.fail(f"{value} out of range; expected {lo}..{hi}")
        return value

    def boolean(self, value: Any) -> bool:
        if not isinstance(value, bool):
            self.fail(f"{_kind(value)} invalid; expected true or false")
        return value

    def text(self, value: Any, what: str = "a string") -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(f"{_kind(value)} invalid; expected {what}")
        return value.strip()

    def choice(self, value: Any, options: Iterable[str]) -> str:
        options = tuple(options)
        if not isinstance(value, str) or value not in options:
            self.fail(f"{_kind(value)} invalid; expected one of {', '.join(options)}")
        return value

    def member(self, value: Any, kind: type[E], options: Iterable[E] | None = None) -> E:
        """The member of the string enum ``kind`` named by ``value`` (of ``options`` if given)."""
        return kind(self.choice(value, [m.value for m in (kind if options is None else options)]))

    def duration_s(self, value: Any, *, allow_zero: bool = False) -> float:
        seconds = parse_duration_s(value)
        expected = "a duration such as 90, 15min, 1h, 7d"
        if seconds is None:
            self.fail(f"{_kind(value)} invalid; expected {expected}")
        if not math.isfinite(seconds):
            self.fail(f"{value} invalid; expected {expected}")
        if seconds < 0 or (seconds == 0 and not allow_zero):
            self.fail(f"{value!r} invalid; expected a positive duration ({expected})")
        if seconds > MAX_DURATION_S:
            self.fail(f"{value!r} too long; expected at most 100 years")
        if abs(seconds * 1e6 - round(seconds * 1e6)) > 1e-3:
            self.fail(f"{value!r} invalid; expected a whole number of microseconds")
        return seconds

    def percent_or_number(self, value: Any, hi: float) -> tuple[float, bool]:
        """``(amount, relative)``: ``5%`` -> (0.05, True); ``2`` -> (2.0, False)."""
        if isinstance(value, str) and value.strip().endswith("%"):
            try:
                pct = float(value.strip()[:-1])
            except ValueError:
                self.fail(f"{value!r} invalid; expected a percentage such as 5%")
            if not (math.isfinite(pct) and 0 <= pct <= 100):
                self.fail(f"{value!r} out of range; expected 0%..100%")
            return pct / 100.0, True
        return self.number(value, 0.0, hi), False


def _kind(value: Any) -> str:
    if value is None:
        return "empty value"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, LineDict):
        return "a mapping"
    if isinstance(value, LineList):
        return "a list"
    if isinstance(value, str):
        return repr(value)
    return repr(value)
