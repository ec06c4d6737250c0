"""Ctrl-C held off while a process forks or the command's modules load (twin.forking).

Each case runs a small Python program in its own session that sends SIGINT at an
exact, awkward moment (from an import hook or an at-fork hook, so no timing is
involved) and checks what the user sees: exit status 130, no traceback, and no
process left behind; or, where the signal only hits a helper process, a run that
finishes as if nothing happened.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import REPO, session_processes, sigint_default
from twin.forking import can_fork, interrupts_held

needs_fork = pytest.mark.skipif(
    not can_fork(), reason="no fork here (not Linux, one core, or another thread running)"
)

#: Sends SIGINT to this process when ``MODULE`` starts to load (an import hook).
_INTERRUPT_ON_IMPORT = """
import importlib.abc, os, signal, sys
class Interrupt(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == MODULE:
            os.kill(os.getpid(), signal.SIGINT)
        return None
sys.meta_path.insert(0, Interrupt())
"""


def run_python(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        start_new_session=True,
        preexec_fn=sigint_default,
        timeout=120,
    )


def year_args(tmp_path: Path) -> str:
    return repr(["simulate", "residential-year", "--duration", "60d", "--out", str(tmp_path)])


@pytest.mark.parametrize("module", ["twin.cli.main", "numpy", "twin.cli.simulate"])
def test_ctrl_c_while_the_command_loads_exits_130_quietly(tmp_path: Path, module: str) -> None:
    """twin.cli.main loads before the command's own handling exists; numpy and
    twin.cli.simulate load as the parser is built. The Ctrl-C is held until the
    module has loaded (an import cut short half way, numpy's above all, comes out as
    an ImportError or a traceback), then it is exit status 130, quietly."""
    code = f"MODULE = {module!r}\n{_INTERRUPT_ON_IMPORT}\n"
    code += "import sys\nsys.argv = ['minimeter', 'simulate', '--help']\n"
    code += "from twin.__main__ import entry\nrc = entry()\n"
    code += "sys.stderr.write(f'loaded={MODULE in sys.modules}')\nraise SystemExit(rc)\n"
    proc = run_python(code, tmp_path)
    assert proc.returncode == 130, proc.stderr
    assert "Traceback" not in proc.stderr and "Error" not in proc.stderr, proc.stderr
    assert proc.stderr == "loaded=True"  # held: the import ran to its end
    assert proc.stdout == ""  # nothing ran


def test_a_run_loads_and_runs_without_an_interrupt(tmp_path: Path) -> None:
    """The same program with a module nobody imports: the hook itself changes nothing."""
    code = f"MODULE = 'no.such.module'\n{_INTERRUPT_ON_IMPORT}\n"
    code += "import sys\nsys.argv = ['minimeter', 'registers', '--format', 'csv']\n"
    code += "from twin.__main__ import entry\nraise SystemExit(entry())\n"
    proc = run_python(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") > 10


@needs_fork
@pytest.mark.parametrize("nth_fork", [1, 2, 3])
def test_ctrl_c_as_a_helper_is_forked_cancels_the_run_cleanly(
    tmp_path: Path, nth_fork: int
) -> None:
    """SIGINT lands in the parent in the middle of its ``nth_fork`` fork (the events
    process, the plot process, the sampler ahead): held until the parent has the
    child's handle, then the run's cancel: 130, no traceback, every child ended."""
    code = f"""
        import os, signal, sys
        forks = 0
        def parent_side():
            global forks
            forks += 1
            if forks == {nth_fork}:
                os.kill(os.getpid(), signal.SIGINT)
        os.register_at_fork(after_in_parent=parent_side)
        from twin.cli import main
        sys.exit(main({year_args(tmp_path)}))
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        start_new_session=True,
        preexec_fn=sigint_default,
    )
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert session_processes(proc.pid) == []
    assert not (tmp_path / "summary.json").exists()


@needs_fork
def test_ctrl_c_into_each_new_helper_leaves_the_run_whole(tmp_path: Path) -> None:
    """SIGINT lands in every child the moment it is forked (what a Ctrl-C to the
    process group does to a child being born): the events process and the sampler
    ignore it, the plot process gives up and the plots are drawn in-process. The run
    finishes, rc 0, with every file, and no traceback from any process."""
    code = f"""
        import os, signal, sys
        os.register_at_fork(after_in_child=lambda: os.kill(os.getpid(), signal.SIGINT))
        from twin.cli import main
        sys.exit(main({year_args(tmp_path)}))
    """
    proc = run_python(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
    names = {path.name for path in tmp_path.iterdir()}
    assert {"timeseries.csv", "events.jsonl", "summary.json", "power.png"} <= names


def test_interrupts_held_delivers_a_signal_after_the_undo_actions() -> None:
    """In this process: a SIGINT raised inside the block waits, the undo actions run,
    then the KeyboardInterrupt comes out; without one, no action runs."""
    done: list[str] = []
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # as from a terminal
    with pytest.raises(KeyboardInterrupt), interrupts_held() as undo:
        undo.append(lambda: done.append("undone"))
        os.kill(os.getpid(), signal.SIGINT)
        done.append("body finished")
    assert done == ["body finished", "undone"]
    with interrupts_held() as undo:
        undo.append(lambda: done.append("never"))
    assert done == ["body finished", "undone"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    signal.signal(signal.SIGINT, before)


def test_a_nested_hold_undoes_with_the_outer_one() -> None:
    """A hold inside a hold adds its actions to the outer one's; the outer delivers."""
    done: list[str] = []
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    with pytest.raises(KeyboardInterrupt), interrupts_held() as outer:
        outer.append(lambda: done.append("outer"))
        with interrupts_held() as inner:
            inner.append(lambda: done.append("inner"))
            os.kill(os.getpid(), signal.SIGINT)
        done.append("inner block left")
    assert done == ["inner block left", "inner", "outer"]
    signal.signal(signal.SIGINT, before)


def test_a_child_of_a_command_that_ignores_sigint_keeps_ignoring_it() -> None:
    """``cmd &`` in a script, nohup: the command starts with SIGINT ignored, and a
    child's release puts that back, not Python's KeyboardInterrupt."""
    code = """
        import signal
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        from twin.forking import interrupts_held, release_interrupts
        with interrupts_held():
            release_interrupts()
            print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)
        print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)
    """
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "True\nTrue\n"


def test_release_interrupts_ignoring_drops_a_pending_signal() -> None:
    """What a child forked under interrupts_held does first; run here in a subprocess
    so this process's own handler stays as it is."""
    code = """
        import os, signal
        from twin.forking import interrupts_held, release_interrupts
        with interrupts_held():
            os.kill(os.getpid(), signal.SIGINT)
            release_interrupts(ignore=True)
            print("still here")
    """
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        preexec_fn=sigint_default,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "still here\n"
