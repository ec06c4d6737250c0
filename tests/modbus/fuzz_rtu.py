"""The RTU fuzz run: random and mutated frames on a pty, every answer checked.

A slave frames a request by its function code's length, or else at the 3.5-character
silence after it (the twin's RTU server: at least 2 ms). So the run sends frames the
slave can frame by length back to back, up to :data:`BATCH_FRAMES` in one write, as
a pipeline, and ends a batch with the first frame only a silence ends: bad CRCs,
partial frames, noise longer than any frame, unknown or mis-sized functions. Such a
frame is answered after the slave's silence (its answer proves the line idle again),
or must stay unanswered: then the run keeps the line quiet for a gap and sends the
canary (a block B read, answered exactly), which proves the slave idle again.

The gap adapts to the machine: it starts at ``gap_s``; if the slave was not
scheduled within it, the canary joined the frame before it and went unanswered, so
the run waits longer, re-sends it (a ``resync``), and doubles the gap (up to
:data:`MAX_GAP_S`); after :data:`CLEAN_STREAK` silent frames without a lost canary
it halves again. Five misses in a row fail the run. Bytes from the slave are taken by
the event loop's reader as they arrive, never polled.
"""

from __future__ import annotations

import asyncio
import os
import random
import struct
import time

from tests.modbus.fuzz import CANARY_PDU, UNIT, Expect, Figures, check, request, rss_kb
from twin.modbus.rtu import rtu_request_size

BATCH_FRAMES = 16  # frames in one write: their answers stay far below the pty's buffer
MAX_GAP_S = 0.08
CLEAN_STREAK = 100  # silent frames without a lost canary before the gap shrinks
ANSWER_TIMEOUT_S = 5.0
CANARY_TIMEOUT_S = 0.05  # the first try's wait; each further try waits four times longer
CANARY_TRIES = 5
CANARY_REGISTERS = int.from_bytes(CANARY_PDU[3:5], "big")  # block B: 100..106


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc_table()


def crc16(frame: bytes) -> bytes:
    """The Modbus RTU CRC of ``frame``, low byte first (as it goes on the wire)."""
    crc = 0xFFFF
    for byte in frame:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
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


def framed_by_length(wire: bytes) -> bool:
    """Whether the slave ends this frame by its length, with its CRC right (so the next
    frame may follow at once) rather than at a silence."""
    return rtu_request_size(wire) == len(wire) and crc16(wire[:-2]) == wire[-2:]


def rtu_answer_size(buf: bytes | bytearray) -> int | None:
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


