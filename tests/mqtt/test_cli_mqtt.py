"""`minimeter run --mqtt` as a process: what `mosquitto_sub` sees, the last will on
SIGKILL, the status line, bad options, and the password never shown."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from tests.helpers import REPO, Broker, TwinProcess, wait_for_line

StartTwin = Callable[..., TwinProcess]


@pytest.fixture
def mosquitto_sub(broker: Broker) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    if shutil.which("mosquitto_sub") is None:
        pytest.skip("mosquitto_sub not installed (make system-deps)")
    started: list[subprocess.Popen[str]] = []

    def start(*topics: str) -> subprocess.Popen[str]:
        argv = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-v"]
        for topic in topics:
            argv += ["-t", topic]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()
        proc.communicate(timeout=10)


def _line(proc: subprocess.Popen[str], starts: str, timeout_s: float = 10.0) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith(starts):
            return line.rstrip("\n")
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"no line starting {starts!r} within {timeout_s} s")


def test_retained_state_and_the_last_will_on_sigkill(
    broker: Broker,
    start_twin: StartTwin,
    mosquitto_sub: Callable[..., subprocess.Popen[str]],
) -> None:
    url = f"mqtt://127.0.0.1:{broker.port}"
    twin = start_twin("--mqtt", url, "--mqtt-interval", "0.2", "--speed", "60")
    # A subscriber arriving later sees what the broker retained: state, online.
    watcher = mosquitto_sub("minimeter/MM00000001/state", "minimeter/MM00000001/availability")
    assert _line(watcher, "minimeter/MM00000001/availability ").endswith(" online")
    state = _line(watcher, "minimeter/MM00000001/state ")
    assert '"serial_number":"MM00000001"' in state and '"energy_delivered_wh":' in state
    twin.proc.send_signal(signal.SIGKILL)
    twin.proc.communicate(timeout=10)
    # The broker publishes the will: offline, retained.
    assert _line(watcher, "minimeter/MM00000001/availability ").endswith(" offline")
    late = mosquitto_sub("minimeter/MM00000001/availability")
    assert _line(late, "minimeter/MM00000001/availability ").endswith(" offline")


def test_status_line_and_the_password_never_shown(broker: Broker, start_twin: StartTwin) -> None:
    url = f"mqtt://meter:Sup3rS3cret@127.0.0.1:{broker.port}"  # the broker is anonymous
    twin = start_twin("--mqtt", url, "--mqtt-interval", "0.5")
    line = wait_for_line(twin.proc, "mqtt=connected")
    assert line.startswith("uptime=")
    code, out, err = twin.stop()
    assert code == 0
    text = twin.first_line + line + out + err
    assert "Sup3rS3cret" not in text
    assert f"mqtt: connected to mqtt://meter@127.0.0.1:{broker.port}" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mqtt", "http://broker"], "--mqtt http://broker: scheme 'http' unknown"),
        (["--mqtt", "mqtt://b", "--mqtt-interval", "0"], "--mqtt-interval 0.0: expected"),
        (["--mqtt-tasmota"], "--mqtt-tasmota needs --mqtt URL"),
        (["--mqtt", "mqtt://u:pw@b", "--mqtt-password-env", "X"], "password given twice"),
        (
            ["--serial-number", "MM/1", "--mqtt", "mqtt://127.0.0.1:1"],
            "serial number 'MM/1' cannot be a topic level",
        ),
    ],
)
def test_bad_mqtt_options_exit_1_with_one_line(args: list[str], message: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "twin", "run", "--no-state", "--port", "0", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("minimeter run: error: ") and message in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
