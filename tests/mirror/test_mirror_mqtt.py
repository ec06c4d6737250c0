"""`minimeter mirror --mqtt`: the mirrored meter is published like a simulated one."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys

import pytest

from tests.helpers import find_free_port, wait_for_line


def test_the_mirrored_meter_publishes_its_state_with_source_mode_1(mosquitto: int) -> None:
    if shutil.which("mosquitto_sub") is None:
        pytest.skip("mosquitto_sub not installed (make system-deps)")
    port = find_free_port()
    mirror = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "twin",
            "mirror",
            "--source",
            "virtual://mqtt-face?kh=10",
            "--port",
            str(port),
            "--no-state",
            "--mqtt",
            f"mqtt://127.0.0.1:{mosquitto}",
            "--mqtt-interval",
            "0.2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_line(mirror, "serving modbus tcp")
        # The retained state reaches a subscriber that arrives later.
        sub = subprocess.run(
            [
                "mosquitto_sub",
                "-h",
                "127.0.0.1",
                "-p",
                str(mosquitto),
                "-C",
                "1",
                "-W",
                "20",
                "-t",
                "minimeter/MIRROR0001/state",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        state = json.loads(sub.stdout)
        assert state["serial_number"] == "MIRROR0001"
        assert state["source_mode"] == 1  # mirroring a physical meter, not a profile
        assert state["energy_delivered_wh"] == 0  # no pulse seen yet
    finally:
        mirror.send_signal(signal.SIGTERM)
        _, err = mirror.communicate(timeout=20)
    assert mirror.returncode == 0, err
    assert "Traceback" not in err
