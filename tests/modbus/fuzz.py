"""Random and mutated Modbus frames, what each must get back, and the TCP/TLS run.

Every generated request carries an :class:`Expect`: an exact answer (the canary, a
static block B read), an exception code, a normal answer of a known size, "any
well-formed answer", or silence. :func:`check` holds an answer against it, so a fuzz
run proves both that the server lives and that it answers right. Framing attacks
(bad MBAP lengths 0/1/65535, protocol id != 0, truncated headers) go on their own
connections, which the server must close; the rest are pipelined, sometimes split
byte by byte. The RTU run is :mod:`tests.modbus.fuzz_rtu`. The size is
``MM_FUZZ_FRAMES`` (CI default; ``make soak`` sets 100,000); a run's figures are
printed and appended to ``MM_FUZZ_REPORT`` if set.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

CI_FRAMES = 3000
UNIT = 1
ALIASES = (0, 255)
CANARY_PDU = struct.pack(">BHH", 3, 100, 7)  # block B: map version .. has_12vdc_output
SUPPORTED = frozenset({1, 2, 3, 4, 6, 16, 0x2B})


def frames_wanted(ci_default: int = CI_FRAMES) -> int:
    """``MM_FUZZ_FRAMES`` if set (``make soak``: 100,000 for every transport), else CI's."""
    return int(os.environ.get("MM_FUZZ_FRAMES", ci_default))


@dataclass(frozen=True)
class Expect:
    kind: str  # "exact" | "exception" | "size" | "any" | "silent"
    value: bytes | int | None = None


@dataclass
class Figures:
    transport: str
    frames: int = 0
    answers: int = 0
    silent_ok: int = 0
    canaries: int = 0
    connections: int = 0
    closed_by_server: int = 0
    resyncs: int = 0
    max_gap_ms: float = 0.0  # RTU: the longest quiet gap the run needed after a frame
    rss_kb: list[int] = field(default_factory=list)
    seconds: float = 0.0

    def report(self) -> str:
        line = json.dumps(self.__dict__)
        path = os.environ.get("MM_FUZZ_REPORT")
        if path:
            with open(path, "a", encoding="utf-8") as f:
                f.write(line + "\n")
        return line


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


# ------------------------------------------------------------------ PDUs


def _read_ok(rng: random.Random) -> tuple[bytes, Expect]:
    fc = rng.choice((3, 4))
    if rng.random() < 0.7:
        address = rng.randrange(0, 300)
        count = rng.randint(1, min(125, 300 - address))
    else:
        address = rng.randrange(40000, 40179)
        count = rng.randint(1, min(125, 40179 - address))
    return struct.pack(">BHH", fc, address, count), Expect("size", 2 + 2 * count)


def _count_overflow(rng: random.Random) -> tuple[bytes, Expect]:
    fc = rng.choice((1, 2, 3, 4))
    count = rng.choice((0, 126, 2001, 65535)) if fc < 3 else rng.choice((0, 126, 2000, 65535))
    if fc < 3 and count == 126:
        count = 2001
    return struct.pack(">BHH", fc, rng.randrange(0, 65536), count), Expect("exception", 3)


def _wrap_around(rng: random.Random) -> tuple[bytes, Expect]:
    fc = rng.choice((3, 4))
    address = rng.randrange(65536 - 125, 65536)
    return struct.pack(">BHH", fc, address, rng.randint(1, 125)), Expect("exception", 2)


