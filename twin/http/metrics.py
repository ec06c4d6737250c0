"""``GET /metrics``: the twin in Prometheus text format (`prometheus_client`).

Two kinds of series. What the twin already counts (Modbus requests and exceptions
per function code from each port's dispatcher counters, open and refused Modbus
connections per port, faults fired per kind, every meter's energy, power and demand,
the stepping lag) is read at scrape time by :class:`TwinCollector`, so the hot paths
never touch Prometheus. What only the HTTP part sees (its requests, commands, stream
clients, frames, dropped events, publish lag) lives in :class:`HttpMetrics`. Each app
has its own registry: two twins in one process never share a series.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from twin.http.target import HttpTarget
from twin.registers import TwinHealth

_FUNCTION_CODES = range(1, 128)  # exception answers set bit 7; counters index the request's
LAG_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class TwinCollector(Collector):
    """Series read from the running twin at each scrape."""

    def __init__(self, target: HttpTarget) -> None:
        self._target = target

    def collect(self) -> Iterator[Metric]:
        t = self._target
        requests = CounterMetricFamily(
            "minimeter_modbus_requests",
            "Modbus requests answered, by function code",
            labels=["function_code"],
        )
        exceptions = CounterMetricFamily(
            "minimeter_modbus_exceptions",
            "Modbus exception answers, by the request's function code",
            labels=["function_code"],
        )
        req_sum, exc_sum = [0] * 256, [0] * 256
        dispatchers = [s.dispatcher for s in t.servers.values()]
        if t.rtu is not None:
            dispatchers.append(t.rtu.dispatcher)
        for d in dispatchers:
            for fc in _FUNCTION_CODES:
                req_sum[fc] += d.requests[fc]
                exc_sum[fc] += d.exceptions[fc]
        for fc in _FUNCTION_CODES:
            if req_sum[fc]:
                requests.add_metric([str(fc)], req_sum[fc])
            if exc_sum[fc]:
                exceptions.add_metric([str(fc)], exc_sum[fc])
        yield requests
        yield exceptions

        connections = GaugeMetricFamily(
            "minimeter_modbus_connections", "Open Modbus TCP connections", labels=["port"]
        )
        evicted = CounterMetricFamily(
            "minimeter_modbus_connections_evicted",
            "Modbus TCP connections closed to admit a new one (limit reached)",
            labels=["port"],
        )
        timed_out = CounterMetricFamily(
            "minimeter_modbus_connections_timed_out",
            "Modbus TCP connections closed by the idle or incomplete-frame timeout",
            labels=["port"],
        )
        for server in t.servers.values():
            connections.add_metric([str(server.port)], len(server.connections))
            evicted.add_metric([str(server.port)], server.evicted)
            timed_out.add_metric([str(server.port)], server.timed_out)
        yield connections
        yield evicted
        yield timed_out

        fired = CounterMetricFamily(
            "minimeter_faults_fired", "Protocol faults fired, by kind", labels=["kind"]
        )
        for kind, count in t.hooks.faults.fired.items():
            fired.add_metric([kind], count)
        yield fired
        yield GaugeMetricFamily(
            "minimeter_faults_armed", "Protocol faults armed now", value=len(t.hooks.faults.active)
        )

        yield GaugeMetricFamily(
            "minimeter_meter_time_seconds", "Meter time stepped since start", value=t.meter_time_s
        )
        yield GaugeMetricFamily(
            "minimeter_step_lag_seconds",
            "Meter time the clock asks for that the meters have not stepped yet",
            value=t.lag_s,
        )
        yield GaugeMetricFamily(
            "minimeter_speed", "Clock speed (meter s per wall s)", t.clock.speed
        )
        yield GaugeMetricFamily(
            "minimeter_store_failing",
            "1 while checkpoints fail (full disk, read-only state dir): serving from memory",
            value=float(t.store_error is not None),
        )
        health = GaugeMetricFamily(
            "minimeter_twin_condition",
            "1 while the twin's condition holds (twin_health, register 79)",
            labels=["condition"],
        )
        for flag in TwinHealth:
            health.add_metric([str(flag.name).lower()], float(bool(t.health.bits & flag)))
        yield health
        yield from _meter_series(t)


def _meter_series(t: HttpTarget) -> Iterator[Metric]:
    series = {
        "energy_delivered_wh": "Energy delivered register, Wh",
        "energy_received_wh": "Energy received register, Wh",
        "power_w": "Total power, W (signed)",
        "demand_kw": "Present demand, kW",
        "demand_max_kw": "Maximum demand, kW",
        "error_code": "Error code shown on the LCD, 0 = none",
    }
    families = {
        name: GaugeMetricFamily(f"minimeter_meter_{name}", doc, labels=["serial"])
        for name, doc in series.items()
    }
    for m in t.meters:
        snap = m.snapshot
        for name, family in families.items():
            value = float(getattr(snap, name))
            family.add_metric([m.serial], value)
    yield from families.values()


class HttpMetrics:
    """The HTTP part's own series, and the registry /metrics renders."""

    def __init__(self, target: HttpTarget) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(TwinCollector(target))
        r = self.registry
        self.requests = Counter(
            "minimeter_http_requests",
            "HTTP requests answered, by method, route and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.commands = Counter(
            "minimeter_http_commands",
            "Commands received over HTTP, by command and outcome",
            ["command", "outcome"],
            registry=r,
        )
        self.stream_clients = Gauge(
            "minimeter_http_stream_clients", "Open live streams", registry=r
        )
        self.stream_frames = Counter(
            "minimeter_http_stream_frames", "Frames written to live streams", registry=r
        )
        self.stream_refused = Counter(
            "minimeter_http_stream_refused", "Live streams refused (limit reached)", registry=r
        )
        self.events_dropped = Counter(
            "minimeter_http_stream_events_dropped",
            "Events dropped for slow live-stream clients (their queue was full)",
            registry=r,
        )
        self.publish_lag = Histogram(
            "minimeter_http_stream_publish_lag_seconds",
            "From a frame being due to its write finishing (a slow client waits alone)",
            buckets=LAG_BUCKETS_S,
            registry=r,
        )
