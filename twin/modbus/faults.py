"""Protocol fault injection: what a misbehaving meter or gateway does to requests.

Theory of operation
-------------------
A :class:`FaultSpec` is parsed once, from the CLI (``--fault SPEC``), a fleet file,
the Python API (:meth:`twin.runtime.twin.Twin.add_fault`) or, later, an MQTT command, and
says what to do (kind), to which requests (ports, unit ids, function codes, a
register address range) and for how long (a probability per request, a count of
firings, a duration after it was armed: ``for=`` takes the profiles' durations,
``500ms``, ``30s``, ``1h30min``, ``1d``; ``ms=`` and ``jitter=`` are milliseconds). Kinds:

- ``delay``: answer late by ``ms`` ± ``jitter`` milliseconds (uniform);
- ``silent``: no answer at all (the client times out);
- ``exception``: answer exception ``code`` (default 4, server device failure);
- ``drop``: on each connection, answer ``after`` matching requests, then close the
  connection instead of answering a further one, each with probability ``p``
  (``after=0``: from the first request). The counts live only as long as their
  connection (the server reports closes); on RTU, which has no connection, a drop
  is one unanswered request and the count starts again;
- ``garbage``: answer 3..40 random bytes instead of a frame;
- ``truncate``: answer the real frame cut to half its length.

Spec syntax: ``KIND[:key=value,...]``, e.g. ``delay:ms=200,jitter=50,p=0.5``,
``exception:code=4,fc=3,addr=100-199``, ``drop:after=10``, ``silent:unit=3,for=30s``,
``garbage:count=5,port=5021``. Unit ids and function codes take ``1-5+9`` sets;
``port=0`` is the RTU line (:data:`RTU_PORT`).

:class:`FaultInjector` holds the armed faults of a whole twin (every port). The
servers call it per request, only while faults are armed (otherwise requests never
leave the fast path). It decides with its own seeded generator, so a run with the
same seed and the same requests injects the same faults, and reads time from a
clock passed in (the shell owns time). The first matching armed fault wins.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from twin.errors import ConfigError
from twin.modbus.dispatch import RTU_PORT, Intercept
from twin.registers import ExceptionCode
from twin.units import parse_duration_s


class FaultKind(StrEnum):
    """What a fault does to the requests it matches (see the module docstring)."""

    DELAY = "delay"
    SILENT = "silent"
    EXCEPTION = "exception"
    DROP = "drop"
    GARBAGE = "garbage"
    TRUNCATE = "truncate"


_KEYS = ("kind", "ms", "jitter", "code", "after", "p", "count", "for", "port", "unit", "fc", "addr")


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """One validated fault. ``None`` filters match everything."""

    kind: FaultKind
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    code: int = ExceptionCode.SERVER_DEVICE_FAILURE  # unless told otherwise
    after: int = 0
    probability: float = 1.0
    count: int | None = None
    duration_s: float | None = None
    ports: frozenset[int] | None = None
    units: frozenset[int] | None = None
    function_codes: frozenset[int] | None = None
    address_range: tuple[int, int] | None = None

    def matches(self, port: int, unit: int, fc: int, address: int | None) -> bool:
        if self.ports is not None and port not in self.ports:
            return False
        if self.units is not None and unit not in self.units:
            return False
        if self.function_codes is not None and fc not in self.function_codes:
            return False
        if self.address_range is not None:
            lo, hi = self.address_range
            if address is None or not lo <= address <= hi:
                return False
        return True

    def for_meter(self, port: int | None, unit: int) -> FaultSpec:
        """This fault narrowed to one meter (a fleet file's per-meter faults): its unit
        id on its TCP port and on the RTU line, where the same unit id is the same meter."""
        return replace(
            self,
            ports=self.ports if port is None else frozenset({port, RTU_PORT}),
            units=frozenset({unit}),
        )


def _int_set(where: str, key: str, text: object, lo: int, hi: int) -> frozenset[int]:
    values: set[int] = set()
    for part in str(text).split("+"):
        a, _, b = part.strip().partition("-")
        try:
            first, last = int(a), int(b or a)
        except ValueError:
            raise ConfigError(
                f"{where}: {key}={text!r} is not a number, range or set like 1-5+9"
            ) from None
        if not lo <= first <= last <= hi:
            raise ConfigError(f"{where}: {key}={text!r} out of range; expected {lo}..{hi}")
        values.update(range(first, last + 1))
    return frozenset(values)


def _duration_s(where: str, key: str, text: object) -> float:
    """The profiles' duration syntax (``500ms``, ``30s``, ``5min``, ``1h30min``, ``1d``)."""
    seconds = parse_duration_s(text.strip() if isinstance(text, str) else text)
    if seconds is None or not (math.isfinite(seconds) and seconds > 0):
        raise ConfigError(
            f"{where}: {key}={text!r} is not a positive duration like 500ms, 30s, 5min, 1h30min"
        )
    return seconds


def fault_from_mapping(data: Mapping[str, Any], where: str = "fault") -> FaultSpec:
    """Validate one fault given as key/values (fleet file, MQTT command, Python)."""
    raw_kind = data.get("kind")
    known = {k.value: k for k in FaultKind}
    kind = known.get(raw_kind) if isinstance(raw_kind, str) else None
    if kind is None:
        expected = ", ".join(known)
        raise ConfigError(f"{where}: kind {raw_kind!r} unknown; expected one of {expected}")
    unknown = sorted(str(k) for k in set(data) - set(_KEYS))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r}; expected some of {', '.join(_KEYS)}"
        )

    def number(key: str, lo: float, hi: float, default: float) -> float:
        raw = data.get(key, default)
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: {key}={raw!r} is not a number") from None
        if not lo <= value <= hi:
            raise ConfigError(f"{where}: {key}={raw!r} out of range; expected {lo:g}..{hi:g}")
        return value

    def integer(key: str, lo: int, hi: int, default: int) -> int:
        value = number(key, lo, hi, default)
        if value != int(value):
            raise ConfigError(f"{where}: {key}={data[key]!r} is not a whole number")
        return int(value)

    addr = None
    if "addr" in data:
        a, _, b = str(data["addr"]).partition("-")
        try:
            addr = (int(a), int(b or a))
        except ValueError:
            raise ConfigError(f"{where}: addr={data['addr']!r}; expected N or N-M") from None
        if not 0 <= addr[0] <= addr[1] <= 65535:
            raise ConfigError(f"{where}: addr={data['addr']!r} out of range; expected 0..65535")
    if kind is FaultKind.DELAY and "ms" not in data:
        raise ConfigError(f"{where}: delay needs ms=N (milliseconds)")
    return FaultSpec(
        kind=kind,
        delay_ms=number("ms", 0, 600_000, 0),
        jitter_ms=number("jitter", 0, 600_000, 0),
        code=integer("code", 1, 255, ExceptionCode.SERVER_DEVICE_FAILURE),
        after=integer("after", 0, 1_000_000_000, 0),
        probability=number("p", 0, 1, 1),
        count=integer("count", 1, 10**12, 1) if "count" in data else None,
        duration_s=_duration_s(where, "for", data["for"]) if "for" in data else None,
        ports=_int_set(where, "port", data["port"], 0, 65535) if "port" in data else None,
        units=_int_set(where, "unit", data["unit"], 0, 255) if "unit" in data else None,
        function_codes=_int_set(where, "fc", data["fc"], 1, 127) if "fc" in data else None,
        address_range=addr,
    )