def _bits(rng: random.Random) -> tuple[bytes, Expect]:
    fc = rng.choice((1, 2))
    address, count = rng.randrange(0, 40), rng.randint(1, 40)
    size = 4 if fc == 1 else 32
    if address + count > size:
        return struct.pack(">BHH", fc, address, count), Expect("exception", 2)
    return struct.pack(">BHH", fc, address, count), Expect("size", 2 + (count + 7) // 8)


def _unknown_fc(rng: random.Random) -> tuple[bytes, Expect]:
    fc = rng.choice([f for f in range(1, 256) if f not in SUPPORTED])
    tail = rng.randbytes(rng.randint(0, 20))
    return bytes((fc,)) + tail, Expect("exception", 1)


def _fc43(rng: random.Random) -> tuple[bytes, Expect]:
    if rng.random() < 0.5:
        mei = rng.choice([m for m in range(256) if m != 0x0E])
        return bytes((0x2B, mei)) + rng.randbytes(2), Expect("exception", 1)
    code = rng.choice((0, 5, 9, 255))
    return bytes((0x2B, 0x0E, code, 0)), Expect("exception", 3)


def _fc16_mismatch(rng: random.Random) -> tuple[bytes, Expect]:
    count = rng.randint(1, 123)
    byte_count = (2 * count + rng.choice((-1, 1, 2, 100))) & 0xFF
    values = rng.randbytes(2 * count + rng.choice((0, -1, 1)) if rng.random() < 0.5 else 2 * count)
    return struct.pack(">BHHB", 16, 200, count, byte_count) + values, Expect("exception", 3)


def _write(rng: random.Random) -> tuple[bytes, Expect]:
    if rng.random() < 0.5:
        address = rng.randrange(0, 65536)
        pdu = struct.pack(">BHH", 6, address, rng.randrange(65536))
        ok = 200 <= address <= 205
    else:
        count = rng.randint(1, 10)
        address = rng.choice((200, 201, 203, rng.randrange(0, 65536)))
        pdu = struct.pack(">BHHB", 16, address, count, 2 * count) + rng.randbytes(2 * count)
        ok = address >= 200 and address + count <= 206
    return pdu, Expect("size", 5) if ok else Expect("exception", 2)


def _random_pdu(rng: random.Random) -> tuple[bytes, Expect]:
    return rng.randbytes(rng.randint(1, 253)), Expect("any")


GENERATORS = (
    (_read_ok, 30),
    (_count_overflow, 8),
    (_wrap_around, 8),
    (_bits, 6),
    (_unknown_fc, 10),
    (_fc43, 6),
    (_fc16_mismatch, 8),
    (_write, 8),
    (_random_pdu, 16),
)
_FUNCS = [g for g, _ in GENERATORS]
_WEIGHTS = [w for _, w in GENERATORS]


def request(rng: random.Random) -> tuple[int, bytes, Expect]:
    """A unit id, a PDU and what the one-meter server must answer (TCP rules)."""
    if rng.random() < 0.05:
        return UNIT, CANARY_PDU, Expect("exact")
    pdu, expect = rng.choices(_FUNCS, _WEIGHTS)[0](rng)
    r = rng.random()
    if r < 0.05:
        return rng.choice(ALIASES), pdu, expect
    if r < 0.10:
        return rng.choice([u for u in range(1, 255) if u != UNIT]), pdu, Expect("exception", 0x0B)
    return UNIT, pdu, expect


def check(pdu: bytes, expect: Expect, answer: bytes, canary: bytes) -> None:
    """Raise AssertionError unless ``answer`` is what ``pdu`` must get."""
    assert answer, f"empty answer to {pdu.hex()}"
    fc = pdu[0]
    if expect.kind == "exact":
        assert answer == canary, f"canary: {answer.hex()} != {canary.hex()}"
    elif expect.kind == "exception":
        want = bytes(((fc | 0x80) & 0xFF, int(expect.value or 0)))
        assert answer == want, f"{pdu[:12].hex()}: {answer.hex()} != {want.hex()}"
    elif expect.kind == "size":
        assert answer[0] == fc and len(answer) == expect.value, f"{pdu.hex()}: {answer.hex()}"
    else:  # any well-formed answer: an exception with a known code, or a normal one
        if answer[0] & 0x80:
            assert answer[0] == (fc | 0x80) & 0xFF and len(answer) == 2
            assert answer[1] in (1, 2, 3, 4, 0x0B), answer.hex()
        else:
            assert answer[0] == fc and 2 <= len(answer) <= 253, answer.hex()


# ------------------------------------------------------------------ TCP


Connect = Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, int, bytes]:
    head = await asyncio.wait_for(reader.readexactly(7), 10)
    tid, proto, length, unit = struct.unpack(">HHHB", head)
    assert proto == 0 and 2 <= length <= 254, head.hex()
    return tid, unit, await asyncio.wait_for(reader.readexactly(length - 1), 10)


