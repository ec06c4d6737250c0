"""MQTT: telemetry, events, availability, Home Assistant discovery and commands.

`config` holds the validated options of `minimeter run --mqtt`; `topics` computes every
topic and payload from the register map, snapshots and events (pure); `publisher` is
the connection to the broker, the only module that imports aiomqtt.
"""
