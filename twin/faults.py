"""Protocol fault injection: what a misbehaving meter or gateway does to requests.

A :class:`FaultSpec` is parsed once, from the CLI (``--fault SPEC``), a fleet file
or the Python API, and says what to do (kind), to which requests (unit ids,
function codes, an address range) and how often (a probability, a count, a
duration after it was armed). Kinds:

- ``delay``: answer late by ``ms`` ± ``jitter`` milliseconds;
- ``silent``: no answer at all (the client times out);
- ``exception``: answer exception ``code`` instead of the data;
- ``drop``: close the connection after ``after`` requests on it;
- ``garbage``: answer random bytes; ``truncate``: answer a cut-short frame.

Spec syntax: ``KIND[:key=value,...]``, e.g. ``delay:ms=200,jitter=50,p=0.5``,
``exception:code=4,fc=3,addr=100-199``, ``drop:after=10``, ``silent:unit=3,for=30s``.

:class:`FaultInjector` holds the armed faults of one server, decides per request
with its own seeded generator (reproducible runs) and a clock passed in (the
shell owns time). The first matching armed fault wins.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from twin.errors import ConfigError
from twin.modbus import Intercept

KINDS = ("delay", "silent", "exception", "drop", "garbage", "truncate")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|min|h)?$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0, None: 1.0}
_READ_FCS = frozenset({1, 2, 3, 4})


@dataclass(frozen=True, slots=True)
class FaultSpec:
    kind: str
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    code: int = 0x04  # SLAVE DEVICE FAILURE unless told otherwise
    after: int = 1
    probability: float = 1.0
    count: int | None = None
    duration_s: float | None = None
    units: frozenset[int] | None = None
    function_codes: frozenset[int] | None = None
    address_range: tuple[int, int] | None = None

    def matches(self, unit: int, fc: int, address: int | None) -> bool:
        if self.units is not None and unit not in self.units:
            return False
        if self.function_codes is not None and fc not in self.function_codes:
            return False
        if self.address_range is not None:
            lo, hi = self.address_range
            if address is None or not lo <= address <= hi:
                return False
        return True


def _int_set(where: str, key: str, text: str, lo: int, hi: int) -> frozenset[int]:
    values: set[int] = set()
    for part in str(text).replace(";", "+").split("+"):
        a, _, b = part.partition("-")
        try:
            first, last = int(a), int(b or a)
        except ValueError:
            raise ConfigError(
                f"{where}: {key}={text!r} is not a number or range like 1-5"
            ) from None
        if not lo <= first <= last <= hi:
            raise ConfigError(f"{where}: {key}={text!r} out of range; expected {lo}..{hi}")
        values.update(range(first, last + 1))
    return frozenset(values)


def _duration_s(where: str, key: str, text: str) -> float:
    m = _DURATION.match(str(text).strip())
    if m is None or float(m[1]) <= 0:
        raise ConfigError(
            f"{where}: {key}={text!r} is not a positive duration like 500ms, 30s, 5min"
        )
    return float(m[1]) * _UNIT_S[m[2]]


def fault_from_mapping(data: Mapping[str, Any], where: str = "fault") -> FaultSpec:
    """Validate one fault given as key/values (fleet file, MQTT command, Python)."""
    kind = data.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"{where}: kind {kind!r} unknown; expected one of {', '.join(KINDS)}")
    known = {"kind", "ms", "jitter", "code", "after", "p", "count", "for", "unit", "fc", "addr"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; expected some of {sorted(known)}")

    def number(key: str, lo: float, hi: float, default: float) -> float:
        raw = data.get(key, default)
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: {key}={raw!r} is not a number") from None
        if not lo <= value <= hi:
            raise ConfigError(f"{where}: {key}={raw!r} out of range; expected {lo:g}..{hi:g}")
        return value

    addr = None
    if "addr" in data:
        a, _, b = str(data["addr"]).partition("-")
        try:
            addr = (int(a), int(b or a))
        except ValueError:
            raise ConfigError(f"{where}: addr={data['addr']!r}; expected N or N-M") from None
        if not 0 <= addr[0] <= addr[1] <= 65535:
            raise ConfigError(f"{where}: addr={data['addr']!r} out of range; expected 0..65535")
    if kind == "delay" and "ms" not in data:
        raise ConfigError(f"{where}: delay needs ms=N (milliseconds)")
    count = data.get("count")
    return FaultSpec(
        kind=kind,
        delay_ms=number("ms", 0, 600_000, 0),
        jitter_ms=number("jitter", 0, 600_000, 0),
        code=int(number("code", 1, 255, 4)),
        after=int(number("after", 1, 1e9, 1)),
        probability=number("p", 0, 1, 1),
        count=None if count is None else int(number("count", 1, 1e12, 1)),
        duration_s=_duration_s(where, "for", data["for"]) if "for" in data else None,
        units=_int_set(where, "unit", data["unit"], 0, 255) if "unit" in data else None,
        function_codes=_int_set(where, "fc", data["fc"], 1, 127) if "fc" in data else None,
        address_range=addr,
    )


def parse_fault(spec: str) -> FaultSpec:
    """Parse ``KIND[:key=value,...]`` (the CLI form)."""
    kind, _, rest = spec.strip().partition(":")
    data: dict[str, Any] = {"kind": kind}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise ConfigError(f"--fault {spec!r}: {item!r} is not key=value")
        data[key.strip()] = value.strip()
    return fault_from_mapping(data, where=f"--fault {spec!r}")


@dataclass(slots=True)
class _Armed:
    spec: FaultSpec
    armed_at_s: float
    used: int = 0


@dataclass(slots=True)
class FaultInjector:
    """The armed faults of one server; call it per request to get an :class:`Intercept`."""

    clock: Callable[[], float]
    seed: int | None = None
    _faults: dict[int, _Armed] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    _rng: random.Random = field(init=False)
    _per_connection: dict[tuple[int, int], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A private generator: reproducible per seed, never the global one.
        self._rng = random.Random(self.seed)

    def add(self, spec: FaultSpec) -> int:
        fault_id = next(self._ids)
        self._faults[fault_id] = _Armed(spec, self.clock())
        return fault_id

    def add_all(self, specs: Iterable[FaultSpec]) -> list[int]:
        return [self.add(s) for s in specs]

    def remove(self, fault_id: int) -> bool:
        return self._faults.pop(fault_id, None) is not None

    def clear(self) -> None:
        self._faults.clear()
        self._per_connection.clear()

    @property
    def active(self) -> list[tuple[int, FaultSpec]]:
        self._expire()
        return [(i, a.spec) for i, a in self._faults.items()]

    def _expire(self) -> None:
        now = self.clock()
        for i, a in list(self._faults.items()):
            s = a.spec
            if (s.count is not None and a.used >= s.count) or (
                s.duration_s is not None and now - a.armed_at_s >= s.duration_s
            ):
                del self._faults[i]

    def __call__(self, unit: int, pdu: bytes, connection: int = 0) -> Intercept | None:
        if not self._faults:
            return None
        self._expire()
        fc = pdu[0] if pdu else 0
        address = int.from_bytes(pdu[1:3], "big") if len(pdu) >= 3 else None
        for fault_id, armed in self._faults.items():
            spec = armed.spec
            if not spec.matches(unit, fc, address):
                continue
            if spec.kind == "drop":
                key = (fault_id, connection)
                seen = self._per_connection.get(key, 0) + 1
                self._per_connection[key] = seen
                if seen < spec.after:
                    continue
                self._per_connection[key] = 0
            if spec.probability < 1.0 and self._rng.random() >= spec.probability:
                continue
            armed.used += 1
            return self._intercept(spec, fc)
        return None

    def _intercept(self, spec: FaultSpec, fc: int) -> Intercept:
        kind = spec.kind
        if kind == "delay":
            jitter = self._rng.uniform(-spec.jitter_ms, spec.jitter_ms) if spec.jitter_ms else 0.0
            return Intercept(delay_s=max(0.0, spec.delay_ms + jitter) / 1000.0)
        if kind == "silent":
            return Intercept(silent=True)
        if kind == "exception":
            return Intercept(exception_code=spec.code, delay_s=spec.delay_ms / 1000.0)
        if kind == "drop":
            return Intercept(drop_connection=True)
        if kind == "garbage":
            size = self._rng.randint(3, 40)
            return Intercept(replace_with=bytes(self._rng.getrandbits(8) for _ in range(size)))
        # truncate: the server cuts its real answer short (it alone knows the reply).
        return Intercept(truncate=True)
