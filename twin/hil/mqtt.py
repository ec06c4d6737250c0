"""The MQTT-enabled fixture's twin options, from a broker URL.

``mqtt_options(url)`` answers ``(reason, options)``: a non-empty reason when this
installation cannot publish (``twin.mqtt``, issue 11, absent, or ``TwinConfig``
without its ``mqtt`` option), else the ``TwinConfig`` keywords that switch MQTT on.
A malformed URL raises :class:`~twin.errors.ConfigError` naming what was expected.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any
from urllib.parse import urlsplit

from twin.errors import ConfigError
from twin.runtime.config import TwinConfig

try:
    from twin.mqtt import MqttConfig  # type: ignore[import-not-found, attr-defined, unused-ignore]

    HAVE_MQTT = True
except ImportError:  # twin.mqtt (issue 11) not in this installation
    HAVE_MQTT = False

MQTT_PORTS = {"mqtt": 1883, "mqtts": 8883}
FIXTURE_INTERVAL_S = 0.1  # wall seconds between states: tests wait for messages, not minutes


def mqtt_options(url: str) -> tuple[str, dict[str, Any]]:
    parts = urlsplit(url)
    if parts.scheme not in MQTT_PORTS or not parts.hostname:
        raise ConfigError(
            f"MQTT broker {url!r}: expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT]"
        )
    if not HAVE_MQTT:
        return "twin.mqtt (issue 11) is not in this installation: no MQTT publisher", {}
    if "mqtt" not in {f.name for f in fields(TwinConfig)}:
        return "TwinConfig has no mqtt option in this installation (issue 11)", {}
    config = MqttConfig(
        host=parts.hostname,
        port=parts.port or MQTT_PORTS[parts.scheme],
        tls=parts.scheme == "mqtts",
        interval_s=FIXTURE_INTERVAL_S,
    )
    return "", {"mqtt": config}
