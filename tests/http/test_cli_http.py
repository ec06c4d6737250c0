"""`minimeter run --http` as a subprocess, driven by a real HTTP client (urllib)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import TwinProcess, find_free_port


def _call(
    url: str, method: str = "GET", body: Any = None, token: str | None = None
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            status = resp.status
            ctype = resp.headers["Content-Type"]
    except urllib.error.HTTPError as err:
        raw, status, ctype = err.read(), err.code, err.headers["Content-Type"]
    return status, json.loads(raw) if "json" in ctype else raw.decode()


def test_run_serves_every_endpoint(start_twin: Callable[..., TwinProcess], tmp_path: Path) -> None:
    port = find_free_port()
    token_file = tmp_path / "token"
    token_file.write_text("tok-123\n")
    tp = start_twin(
        "--meters", "2", "--speed", "60", "--allow-writes",
        "--http", f"127.0.0.1:{port}", "--http-token-file", str(token_file),
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    assert f"http {base}/" in tp.first_line
    status, page = _call(base + "/")
    assert status == 200 and "Mini Meter" in page
    assert _call(base + "/static/panel.js")[0] == 200
    status, meters = _call(base + "/api/meters")
    serial = meters[0]["serial"]
    assert status == 200 and len(meters) == 2 and meters[0]["port"] == tp.port
    status, snap = _call(f"{base}/api/meters/{serial}")
    assert status == 200 and snap["serial_number"] == serial
    assert _call(f"{base}/api/meters/XX")[0] == 404
    cmd = f"{base}/api/meters/{serial}/commands/reset_max_demand"
    assert _call(cmd, "POST", {})[0] == 401
    assert _call(cmd, "POST", {}, token="nope")[0] == 401
    status, result = _call(cmd, "POST", {}, token="tok-123")
    assert status == 200 and result == {
        "ok": True, "command": "reset_max_demand", "id": None, "error": None,
    }  # fmt: skip
    status, result = _call(f"{base}/api/meters/{serial}/commands/nope", "POST", {}, "tok-123")
    assert status == 422 and "unknown command" in result["error"]
    status, result = _call(f"{base}/api/faults", "POST", {"spec": "delay:ms=1"}, "tok-123")
    assert status == 200 and _call(f"{base}/api/faults")[1][0]["kind"] == "delay"
    assert _call(f"{base}/api/faults", "DELETE", token="tok-123")[0] == 200
    assert _call(f"{base}/api/registers")[0] == 200
    assert _call(f"{base}/api/openapi.json")[1]["openapi"].startswith("3.1")
    status, text = _call(f"{base}/metrics")
    names = {f.name for f in text_string_to_metric_families(text)}
    assert {"minimeter_http_requests", "minimeter_meter_power_w"} <= names
    with urllib.request.urlopen(f"{base}/api/stream?serial={serial}", timeout=10) as resp:
        assert resp.readline().startswith(b"retry:")
    code, _, err = tp.stop()
    assert code == 0, err


def test_run_http_options_are_checked(start_twin: Callable[..., TwinProcess]) -> None:
    import subprocess
    import sys

    for args, message in (
        (["--http", "host:port"], "expected [HOST:]PORT"),
        (["--http-token", "x"], "--http-token needs --http"),
        (["--http", "99999"], "expected 0..65535"),
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "twin", "run", "--no-state", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 1 and message in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr


def test_api_beyond_loopback_with_writes_and_no_token_warns(
    start_twin: Callable[..., TwinProcess], tmp_path: Path
) -> None:
    """One warning line on stderr, naming the port and how to close it; none with a
    token, none on loopback, none with writes off."""
    port = find_free_port()
    tp = start_twin("--allow-writes", "--http", f"0.0.0.0:{port}")
    _, _, err = tp.stop()
    warnings = [ln for ln in err.splitlines() if "warning" in ln]
    assert warnings == [
        f"warning: HTTP API on 0.0.0.0:{port} with writes on and no --http-token: anyone "
        "who can reach this port can command the meters; bind 127.0.0.1 (the default), "
        "give --http-token-file, or put it behind a firewall or a TLS proxy "
        "(docs/security.md)"
    ]
    token = tmp_path / "token"
    token.write_text("tok-123\n")
    for args in (
        ("--allow-writes", "--http", f"0.0.0.0:{port}", "--http-token-file", str(token)),
        ("--allow-writes", "--http", f"127.0.0.1:{port}"),
        ("--http", f"0.0.0.0:{port}"),
    ):
        _, _, err = start_twin(*args).stop()
        assert "warning" not in err, args
