"""The CLI as a user meets it: usage errors exit 1, a closed pipe is no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from twin.cli import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["no-such-command"], "invalid choice"),
        (["run", "--port", "not-a-port"], "--port: invalid int value"),
    ],
)
def test_bad_usage_exits_1(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 1
    assert message in capsys.readouterr().err


def test_reader_closing_the_pipe_stops_run_quietly() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "twin", "run", "--port", "0", "--no-state", "--speed", "50"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith("serving")
    proc.stdout.close()  # like `minimeter run | head -1`
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "Traceback" not in err and "stopped" in err
