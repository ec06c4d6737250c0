"""MQTT: telemetry, events, availability, Home Assistant discovery and commands.

`config` holds the validated options of `minimeter run --mqtt`; `topics` computes every
topic and payload from the register map, snapshots and events (pure); `commands` reads
a command message; `publisher` is the connection to the broker, the only module that
imports aiomqtt (`link` holds its connection policies); `source` says what the
publisher needs of a running twin; `part` is what the runtime enters to run it.
"""

from twin.mqtt.config import MqttConfig
from twin.mqtt.part import MqttTwin, mqtt_part
from twin.mqtt.publisher import MqttPublisher
from twin.mqtt.source import MeterSource, TwinSource

__all__ = ["MeterSource", "MqttConfig", "MqttPublisher", "MqttTwin", "TwinSource", "mqtt_part"]
