"""``meter_twin_mqtt`` from a fresh directory outside the repo, against a real Mosquitto
on a free loopback port: the user's test sees the meter's state on the broker."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import Broker, find_free_port, mosquitto_conf

# c12-accuracy starts with 10 min of full load: 120 V x 30 A on both lines = 7.2 kW,
# so 600 s of meter time register 1200 Wh.
USER_TEST = """
import json
import subprocess
from pathlib import Path

import pytest


@pytest.mark.meter(profile="c12-accuracy"{marker_url})
def test_state_over_mqtt(meter_twin_mqtt):
    meter_twin_mqtt.advance(600)
    Path("serial.txt").write_text(meter_twin_mqtt.serial)
    # -R skips the retained state of before the advance; of the next two fresh states
    # the second was certainly taken after it.
    out = subprocess.run(
        ["mosquitto_sub", "-h", "127.0.0.1", "-p", "{port}", "-R", "-C", "2", "-W", "10",
         "-t", f"minimeter/{{meter_twin_mqtt.serial}}/state"],
        capture_output=True, text=True, check=True,
    ).stdout
    state = json.loads(out.splitlines()[-1])
    assert state["serial_number"] == meter_twin_mqtt.serial
    assert state["energy_delivered_wh"] == meter_twin_mqtt.snapshot().energy_delivered_wh == 1200
"""


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    if shutil.which("mosquitto") is None or shutil.which("mosquitto_sub") is None:
        pytest.skip("mosquitto not installed (make system-deps)")
    port = find_free_port()
    b = Broker(mosquitto_conf(tmp_path / "mosquitto.conf", port), port)
    b.start()
    yield b
    b.kill()


def run_pytest(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("given_by", ["marker", "option"])
def test_user_test_sees_the_retained_state(tmp_path: Path, broker: Broker, given_by: str) -> None:
    url = f"mqtt://127.0.0.1:{broker.port}"
    user_dir = tmp_path / "user"
    user_dir.mkdir()
    marker_url = f", mqtt={url!r}" if given_by == "marker" else ""
    (user_dir / "test_user.py").write_text(
        USER_TEST.format(marker_url=marker_url, port=broker.port)
    )
    option = ["--meter-mqtt", url] if given_by == "option" else []

    result = run_pytest(user_dir, *option, "test_user.py")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    # The twin has stopped; the broker still holds its last state, retained.
    serial = (user_dir / "serial.txt").read_text()
    retained = subprocess.run(
        ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-C", "1", "-W", "5",
         "-F", "%r %p", "-t", f"minimeter/{serial}/state"],
        capture_output=True, text=True, timeout=10, check=True,
    ).stdout  # fmt: skip
    flag, payload = retained.strip().split(" ", 1)
    assert flag == "1"
    assert json.loads(payload)["energy_delivered_wh"] == 1200


def test_bad_url_fails_with_the_mqtt_package_message(tmp_path: Path) -> None:
    (tmp_path / "test_x.py").write_text("def test_x(meter_twin_mqtt):\n    pass\n")
    result = run_pytest(tmp_path, "--meter-mqtt", "http://127.0.0.1:1883")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "scheme 'http' unknown; expected mqtt://[user[:password]@]host[:port]" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert "During handling" not in result.stdout
    assert "parse_url" not in result.stdout  # one line, not the frames that raised it


def test_without_a_broker_it_skips(tmp_path: Path) -> None:
    (tmp_path / "test_x.py").write_text("def test_x(meter_twin_mqtt):\n    pass\n")
    result = run_pytest(tmp_path, "-rs")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 skipped" in result.stdout and "needs a broker" in result.stdout
