"""The MQTT part of a running twin: what `twin.runtime` enters on its exit stack.

:func:`mqtt_part` is one entry of the twin's parts: a no-op while the twin's config has
no ``mqtt``; otherwise it starts an :class:`~twin.mqtt.publisher.MqttPublisher` on the
twin (its meters, events and ``twin.control``), sets ``twin.mqtt`` for the status line,
and on leaving publishes ``offline`` and disconnects. The twin is seen through
:class:`MqttTwin`, so this package does not import the runtime above it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Protocol

from twin.control import Controller, Result
from twin.mqtt.config import MqttConfig
from twin.mqtt.publisher import MqttPublisher
from twin.mqtt.source import TwinSource


class HasMqttConfig(Protocol):
    @property
    def mqtt(self) -> MqttConfig | None: ...


class MqttTwin(TwinSource, Protocol):
    """A running twin as the MQTT part needs it."""

    mqtt: MqttPublisher | None

    @property
    def config(self) -> HasMqttConfig: ...

    @property
    def control(self) -> Controller: ...


@asynccontextmanager
async def mqtt_part(twin: MqttTwin) -> AsyncIterator[None]:
    config = twin.config.mqtt
    if config is None:
        yield
        return

    def run(name: str, body: Mapping[str, object], serial: str | None) -> Result:
        return twin.control.run(name, body, serial=serial)

    async with MqttPublisher(config, twin, run) as publisher:
        twin.mqtt = publisher
        try:
            yield
        finally:
            twin.mqtt = None
