"""Commands over MQTT: the payload a client sends and what the publisher calls.

A command message's payload is a JSON object (the command's body, as ``twin.control``
defines it per command) or empty (``{}``). Its optional ``"correlation_id"`` (a string
or an integer; not part of any command's body) is echoed as the result's ``"id"``; an
MQTT 5 client may instead (or as well) set correlation data, which is echoed as a
property and, as text, stands in for a missing ``"correlation_id"``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

from twin.control import Result

CORRELATION_KEY = "correlation_id"  # in a command payload; echoed as the result's "id"


#: run(name, body, serial or None for the fleet) -> result; never raises for a refusal
#: (the running twin's ``twin.control.run``).
CommandRunner = Callable[[str, Mapping[str, object], str | None], Result]


def parse_payload(
    payload: object, correlation: bytes | None
) -> tuple[dict[str, object], str | None, str | None]:
    """(command body, correlation id, refusal reason or None) of a command message.

    The body is a JSON object (an empty payload is ``{}``); its ``"correlation_id"`` is
    echoed in the result, else the MQTT 5 correlation data as text.
    """
    correlation_id = correlation.decode("utf-8", "replace") if correlation else None
    raw = payload if isinstance(payload, bytes | bytearray) else str(payload or "").encode()
    if not raw.strip():
        return {}, correlation_id, None
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return {}, correlation_id, f"payload: not JSON ({exc}); expected a JSON object"
    if not isinstance(body, dict):
        return {}, correlation_id, f"payload: {type(body).__name__}; expected a JSON object"
    if CORRELATION_KEY in body:
        given = body.pop(CORRELATION_KEY)
        if not isinstance(given, str | int) or isinstance(given, bool):
            return body, correlation_id, f"{CORRELATION_KEY}: expected a string or an integer"
        correlation_id = str(given)
    return body, correlation_id, None