class Line:
    """The master's end of the pty (non-blocking): bytes from the slave are taken by
    the event loop's reader as they arrive."""

    def __init__(self, master: int) -> None:
        self.fd = master
        self.rx = bytearray()
        self._arrived = asyncio.Event()
        asyncio.get_running_loop().add_reader(master, self._readable)

    def _readable(self) -> None:
        try:
            self.rx += os.read(self.fd, 65536)
        except BlockingIOError:
            return
        self._arrived.set()

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.fd)

    async def send(self, data: bytes) -> None:
        while data:
            try:
                data = data[os.write(self.fd, data) :]
            except BlockingIOError:
                await asyncio.sleep(0.001)  # the pty's buffer is full: the slave reads it

    async def answer(self, timeout_s: float = ANSWER_TIMEOUT_S) -> bytes | None:
        """The next whole answer frame; None if none is whole by the timeout (the bytes
        of one still arriving stay in ``rx``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            size = rtu_answer_size(self.rx)
            if size is not None and len(self.rx) >= size:
                frame = bytes(self.rx[:size])
                del self.rx[:size]
                return frame
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), deadline - loop.time())
            except TimeoutError:
                return None

    def take(self) -> bytes:
        """Whatever the slave sent and nobody took yet."""
        self._readable()
        data = bytes(self.rx)
        self.rx.clear()
        return data


async def fuzz_rtu(master: int, pid: int, total: int, seed: int, gap_s: float) -> Figures:
    """Send ``total`` frames to the slave on ``master``'s pty; check every answer."""
    rng = random.Random(seed)
    figures = Figures("rtu", connections=1)
    start = time.monotonic()
    line = Line(master)
    try:
        await line.send(rtu(UNIT, CANARY_PDU))
        canary = (await line.answer() or b"")[1:-2]
        assert canary[:2] == b"\x03\x0e", canary.hex()
        figures.rss_kb.append(rss_kb(pid))
        gap = _Gap(gap_s)
        sent = 0
        while sent < total:
            batch = []
            while len(batch) < BATCH_FRAMES and sent + len(batch) < total:
                batch.append(rtu_request(rng))
                if not framed_by_length(batch[-1][0]):
                    break  # only a silence ends this one: the batch ends with it
            await line.send(b"".join(wire for wire, _, _ in batch))
            for wire, pdu, expect in batch:
                if expect.kind == "silent":
                    continue
                reply = await line.answer()
                assert reply is not None, f"{wire[:16].hex()} {expect}: got {line.rx.hex()}"
                assert crc16(reply[:-2]) == reply[-2:], reply.hex()
                assert reply[0] == UNIT
                check(pdu, expect, reply[1:-2], canary)
                figures.answers += 1
                figures.canaries += expect.kind == "exact"
            figures.silent_ok += sum(expect.kind == "silent" for _, _, expect in batch)
            last_wire = batch[-1][0]
            if batch[-1][2].kind == "silent" and not framed_by_length(last_wire):
                await asyncio.sleep(gap.s)
                reply = line.take()
                assert reply == b"", f"{last_wire[:16].hex()}: answered {reply.hex()}"
                await _sync(line, canary, gap, figures)
            before, sent = sent, sent + len(batch)
            if before < total // 2 <= sent:
                figures.rss_kb.append(rss_kb(pid))
        await line.send(rtu(UNIT, CANARY_PDU))
        assert (await line.answer() or b"")[1:-2] == canary
    finally:
        line.close()
    figures.rss_kb.append(rss_kb(pid))
    figures.frames = total
    figures.max_gap_ms = round(gap.longest_s * 1000, 1)
    figures.seconds = round(time.monotonic() - start, 1)
    return figures


class _Gap:
    """The quiet time after a frame only a silence ends, adapted to the machine."""

    def __init__(self, floor_s: float) -> None:
        self.floor_s = self.s = self.longest_s = floor_s
        self.clean = 0

    def missed(self) -> None:
        self.s = min(self.s * 2, MAX_GAP_S)
        self.longest_s = max(self.longest_s, self.s)
        self.clean = 0

    def held(self) -> None:
        self.clean += 1
        if self.clean >= CLEAN_STREAK:
            self.s, self.clean = max(self.floor_s, self.s / 2), 0


async def _sync(line: Line, canary: bytes, gap: _Gap, figures: Figures) -> None:
    """After a silent frame: the canary, answered right, proves the line is idle again.

    If the slave was not scheduled within the gap, the canary joined the previous
    bytes and nobody answered: wait for a silence and retry (each retry is counted in
    ``resyncs``). Try ``k`` reads ``k`` registers fewer of block B, so a late answer
    to an earlier try (a slow slave, not a lost canary) is told apart and skipped;
    only lost canaries lengthen the gap. :data:`CANARY_TRIES` misses in a row fail."""
    lost = 0
    for attempt in range(CANARY_TRIES):
        count = CANARY_REGISTERS - attempt
        await line.send(rtu(UNIT, struct.pack(">BHH", 3, 100, count)))
        while (reply := await line.answer(CANARY_TIMEOUT_S * 4**attempt)) is not None:
            assert crc16(reply[:-2]) == reply[-2:] and reply[0] == UNIT, reply.hex()
            n = reply[2] // 2
            assert count <= n <= CANARY_REGISTERS, reply.hex()
            assert reply[1:-2] == bytes((3, 2 * n)) + canary[2 : 2 + 2 * n], reply.hex()
            if n == count:
                figures.canaries += 1
                if lost:
                    gap.missed()
                else:
                    gap.held()
                return
            lost -= 1  # that try was late, not lost
        figures.resyncs += 1
        lost += 1
        await asyncio.sleep(gap.s * 2)  # the lost canary's bytes end at this silence
    raise AssertionError("the RTU server stopped answering the canary")
