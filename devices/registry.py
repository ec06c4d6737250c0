"""Backends by URL scheme, imported only when a URL names them.

As python-can's interface registry: a static table maps each scheme to a
``(module, class)`` pair, extended by the ``minimeter.devices`` entry-point group so
another package can add a backend without touching this one. An entry point is
named ``source.SCHEME`` or ``sink.SCHEME`` and points at ``module:Class``, a subclass
of :class:`~devices.base.PulseSourceBase` or :class:`~devices.base.PulseSinkBase`::

    [project.entry-points."minimeter.devices"]
    "source.mybox" = "mybox_pulses:MyboxPulseSource"

:func:`open_source` / :func:`open_sink` parse the URL, import the backend and build
it (not started: ``async with open_source(url) as source:``). A missing optional
dependency becomes a :class:`~twin.errors.DeviceError` naming the extra to install.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from importlib.metadata import EntryPoint, entry_points
from typing import Final

from devices.base import Clock, PulseSinkBase, PulseSourceBase
from devices.store import CounterStore
from devices.urls import DeviceUrl
from twin.errors import DeviceError

#: The entry-point group third-party backends register in.
ENTRY_POINT_GROUP: Final = "minimeter.devices"
#: The distribution whose extras install optional backend dependencies.
DISTRIBUTION: Final = "minimeter-twin"


class DeviceRole(StrEnum):
    """The two hardware roles; an entry point's name starts with one."""

    SOURCE = "source"
    SINK = "sink"


@dataclass(frozen=True, slots=True)
class BackendRef:
    """Where a backend lives, and the extra that installs what it imports."""

    module: str
    class_name: str
    extra: str | None = None


SOURCE_BACKENDS: Final[Mapping[str, BackendRef]] = {
    "virtual": BackendRef("devices.virtual", "VirtualPulseSource"),
    "adam6051": BackendRef("devices.modbus_counter", "Adam6051PulseSource"),
    "iologik": BackendRef("devices.modbus_counter", "IologikPulseSource"),
    "modbus-counter": BackendRef("devices.modbus_counter", "ModbusCounterPulseSource"),
    "mqtt-tasmota": BackendRef("devices.mqtt_pulses", "TasmotaPulseSource"),
    "mqtt-esphome": BackendRef("devices.mqtt_pulses", "EsphomePulseSource"),
    "mqtt-edges": BackendRef("devices.mqtt_pulses", "MqttEdgePulseSource"),
    "gpio": BackendRef("devices.gpio", "GpioPulseSource", extra="gpio"),
}
SINK_BACKENDS: Final[Mapping[str, BackendRef]] = {
    "virtual": BackendRef("devices.virtual", "VirtualPulseSink"),
    "modbus-coil": BackendRef("devices.modbus_counter", "ModbusCoilPulseSink"),
    "mqtt-edges": BackendRef("devices.mqtt_pulses", "MqttEdgePulseSink"),
    "gpio": BackendRef("devices.gpio", "GpioPulseSink", extra="gpio"),
}


@dataclass(frozen=True, slots=True)
class DeviceBackends:
    """The scheme tables in force: the static ones plus entry points."""

    sources: Mapping[str, BackendRef]
    sinks: Mapping[str, BackendRef]

    def table(self, role: DeviceRole) -> Mapping[str, BackendRef]:
        return self.sources if role is DeviceRole.SOURCE else self.sinks


def device_backends(extra: Iterable[EntryPoint] | None = None) -> DeviceBackends:
    """Static backends plus ``extra`` entry points (default: the installed ones)."""
    found = entry_points(group=ENTRY_POINT_GROUP) if extra is None else extra
    tables = {DeviceRole.SOURCE: dict(SOURCE_BACKENDS), DeviceRole.SINK: dict(SINK_BACKENDS)}
    for entry in found:
        role_name, _, scheme = entry.name.partition(".")
        module, _, class_name = entry.value.partition(":")
        if role_name not in set(DeviceRole) or not scheme or not module or not class_name:
            raise DeviceError(
                f"entry point {entry.name!r} = {entry.value!r} in {ENTRY_POINT_GROUP}: "
                "expected a name source.SCHEME or sink.SCHEME and a value module:Class"
            )
        tables[DeviceRole(role_name)][scheme.lower()] = BackendRef(module, class_name)
    return DeviceBackends(tables[DeviceRole.SOURCE], tables[DeviceRole.SINK])


def _backend_class(url: DeviceUrl, role: DeviceRole, backends: DeviceBackends) -> type:
    table = backends.table(role)
    ref = table.get(url.scheme)
    what = f"{role.value} {url.scheme!r}"
    if ref is None:
        other = DeviceRole.SINK if role is DeviceRole.SOURCE else DeviceRole.SOURCE
        hint = f" ({url.scheme} is a {other.value})" if url.scheme in backends.table(other) else ""
        expected = f"a {role.value}: {', '.join(sorted(table))}"
        raise url.error(f"scheme {url.scheme!r}{hint}", expected)
    try:
        module = importlib.import_module(ref.module)
    except ImportError as exc:
        if ref.extra is not None:
            raise DeviceError(
                f"{what} needs the optional dependency {exc.name or ref.module}: "
                f"install the extra: pip install '{DISTRIBUTION}[{ref.extra}]'"
            ) from exc
        raise DeviceError(f"{what}: cannot import {ref.module}: {exc}") from exc
    cls = getattr(module, ref.class_name, None)
    base = PulseSourceBase if role is DeviceRole.SOURCE else PulseSinkBase
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise DeviceError(
            f"{what}: {ref.module}.{ref.class_name} is not a {base.__name__} subclass"
        )
    return cls


def open_source(
    url: str,
    *,
    store: CounterStore | None = None,
    clock: Clock | None = None,
    wall_clock: Clock | None = None,
    backends: DeviceBackends | None = None,
) -> PulseSourceBase:
    """The source ``url`` names, not yet started (``async with`` it)."""
    parsed = DeviceUrl.parse(url)
    cls = _backend_class(parsed, DeviceRole.SOURCE, backends or device_backends())
    assert issubclass(cls, PulseSourceBase)  # checked by _backend_class
    return cls.from_url(parsed, store=store, clock=clock, wall_clock=wall_clock)


def open_sink(
    url: str, *, clock: Clock | None = None, backends: DeviceBackends | None = None
) -> PulseSinkBase:
    """The sink ``url`` names, not yet started (``async with`` it)."""
    parsed = DeviceUrl.parse(url)
    cls = _backend_class(parsed, DeviceRole.SINK, backends or device_backends())
    assert issubclass(cls, PulseSinkBase)  # checked by _backend_class
    return cls.from_url(parsed, clock=clock)
