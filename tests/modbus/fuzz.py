"""Random and mutated Modbus frames, what each must get back, and the runs that send them.

Every generated request carries an :class:`Expect`: an exact answer (the canary, a
static block B read), an exception code, a normal answer of a known size, "any
well-formed answer", or silence. :func:`check` holds an answer against it, so a fuzz
run proves both that the server lives and that it answers right. Framing attacks
(bad MBAP lengths 0/1/65535, protocol id != 0, truncated headers) go on their own
connections, which the server must close; the rest are pipelined, sometimes split
byte by byte. RTU adds bad CRCs, broadcasts, foreign units, partial frames and noise
longer than any frame. The size is ``MM_FUZZ_FRAMES`` (CI default; ``make soak`` sets
100,000); a run's figures are printed and appended to ``MM_FUZZ_REPORT`` if set.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from twin.modbus.rtu import rtu_request_size

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
        writer.close()
        if len(figures.rss_kb) < 2 and sent >= total // 2:
            figures.rss_kb.append(rss_kb(pid))
    # after the storm: a fresh connection still gets the canary right
    reader, writer = await connect()
    writer.write(_mbap(7, UNIT, CANARY_PDU))
    assert await _read_answer(reader) == (7, UNIT, canary)
    writer.close()
    figures.rss_kb.append(rss_kb(pid))
    figures.frames = sent
    figures.seconds = round(time.monotonic() - start, 1)
    return figures


# ------------------------------------------------------------------ RTU


def crc16(frame: bytes) -> bytes:
    crc = 0xFFFF
    for byte in frame:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc.to_bytes(2, "little")


def rtu(unit: int, pdu: bytes) -> bytes:
    body = bytes((unit,)) + pdu
    return body + crc16(body)


def rtu_request(rng: random.Random) -> tuple[bytes, bytes, Expect]:
    """Wire bytes, the PDU and what the line's one slave must do (RTU rules)."""
    unit, pdu, expect = request(rng)
    r = rng.random()
    if unit != UNIT:  # foreign units, 255 and broadcasts: nobody answers on a line
        return rtu(unit, pdu), pdu, Expect("silent")
    if r < 0.08:
        frame = bytearray(rtu(unit, pdu))
        frame[-1] ^= 1 << rng.randrange(8)  # a bad CRC
        return bytes(frame), pdu, Expect("silent")
    if r < 0.12:
        return rtu(unit, pdu)[: rng.randint(1, 3)], pdu, Expect("silent")  # partial frame
    if r < 0.14:
        return rng.randbytes(rng.randint(300, 2000)), pdu, Expect("silent")  # noise, no gap
    if r < 0.17:
        write = struct.pack(">BHH", 6, 200, 21212)
        return rtu(0, write), write, Expect("silent")  # broadcast write
    wire = rtu(unit, pdu)
    size = rtu_request_size(wire)
    if size is None or size >= len(wire):
        return wire, pdu, expect  # framed whole (at once, or at the next silence)
    if crc16(wire[: size - 2]) == wire[size - 2 : size]:
        return rtu_request(rng)  # the cut prefix is a valid frame by chance: draw again
    return wire, pdu, Expect("silent")  # framed by its function code: cut, bad CRC


def rtu_answer_size(buf: bytes) -> int | None:
    """The length of the answer frame at the start of ``buf`` (None: not known yet)."""
    if len(buf) < 3:
        return None
    fc = buf[1]
    if fc & 0x80:
        return 5
    if fc in (1, 2, 3, 4):
        return 5 + buf[2]
    if fc in (5, 6, 15, 16):
        return 8
    if fc == 0x2B:  # unit 2B 0E code conformity more next n, then n x (id, len, value)
        if len(buf) < 8:
            return None
        at = 8
        for _ in range(buf[7]):
            if len(buf) < at + 2:
                return None
            at += 2 + buf[at + 1]
        return at + 2
    return None


async def rtu_answer(master: int, timeout_s: float = 5.0) -> bytes:
    """One answer frame from the line, read until complete by its own length rule."""
    loop = asyncio.get_running_loop()
    deadline, data = loop.time() + timeout_s, b""
    while loop.time() < deadline:
        try:
            data += os.read(master, 512)
        except BlockingIOError:
            await asyncio.sleep(0.0005)
            continue
        size = rtu_answer_size(data)
        if size is not None and len(data) >= size:
            return data
    return data


async def fuzz_rtu(master: int, pid: int, total: int, seed: int, gap_s: float) -> Figures:
    """One request at a time on a pty, a quiet gap between frames, as a master does."""
    rtu_reply = rtu_answer
    rng = random.Random(seed)
    figures = Figures("rtu", connections=1)
    start = time.monotonic()
    os.write(master, rtu(UNIT, CANARY_PDU))
    canary = (await rtu_reply(master))[1:-2]
    assert canary[:2] == b"\x03\x0e", canary.hex()
    figures.rss_kb.append(rss_kb(pid))
    for n in range(total):
        wire, pdu, expect = rtu_request(rng)
        os.write(master, wire)
        if expect.kind == "silent":
            await asyncio.sleep(gap_s)
            reply = await _drain(master)
            assert reply == b"", f"{wire[:16].hex()}: answered {reply.hex()}"
            figures.silent_ok += 1
            await _sync(master, canary, gap_s, figures)
        else:
            reply = await rtu_reply(master)
            assert len(reply) >= 5, f"{n}: {wire.hex()} {expect}: {reply.hex()}"
            assert crc16(reply[:-2]) == reply[-2:], reply.hex()
            assert reply[0] == UNIT
            check(pdu, expect, reply[1:-2], canary)
            figures.answers += 1
            figures.canaries += expect.kind == "exact"
        if n == total // 2:
            figures.rss_kb.append(rss_kb(pid))
    os.write(master, rtu(UNIT, CANARY_PDU))
    assert (await rtu_reply(master))[1:-2] == canary
    figures.rss_kb.append(rss_kb(pid))
    figures.frames = total
    figures.seconds = round(time.monotonic() - start, 1)
    return figures


async def _sync(master: int, canary: bytes, gap_s: float, figures: Figures) -> None:
    """After a silent frame: the canary, answered right, proves the line is idle again.

    If the server process was not scheduled within the gap (a loaded machine), the
    canary joined the previous bytes and nobody answered: wait longer and retry (each
    retry is counted in ``resyncs``); five misses in a row fail the run."""
    for attempt in range(5):
        os.write(master, rtu(UNIT, CANARY_PDU))
        reply = await rtu_answer(master, 0.25 * (attempt + 1))
        if reply:
            assert reply[1:-2] == canary and crc16(reply[:-2]) == reply[-2:], reply.hex()
            figures.canaries += 1
            return
        figures.resyncs += 1
        await asyncio.sleep(gap_s * 2**attempt)
        await _drain(master)
    raise AssertionError("the RTU server stopped answering the canary")


async def _drain(master: int) -> bytes:
    data = b""
    while True:
        try:
            data += os.read(master, 4096)
        except BlockingIOError:
            return data
