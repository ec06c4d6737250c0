"""One Modbus TCP connection: MBAP framing, the memoised fast path, backpressure, faults.

Theory of operation
-------------------
:class:`MbapConnection` is the lean ``asyncio.Protocol`` of a
:class:`~twin.modbus.tcp.ModbusTcpServer` (pymodbus's server classes cost ~3x the
libmodbus C server's latency). It splits MBAP frames itself (pipelined requests in
one chunk, partial frames buffered) and writes the answers of up to
:data:`FRAMES_PER_ROUND` frames in one call. Who answers what is decided by the
port's :class:`~twin.modbus.dispatch.Dispatcher`; this module only frames answers.

Three paths, cheapest first:

- A poller's repeated read arriving alone (as a request-response client sends it)
  is found whole in the dispatcher's ``frames`` memo, keyed by the frame minus its
  transaction id, and answered in :meth:`MbapConnection.data_received` with one
  slice, one dict lookup and one write (the memo is emptied while a trace or an
  interceptor is set, and a meter's entries go when its image changes).
- With no trace, no interceptor and full rights a frame never leaves
  :meth:`MbapConnection._serve`, which memoises the answer to a frame that came alone
  (pipelined frames are never looked up, so they are not memoised either).
- Otherwise each frame goes through :meth:`MbapConnection._slow_frame`: trace lines,
  the interceptor (delay, drop, garbage...) and the TLS role's rights.

Backpressure: between rounds the connection checks its queued output; past
:data:`OUTPUT_HIGH_BYTES` (the transport's high-water mark) it stops parsing, keeps
the unparsed requests (at most one read) and stops reading the socket until the
client drains its answers. A client that never reads costs one read buffer and 64 KB,
never the others' time. Answers held back by a delay fault count too
(:data:`MAX_LATE_ANSWERS`).
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from typing import Final, Protocol, cast

from twin.modbus.dispatch import Dispatcher, TraceHook
from twin.modbus.security import READ_WRITE, TlsPolicy, certificate_role

OUTPUT_HIGH_BYTES: Final = 64 * 1024  # queued answers past which a connection is not read
OUTPUT_LOW_BYTES: Final = 16 * 1024  # ... and below which it is read again
FRAMES_PER_ROUND: Final = 64  # frames answered between two looks at the queued output
MAX_LATE_ANSWERS: Final = 64  # answers held by a delay fault per connection before pausing
MBAP_MAX_LENGTH: Final = 254  # unit id + a PDU of at most 253 bytes
READ_FRAME_BYTES: Final = 12  # MBAP header, FC01-04, address, count: all the memo holds

_connection_numbers = itertools.count(1)  # unique across every server of the process


class Port(Protocol):
    """What a connection needs of its server (:class:`~twin.modbus.tcp.ModbusTcpServer`)."""

    dispatcher: Dispatcher
    tls: TlsPolicy | None
    now: float  # a coarse monotonic clock the server advances

    @property
    def trace(self) -> TraceHook | None: ...

    def admit(self, conn: MbapConnection) -> None: ...

    def release(self, conn: MbapConnection) -> None: ...


class MbapConnection(asyncio.Protocol):
    """One client connection of a Modbus TCP port."""

    __slots__ = (
        "_buf",
        "_dispatcher",
        "_late",
        "_server",
        "_transport",
        "_write",
        "_writing_paused",
        "last_request",
        "number",
        "partial_since",
        "read_only",
        "role",
    )

    def __init__(self, server: Port) -> None:
        self._server = server
        self._dispatcher = server.dispatcher
        self._buf = b""
        self._transport: asyncio.Transport | None = None
        self._write = _write_nowhere  # transport.write once connected (one lookup less)
        self._writing_paused = False
        self._late = 0  # answers a delay fault holds back
        self.last_request = server.now  # coarse time of the last complete request
        self.partial_since = 0.0  # coarse time an incomplete frame started (0: none)
        self.read_only = False
        self.role: str | None = None  # the Modbus/TCP Security role (TLS only)
        self.number = next(_connection_numbers)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: duck-typed, same API.
        self._transport = cast(asyncio.Transport, transport)
        self._write = self._transport.write
        server = self._server
        self.last_request = server.now = time.monotonic()
        if server.tls is not None:
            ssl_object = transport.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
            self.role = certificate_role(der) if der else None
            self.read_only = server.tls.rights(self.role) != READ_WRITE
        self._transport.set_write_buffer_limits(high=OUTPUT_HIGH_BYTES, low=OUTPUT_LOW_BYTES)
        server.admit(self)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    @property
    def _held(self) -> bool:
        return self._writing_paused or self._late >= MAX_LATE_ANSWERS

    def pause_writing(self) -> None:
        # Called from inside transport.write once the queued answers pass the
        # high-water mark: stop reading and (at the end of this round) parsing.
        self._writing_paused = True
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._resume()

    def _resume(self) -> None:
        transport = self._transport
        if self._held or transport is None or transport.is_closing():
            return
        if self._buf:
            self._serve()  # the requests read before the pause
        if not self._held and not transport.is_closing():
            transport.resume_reading()

    @property
    def buffered_bytes(self) -> int:
        """Answers written but not yet taken by the client (what backpressure bounds)."""
        transport = self._transport
        return 0 if transport is None else transport.get_write_buffer_size()

    @property
    def keepalive(self) -> bool:
        """Whether the kernel probes this connection's peer (SO_KEEPALIVE)."""
        transport = self._transport
        sock = None if transport is None else transport.get_extra_info("socket")
        return bool(sock and sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))

    @property
    def pending_request_bytes(self) -> int:
        """Requests read but not yet parsed (at most one read while held)."""
        return len(self._buf)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.release(self)
        self._transport = None
        self._write = _write_nowhere
        self._buf = b""

    def data_received(self, data: bytes) -> None:
        if len(data) == READ_FRAME_BYTES and not self._buf and not self._writing_paused:
            # A poller's read, alone in its segment and answered before: no parsing.
            # (Held by late answers needs a delay fault, whose interceptor empties frames.)
            dispatcher = self._dispatcher
            framed = dispatcher.frames.get(data[2:])
            if framed is not None:
                self._write(data[:2] + framed)
                dispatcher.requests[data[7]] += 1
                self.last_request = self._server.now
                return
        self._buf = self._buf + data if self._buf else data
        if not self._writing_paused and self._late < MAX_LATE_ANSWERS:  # not held
            self._serve()

    def _serve(self) -> None:
        """Answer the complete frames in the buffer, a round at a time, until held."""
        server = self._server
        dispatcher = self._dispatcher
        slow = server.trace is not None or dispatcher.interceptor is not None or self.read_only
        buf = self._buf
        out: list[bytes] = []
        pos, n = 0, len(buf)
        budget = FRAMES_PER_ROUND
        while n - pos >= 8:
            length = (buf[pos + 4] << 8) | buf[pos + 5]
            end = pos + 6 + length
            if length < 2 or length > MBAP_MAX_LENGTH or buf[pos + 2] or buf[pos + 3]:
                self._write_out(out)
                self.close()  # not Modbus (bad length or protocol id): nothing to resync on
                self._buf = b""
                return
            if end > n:
                break
            if slow:
                if not self._slow_frame(buf[pos:end], out):
                    self._write_out(out)
                    self.close()  # a drop fault: the answers before it still go out
                    self._buf = b""
                    return
            else:
                unit = buf[pos + 6]
                pdu = dispatcher.answer(unit, buf[pos + 7 : end])
                if pdu is None:
                    pass
                elif end == n == READ_FRAME_BYTES:  # a read alone in its chunk, as polled
                    framed = _mbap_tail(len(pdu), unit) + pdu
                    out.append(buf[:2] + framed)
                    dispatcher.memoise(unit, pdu, buf[2:], framed)
                else:
                    out.append(buf[pos : pos + 2] + _mbap_tail(len(pdu), unit) + pdu)
            pos = end
            budget -= 1
            if not budget:
                self._write_out(out)
                out = []
                if self._held:
                    break
                budget = FRAMES_PER_ROUND
        if pos:
            self.last_request = server.now
        self._buf = buf[pos:] if pos else buf
        self._write_out(out)
        if self._held:
            self.partial_since = 0.0  # waiting for the client, not for the rest of a frame
            if self._transport is not None:
                self._transport.pause_reading()
        elif self._buf:
            self.partial_since = self.partial_since or server.now
        else:
            self.partial_since = 0.0

    def _write_out(self, out: list[bytes]) -> None:
        if out:
            self._write(out[0] if len(out) == 1 else b"".join(out))

    def _slow_frame(self, frame: bytes, out: list[bytes]) -> bool:
        """One frame with a trace, an interceptor or restricted rights; False: drop."""
        unit = frame[6]
        trace = self._server.trace
        if trace is not None:
            trace("rx", unit, frame, time.time())
        pdu, action = self._dispatcher.decide(
            unit, frame[7:], self.number, read_only=self.read_only
        )
        if pdu is None:
            return action is None or not action.drop_connection
        reply = frame[:2] + _mbap_tail(len(pdu), unit) + pdu
        if action is not None:
            reply = action.wire(reply)
            if action.delay_s > 0:
                if self._transport is not None:
                    self._late += 1
                    asyncio.get_running_loop().call_later(
                        action.delay_s, self._late_write, unit, reply
                    )
                return True
        if trace is not None:
            trace("tx", unit, reply, time.time())
        out.append(reply)
        return True

    def _late_write(self, unit: int, reply: bytes) -> None:
        was_held = self._held
        self._late -= 1
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        trace = self._server.trace
        if trace is not None:
            trace("tx", unit, reply, time.time())
        transport.write(reply)
        if was_held:
            self._resume()


def _write_nowhere(data: bytes) -> None:
    """A connection's writer before it is connected and after it is lost."""


_TAILS: dict[tuple[int, int], bytes] = {}


def _mbap_tail(pdu_len: int, unit: int) -> bytes:
    """MBAP protocol id, length and unit id (memoised: few distinct values)."""
    key = (pdu_len, unit)
    tail = _TAILS.get(key)
    if tail is None:
        tail = _TAILS[key] = bytes((0, 0, (pdu_len + 1) >> 8, (pdu_len + 1) & 0xFF, unit))
    return tail
