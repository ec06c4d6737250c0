"""Pulses over MQTT: Tasmota and ESPHome counters, raw edge JSON (source and sink).

- ``mqtt-tasmota://BROKER[:1883]/TOPIC?counter=C1&kh=10``: Tasmota's ``COUNTER``
  telemetry, ``{"COUNTER": {"C1": 123}}`` on ``tele/TOPIC/SENSOR`` (``prefix=`` changes
  ``tele``). A counter source: the counts between two telemetry messages are timed
  to within the TelePeriod; a reboot that clears the counter is a reset.
- ``mqtt-esphome://BROKER/STATE_TOPIC?kh=10``: an ESPHome ``pulse_meter`` total
  sensor, the plain number on its state topic (e.g. ``meter/sensor/pulses/state``).
- ``mqtt-edges://BROKER/TOPIC?kh=10``: one JSON object per edge,
  ``{"edge": "rising"|"falling", "at_s": 12.5, "uncertainty_s": 0.0}``. The edge is
  timed on arrival (``stamp=arrival``, uncertainty ``latency``, 100 ms) or by the
  sender's ``at_s`` (``stamp=sender``, when both run on one clock, e.g. a twin at speed).
  As a sink, the same URL publishes that JSON for each closure and opening.

``user:password@`` in the URL authenticates. This is devices' only aiomqtt import.
"""

from __future__ import annotations

import json
import logging
import math
from abc import abstractmethod
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Self

import aiomqtt

from devices.base import Clock, PulseSinkBase, PulseSourceBase
from devices.cancellation import bounded_close
from devices.config import EdgeKind, SinkConfig, SourceConfig
from devices.readings import CounterSample, DeviceIOError, EdgeSample, Observation
from devices.store import CounterStore
from devices.urls import DeviceUrl, source_config
from twin.errors import DeviceError

LOG = logging.getLogger(__name__)

MQTT_PORT: Final = 1883
#: How late an edge timed on arrival may be (broker and network latency).
DEFAULT_LATENCY_S: Final = 0.1
TASMOTA_PREFIX: Final = "tele"
#: QoS of subscriptions and of the sink's edges: a lost edge is a lost pulse.
EDGE_QOS: Final = 1


class EdgeStamp(StrEnum):
    """Whose clock times an edge that arrives over MQTT."""

    ARRIVAL = "arrival"
    SENDER = "sender"


@dataclass(frozen=True, slots=True)
class MqttTarget:
    """A broker, its credentials and the topic a device uses."""

    host: str
    topic: str
    port: int = MQTT_PORT
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_url(cls, url: DeviceUrl, what: str = "topic") -> MqttTarget:
        return cls(
            host=url.require_host("broker"),
            topic=url.path_segment(what),
            port=url.port_or(MQTT_PORT),
            username=url.username,
            password=url.password,
        )


class MqttLink:
    """One aiomqtt client, connected on demand; failures become DeviceIOError."""

    def __init__(self, target: MqttTarget, subscribe: str | None) -> None:
        self.target = target
        self.subscribe = subscribe
        self._stack: AsyncExitStack | None = None
        self._client: aiomqtt.Client | None = None
        self._messages: AsyncIterator[aiomqtt.Message] | None = None

    async def connect(self) -> aiomqtt.Client:
        if self._client is not None:
            return self._client
        t = self.target
        stack = AsyncExitStack()
        try:
            client = await stack.enter_async_context(
                aiomqtt.Client(t.host, port=t.port, username=t.username, password=t.password)
            )
            if self.subscribe is not None:
                await client.subscribe(self.subscribe, qos=EDGE_QOS)
        except BaseException as exc:  # failed or cancelled: leave no client connected
            await self._release(stack)
            if isinstance(exc, aiomqtt.MqttError):
                raise DeviceIOError(f"mqtt://{t.host}:{t.port}: {exc}") from exc
            raise
        self._stack, self._client, self._messages = stack, client, aiomqtt_messages(client)
        return client

    async def next_payload(self) -> bytes:
        await self.connect()
        assert self._messages is not None
        try:
            message = await anext(self._messages)
        except aiomqtt.MqttError as exc:
            await self.close()
            raise DeviceIOError(f"mqtt://{self.target.host}:{self.target.port}: {exc}") from exc
        payload = message.payload
        return payload if isinstance(payload, bytes) else str(payload).encode()

    async def publish(self, payload: str) -> None:
        client = await self.connect()
        try:
            await client.publish(self.target.topic, payload, qos=EDGE_QOS)
        except aiomqtt.MqttError as exc:
            await self.close()
            raise DeviceIOError(f"mqtt://{self.target.host}:{self.target.port}: {exc}") from exc

    async def close(self) -> None:
        stack, self._stack, self._client, self._messages = self._stack, None, None, None
        if stack is not None:
            await self._release(stack)

    async def _release(self, stack: AsyncExitStack) -> None:
        where = f"mqtt://{self.target.host}:{self.target.port}"
        with suppress(aiomqtt.MqttError):  # already gone: nothing left to release
            await bounded_close(stack.aclose(), where)


