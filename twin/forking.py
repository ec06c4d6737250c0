"""When a batch run may fork its helper processes, and how Ctrl-C is held off while a
process forks or the command's modules load.

Theory of operation. ``minimeter simulate`` forks small helper processes (the
sampler ahead, the events process, the plot process and its helper); a terminal's
Ctrl-C sends SIGINT to all of them at once. Python turns SIGINT into a
KeyboardInterrupt wherever the process happens to be, and just after a fork that is
code that belongs to neither side: the interpreter's own after-fork handlers (which
print "Exception ignored ... Traceback"), multiprocessing's bootstrap (which prints
the traceback), or, in a child, the parent's stack (which the child would then
unwind as if it were the parent). So every fork happens inside
:func:`interrupts_held`: SIGINT's handler only notes the signal, and the
KeyboardInterrupt is raised when the parent has its child's handle (after the
body's ``undo`` actions, e.g. ending the child just forked, so no process outlives
the command) and in the child when it has its own handling
(:func:`release_interrupts`, first thing in the child's body, inside the ``try``
that turns any failure into a quiet exit status). Noting rather than blocking the
signal: a process-directed signal goes to any thread that does not block it, and
numpy's BLAS threads do not, so a mask on the main thread alone holds nothing back.

The same holds for imports: a KeyboardInterrupt half way through importing numpy
comes out as an ImportError, or as a traceback from inside importlib. So the
``minimeter`` command loads its modules inside :func:`interrupts_held` too (see
``twin.__main__`` and ``twin.cli.main``), and a Ctrl-C then is exit status 130.
Only the main thread ever sees a KeyboardInterrupt, so elsewhere nothing is held.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType

#: The SIGINTs noted while held (in this process).
_noted: list[int] = []
#: While held: the undo actions of the outermost hold (a nested hold adds to them) and
#: the handler it replaced (what a forked child's release puts back).
_outer: list[list[Callable[[], object]]] = []
_replaced: list[Callable[[int, FrameType | None], object] | int | None] = [
    signal.default_int_handler
]


def can_fork() -> bool:
    """Whether a forked process may take part of the work: Linux only (fork is not safe
    on macOS), no other thread running (a fork copies one thread and whatever locks the
    others held) and a second core to run it on."""
    if not sys.platform.startswith("linux") or threading.active_count() > 1:
        return False
    return len(os.sched_getaffinity(0)) >= 2


def _note(signum: int, frame: FrameType | None) -> None:
    _noted.append(signum)


@contextlib.contextmanager
def interrupts_held() -> Iterator[list[Callable[[], object]]]:
    """A Ctrl-C while the body runs (a fork, imports) noted, and delivered as the body
    ends, after the body's ``undo`` actions (the list it is given) have run. A child
    forked in the body never leaves it (it ends with ``os._exit``) and calls
    :func:`release_interrupts` when it is ready."""
    if threading.current_thread() is not threading.main_thread():
        yield []  # no KeyboardInterrupt is ever raised here
        return
    if _outer:  # held already: the outermost hold runs these actions and delivers
        yield _outer[0]
        return
    undo: list[Callable[[], object]] = []
    _outer.append(undo)
    _replaced[0] = signal.signal(signal.SIGINT, _note)
    try:
        yield undo
    finally:
        came = bool(_noted)
        try:  # the undo actions run while a second Ctrl-C is still only noted
            if came:
                for action in reversed(undo):
                    action()
        finally:  # whatever they raise, the handler is put back (else Ctrl-C stays mute)
            _noted.clear()
            _outer.clear()
            signal.signal(signal.SIGINT, _replaced[0])
        if came:
            _deliver(_replaced[0])


def _deliver(handler: object) -> None:
    if callable(handler):  # Python's own handler raises KeyboardInterrupt
        handler(signal.SIGINT, None)
    elif handler == signal.SIG_DFL:
        os.kill(os.getpid(), signal.SIGINT)


def release_interrupts(ignore: bool = False) -> None:
    """In a child forked under :func:`interrupts_held`: SIGINT ignored from now on when
    ``ignore`` (the parent ends the child on a cancel), else handled as the command
    handled it before the hold (a KeyboardInterrupt, raised here for a Ctrl-C that came
    since the fork; or still ignored, when the command was started ignoring it)."""
    came = bool(_noted)
    _noted.clear()
    _outer.clear()
    handler = signal.SIG_IGN if ignore else _replaced[0]
    signal.signal(signal.SIGINT, handler)
    if came and not ignore:
        _deliver(handler)
