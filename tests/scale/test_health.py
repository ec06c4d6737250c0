"""`python -m twin.health`: healthy only when a real Modbus request is answered."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import REPO, TwinProcess
from twin import health


def _probe(*args: str, port: int | None = None) -> subprocess.CompletedProcess[str]:
    env = None if port is None else {"MINIMETER_PORT": str(port), "PATH": ""}
    argv = [sys.executable, "-m", "twin.health", *args]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, env=env, timeout=30)


def test_healthy_against_a_running_twin(start_twin: Callable[..., TwinProcess]) -> None:
    twin = start_twin()
    ok = _probe(port=twin.port)  # the image's HEALTHCHECK: MINIMETER_PORT
    assert ok.returncode == 0, ok.stderr
    assert _probe("--port", str(twin.port), "--unit", "99").returncode == 0  # exception 0x0B
    twin.stop()
    down = _probe("--port", str(twin.port))
    assert down.returncode == 1 and f"127.0.0.1:{twin.port}" in down.stderr


@pytest.fixture
def not_modbus() -> Iterator[int]:
    """A TCP server that accepts and answers garbage (an HTTP server, say)."""
    srv = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                conn.recv(64)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield srv.getsockname()[1]
    srv.close()


def test_unhealthy_when_the_answer_is_not_modbus(not_modbus: int) -> None:
    out = _probe("--port", str(not_modbus))
    assert out.returncode == 1 and "unhealthy" in out.stderr


def test_check_reply_accepts_only_our_answers() -> None:
    req = health.modbus_request(1)
    ok = req[:4] + bytes([0, 5, 1, 3, 2, 0, 7])
    assert health.check_reply(ok, 1) is None
    assert health.check_reply(req[:4] + bytes([0, 3, 1, 0x83, 0x0B]), 1) is None
    assert health.check_reply(ok, 2) is not None  # another unit
    assert health.check_reply(b"\x00\x01" + ok[2:], 1) is not None  # another transaction
    assert health.check_reply(ok[:8], 1) is not None


def _proc_net(tmp_path: Path, ports: list[int]) -> Path:
    head = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"
    rows = [
        f"   {i}: 00000000:{p:04X} 00000000:0000 0A 0:0 00:0 0 0\n" for i, p in enumerate(ports)
    ]
    rows.append("   9: 0100007F:1F90 0100007F:C350 01 0:0 00:0 0 0\n")  # established, not listening
    (tmp_path / "tcp").write_text(head + "".join(rows))
    return tmp_path


def test_listening_probes_every_listening_port(
    start_twin: Callable[..., TwinProcess], tmp_path: Path, not_modbus: int
) -> None:
    twin = start_twin()
    assert health.listening_ports(_proc_net(tmp_path, [twin.port])) == [twin.port]
    assert health.main(["--listening"], proc_net=tmp_path) == 0
    _proc_net(tmp_path, [twin.port, not_modbus])  # one port of the shard is not answering
    assert health.main(["--listening"], proc_net=tmp_path) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    assert health.main(["--listening"], proc_net=empty) == 1  # nothing listens yet
