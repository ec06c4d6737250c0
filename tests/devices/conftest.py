"""Fixtures for the devices tests: a counter module, a Mosquitto broker, leak checks.

``counter_module`` is a :class:`tests.devices.fakes.CounterModule` serving on a free
127.0.0.1 port (stopped at teardown). ``mosquitto`` starts a real broker on a free
loopback port and yields that port. Every test must leave no virtual channel open.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from devices import open_channels
from tests.devices.fakes import CounterModule
from tests.helpers import find_free_port


@pytest.fixture(autouse=True)
def no_leaked_virtual_channels() -> Iterator[None]:
    yield
    assert open_channels() == [], "a test left a virtual source open"


@pytest.fixture
async def counter_module() -> AsyncIterator[CounterModule]:
    module = CounterModule(find_free_port())
    await module.start()
    yield module
    await module.stop()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[int]:
    """A Mosquitto broker on 127.0.0.1; yields its port."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        pytest.skip("mosquitto not installed (make system-deps)")
    port = find_free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    log = tmp_path / "mosquitto.log"
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=log_file
        )
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait(timeout=10)
                err = log.read_text(errors="replace")[-500:]
                raise AssertionError(f"mosquitto did not start: {err}") from None
            time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(timeout=10)