def _mbap(tid: int, unit: int, pdu: bytes) -> bytes:
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


def framing_attack(rng: random.Random, good: bytes) -> bytes:
    """Bytes after which the server must close (or, truncated, just wait)."""
    choice = rng.randrange(5)
    if choice == 0:
        return struct.pack(">HHHB", 9, 0, rng.choice((0, 1)), UNIT) + b"\x03\x00"
    if choice == 1:
        return struct.pack(">HHHB", 9, 0, rng.choice((255, 256, 65535)), UNIT) + b"\x03"
    if choice == 2:
        return struct.pack(">HHHB", 9, rng.randrange(1, 65536), 6, UNIT) + CANARY_PDU
    if choice == 3:
        return good[: rng.randint(1, 7)]  # a truncated header, then the client leaves
    junk = bytearray(rng.randbytes(rng.randint(8, 64)))
    junk[2] |= 1  # never a protocol id of 0: nothing to resync on
    return bytes(junk)


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close and wait for the transport to go, so none is left for the GC to warn about."""
    writer.close()
    with contextlib.suppress(OSError, TimeoutError):  # the server may have closed it first
        await asyncio.wait_for(writer.wait_closed(), 5)


async def fuzz_tcp(connect: Connect, pid: int, transport: str, total: int, seed: int) -> Figures:
    """Send ``total`` frames through connections from ``connect()``; check every answer."""
    rng = random.Random(seed)
    figures = Figures(transport)
    start = time.monotonic()
    canary: bytes | None = None
    sent = 0
    while sent < total:
        reader, writer = await connect()
        figures.connections += 1
        if canary is None:
            writer.write(_mbap(1, UNIT, CANARY_PDU))
            canary = (await _read_answer(reader))[2]
            figures.rss_kb.append(rss_kb(pid))
        batch = [request(rng) for _ in range(rng.randint(1, 200))]
        wire = b"".join(_mbap(i, u, p) for i, (u, p, _) in enumerate(batch))
        if rng.random() < 0.03:  # split byte by byte
            for i in range(len(wire)):
                writer.write(wire[i : i + 1])
                await writer.drain()
        else:
            writer.write(wire)
        for i, (_unit, pdu, expect) in enumerate(batch):
            tid, _, answer = await _read_answer(reader)
            assert tid == i, (tid, i)
            check(pdu, expect, answer, canary)
            figures.answers += 1
            figures.canaries += expect.kind == "exact"
        sent += len(batch)
        if rng.random() < 0.25:  # a framing attack on this connection: the server closes it
            attack = framing_attack(rng, wire[:12])
            writer.write(attack)
            sent += 1
            if len(attack) >= 8:
                assert await asyncio.wait_for(reader.read(), 10) == b""  # closed, unanswered
                figures.closed_by_server += 1
        await _close(writer)
        if len(figures.rss_kb) < 2 and sent >= total // 2:
            figures.rss_kb.append(rss_kb(pid))
    # after the storm: a fresh connection still gets the canary right
    reader, writer = await connect()
    writer.write(_mbap(7, UNIT, CANARY_PDU))
    assert await _read_answer(reader) == (7, UNIT, canary)
    await _close(writer)
    figures.rss_kb.append(rss_kb(pid))
    figures.frames = sent
    figures.seconds = round(time.monotonic() - start, 1)
    return figures
