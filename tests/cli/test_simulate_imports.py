"""`minimeter simulate` loads no part of the live stack: no asyncio, no transports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

LIVE = ("asyncio", "pymodbus", "aiomqtt", "aiohttp", "twin.modbus.tcp", "twin.runtime")


def test_simulate_imports_no_live_stack(tmp_path: Path) -> None:
    script = (
        "import json, sys\n"
        "from twin.cli.main import main\n"
        f"code = main(['simulate', 'default', '--duration', '10min', '--out', {str(tmp_path)!r},"
        " '--no-plot'])\n"
        f"print(json.dumps([code, sorted(m for m in sys.modules if m.startswith({LIVE!r}))]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    code, live = json.loads(proc.stdout.splitlines()[-1])
    assert code == 0
    assert live == []
    assert (tmp_path / "timeseries.csv").stat().st_size > 0
