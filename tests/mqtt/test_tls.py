"""TLS: a broker with a `trustme` CA. The twin trusts the CA it is given and refuses a
broker whose certificate is not issued for the host it connects to."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.helpers import Broker, Subscriber
from tests.mqtt.conftest import Live

StartLive = Callable[..., Awaitable[Live]]


async def test_mqtts_with_the_test_ca_connects_and_publishes(
    tls_broker: Broker, tls_files: dict[str, Path], start_live: StartLive
) -> None:
    live = await start_live(tls_broker.port, tls=True, ca_file=tls_files["ca"])
    serial = live.twin.meters[0].serial
    context = ssl.create_default_context(cafile=str(tls_files["ca"]))
    async with Subscriber(tls_broker.port, "minimeter/#", tls_context=context) as sub:
        state = await sub.wait_for(lambda m: m.topic == f"minimeter/{serial}/state")
    assert state.json()["serial_number"] == serial
    assert live.publisher.connected and live.publisher.config.url.startswith("mqtts://")


async def test_a_certificate_for_another_host_is_refused_with_a_clear_message(
    wrong_name_broker: Broker,
    tls_files: dict[str, Path],
    start_live: StartLive,
    caplog: pytest.LogCaptureFixture,
) -> None:
    live = await start_live(wrong_name_broker.port, tls=True, ca_file=tls_files["ca"])
    for _ in range(500):
        if live.publisher.last_error is not None:
            break
        await asyncio.sleep(0.01)
    assert not live.publisher.connected
    error = live.publisher.last_error or ""
    assert error.startswith("TLS: the broker's certificate was refused")
    assert "127.0.0.1" in error
    logged = [r for r in caplog.records if r.name == "twin.mqtt.publisher"]
    assert logged and logged[0].levelno == logging.ERROR
    assert f"cannot connect to mqtts://127.0.0.1:{wrong_name_broker.port}" in logged[0].message


async def test_without_the_ca_the_test_broker_is_not_trusted(
    tls_broker: Broker, start_live: StartLive
) -> None:
    live = await start_live(tls_broker.port, tls=True)  # the system CAs only
    for _ in range(500):
        if live.publisher.last_error is not None:
            break
        await asyncio.sleep(0.01)
    assert not live.publisher.connected
    assert (live.publisher.last_error or "").startswith("TLS: the broker's certificate")


async def test_a_client_certificate_is_presented_when_given(
    client_cert_broker: Broker, tls_files: dict[str, Path], start_live: StartLive
) -> None:
    """The broker requires a client certificate signed by the test CA."""
    live = await start_live(
        client_cert_broker.port,
        tls=True,
        ca_file=tls_files["ca"],
        cert_file=tls_files["client_cert"],
        key_file=tls_files["client_key"],
    )
    for _ in range(500):
        if live.publisher.connected:
            break
        await asyncio.sleep(0.01)
    assert live.publisher.connected, live.publisher.last_error
