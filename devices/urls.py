"""Device URLs, parsed once: ``scheme://[user:pass@]host[:port]/path?key=value&...``.

:class:`DeviceUrl` hands out typed query parameters and remembers which ones a
backend took, so :meth:`DeviceUrl.finish` can refuse a misspelt one. Every error is
one :class:`~twin.errors.DeviceError` naming the URL, the part that is wrong and what
was expected. Durations are a number with an optional unit: ``500ms``, ``1s``,
``2min``, ``1h`` (a bare number is seconds).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Final, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from devices.config import (
    DEFAULT_DEBOUNCE_S,
    DEFAULT_MAX_COUNT_RATE_HZ,
    DEFAULT_STALE_AFTER_S,
    CounterWidth,
    EdgeKind,
    SourceConfig,
)
from twin.errors import DeviceError

#: The duration units a URL may use, in seconds.
DURATION_UNITS_S: Final[Mapping[str, float]] = {"ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0}
MAX_PORT: Final = 65535
#: Parameters every source URL accepts (see :func:`source_config`).
SOURCE_PARAMS: Final = ("id", "kh", "edge", "debounce", "stale", "max_rate", "width")

_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-z]*)\s*$")
_FALSE_WORDS: Final = frozenset({"0", "false", "no", "off"})
_TRUE_WORDS: Final = frozenset({"1", "true", "yes", "on"})

E = TypeVar("E", bound=Enum)


def parse_duration_s(text: str, *, what: str = "duration") -> float:
    """``"1s"`` -> 1.0; raises DeviceError naming ``what`` for anything else."""
    match = _DURATION.match(text)
    unit = match.group(2) if match else ""
    if match is None or (unit and unit not in DURATION_UNITS_S):
        units = ", ".join(DURATION_UNITS_S)
        raise DeviceError(f"{what}={text!r}: expected a number with an optional unit ({units})")
    return float(match.group(1)) * DURATION_UNITS_S.get(unit, 1.0)


@dataclass(slots=True)
class DeviceUrl:
    """A parsed device URL; query values are read through the typed getters."""

    text: str
    scheme: str
    host: str
    port: int | None
    path: str
    username: str | None
    password: str | None
    params: Mapping[str, str]
    _taken: set[str] = field(default_factory=set)

    @classmethod
    def parse(cls, text: str) -> DeviceUrl:
        if "://" not in text:
            raise DeviceError(f"device URL {text!r}: expected scheme://..., e.g. virtual://meter1")
        parts = urlsplit(text)
        if not parts.scheme:
            raise DeviceError(f"device URL {text!r}: the scheme before :// is empty")
        try:
            port = parts.port
        except ValueError:
            raise DeviceError(
                f"device URL {text!r}: the port is not a number from 0 to {MAX_PORT}"
            ) from None
        params: dict[str, str] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key in params:
                raise DeviceError(f"device URL {text!r}: parameter {key!r} is given twice")
            params[key] = value
        return cls(
            text=text,
            scheme=parts.scheme.lower(),
            host=parts.hostname or "",
            port=port,
            path=unquote(parts.path),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            params=params,
        )

    def error(self, part: str, expected: str) -> DeviceError:
        """The one error shape: the URL, the wrong part, what was expected."""
        return DeviceError(f"device URL {self.text!r}: {part}: expected {expected}")

    def require_host(self, what: str = "host") -> str:
        if not self.host:
            raise self.error(f"no {what}", f"{self.scheme}://{what.upper()}[:PORT]/...")
        return self.host

    def port_or(self, default: int) -> int:
        return default if self.port is None else self.port

    def path_segment(self, what: str) -> str:
        """The path without its leading slash; required."""
        value = self.path.lstrip("/")
        if not value:
            raise self.error(f"no {what}", f"{self.scheme}://HOST/{what.upper()}")
        return value

    def _raw(self, name: str) -> str | None:
        self._taken.add(name)
        return self.params.get(name)

    def text_param(self, name: str, default: str | None = None) -> str:
        value = self._raw(name)
        if value is None or value == "":
            if default is None:
                raise self.error(f"parameter {name!r} is missing", f"{name}=...")
            return default
        return value

    def int_param(self, name: str, default: int | None, *, low: int, high: int) -> int:
        value = self._raw(name)
        if value is None:
            if default is None:
                raise self.error(f"parameter {name!r} is missing", f"{name}={low}..{high}")
            return default
        try:
            number = int(value, 0)
        except ValueError:
            number = low - 1
        if not low <= number <= high:
            raise self.error(f"{name}={value!r}", f"an integer from {low} to {high}")
        return number

    def float_param(self, name: str, default: float | None) -> float:
        value = self._raw(name)
        if value is None:
            if default is None:
                raise self.error(f"parameter {name!r} is missing", f"{name}=<number above 0>")
            return default
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or number <= 0:
            raise self.error(f"{name}={value!r}", "a number above 0")
        return number

    def duration_param(self, name: str, default: float | None) -> float | None:
        """Seconds; ``none`` or ``off`` gives None (for optional timeouts)."""
        value = self._raw(name)
        if value is None:
            return default
        if value.lower() in {"none", "off"}:
            return None
        try:
            return parse_duration_s(value, what=name)
        except DeviceError as exc:
            raise self.error(f"{name}={value!r}", str(exc).split(": expected ", 1)[1]) from None

    def bool_param(self, name: str, default: bool) -> bool:
        value = self._raw(name)
        if value is None:
            return default
        if value.lower() in _TRUE_WORDS | _FALSE_WORDS:
            return value.lower() in _TRUE_WORDS
        raise self.error(f"{name}={value!r}", "1/0, true/false, yes/no or on/off")

    def enum_param(self, name: str, enum: type[E], default: E) -> E:
        value = self._raw(name)
        if value is None:
            return default
        for member in enum:
            if value.lower() == str(member.value).lower():
                return member
        choices = ", ".join(str(m.value) for m in enum)
        raise self.error(f"{name}={value!r}", f"one of {choices}")

    def finish(self) -> None:
        """Refuse parameters no getter asked for (misspellings, wrong backend)."""
        unknown = sorted(set(self.params) - self._taken)
        if unknown:
            known = ", ".join(sorted(self._taken)) or "none"
            raise self.error(f"unknown parameter {unknown[0]!r}", f"one of {known}")


def source_config(url: DeviceUrl, default_id: str, *, counter: bool) -> SourceConfig:
    """The :class:`SourceConfig` part of a source URL (``SOURCE_PARAMS``).

    ``width`` is read only for counter sources (``counter=True``); edge sources
    refuse it through :meth:`DeviceUrl.finish`.
    """
    stale = url.duration_param("stale", DEFAULT_STALE_AFTER_S)
    debounce = url.duration_param("debounce", DEFAULT_DEBOUNCE_S)
    widths = {str(int(w)): w for w in CounterWidth}
    width = CounterWidth.BITS_32
    if counter:
        raw_width = url.text_param("width", "32")
        if raw_width not in widths:
            raise url.error(f"width={raw_width!r}", f"one of {', '.join(widths)} (bits)")
        width = widths[raw_width]
    try:
        return SourceConfig(
            source_id=url.text_param("id", default_id),
            kh_wh=url.float_param("kh", None),
            edge=url.enum_param("edge", EdgeKind, EdgeKind.RISING),
            width=width,
            debounce_s=0.0 if debounce is None else debounce,
            stale_after_s=stale,
            max_count_rate_hz=url.float_param("max_rate", DEFAULT_MAX_COUNT_RATE_HZ),
        )
    except DeviceError as exc:
        raise DeviceError(f"device URL {url.text!r}: {exc}") from None
