"""The profile's sample blocks computed ahead of the run by a forked process.

Theory of operation. A batch run asks its sampler for a block, then spends longer on
the core and the recorder than the sampler spent on the block; on the year at 1 s
the sampler is about a quarter of the run's CPU while the second core is mostly
idle. So, when the caller says it may fork (``twin.forking.can_fork``),
:func:`sampled_ahead` forks a child before the run's arrays exist. The child drives
the same loop as the run (``twin.drive.drive``, with a core that does nothing) over
the same plan of drive calls, so it asks for exactly the blocks the run will ask
for, in the same order (no reliance on a block sliced from a bigger one being the
same bits as one asked directly). It writes each block into a ring of ``SLOTS``
slots of an anonymous shared ``mmap`` made before the fork, and tells the run
where each array lies (offset, dtype, shape, strides: a few hundred bytes through a
socket pair, never the arrays). :class:`AheadSampler` hands the run read-only
views of a slot with the strides the child's arrays had, so a broadcast constant
stays a broadcast (the recorder's fast path sees ``strides[1] == 0``), and the run
sees the same blocks, byte for byte, as it would sample itself.

A slot is only written again once the run lets go of it: each block's views hang
off one root array, and the run releases a slot (a count sent to the child) only
when the weak reference to its root is dead, i.e. no array the run still holds
views it (nothing does today: the core and recorder keep computed arrays, never
the inputs). Should the run still hold a slot the child needs next, the run stops
the child and samples the rest itself.

The run never waits for the child: a block it has not sent yet is sampled by the
run itself, and the child skips the blocks the run has let go of. The child runs
only on time no other process wants (``SCHED_IDLE``): on an idle second core it
keeps ahead of the run; when that core is busy (the plot process importing
matplotlib, the events head, another program) the run samples for itself.
Whatever goes wrong in the child (an error the sampler raises, a block that does
not fit a slot, the child killed) likewise makes the run sample the block itself,
so an error is raised in the run where and as it would have been; a dead child is
an end of file on the socket. The run samples its first block itself while the
child starts on the second. Forking pays only for long runs (``MIN_AHEAD_SAMPLES``);
shorter runs, and the Monte-Carlo workers (both cores busy already), sample
in-process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import mmap
import os
import signal
import weakref
from collections.abc import Iterator, Sequence
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from twin.core import Command, SampleBlock
from twin.drive import drive
from twin.forking import interrupts_held, release_interrupts
from twin.loadprofile import Profile, Sampler

#: Blocks the child may hold ready ahead of the run (the slots of the ring).
SLOTS = 4
#: Slots let go of at a time: each message wakes a waiting child, and a wake-up may
#: run it on the run's core for a while, so the child is woken once per half ring.
RELEASE_BATCH = SLOTS // 2
#: The smallest run worth a fork: the fork and the pages it makes the run copy cost
#: the run 5-15 ms of CPU, the shipped profiles' sampler 0.5-20 ms a day of samples
#: (the year's ~0.8 ms); below ~2 weeks the run gained nothing on a busy machine.
MIN_AHEAD_SAMPLES = 30 * 86_400
#: A slot's size limit: a day of samples with every array of the block materialised
#: (84 bytes a sample). Longer blocks (an interval of days) are sampled in-process.
MAX_SLOT_BYTES = 8 << 20
#: The bytes one sample of each of the block's arrays can take (the slot's size).
ARRAY_BYTES = {
    "voltage_v": 16,
    "current_a": 16,
    "cos_phi": 16,
    "leading": 2,
    "frequency_hz": 8,
    "temperature_c": 8,
    "ct_line": 16,
    "ct_reversed": 2,
}
_ALIGN = 64  # each array starts on a cache line
#: Where an array lies in a slot: (offset, dtype, shape, strides).
ArrayPlace = tuple[int, str, tuple[int, ...], tuple[int, ...]]
#: A block as ``pack`` wrote it: its other fields' values, and its arrays' places.
BlockPlace = tuple[dict[str, Any], dict[str, ArrayPlace]]


class DriveRun(NamedTuple):
    """The arguments of one ``drive`` call after ``core`` and ``sampler``."""

    t0_s: float
    dt_s: float
    n: int
    max_block: int = 1


def slot_bytes(runs: Sequence[DriveRun]) -> int:
    """The slot size the largest block of ``runs`` needs at most."""
    samples = max(min(run.n, run.max_block) for run in runs)
    return sum(-(-per * samples // _ALIGN) * _ALIGN for per in ARRAY_BYTES.values())


def worth_forking(runs: Sequence[DriveRun]) -> bool:
    """Whether a child pays for ``runs``: many samples, blocks that fit a slot."""
    return sum(run.n for run in runs) >= MIN_AHEAD_SAMPLES and slot_bytes(runs) <= MAX_SLOT_BYTES


def pack(slot: npt.NDArray[np.uint8], block: SampleBlock) -> BlockPlace | None:
    """Copy the block's arrays into ``slot`` (a broadcast dimension once); returns the
    other fields and where the arrays lie, or None when they do not fit or their
    strides would not survive the copy."""
    values: dict[str, Any] = {}
    places: dict[str, ArrayPlace] = {}
    at = 0
    for f in dataclasses.fields(block):
        arr = getattr(block, f.name)
        if not isinstance(arr, np.ndarray):
            values[f.name] = arr
            continue
        compact = arr[tuple(slice(0, 1) if s == 0 else slice(None) for s in arr.strides)]
        if at + compact.nbytes > slot.shape[0]:
            return None
        dest = slot[at : at + compact.nbytes].view(arr.dtype).reshape(compact.shape)
        strides = tuple(0 if s == 0 else d for s, d in zip(arr.strides, dest.strides, strict=True))
        if strides != arr.strides:
            return None
        np.copyto(dest, compact)
        places[f.name] = (at, arr.dtype.str, arr.shape, strides)
        at += -(-compact.nbytes // _ALIGN) * _ALIGN
    return values, places


def unpack(root: npt.NDArray[np.uint8], place: BlockPlace) -> SampleBlock:
    """The block ``pack`` wrote, as read-only views of ``root`` (validated by the child)."""
    values, places = place
    fields = dict(values)
    for name, (at, dtype, shape, strides) in places.items():
        view: npt.NDArray[Any] = np.ndarray(shape, dtype, root, at, strides)
        view.flags.writeable = False
        fields[name] = view
    return SampleBlock(**fields)


class _NoCore:
    """What the child drives: its blocks go to the run, not to a meter."""

    def advance(self, block: SampleBlock) -> list[None]:
        return []

    def apply(self, command: Command) -> list[None]:
        return []


class _Shipper(Sampler):
    """The child's sampler: each block the plan asks for, written to the ring, but for
    those the run has let go of already (sampled itself, not waiting)."""

    def __init__(self, profile: Profile, seed: int, ring: mmap.mmap, conn: Connection) -> None:
        super().__init__(profile.spec, seed)
        self._ring, self._size, self._conn = ring, len(ring) // SLOTS, conn
        self._k, self._released = 0, 1  # the run samples block 0 itself
        self._filler = SampleBlock.build(1, 1.0)

    def block(self, t0_s: float, dt_s: float, n: int) -> SampleBlock:
        k = self._k
        self._k += 1
        self._hear()
        if k < self._released:
            return self._filler
        block = super().block(t0_s, dt_s, n)  # an error: the child exits, the run samples k
        while k >= self._released + SLOTS:  # its slot is still the run's: wait
            self._released = self._conn.recv()
        self._hear()
        if k < self._released:
            return self._filler
        at = (k % SLOTS) * self._size
        slot = np.frombuffer(self._ring, np.uint8, self._size, at)
        self._conn.send((k, (t0_s, dt_s, n), pack(slot, block)))
        return self._filler

    def _hear(self) -> None:
        """Take the run's counts of blocks let go that have come (never waits)."""
        while self._conn.poll():
            self._released = self._conn.recv()


