"""Modbus TCP and RTU servers that answer from prebuilt register images.

Theory of operation
-------------------
A port serves a dict ``unit id -> MeterEndpoint``. An endpoint holds the meter's
current :class:`~twin.registers.RegisterImage` (rebuilt by the runtime when the
meter changes, never per request), its device-identification objects and, when
writes are enabled, a write handler that decodes block C writes into core commands.

``MeterEndpoint.respond(pdu)`` turns a request PDU into a response PDU. Read
responses (FC01–04, exceptions included) are memoised per endpoint, keyed by the
request PDU bytes, and the memo is dropped when the image changes: a poller asking
the same 40 registers over and over costs one dict lookup.

The TCP server is a lean ``asyncio.Protocol`` rather than pymodbus's server classes,
which cost ~3× the libmodbus C server's latency: it splits MBAP frames itself
(pipelined requests in one chunk, partial frames buffered) and writes all answers
of a chunk in one call. Connection limit, idle timeout, trace and interceptor hooks
sit off the fast path: with no hook set a frame never leaves ``data_received``. A
client that does not read its answers gets backpressure (its requests stop being
read once its answers queue up), so it costs neither memory nor other clients' time.

The RTU server reads a serial device (or a pty) through termios, frames requests
by function-code length, and checks CRCs with pymodbus's RTU framer. Unknown unit
ids stay silent on RTU (the line has other slaves); on TCP they answer 0x0B unless
the server is told to stay silent. This is the only server-side pymodbus import.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import logging
import os
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast

from pymodbus.framer.rtu import FramerRTU

from twin.errors import ServeError
from twin.registers import ModbusException

log = logging.getLogger(__name__)

ILLEGAL_FUNCTION, ILLEGAL_ADDRESS, ILLEGAL_VALUE = 0x01, 0x02, 0x03
GATEWAY_TARGET_FAILED = 0x0B
CACHE_MAX = 4096  # distinct read requests memoised per image (bounds a scanning client)
FLEET_CACHE_BUDGET = 65_536  # memoised answers across all meters of a process (~30 MB)


class Image(Protocol):
    """What the server needs of a register image (``twin.registers.RegisterImage``)."""

    def read_registers(self, address: int, count: int) -> bytes: ...

    def read_bits(self, fc: int, address: int, count: int) -> bytes: ...


WriteHandler = Callable[[int, list[int]], None]  # raises ModbusException(code) to refuse


def _code(exc: Exception) -> int:
    code = getattr(exc, "code", None)
    return int(code) if isinstance(code, int) else ILLEGAL_VALUE


class MeterEndpoint:
    """One meter as seen on the wire."""

    __slots__ = ("_image", "cache", "cache_max", "device_id", "silent", "write")

    def __init__(
        self,
        image: Image,
        device_id: dict[int, bytes],
        write: WriteHandler | None = None,
        *,
        cache_max: int = CACHE_MAX,
    ) -> None:
        self._image = image
        # A fleet shares one memo budget: 1,000 frozen meters scanned at every
        # address must not hold 1,000 full memos.
        self.cache_max = cache_max
        self.device_id = device_id
        self.write = write  # None: writes are off, every write answers 0x01
        self.cache: dict[bytes, bytes] = {}
        # True while the meter is dark and configured to go silent on power loss:
        # the servers then answer nothing for this unit (its comms have no supply).
        self.silent = False

    @property
    def image(self) -> Image:
        return self._image

    def set_image(self, image: Image) -> None:
        self._image = image
        self.cache = {}

    def respond(self, pdu: bytes) -> bytes:
        resp = self.cache.get(pdu)
        if resp is None:
            resp = self._handle(pdu)
            if pdu and pdu[0] <= 4 and len(self.cache) < self.cache_max:
                self.cache[pdu] = resp
        return resp

    def _handle(self, pdu: bytes) -> bytes:
        fc = pdu[0]
        try:
            if fc in (3, 4) or fc in (1, 2):
                if len(pdu) != 5:
                    return bytes((fc | 0x80, ILLEGAL_VALUE))
                address = (pdu[1] << 8) | pdu[2]
                count = (pdu[3] << 8) | pdu[4]
                if fc >= 3:
                    data = self._image.read_registers(address, count)
                else:
                    data = self._image.read_bits(fc, address, count)
                return bytes((fc, len(data))) + data
            if fc == 6 or fc == 16:
                return self._handle_write(fc, pdu)
            if fc == 0x2B:
                return encode_device_id(self.device_id, pdu)
        except ModbusException as exc:
            return bytes((fc | 0x80, _code(exc)))
        return bytes(((fc | 0x80) & 0xFF, ILLEGAL_FUNCTION))

    def _handle_write(self, fc: int, pdu: bytes) -> bytes:
        if self.write is None:
            return bytes((fc | 0x80, ILLEGAL_FUNCTION))
        if fc == 6:
            if len(pdu) != 5:
                return bytes((fc | 0x80, ILLEGAL_VALUE))
            values = [(pdu[3] << 8) | pdu[4]]
            echo = pdu
        else:
            count = (pdu[3] << 8) | pdu[4] if len(pdu) >= 5 else 0
            if not 1 <= count <= 123 or len(pdu) != 6 + 2 * count or pdu[5] != 2 * count:
                return bytes((fc | 0x80, ILLEGAL_VALUE))
            values = [(pdu[6 + 2 * i] << 8) | pdu[7 + 2 * i] for i in range(count)]
            echo = pdu[:5]
        self.write((pdu[1] << 8) | pdu[2], values)
        return echo


def encode_device_id(objects: dict[int, bytes], pdu: bytes) -> bytes:
    """FC43/14 Read Device Identification (stream access 1–3, individual access 4)."""
    exc = ModbusException  # raised with the standard codes; caught by the caller
    if len(pdu) != 4 or pdu[1] != 0x0E:
        raise exc(ILLEGAL_FUNCTION if len(pdu) >= 2 and pdu[1] != 0x0E else ILLEGAL_VALUE)
    read_code, object_id = pdu[2], pdu[3]
    if read_code not in (1, 2, 3, 4):
        raise exc(ILLEGAL_VALUE)
    if read_code == 4:
        if object_id not in objects:
            raise exc(ILLEGAL_ADDRESS)
        ids = [object_id]
    else:
        top = {1: 0x02, 2: 0x7F, 3: 0xFF}[read_code]
        ids = sorted(i for i in objects if i <= top)
        # An unknown start object restarts the stream at the first object (spec 6.21).
        start = object_id if object_id in ids else (ids[0] if ids else 0)
        ids = [i for i in ids if i >= start]
    top_id = max(objects, default=0)
    conformity = 0x80 | (3 if top_id >= 0x80 else 2 if top_id >= 0x03 else 1)
    body, more, next_id, n = b"", 0, 0, 0
    for i in ids:
        value = objects[i][:245]
        item = bytes((i, len(value))) + value
        if 7 + len(body) + len(item) > 253:  # PDU limit: the rest follows on request
            more, next_id = 0xFF, i
            break
        body += item
        n += 1
    return bytes((0x2B, 0x0E, read_code, conformity, more, next_id, n)) + body


# ------------------------------------------------------------------ hooks (issue 5)

TraceHook = Callable[[str, int, bytes, float], None]  # direction "rx"/"tx", unit, frame, time


@dataclass(frozen=True, slots=True)
class Intercept:
    """What an interceptor does to one request instead of the normal answer."""

    delay_s: float = 0.0
    silent: bool = False
    exception_code: int | None = None
    drop_connection: bool = False
    replace_with: bytes | None = None  # raw bytes sent instead of the frame (garbage)
    truncate: bool = False  # send the real answer cut short (only the server knows it)


# (unit, request pdu, connection number) -> action. Connection numbers are unique across
# every server of the process (0 on RTU), so "drop after N requests" counts per
# connection; a runtime serving several ports gives each server its own interceptor.
Interceptor = Callable[[int, bytes, int], Intercept | None]
_connection_numbers = itertools.count(1)


# ------------------------------------------------------------------------ TCP


class ModbusTcpServer:
    """One listening TCP port serving many unit ids."""

    def __init__(
        self,
        units: dict[int, MeterEndpoint],
        host: str = "127.0.0.1",
        port: int = 5020,
        *,
        unknown_unit: Literal["exception", "silent"] = "exception",
        max_connections: int = 256,
        idle_timeout_s: float | None = None,
    ) -> None:
        self.units = units
        self.host, self.port = host, port
        self.unknown_unit = unknown_unit
        self.max_connections = max_connections
        self.idle_timeout_s = idle_timeout_s
        self.trace: TraceHook | None = None
        self.interceptor: Interceptor | None = None
        self.connection_closed: Callable[[int], None] | None = None  # set with interceptor
        self.connections: set[_TcpConnection] = set()
        self.refused = 0  # connections closed at once because max_connections were open
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                lambda: _TcpConnection(self), self.host, self.port, reuse_address=True
            )
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ServeError(
                    f"{self.host}:{self.port} is in use; choose another --port"
                ) from None
            raise ServeError(f"cannot listen on {self.host}:{self.port}: {exc.strerror}") from None
        if self.port == 0:  # an ephemeral port: report the one the OS chose
            self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("Modbus TCP serving on %s:%d, unit ids %s", self.host, self.port, _ids(self))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for conn in list(self.connections):
                conn.close()
            await self._server.wait_closed()
            self._server = None
            log.info("Modbus TCP on %s:%d closed", self.host, self.port)


def _ids(server: ModbusTcpServer | ModbusRtuServer) -> str:
    ids = sorted(server.units)
    return f"{ids[0]}..{ids[-1]}" if len(ids) > 3 else ",".join(map(str, ids))


class _TcpConnection(asyncio.Protocol):
    __slots__ = ("_buf", "_idle", "_last_rx", "_server", "_transport", "number")

    def __init__(self, server: ModbusTcpServer) -> None:
        self._server = server
        self._buf = b""
        self._transport: asyncio.Transport | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._last_rx = 0.0
        self.number = next(_connection_numbers)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: duck-typed, same API.
        self._transport = cast(asyncio.Transport, transport)
        server = self._server
        if len(server.connections) >= server.max_connections:
            # Refuse cleanly: accepted, then reset at once (no request is read), so the
            # client fails fast instead of hanging in the listen backlog.
            server.refused += 1
            self._transport.abort()
            return
        server.connections.add(self)
        if server.idle_timeout_s:
            self._last_rx = time.monotonic()
            self._idle = asyncio.get_running_loop().call_later(
                server.idle_timeout_s, self._check_idle
            )

    def _check_idle(self) -> None:
        timeout = self._server.idle_timeout_s or 0.0
        left = self._last_rx + timeout - time.monotonic()
        if left <= 0:
            self.close()
        else:
            self._idle = asyncio.get_running_loop().call_later(left, self._check_idle)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def pause_writing(self) -> None:
        # A client that sends but does not read: stop reading its requests until it
        # drains its answers, so its backlog stays in its own socket, not our memory.
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.connections.discard(self)
        closed = self._server.connection_closed
        if closed is not None:  # faults armed: they may count requests per connection
            closed(self.number)
        if self._idle is not None:
            self._idle.cancel()
        self._transport = None

    def data_received(self, data: bytes) -> None:
        server = self._server
        if server.idle_timeout_s:
            self._last_rx = time.monotonic()
        buf = self._buf + data if self._buf else data
        units = server.units
        slow = server.trace is not None or server.interceptor is not None
        out: list[bytes] = []
        pos, n = 0, len(buf)
        while n - pos >= 8:
            length = (buf[pos + 4] << 8) | buf[pos + 5]
            end = pos + 6 + length
            if length < 2 or length > 254 or buf[pos + 2] or buf[pos + 3]:
                self._write_out(out)
                self.close()  # not Modbus (bad length or protocol id): nothing to resync on
                return
            if end > n:
                break
            unit = buf[pos + 6]
            if slow:
                if not self._slow_frame(buf[pos:end], out):
                    self._write_out(out)
                    self.close()  # a drop fault: the answers before it still go out
                    return
            else:
                ep = units.get(unit)
                if ep is not None:
                    if not ep.silent:
                        pdu = ep.respond(buf[pos + 7 : end])
                        out.append(buf[pos : pos + 2] + _mbap_tail(len(pdu), unit) + pdu)
                elif server.unknown_unit == "exception":
                    pdu = bytes(((buf[pos + 7] | 0x80) & 0xFF, GATEWAY_TARGET_FAILED))
                    out.append(buf[pos : pos + 2] + _mbap_tail(2, unit) + pdu)
            pos = end
        self._buf = buf[pos:]
        if out:
            self._write_out(out)

    def _write_out(self, out: list[bytes]) -> None:
        if out and self._transport is not None:
            self._transport.write(out[0] if len(out) == 1 else b"".join(out))

    def _slow_frame(self, frame: bytes, out: list[bytes]) -> bool:
        """One frame with trace or interceptor hooks set; False: drop the connection."""
        server = self._server
        unit, pdu = frame[6], frame[7:]
        trace = server.trace
        if trace is not None:
            trace("rx", unit, frame, time.time())
        interceptor = server.interceptor
        action = interceptor(unit, pdu, self.number) if interceptor is not None else None
        if action is not None and action.drop_connection:
            return False
        ep = server.units.get(unit)
        if action is not None and action.exception_code is not None:
            resp: bytes | None = bytes(((pdu[0] | 0x80) & 0xFF, action.exception_code))
        elif ep is not None:
            resp = None if ep.silent else ep.respond(pdu)
        elif server.unknown_unit == "exception":
            resp = bytes(((pdu[0] | 0x80) & 0xFF, GATEWAY_TARGET_FAILED))
        else:
            resp = None
        if resp is None or (action is not None and action.silent):
            return True
        reply = frame[:2] + _mbap_tail(len(resp), unit) + resp
        if action is not None:
            if action.replace_with is not None:
                reply = action.replace_with
            elif action.truncate:
                reply = reply[: max(1, len(reply) // 2)]
            if action.delay_s > 0:
                if self._transport is not None:
                    asyncio.get_running_loop().call_later(
                        action.delay_s, self._late_write, unit, reply
                    )
                return True
        if trace is not None:
            trace("tx", unit, reply, time.time())
        out.append(reply)
        return True

    def _late_write(self, unit: int, reply: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if self._server.trace is not None:
            self._server.trace("tx", unit, reply, time.time())
        transport.write(reply)


_TAILS: dict[tuple[int, int], bytes] = {}


def _mbap_tail(pdu_len: int, unit: int) -> bytes:
    """MBAP protocol id, length and unit id (memoised: few distinct values)."""
    key = (pdu_len, unit)
    tail = _TAILS.get(key)
    if tail is None:
        tail = _TAILS[key] = bytes((0, 0, (pdu_len + 1) >> 8, (pdu_len + 1) & 0xFF, unit))
    return tail


# ------------------------------------------------------------------------ RTU

_BAUDS = {
    b: getattr(termios, f"B{b}")
    for b in (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400)
    if hasattr(termios, f"B{b}")
}


@dataclass(frozen=True, slots=True)
class SerialSettings:
    device: str
    baud: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1

    def __post_init__(self) -> None:
        from twin.errors import ConfigError

        if self.baud not in _BAUDS:
            raise ConfigError(f"--baud {self.baud}: expected one of {sorted(_BAUDS)}")
        if self.parity not in ("N", "E", "O"):
            raise ConfigError(f"--parity {self.parity}: expected N, E or O")
        if self.stopbits not in (1, 2):
            raise ConfigError(f"--stopbits {self.stopbits}: expected 1 or 2")

    @property
    def char_s(self) -> float:
        bits = 1 + 8 + (self.parity != "N") + self.stopbits
        return bits / self.baud


def _open_serial(s: SerialSettings) -> int:
    try:
        fd = os.open(s.device, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as exc:
        raise ServeError(f"serial device {s.device}: {exc.strerror}") from None
    try:
        attrs: list[Any] = termios.tcgetattr(fd)
    except termios.error:
        os.close(fd)
        raise ServeError(f"serial device {s.device}: not a terminal device") from None
    iflag, oflag, cflag, lflag, _, _, cc = attrs
    iflag = 0  # raw: no break, CR/NL or flow-control translation
    oflag = 0
    lflag = 0
    cflag = termios.CS8 | termios.CREAD | termios.CLOCAL
    if s.parity != "N":
        cflag |= termios.PARENB | (termios.PARODD if s.parity == "O" else 0)
    if s.stopbits == 2:
        cflag |= termios.CSTOPB
    cc[termios.VMIN], cc[termios.VTIME] = 0, 0
    speed = _BAUDS[s.baud]
    termios.tcsetattr(fd, termios.TCSANOW, [iflag, oflag, cflag, lflag, speed, speed, cc])
    return fd


def _rtu_request_size(buf: bytes) -> int | None:
    """Expected length of the request frame at the start of ``buf`` (None: unknown yet)."""
    if len(buf) < 2:
        return None
    fc = buf[1]
    if fc in (1, 2, 3, 4, 5, 6):
        return 8
    if fc in (15, 16):
        return 9 + buf[6] if len(buf) >= 7 else None
    if fc == 0x2B:
        return 7
    return None  # unsupported function: wait for the inter-frame silence


class ModbusRtuServer:
    """Modbus RTU slave on a serial device: one request, one answer."""

    def __init__(self, units: dict[int, MeterEndpoint], settings: SerialSettings) -> None:
        self.units = units
        self.settings = settings
        self.trace: TraceHook | None = None
        self.interceptor: Interceptor | None = None
        self._fd: int | None = None
        self._buf = b""
        self._silence: asyncio.TimerHandle | None = None
        # 3.5 character times ends a frame; at least 2 ms (OS and USB adapters jitter)
        self._gap_s = max(3.5 * settings.char_s, 0.002)

    async def start(self) -> None:
        self._fd = _open_serial(self.settings)
        asyncio.get_running_loop().add_reader(self._fd, self._readable)
        s = self.settings
        log.info(
            "Modbus RTU serving on %s %d %s8%d, unit ids %s",
            s.device,
            s.baud,
            s.parity,
            s.stopbits,
            _ids(self),
        )

    async def close(self) -> None:
        if self._fd is not None:
            asyncio.get_running_loop().remove_reader(self._fd)
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
            log.info("Modbus RTU on %s closed", self.settings.device)

    def _readable(self) -> None:
        assert self._fd is not None
        try:
            data = os.read(self._fd, 512)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # pty peer gone (EIO): keep the device; a new peer may come
            data = b""
        if not data:
            return
        self._buf += data
        self._parse()
        if self._silence is not None:
            self._silence.cancel()
        if self._buf:
            self._silence = asyncio.get_running_loop().call_later(self._gap_s, self._flush)

    def _flush(self) -> None:
        """Silence after bytes that never made a frame: drop them (noise or foreign fc)."""
        if self._buf:
            self._answer(self._buf)  # an unsupported function still gets its 0x01
            self._buf = b""

    def _parse(self) -> None:
        while len(self._buf) >= 4:
            size = _rtu_request_size(self._buf)
            if size is None or len(self._buf) < size:
                return
            frame, self._buf = self._buf[:size], self._buf[size:]
            if not self._answer(frame):
                self._buf = b""  # CRC error: resync on the next silence
                return

    def _answer(self, frame: bytes) -> bool:
        """Answer one frame; False when its CRC is wrong."""
        if len(frame) < 4:
            return False
        crc = (frame[-2] << 8) | frame[-1]
        if not FramerRTU.check_CRC(frame[:-2], crc):
            return False
        if self.trace is not None:
            self.trace("rx", frame[0], frame, time.time())
        unit, pdu = frame[0], frame[1:-2]
        if unit == 0:  # broadcast: writes act on every meter, nobody answers
            for each in self.units.values():
                if pdu[0] in (6, 16):
                    each.respond(pdu)
            return True
        ep = self.units.get(unit)
        if ep is None:
            return True  # another slave's request
        if ep.silent:
            return True  # dark and configured silent on power loss
        action = self.interceptor(unit, pdu, 0) if self.interceptor is not None else None
        if action is not None and (action.silent or action.drop_connection):
            return True  # a serial line has no connection to drop: the slave stays mute
        if action is not None and action.exception_code is not None:
            resp = bytes(((pdu[0] | 0x80) & 0xFF, action.exception_code))
        else:
            resp = ep.respond(pdu)
        body = bytes((unit,)) + resp
        out = body + FramerRTU.compute_CRC(body).to_bytes(2, "big")
        if action is not None and action.replace_with is not None:
            out = action.replace_with
        elif action is not None and action.truncate:
            out = out[: max(1, len(out) // 2)]
        if action is not None and action.delay_s > 0:
            asyncio.get_running_loop().call_later(action.delay_s, self._send, unit, out)
        else:
            self._send(unit, out)
        return True

    def _send(self, unit: int, out: bytes) -> None:
        if self.trace is not None:
            self.trace("tx", unit, out, time.time())
        if self._fd is not None:
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(self._fd, out)
