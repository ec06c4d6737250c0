"""The live stream: Server-Sent Events of snapshots and events, with back-pressure.

Theory of operation
-------------------
A client opens ``GET /api/stream?serial=S&fleet=1&interval_s=0.5`` and gets, every
interval, the latest frame of what it asked for: ``event: meter`` (one meter's
snapshot by register name) and/or ``event: fleet`` (the fleet list), then ``event:
events`` with the meter events (errors raised and cleared, demand closed, power lost
...) since its last frame.

Nothing waits for a client. Snapshots are *pulled*: a client's loop takes the newest
frame when it is ready to send, so old snapshots never queue up (a client that reads
slowly simply gets fewer, newer frames; its mailbox for snapshots holds one). A frame
is serialised once per topic per moment (:meth:`StreamHub.frame` caches it for
``_FRAME_REUSE_S``) and shared by every client, so 50 browsers cost one JSON dump per
topic per tick, not 50. Events are *pushed* by the twin's listener into a bounded
deque per client; when a slow client's deque is full the oldest events go and are
counted (``dropped`` in the next events frame, and a metric). The meter's listener
only appends to deques: it never awaits, never writes a socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from twin.core import Event
from twin.http.config import STREAM_EVENTS_MAX, HttpConfig
from twin.http.metrics import HttpMetrics
from twin.http.target import HttpTarget, MeterView
from twin.http.views import event_json, meter_json, scalar_events, snapshot_json

_FRAME_REUSE_S = 0.02  # a frame built this recently is served again as is
FLEET_TOPIC = "fleet"


class StreamClient:
    """One open stream: what it watches, and its bounded queue of pending events."""

    def __init__(self, serial: str | None, fleet: bool) -> None:
        self.serial = serial
        self.fleet = fleet
        self.events: deque[dict[str, Any]] = deque(maxlen=STREAM_EVENTS_MAX)
        self.dropped = 0

    def push(self, serial: str, event: dict[str, Any]) -> bool:
        """Queue an event if this client watches its meter; False if one was dropped."""
        if not (self.fleet or serial == self.serial):
            return True
        full = len(self.events) == self.events.maxlen
        if full:
            self.dropped += 1
        self.events.append(event)
        return not full

    def take_events(self) -> bytes:
        if not self.events and not self.dropped:
            return b""
        body = {"events": list(self.events), "dropped": self.dropped}
        self.events.clear()
        self.dropped = 0
        return sse("events", body)


def sse(event: str, data: object) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class StreamHub:
    """Every open stream of one app, fed from one twin."""

    def __init__(
        self,
        target: HttpTarget,
        meters: Mapping[str, MeterView],
        config: HttpConfig,
        metrics: HttpMetrics,
    ) -> None:
        self._target = target
        self._meters = meters
        self._config = config
        self._metrics = metrics
        self.clients: set[StreamClient] = set()
        self._frames: dict[str, tuple[float, float, bytes]] = {}  # built at, meter time
        self._unsubscribe: Callable[[], None] | None = None
        self.closing = asyncio.Event()

    def attach(self) -> None:
        self._unsubscribe = self._target.subscribe(self._on_events)

    def detach(self) -> None:
        self.closing.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _on_events(self, meter: MeterView, events: list[Event]) -> None:
        if not self.clients:
            return
        scalar = scalar_events(events)
        if not scalar:
            return
        serial = meter.serial
        for ev in scalar:
            body = event_json(serial, ev)
            for client in self.clients:
                if not client.push(serial, body):
                    self._metrics.events_dropped.inc()

    def frame(self, topic: str, now: float) -> bytes:
        """The newest frame of a topic (``fleet`` or a serial), built at most once per tick."""
        t = self._target
        cached = self._frames.get(topic)
        if cached is not None and now - cached[0] < _FRAME_REUSE_S and cached[1] == t.meter_time_s:
            return cached[2]
        head = {"meter_time_s": t.meter_time_s, "speed": t.clock.speed, "lag_s": t.lag_s}
        if topic == FLEET_TOPIC:
            ports = {p: s.port for p, s in t.servers.items()}
            data = sse("fleet", {**head, "meters": [meter_json(m, ports) for m in t.meters]})
        else:
            meter = self._meters[topic]
            data = sse(
                "meter",
                {**head, "serial": topic, "snapshot": snapshot_json(meter.snapshot, meter.extra)},
            )
        self._frames[topic] = (now, t.meter_time_s, data)
        return data

    async def serve(
        self, request: web.Request, client: StreamClient, interval_s: float
    ) -> web.StreamResponse:
        """Write frames to one client until it goes away or the app stops."""
        if len(self.clients) >= self._config.max_stream_clients:
            self._metrics.stream_refused.inc()
            raise web.HTTPServiceUnavailable(
                text=json.dumps({"error": "too many open streams; try again later"}),
                content_type="application/json",
            )
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await resp.prepare(request)
        loop = asyncio.get_running_loop()
        self.clients.add(client)
        self._metrics.stream_clients.inc()
        try:
            await resp.write(f"retry: {round(interval_s * 2000)}\n\n".encode())
            while not self.closing.is_set():
                due = loop.time()
                parts = []
                if client.fleet:
                    parts.append(self.frame(FLEET_TOPIC, due))
                if client.serial is not None:
                    parts.append(self.frame(client.serial, due))
                parts.append(client.take_events())
                await resp.write(b"".join(parts))  # a slow client waits here, alone
                self._metrics.stream_frames.inc()
                lag_s = loop.time() - due
                self._metrics.publish_lag.observe(lag_s)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.closing.wait(), max(0.0, interval_s - lag_s))
        except ConnectionError:
            pass  # the browser went away
        finally:
            self.clients.discard(client)
            self._metrics.stream_clients.dec()
        return resp
