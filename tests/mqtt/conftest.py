"""MQTT fixtures: a real Mosquitto on a free loopback port (plain, and TLS with a
``trustme`` CA), and an in-process twin on a manual clock publishing to it."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.helpers import Broker, find_free_port, mosquitto_conf
from twin.mqtt.config import MqttConfig
from twin.mqtt.publisher import MqttPublisher
from twin.runtime.config import TwinConfig
from twin.runtime.twin import Twin


def _need_mosquitto() -> None:
    if shutil.which("mosquitto") is None:
        pytest.skip("mosquitto not installed (make system-deps)")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    _need_mosquitto()
    port = find_free_port()
    b = Broker(mosquitto_conf(tmp_path / "mosquitto.conf", port), port)
    b.start()
    yield b
    b.kill()


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_files(tmp_path: Path, ca: trustme.CA) -> dict[str, Path]:
    """PEM files: the CA, a server certificate for 127.0.0.1 and one for another name."""
    out = {"ca": tmp_path / "ca.pem"}
    ca.cert_pem.write_to_path(str(out["ca"]))
    for name, host in (("good", "127.0.0.1"), ("other", "broker.invalid"), ("client", "twin")):
        cert = ca.issue_cert(host)
        out[f"{name}_cert"] = tmp_path / f"{name}-cert.pem"
        out[f"{name}_key"] = tmp_path / f"{name}-key.pem"
        cert.cert_chain_pems[0].write_to_path(str(out[f"{name}_cert"]))
        cert.private_key_pem.write_to_path(str(out[f"{name}_key"]))
    return out


def _tls_broker(
    tmp_path: Path, files: dict[str, Path], name: str, *, client_cert: bool = False
) -> Iterator[Broker]:
    _need_mosquitto()
    port = find_free_port()
    tls = (files["ca"], files[f"{name}_cert"], files[f"{name}_key"])
    conf = tmp_path / f"mosquitto-{name}-{client_cert}.conf"
    b = Broker(mosquitto_conf(conf, port, tls=tls, require_client_cert=client_cert), port)
    b.start()
    yield b
    b.kill()


@pytest.fixture
def tls_broker(tmp_path: Path, tls_files: dict[str, Path]) -> Iterator[Broker]:
    """TLS broker whose certificate is issued for 127.0.0.1 by the test CA."""
    yield from _tls_broker(tmp_path, tls_files, "good")


@pytest.fixture
def client_cert_broker(tmp_path: Path, tls_files: dict[str, Path]) -> Iterator[Broker]:
    """TLS broker that also requires a client certificate signed by the test CA."""
    yield from _tls_broker(tmp_path, tls_files, "good", client_cert=True)


@pytest.fixture
def wrong_name_broker(tmp_path: Path, tls_files: dict[str, Path]) -> Iterator[Broker]:
    """TLS broker whose certificate (same CA) is issued for another host name."""
    yield from _tls_broker(tmp_path, tls_files, "other")


# -- an in-process twin (manual clock) with its MQTT part -----------------------------------


@dataclass
class Live:
    twin: Twin
    publisher: MqttPublisher


@pytest.fixture
async def start_live() -> AsyncIterator[Callable[..., Awaitable[Live]]]:
    """``await start_live(broker_port, profile=..., meters=1, twin={TwinConfig options},
    **MqttConfig options)``: a twin on a manual clock, writes allowed, publishing every
    0.2 s to the broker on 127.0.0.1:``broker_port``."""
    stack = contextlib.AsyncExitStack()

    async def start(
        port: int,
        *,
        profile: str = "default",
        meters: int = 1,
        twin: Mapping[str, Any] | None = None,
        **mqtt: Any,
    ) -> Live:
        mqtt_cfg = MqttConfig(host="127.0.0.1", port=port, **{"interval_s": 0.2, **mqtt})
        options = {"allow_writes": True, "port": 0, **(twin or {})}
        cfg = TwinConfig(
            profile=profile, meters=meters, speed=None, state_dir=None, mqtt=mqtt_cfg, **options
        )
        running = await stack.enter_async_context(Twin(cfg))
        assert running.mqtt is not None
        return Live(running, running.mqtt)

    async with stack:
        yield start
