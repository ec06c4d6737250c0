"""The README's shell examples run as written (beside `make run`), and cover every
subcommand; its links to the docs exist.

Every ``.venv/bin/minimeter ...`` line of a ``sh`` block is parsed out of README.md and
run, but for what a test must not touch: hardware (``--serial /dev/...``), and the
fixed ports and paths, which are mapped to free ports and a temporary directory (the
README itself must keep off `make run`'s port and state dir: checked separately).
Servers (`run`, `mirror`) are started with a short ``--until`` where they have one,
must print their first line and stop cleanly on SIGTERM.
"""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, find_free_port, wait_for_line
from twin.cli.main import SUBCOMMANDS

README = (REPO / "README.md").read_text(encoding="utf-8")
DEFAULT_PORT = 5020


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.DOTALL)


def _examples() -> list[list[str]]:
    out = []
    for block in _blocks("sh"):
        for line in block.splitlines():
            if line.startswith(".venv/bin/minimeter "):
                out.append(shlex.split(line, comments=True)[1:])
    return out


EXAMPLES = _examples()
HARDWARE = ("/dev/",)


def _runnable(args: list[str]) -> bool:
    return not any(a.startswith(HARDWARE) for a in args)


def test_every_subcommand_has_an_example_and_the_docs_are_linked() -> None:
    shown = {args[0] for args in EXAMPLES}
    assert set(SUBCOMMANDS) <= shown, f"no README example for {set(SUBCOMMANDS) - shown}"
    for doc in ("docs/registers.md", "docs/profiles.md", "docs/architecture.md"):
        assert f"]({doc})" in README, doc
        assert (REPO / doc).is_file(), doc


def _option(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def test_server_examples_keep_off_make_run() -> None:
    """`make run` holds port 5020 and the default state dir: no example may take them."""
    servers = [args for args in EXAMPLES if args[0] in ("run", "mirror")]
    assert servers
    for args in servers:
        if "--fleet" in args:
            assert "--no-state" in args, args
            continue
        tcp = "--no-tcp" not in args
        assert not tcp or _option(args, "--port") not in (None, str(DEFAULT_PORT)), args
        assert "--no-state" in args or "--state-dir" in args, args
    for block in _blocks("yaml"):
        assert f"port: {DEFAULT_PORT}" not in block


def _adapt(args: list[str], tmp: Path, ports: dict[str, str]) -> list[str]:
    """Fixed ports to free ones, paths into ``tmp``."""
    out = list(args)
    for i, arg in enumerate(out[:-1]):
        value = out[i + 1]
        if arg == "--port":
            out[i + 1] = ports.setdefault(value, str(find_free_port()))
        elif arg in ("--state-dir", "--trace", "--out"):
            out[i + 1] = str(tmp / Path(value).name)
    return out


def _fleet_file(tmp: Path, ports: dict[str, str]) -> None:
    (block,) = [b for b in _blocks("yaml") if b.startswith("fleet: 1")]
    text = re.sub(
        r"port: (\d+)", lambda m: f"port: {ports.setdefault(m[1], str(find_free_port()))}", block
    )
    (tmp / "fleet.yaml").write_text(text)


@pytest.mark.parametrize(
    "args", [a for a in EXAMPLES if _runnable(a)], ids=lambda a: " ".join(a)[:60]
)
def test_readme_example_runs(args: list[str], tmp_path: Path) -> None:
    ports: dict[str, str] = {}
    argv = [sys.executable, "-m", "twin", *_adapt(args, tmp_path, ports)]
    if args[0] not in ("run", "mirror"):
        # From the checkout, as the README's reader runs them (repo paths like deploy/).
        done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout and "Traceback" not in done.stderr
        return
    if "--fleet" in args:
        _fleet_file(tmp_path, ports)
    if args[0] == "run":
        argv += ["--until", "5"]
    proc = subprocess.Popen(
        argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        first = wait_for_line(proc, "serving " if args[0] == "run" else "mirroring ", 30)
        assert "modbus tcp 127.0.0.1:" in first, first
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