def _child(shipper: _Shipper, runs: Sequence[DriveRun]) -> None:
    # Only the time no one else wants: at any higher priority it took the run's own
    # core on a busy machine (the run sampling itself meanwhile would have been faster).
    with contextlib.suppress(OSError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    for run in runs:
        for _ in drive(_NoCore(), shipper, *run):
            pass


class AheadSampler(Sampler):
    """The run's sampler: the child's blocks when it has them, else its own.

    A block the child has not sent yet is sampled here (the run never waits for the
    child), unless ``wait`` (then which blocks come from the child does not depend on
    timing: for tests). ``pid`` is the child's process id until it is stopped (None
    then); ``served`` counts the blocks handed from its slots.
    """

    def __init__(
        self, profile: Profile, seed: int, runs: Sequence[DriveRun], wait: bool = False
    ) -> None:
        super().__init__(profile.spec, seed)
        self.pid: int | None = None
        self.served = 0
        self._wait = wait
        self._size = slot_bytes(runs)
        self._ring = mmap.mmap(-1, SLOTS * self._size)
        self._conn, child_conn = Pipe(duplex=True)
        self._k, self._released, self._sent = 0, 1, 1
        self._roots: dict[int, weakref.ref[npt.NDArray[np.uint8]]] = {}
        with interrupts_held() as undo:
            pid = os.fork()
            if pid == 0:  # the child: never returns
                status = 1
                try:
                    release_interrupts(ignore=True)  # the run's way out stops it
                    self._conn.close()
                    _child(_Shipper(profile, seed, self._ring, child_conn), runs)
                    status = 0
                finally:
                    os._exit(status)
            child_conn.close()
            self.pid = pid
            undo.append(self.stop)

    def block(self, t0_s: float, dt_s: float, n: int) -> SampleBlock:
        k = self._k
        self._k += 1
        if self.pid is not None and k > 0:
            found = self._from_child(k, (t0_s, dt_s, n))
            if found is not None:
                return found
        return super().block(t0_s, dt_s, n)

    def _from_child(self, k: int, request: tuple[float, float, int]) -> SampleBlock | None:
        """Block ``k`` from its slot; None when the run samples it itself (the child
        stopped unless it only had not sent it yet, or it did not fit a slot)."""
        while self._released < k and self._let_go(self._released):
            self._released += 1
        if k >= self._released + SLOTS:  # the slot is still viewed: the child cannot write it
            self.stop()
            return None
        self._tell(k)
        try:
            word = self._take(k)
        except Exception:  # the child died (whatever it left half-sent)
            self.stop()
            return None
        if word is None:  # not sent yet: sampled here, so the child may skip it
            if self._released == k:
                self._released = k + 1
            self._tell(k, now=True)
            return None
        asked, place = word
        if asked != request:  # not the plan the run follows
            self.stop()
            return None
        if place is None:  # did not fit its slot
            return None
        root = np.frombuffer(self._ring, np.uint8, self._size, (k % SLOTS) * self._size)
        self._roots[k] = weakref.ref(root)
        self.served += 1
        return unpack(root, place)

    def _tell(self, k: int, now: bool = False) -> None:
        """Send the count of blocks let go: ``now``, or a half ring's worth of them, or
        before waiting on a block the child cannot write with the count it has."""
        released, sent = self._released, self._sent
        if released > sent and (now or released >= sent + RELEASE_BATCH or k >= sent + SLOTS):
            self._sent = released
            # Refused once the child is gone: done, or dead (then the next read says so).
            with contextlib.suppress(OSError):
                self._conn.send(released)

    def _take(self, k: int) -> tuple[tuple[float, float, int], BlockPlace | None] | None:
        """The child's word on block ``k``: the request it sampled and where the block
        lies (skipping blocks the run sampled itself); None when it has not come and
        the run does not wait."""
        while self._wait or self._conn.poll():
            got, asked, place = self._conn.recv()
            if got == k:
                return asked, place
            if got > k:
                raise ValueError(f"block {got} before block {k}")
        return None

    def _let_go(self, j: int) -> bool:
        """Whether block ``j``'s slot is free: sampled here, or no view of it is alive."""
        root = self._roots.get(j)
        if root is not None and root() is not None:
            return False
        self._roots.pop(j, None)
        return True

    def stop(self) -> None:
        """End the child (finished or not) and sample here from now on; the slots the
        run still views stay mapped as long as they are viewed."""
        if self.pid is None:
            return
        pid, self.pid = self.pid, None
        self._conn.close()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


@contextlib.contextmanager
def sampled_ahead(
    profile: Profile, seed: int | None, runs: Sequence[DriveRun], fork: bool
) -> Iterator[Sampler]:
    """The sampler for ``runs`` (the run's drive calls, in order): a child computing
    the blocks ahead when ``fork`` (the caller may fork) and it pays, else the plain
    sampler. The child is ended on the way out."""
    sampler = profile.sampler(seed)
    if not (fork and worth_forking(runs)):
        yield sampler
        return
    ahead = None
    with contextlib.suppress(OSError):  # no memory or no process to spare: sampled here
        ahead = AheadSampler(profile, sampler.seed, runs)
    if ahead is None:
        yield sampler
        return
    try:
        yield ahead
    finally:
        ahead.stop()