def aiomqtt_messages(client: aiomqtt.Client) -> AsyncIterator[aiomqtt.Message]:
    """The client's message iterator (one per connection)."""
    return aiter(client.messages)


class MqttPulseSource(PulseSourceBase):
    """A source fed by one subscribed topic; subclasses parse the payload."""

    def __init__(
        self,
        config: SourceConfig,
        target: MqttTarget,
        subscribe: str,
        *,
        store: CounterStore | None = None,
        clock: Clock | None = None,
        wall_clock: Clock | None = None,
    ) -> None:
        super().__init__(config, store=store, clock=clock, wall_clock=wall_clock)
        self.target = target
        self._link = MqttLink(target, subscribe)

    async def _open(self) -> None:
        # Subscribe now, so nothing published after start is missed; a broker that is
        # down is retried by the read loop (and makes the source stale meanwhile).
        try:
            await self._link.connect()
        except DeviceIOError as exc:
            self.last_error = str(exc)

    async def _close(self) -> None:
        await self._link.close()

    async def _next_observations(self) -> Sequence[Observation]:
        payload = await self._link.next_payload()
        try:
            return [self._parse(payload, self.clock())]
        except DeviceIOError as exc:
            # A malformed message is skipped, not retried: the next one may be fine.
            LOG.warning("%s", exc)
            self.last_error = str(exc)
            return []

    @abstractmethod
    def _parse(self, payload: bytes, at_s: float) -> Observation:
        """One message's payload -> an observation (raise ``_refuse(...)`` if malformed)."""

    def _refuse(self, payload: bytes, expected: str) -> DeviceIOError:
        shown = payload[:120].decode("utf-8", "replace")
        return DeviceIOError(f"source {self.source_id}: message {shown!r}: expected {expected}")


class TasmotaPulseSource(MqttPulseSource):
    """Tasmota ``COUNTER`` telemetry (``tele/TOPIC/SENSOR``)."""

    def __init__(
        self,
        config: SourceConfig,
        target: MqttTarget,
        subscribe: str,
        counter: str,
        *,
        store: CounterStore | None = None,
        clock: Clock | None = None,
        wall_clock: Clock | None = None,
    ) -> None:
        super().__init__(config, target, subscribe, store=store, clock=clock, wall_clock=wall_clock)
        self.counter = counter

    @classmethod
    def from_url(
        cls,
        url: DeviceUrl,
        *,
        store: CounterStore | None = None,
        clock: Clock | None = None,
        wall_clock: Clock | None = None,
    ) -> Self:
        target = MqttTarget.from_url(url)
        counter = url.text_param("counter", "C1")
        prefix = url.text_param("prefix", TASMOTA_PREFIX)
        config = source_config(
            url, f"mqtt-tasmota://{target.host}/{target.topic}/{counter}", counter=True
        )
        url.finish()
        return cls(
            config,
            target,
            f"{prefix}/{target.topic}/SENSOR",
            counter,
            store=store,
            clock=clock,
            wall_clock=wall_clock,
        )

    def _parse(self, payload: bytes, at_s: float) -> Observation:
        expected = f'JSON with "COUNTER": {{"{self.counter}": <count>}}'
        try:
            value = json.loads(payload)["COUNTER"][self.counter]
        except (ValueError, KeyError, TypeError):
            raise self._refuse(payload, expected) from None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self._refuse(payload, expected)
        return CounterSample(value, at_s)


