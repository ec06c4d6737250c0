"""MQTT and HTTP credentials are never logged, printed or echoed in a refusal.

A real Mosquitto that requires a password (``mosquitto_passwd``) and ``minimeter run``
as a process with the password in its ``--mqtt`` URL and an HTTP token: refused by the
broker (a wrong password), then connected (the right one), commanded over HTTP with
a wrong token, without one, and with the right one and a bad body. Neither secret
appears on stdout, stderr or in any HTTP answer. Malformed ``--mqtt`` URLs holding a
password are refused in one line that does not quote it (a password with a ``/`` used
to come back in the port error).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import Broker, find_free_port
from tests.reliability.support import Drained, minimeter
from twin.cli.main import main

USER = "meter"
PASSWORD = "pw-Secret-7f3a"
WRONG_PASSWORD = "pw-Wrong-91c2"
TOKEN = "tok-Secret-55e1"
WRONG_TOKEN = "tok-Guess-0b7d"
SECRETS = (PASSWORD, WRONG_PASSWORD, TOKEN, WRONG_TOKEN)


def _auth_broker(tmp_path: Path) -> Broker:
    if shutil.which("mosquitto") is None or shutil.which("mosquitto_passwd") is None:
        pytest.skip("mosquitto not installed (make system-deps)")
    passwords = tmp_path / "passwords"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), USER, PASSWORD], check=True)
    passwords.chmod(0o600)
    port = find_free_port()
    conf = tmp_path / "mosquitto-auth.conf"
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous false", "persistence false"]
    lines.append(f"password_file {passwords}")
    if os.geteuid() == 0:  # as root mosquitto drops to its own user, who cannot read tmp_path
        lines.append("user root")
    conf.write_text("\n".join([*lines, "log_dest stderr", "log_type error"]) + "\n")
    return Broker(conf, port)


def _http(url: str, body: bytes | None = None, token: str | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, data=body, method="GET" if body is None else "POST")
    req.add_header("Content-Type", "application/json")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_credentials_never_appear_in_logs_or_answers(tmp_path: Path) -> None:
    broker = _auth_broker(tmp_path)
    broker.start()
    answers: list[str] = []
    printed: list[str] = []
    try:
        for password in (WRONG_PASSWORD, PASSWORD):
            http_port = find_free_port()
            url = f"mqtt://{USER}:{password}@127.0.0.1:{broker.port}"
            argv = ["run", "--port", "0", "--no-state", "--allow-writes", "--mqtt", url]
            twin = Drained(minimeter(*argv, "--http", str(http_port), "--http-token", TOKEN))
            try:
                twin.wait_line(lambda ln: ln.startswith("serving"))
                if password == WRONG_PASSWORD:
                    line = twin.wait_line(lambda ln: "cannot connect" in ln, stderr=True)
                    assert f"mqtt://{USER}@127.0.0.1:{broker.port}" in line
                else:
                    twin.wait_line(lambda ln: "mqtt: connected to" in ln, stderr=True)
                    twin.wait_line(lambda ln: "mqtt=connected" in ln)
                base = f"http://127.0.0.1:{http_port}/api"
                cmd = f"{base}/meters/MM00000001/commands/set_demand"
                for token, body, status in (
                    (None, b"{}", 401),
                    (WRONG_TOKEN, b"{}", 401),
                    (TOKEN, b'{"demand_interval_min": 99}', 422),
                    (TOKEN, b"not json", 400),
                ):
                    got, text = _http(cmd, body, token)
                    assert got == status, (token, text)
                    answers.append(text)
                answers += [_http(f"{base}/info")[1], _http(f"{base}/meters/MM00000001")[1]]
                assert twin.stop(signal.SIGTERM) == 0
            finally:
                twin.kill()
            printed += twin.out + twin.err
    finally:
        broker.kill()
    assert not any("Traceback" in ln for ln in printed)
    assert len(answers) == 12
    assert any("demand_interval_min" in json.loads(a).get("error", "") for a in answers)
    for secret in SECRETS:
        assert not [ln for ln in printed + answers if secret in ln], secret


@pytest.mark.parametrize(
    "url",
    [
        f"mqtt://{USER}:{PASSWORD}/x@127.0.0.1",  # a "/" in the password: taken as a port
        f"mqtt://{USER}:{PASSWORD}@127.0.0.1:99999",
        f"mqtx://{USER}:{PASSWORD}@127.0.0.1",
        f"mqtt://{USER}:{PASSWORD}@127.0.0.1/topic",
        f"mqtt://:{PASSWORD}@127.0.0.1",  # a password without a user
    ],
)
def test_a_bad_mqtt_url_is_refused_without_quoting_its_password(url: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["run", "--port", "0", "--no-state", "--mqtt", url])
    text = out.getvalue() + err.getvalue()
    assert code == 1 and "--mqtt" in text and text.strip().count("\n") == 0, text
    assert PASSWORD not in text and "Traceback" not in text
