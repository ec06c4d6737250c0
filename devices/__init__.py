"""Pulse devices: the hardware roles that read a meter's pulse outputs back
(:class:`PulseSource`) and drive a PLC's counter input (:class:`PulseSink`), the
behaviour every backend shares (debounce, rollover, reset, restart, staleness), and
the registry that opens a backend by URL scheme with lazy imports. Backends:
``virtual``, Modbus counter modules and coils, MQTT (Tasmota, ESPHome, edge JSON),
Linux GPIO (optional ``gpio`` extra). Imports nothing from ``twin`` but ``twin.errors``.
"""

from devices.base import Clock, PulseSink, PulseSinkBase, PulseSource, PulseSourceBase
from devices.cancellation import (
    STOP_TIMEOUT_S,
    cancel_and_wait,
    cancel_requests,
    honour_cancellation,
)
from devices.config import (
    DEFAULT_DEBOUNCE_S,
    DEFAULT_MAX_COUNT_RATE_HZ,
    DEFAULT_STALE_AFTER_S,
    ROLLOVER_SLACK_COUNTS,
    CounterEvent,
    CounterWidth,
    EdgeKind,
    FunctionCode,
    SinkConfig,
    SourceConfig,
    WordOrder,
)
from devices.counting import CounterTracker, CountStep
from devices.readings import (
    CounterSample,
    DeviceIOError,
    EdgeSample,
    Heartbeat,
    Observation,
    PulseReading,
)
from devices.registry import (
    ENTRY_POINT_GROUP,
    SINK_BACKENDS,
    SOURCE_BACKENDS,
    BackendRef,
    DeviceBackends,
    DeviceRole,
    device_backends,
    open_sink,
    open_source,
)
from devices.store import CounterRecord, CounterStore, JsonFileCounterStore, MemoryCounterStore
from devices.urls import DeviceUrl, parse_duration_s
from devices.virtual import VirtualPulseSink, VirtualPulseSource, open_channels

__all__ = [
    "DEFAULT_DEBOUNCE_S",
    "DEFAULT_MAX_COUNT_RATE_HZ",
    "DEFAULT_STALE_AFTER_S",
    "ENTRY_POINT_GROUP",
    "ROLLOVER_SLACK_COUNTS",
    "SINK_BACKENDS",
    "SOURCE_BACKENDS",
    "STOP_TIMEOUT_S",
    "BackendRef",
    "Clock",
    "CountStep",
    "CounterEvent",
    "CounterRecord",
    "CounterSample",
    "CounterStore",
    "CounterTracker",
    "CounterWidth",
    "DeviceBackends",
    "DeviceIOError",
    "DeviceRole",
    "DeviceUrl",
    "EdgeKind",
    "EdgeSample",
    "FunctionCode",
    "Heartbeat",
    "JsonFileCounterStore",
    "MemoryCounterStore",
    "Observation",
    "PulseReading",
    "PulseSink",
    "PulseSinkBase",
    "PulseSource",
    "PulseSourceBase",
    "SinkConfig",
    "SourceConfig",
    "VirtualPulseSink",
    "VirtualPulseSource",
    "WordOrder",
    "cancel_and_wait",
    "cancel_requests",
    "device_backends",
    "honour_cancellation",
    "open_channels",
    "open_sink",
    "open_source",
    "parse_duration_s",
]