class EsphomePulseSource(MqttPulseSource):
    """An ESPHome total sensor: the pulse count as a number on its state topic."""

    @classmethod
    def from_url(
        cls,
        url: DeviceUrl,
        *,
        store: CounterStore | None = None,
        clock: Clock | None = None,
        wall_clock: Clock | None = None,
    ) -> Self:
        target = MqttTarget.from_url(url, "state topic")
        config = source_config(url, f"mqtt-esphome://{target.host}/{target.topic}", counter=True)
        url.finish()
        return cls(config, target, target.topic, store=store, clock=clock, wall_clock=wall_clock)

    def _parse(self, payload: bytes, at_s: float) -> Observation:
        try:
            value = float(payload.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            value = math.nan
        if not (math.isfinite(value) and value >= 0 and value == int(value)):
            raise self._refuse(payload, "a whole number of pulses")
        return CounterSample(int(value), at_s)


class MqttEdgePulseSource(MqttPulseSource):
    """Raw edge JSON, one message per edge."""

    def __init__(
        self,
        config: SourceConfig,
        target: MqttTarget,
        stamp: EdgeStamp,
        latency_s: float,
        *,
        store: CounterStore | None = None,
        clock: Clock | None = None,
        wall_clock: Clock | None = None,
    ) -> None:
        super().__init__(
            config, target, target.topic, store=store, clock=clock, wall_clock=wall_clock
        )
        self.stamp = stamp
        self.latency_s = latency_s

    @classmethod
    def from_url(
        cls,
        url: DeviceUrl,
        *,
        store: CounterStore | None = None,
        clock: Clock | None = None,
        wall_clock: Clock | None = None,
    ) -> Self:
        target = MqttTarget.from_url(url)
        stamp = url.enum_param("stamp", EdgeStamp, EdgeStamp.ARRIVAL)
        latency_s = url.duration_param("latency", DEFAULT_LATENCY_S) or 0.0
        config = source_config(url, f"mqtt-edges://{target.host}/{target.topic}", counter=False)
        url.finish()
        return cls(
            config,
            target,
            stamp,
            latency_s,
            store=store,
            clock=clock,
            wall_clock=wall_clock,
        )

    def _parse(self, payload: bytes, at_s: float) -> Observation:
        expected = '{"edge": "rising"|"falling", "at_s": <s>, "uncertainty_s": <s>}'
        try:
            body = json.loads(payload)
            kind = EdgeKind(body["edge"])
            sent_at_s = float(body.get("at_s", math.nan))
            sent_uncertainty_s = float(body.get("uncertainty_s", 0.0))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise self._refuse(payload, expected) from None
        if kind is EdgeKind.BOTH:
            raise self._refuse(payload, expected)
        if self.stamp is EdgeStamp.ARRIVAL:
            return EdgeSample(kind, at_s, self.latency_s)
        if not math.isfinite(sent_at_s) or not sent_uncertainty_s >= 0:
            raise self._refuse(payload, expected + " with at_s (stamp=sender)")
        return EdgeSample(kind, sent_at_s, sent_uncertainty_s)


class MqttEdgePulseSink(PulseSinkBase):
    """Publishes each transition as edge JSON (QoS 1), timed by the twin's clock."""

    def __init__(
        self, config: SinkConfig, target: MqttTarget, *, clock: Clock | None = None
    ) -> None:
        super().__init__(config, clock=clock)
        self.target = target
        self._link = MqttLink(target, None)

    @classmethod
    def from_url(cls, url: DeviceUrl, *, clock: Clock | None = None) -> Self:
        target = MqttTarget.from_url(url)
        sink_id = url.text_param("id", f"mqtt-edges://{target.host}/{target.topic}")
        url.finish()
        return cls(SinkConfig(sink_id), target, clock=clock)

    async def _open(self) -> None:
        try:
            await self._link.connect()
        except DeviceIOError as exc:
            raise DeviceError(f"sink {self.sink_id}: {exc}") from exc

    async def _close(self) -> None:
        await self._link.close()

    async def _write(self, closed: bool, at_s: float) -> None:
        edge = EdgeKind.RISING if closed else EdgeKind.FALLING
        await self._link.publish(json.dumps({"edge": edge.value, "at_s": at_s}))
