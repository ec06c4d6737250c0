"""How the publisher's connection behaves: backoff, error lines, TLS sockets, cancels.

Pure policy and small adapters around the client library, kept apart from the
publisher so each is tested on its own: :func:`backoff_s` (capped, jittered
exponential backoff), :func:`describe_error` (one line saying why the broker could not
be used, never the password), :class:`ClosingSSLSocket` and :func:`cancel_all`
(workarounds for paho's and Python 3.11's behaviour, each saying which).
"""

from __future__ import annotations

import asyncio
import random
import ssl
from typing import Any, Final

from twin.mqtt.config import MqttConfig

RECONNECT_MIN_S: Final = 0.25
RECONNECT_MAX_S: Final = 3.0  # a broker back is found again within this (+ jitter below it)
TLS_REFUSED: Final = "TLS: the broker's certificate was refused"


def backoff_s(attempt: int, rng: random.Random) -> float:
    """Delay before reconnect attempt ``attempt`` (0-based): doubling up to the cap, the
    upper half of it drawn at random so a fleet of twins does not reconnect in step."""
    ceiling = min(RECONNECT_MAX_S, RECONNECT_MIN_S * 2.0**attempt)
    return ceiling / 2 + rng.uniform(0.0, ceiling / 2)


def describe_error(config: MqttConfig, exc: BaseException) -> str:
    """One line saying why the broker could not be used (never the password)."""
    text = str(exc) or type(exc).__name__
    if exc.__cause__ is not None:  # aiomqtt wraps the reason (a lost socket, a code)
        text = f"{text}: {exc.__cause__}"
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return (
            f"{TLS_REFUSED} (not signed by a trusted CA, or not issued for {config.host}): {text}"
        )
    return text


async def cancel_all(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait for them, cancelling again those that swallowed it.

    Python 3.11's ``asyncio.wait_for`` (which aiomqtt awaits publishes with) loses a
    cancellation that arrives as its inner future completes; one cancel is not enough.
    """
    pending = [t for t in tasks if not t.done()]
    while pending:
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=0.05)
        pending = [t for t in pending if not t.done()]


class ClosingSSLSocket(ssl.SSLSocket):
    """paho drops the socket of a failed TLS handshake unclosed: close it here."""

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except BaseException:
            self.close()
            raise
