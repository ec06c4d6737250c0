"""The MQTT connection of a running twin: the only module that imports aiomqtt.

Theory of operation
-------------------
:class:`MqttPublisher` is one asyncio task beside the Modbus servers; Modbus never
waits for it. The task connects (MQTT 5, a last will of ``offline`` on the first
meter's availability topic), then per connection: ``online`` on every meter's
availability topic, Home Assistant discovery configs, and from then on three loops
until the connection drops or the twin stops:

- states: every meter's retained ``state`` once per ``interval_s`` of wall time, the
  fleet spread evenly over the interval (meter *i* of *n* at ``i/n`` of it), starting
  with a full round right after (re)connecting, so a reconnect republishes the current
  state once instead of a backlog of stale ones, and a new round at once when the twin's
  health changes (:meth:`MqttPublisher.republish`);
- events: core events queued by the twin's listener while connected (dropped, and
  counted, while not: they are moments, the state carries what they changed);
- commands: ``P/<serial>/cmd/<name>`` and ``P/all/cmd/<name>`` run through the twin's
  command runner (``twin.control``); each result goes to ``P/<target>/cmd/result`` and,
  when an MQTT 5 client set one, to its response topic with its correlation data.
  Retained commands are ignored (a stale command must not act again on reconnect);
  commands for serials this twin does not serve are ignored (another twin may), or
  refused with ``refuse_unknown`` (the twin is alone on its prefix).

A lost connection is retried with capped, jittered exponential backoff
(:data:`RECONNECT_MIN_S` .. :data:`RECONNECT_MAX_S`); a stop publishes ``offline`` and
disconnects cleanly (so the broker does not send the will). One log line per state
change, never the password. :attr:`status` is what the status line shows.

The publisher sees the twin through :class:`TwinSource` (meters, meter time, event
subscription), so it does not depend on the runtime package above it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import socket
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Final

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from twin.control import Result
from twin.core import Event
from twin.mqtt import topics
from twin.mqtt.commands import CommandRunner, parse_payload
from twin.mqtt.config import MqttConfig
from twin.mqtt.link import (
    RECONNECT_MAX_S,
    TLS_REFUSED,
    ClosingSSLSocket,
    backoff_s,
    cancel_all,
    describe_error,
)
from twin.mqtt.source import MeterSource, TwinSource
from twin.registers import Identity

log = logging.getLogger(__name__)

KEEPALIVE_S: Final = 15
TIMEOUT_S: Final = 5.0  # connect, and any publish that cannot be written
EVENT_QUEUE_MAX: Final = 10_000  # events held while a slow broker drains
_MIN_SLEEP_S: Final = 0.002  # below this a fleet slot is published without sleeping
_GATHER_MAX: Final = 200  # messages in flight at once in a burst (discovery, online)


class MqttPublisher:
    """The twin's MQTT client. ``async with MqttPublisher(cfg, twin, run) as pub``."""

    def __init__(
        self,
        config: MqttConfig,
        twin: TwinSource,
        run_command: CommandRunner,
        *,
        seed: int | None = None,
    ) -> None:
        self.config = config
        self._twin = twin
        self._run_command = run_command
        self._rng = random.Random(seed)
        self._meters = list(twin.meters)
        for meter in self._meters:
            topics.check_serial(meter.serial)
        self._by_serial = {m.serial: m for m in self._meters}
        head = self._meters[0].serial
        self.client_id = f"minimeter-{head}-{secrets.token_hex(3)}"
        self._will_topic = topics.availability_topic(config.prefix, head)
        self._events: deque[tuple[str, bytes]] = deque(maxlen=EVENT_QUEUE_MAX)
        self._events_ready = asyncio.Event()
        self._new_round = asyncio.Event()  # republish(): the states again from now on
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self.connected = False
        self.last_error: str | None = None
        self.connects = 0
        self.messages_published = 0
        self.events_dropped = 0

    # ---------------------------------------------------------------- lifecycle

    @property
    def status(self) -> str:
        """``connected`` or ``disconnected`` (what the status line shows)."""
        return "connected" if self.connected else "disconnected"

    async def start(self) -> None:
        self._unsubscribe = self._twin.subscribe(self._on_events)
        self._task = asyncio.create_task(self._run(), name="mqtt")

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._task is None:
            return
        self._stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), TIMEOUT_S * 2)
        except TimeoutError:
            await cancel_all([self._task])
        self._task = None

    async def __aenter__(self) -> MqttPublisher:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ---------------------------------------------------------------- connection

    def _client(self) -> aiomqtt.Client:
        cfg = self.config
        context = cfg.ssl_context()
        if context is not None:
            context.sslsocket_class = ClosingSSLSocket
        client = aiomqtt.Client(
            cfg.host,
            cfg.port,
            username=cfg.username,
            password=cfg.password,
            identifier=self.client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            will=aiomqtt.Will(self._will_topic, topics.OFFLINE, qos=1, retain=True),
            keepalive=KEEPALIVE_S,
            timeout=TIMEOUT_S,
            tls_context=context,
            # Small messages go out as they are published, not held back by Nagle's
            # algorithm until the broker's (delayed) ACK: tens of ms of lag otherwise.
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )
        client.pending_calls_threshold = 2 * _GATHER_MAX  # bursts are bounded by design
        return client

    async def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                async with self._client() as client:
                    attempt = 0
                    self._set_connected(client)
                    await self._session(client)
                self.connected = False  # stopped, and disconnected cleanly by `async with`
                return
            except aiomqtt.MqttError as exc:
                self._set_disconnected(describe_error(self.config, exc))
            except Exception:  # a bug must not end MQTT for the rest of the run
                log.exception("mqtt: the publisher failed; reconnecting")
                self._set_disconnected("internal error")
            delay = backoff_s(attempt, self._rng)
            attempt += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)

    def _set_connected(self, client: aiomqtt.Client) -> None:
        self.connected = True
        self.connects += 1
        self.last_error = None
        log.info("mqtt: connected to %s as %s", self.config.url, client.identifier)

    def _set_disconnected(self, reason: str) -> None:
        was_connected, self.connected = self.connected, False
        self._events.clear()
        if was_connected:
            log.warning("mqtt: connection to %s lost: %s; reconnecting", self.config.url, reason)
        elif reason != self.last_error:  # once per distinct reason, not per attempt
            log.log(
                logging.ERROR if reason.startswith(TLS_REFUSED) else logging.WARNING,
                "mqtt: cannot connect to %s: %s (retrying every %g s at most)",
                self.config.url,
                reason,
                RECONNECT_MAX_S,
            )
        self.last_error = reason

    async def _session(self, client: aiomqtt.Client) -> None:
        """One connection: announce, then the three loops until a loss or a stop."""
        await client.subscribe(
            topics.command_filter(self.config.prefix),
            options=SubscribeOptions(qos=1, noLocal=True),
        )
        online = topics.ONLINE.encode()
        await self._burst(
            client,
            [
                (topics.availability_topic(self.config.prefix, m.serial), online)
                for m in self._meters
            ],
            qos=1,
        )
        if self.config.ha_discovery:
            ids, cfg = [Identity.from_config(m.config) for m in self._meters], self.config
            await self._burst(
                client, topics.fleet_discovery(ids, prefix=cfg.prefix, ha_prefix=cfg.ha_prefix)
            )
        loops = [
            asyncio.create_task(self._publish_states(client), name="mqtt-states"),
            asyncio.create_task(self._publish_events(client), name="mqtt-events"),
            asyncio.create_task(self._serve_commands(client), name="mqtt-commands"),
        ]
        stop = asyncio.create_task(self._stop.wait(), name="mqtt-stop")
        try:
            done, _ = await asyncio.wait([*loops, stop], return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_all([*loops, stop])
        for task in loops:
            failure = task.exception() if task in done else None
            if failure is not None:
                raise failure  # the connection was lost (or a loop failed): reconnect
        offline = topics.OFFLINE.encode()
        await self._burst(
            client,
            [
                (topics.availability_topic(self.config.prefix, m.serial), offline)
                for m in self._meters
            ],
            qos=1,
        )
        log.info("mqtt: disconnecting from %s", self.config.url)

    async def _publish(
        self,
        client: aiomqtt.Client,
        topic: str,
        payload: bytes,
        *,
        qos: int = 0,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> None:
        await client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        self.messages_published += 1

    async def _burst(
        self, client: aiomqtt.Client, messages: list[tuple[str, bytes]], *, qos: int = 0
    ) -> None:
        """Retained messages in groups, yielding between groups so Modbus is served."""
        for i in range(0, len(messages), _GATHER_MAX):
            group = messages[i : i + _GATHER_MAX]
            await asyncio.gather(
                *(self._publish(client, t, p, qos=qos, retain=True) for t, p in group)
            )

    # ---------------------------------------------------------------- the loops

    def republish(self) -> None:
        """Start a new round of states now (the twin's health changed)."""
        self._new_round.set()

    async def _publish_states(self, client: aiomqtt.Client) -> None:
        loop = asyncio.get_running_loop()
        interval, n = self.config.interval_s, len(self._meters)
        start, cycle = loop.time(), 0
        while True:
            for i, meter in enumerate(self._meters):
                delay = start + (cycle + i / n) * interval - loop.time()
                if delay > _MIN_SLEEP_S:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._new_round.wait(), delay)
                    if self._new_round.is_set():
                        break
                await self._publish_state(client, meter)
            cycle += 1
            if self._new_round.is_set() or loop.time() > start + (cycle + 1) * interval:
                self._new_round.clear()  # asked for, or more than a round behind (no burst)
                start, cycle = loop.time(), 0

    async def _publish_state(self, client: aiomqtt.Client, meter: MeterSource) -> None:
        snapshot, cfg = meter.snapshot, self.config
        payload = topics.state_payload(
            snapshot,
            meter_time_s=self._twin.meter_time_s,
            unix_time_s=time.time(),
            extra=meter.extra,
        )
        await self._publish(
            client,
            topics.state_topic(cfg.prefix, meter.serial),
            topics.encode(payload),
            retain=True,
        )
        if cfg.tasmota:
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
            await self._publish(
                client,
                topics.tasmota_topic(meter.serial),
                topics.encode(topics.tasmota_payload(snapshot, stamp)),
            )

    def _on_events(self, meter: MeterSource, events: list[Event]) -> None:
        """The twin's listener (on the event loop, while the meters step): queue only."""
        for event in events:
            kind = topics.event_kind(event)
            if kind is None:
                continue
            if not self.connected:
                self.events_dropped += 1
                continue
            payload = topics.event_payload(
                event, serial=meter.serial, meter_time_s=self._twin.meter_time_s
            )
            topic = topics.event_topic(self.config.prefix, meter.serial, kind)
            if len(self._events) == self._events.maxlen:
                self.events_dropped += 1
            self._events.append((topic, topics.encode(payload)))
            self._events_ready.set()

    async def _publish_events(self, client: aiomqtt.Client) -> None:
        while True:
            await self._events_ready.wait()
            self._events_ready.clear()
            while self._events:
                topic, payload = self._events.popleft()
                await self._publish(client, topic, payload, qos=1)

    async def _serve_commands(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            await self._command(client, message)

    async def _command(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        parsed = topics.parse_command_topic(self.config.prefix, str(message.topic))
        if parsed is None:
            return
        target, name = parsed
        known = target == topics.ALL or target in self._by_serial
        if not known and not self.config.refuse_unknown:
            return  # a meter of another twin on the same broker and prefix
        if message.retain:
            log.warning("mqtt: retained command %s ignored (clear it on the broker)", message.topic)
            return
        props = message.properties
        response_topic = getattr(props, "ResponseTopic", None)
        correlation = getattr(props, "CorrelationData", None)
        body, correlation_id, error = parse_payload(message.payload, correlation)
        if not known:
            error = topics.unknown_meter(target, [m.serial for m in self._meters])
        if error is not None:
            result = Result(ok=False, command=name, error=error).as_json(correlation_id)
        else:
            serial = None if target == topics.ALL else target
            outcome = self._run_command(name, body, serial)
            result = outcome.as_json(correlation_id)
            if outcome.ok and serial is not None:
                await self._publish_state(client, self._by_serial[serial])
        out_props = None
        if correlation is not None:
            out_props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            out_props.CorrelationData = correlation
        payload = topics.encode(result)
        await self._publish(
            client,
            topics.result_topic(self.config.prefix, target),
            payload,
            qos=1,
            properties=out_props,
        )
        if response_topic:
            await self._publish(client, response_topic, payload, qos=1, properties=out_props)