def parse_fault(spec: str, where: str | None = None) -> FaultSpec:
    """Parse ``KIND[:key=value,...]`` (the CLI form); ``where`` names it in errors."""
    kind, _, rest = spec.strip().partition(":")
    data: dict[str, Any] = {"kind": kind}
    where = where or f"--fault {spec!r}"
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"{where}: {item!r} is not key=value")
        data[key.strip()] = value.strip()
    return fault_from_mapping(data, where=where)


def as_fault(spec: FaultSpec | str | Mapping[str, Any]) -> FaultSpec:
    """A spec, its CLI string or its mapping, validated."""
    if isinstance(spec, FaultSpec):
        return spec
    if isinstance(spec, str):
        return parse_fault(spec)
    return fault_from_mapping(spec)


@dataclass(slots=True)
class _Armed:
    spec: FaultSpec
    armed_at_s: float
    fired: int = 0


class FaultInjector:
    """The armed faults of a twin; the servers' interceptor while any is armed."""

    def __init__(self, seed: int | None = None, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.seed = seed
        self._rng = random.Random(seed)  # private: reproducible per seed, never the global one
        self._faults: dict[int, _Armed] = {}
        self._next_id = 1
        self._seen: dict[tuple[int, int], int] = {}  # (fault id, connection) -> requests
        self.fired: dict[str, int] = dict.fromkeys(FaultKind, 0)  # firings by kind, ever (metrics)

    def add(self, spec: FaultSpec) -> int:
        fault_id = self._next_id
        self._next_id += 1
        self._faults[fault_id] = _Armed(spec, self.clock())
        return fault_id

    def remove(self, fault_id: int) -> bool:
        self._seen = {k: v for k, v in self._seen.items() if k[0] != fault_id}
        return self._faults.pop(fault_id, None) is not None

    def clear(self) -> None:
        self._faults.clear()
        self._seen.clear()

    def connection_closed(self, connection: int) -> None:
        """Forget a closed connection's drop counts (the TCP server calls this while
        faults are armed), so many short connections leave nothing behind."""
        if self._seen:
            for fault_id in self._faults:
                self._seen.pop((fault_id, connection), None)

    @property
    def drop_counts(self) -> Mapping[tuple[int, int], int]:
        """Requests answered so far per (fault id, connection) by ``drop:after=N`` faults
        (read-only view; a closed connection's counts are forgotten)."""
        return MappingProxyType(self._seen)

    @property
    def active(self) -> dict[int, FaultSpec]:
        """Armed faults by id (expired ones are dropped first)."""
        self._expire()
        return {i: a.spec for i, a in self._faults.items()}

    def __bool__(self) -> bool:
        return bool(self._faults)

    def _expire(self) -> None:
        now = self.clock()
        for i, a in list(self._faults.items()):
            s = a.spec
            if (s.count is not None and a.fired >= s.count) or (
                s.duration_s is not None and now - a.armed_at_s >= s.duration_s
            ):
                self.remove(i)

    def __call__(self, unit: int, pdu: bytes, connection: int, port: int) -> Intercept | None:
        if not self._faults:
            return None
        self._expire()
        fc = pdu[0] if pdu else 0
        address = ((pdu[1] << 8) | pdu[2]) if len(pdu) >= 3 and fc != 0x2B else None
        for fault_id, armed in self._faults.items():
            spec = armed.spec
            if not spec.matches(port, unit, fc, address):
                continue
            if spec.kind is FaultKind.DROP and spec.after:
                key = (fault_id, connection)
                seen = self._seen.get(key, 0)
                if seen < spec.after:
                    self._seen[key] = seen + 1
                    continue  # still one of the N answered requests on this connection
            if spec.probability < 1.0 and self._rng.random() >= spec.probability:
                continue  # a drop's count stays at N: the next request gets the same chance
            if spec.kind is FaultKind.DROP:
                # Closing: forget it (RTU, which has no connection, counts N afresh).
                self._seen.pop((fault_id, connection), None)
            armed.fired += 1
            self.fired[spec.kind] += 1
            return self._intercept(spec)
        return None

    def _intercept(self, spec: FaultSpec) -> Intercept:
        kind = spec.kind
        if kind is FaultKind.DELAY:
            jitter = self._rng.uniform(-spec.jitter_ms, spec.jitter_ms) if spec.jitter_ms else 0.0
            return Intercept(delay_s=max(0.0, spec.delay_ms + jitter) / 1000.0)
        if kind is FaultKind.SILENT:
            return Intercept(silent=True)
        if kind is FaultKind.EXCEPTION:
            return Intercept(exception_code=spec.code, delay_s=spec.delay_ms / 1000.0)
        if kind is FaultKind.DROP:
            return Intercept(drop_connection=True)
        if kind is FaultKind.GARBAGE:
            size = self._rng.randint(3, 40)
            return Intercept(replace_with=self._rng.randbytes(size))
        return Intercept(truncate=True)  # the server cuts its real answer short
