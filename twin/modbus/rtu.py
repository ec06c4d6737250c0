"""Modbus RTU server on a serial device or pty: the only server-side pymodbus import.

Theory of operation
-------------------
The RTU server reads a serial device (or a pty) through termios, frames requests
by function-code length, and checks CRCs with pymodbus's RTU framer. Each frame is
answered by the unit's :class:`~twin.modbus.endpoint.MeterEndpoint` (the same endpoints
the TCP server of :mod:`twin.modbus.tcp` answers from). Unknown unit ids stay
silent (the line has other slaves); broadcast writes (unit 0) act on every meter
and nobody answers. Interceptors see connection 0 (a line has no connections), so
a drop fault is one unanswered request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import termios
import time
from dataclasses import dataclass
from typing import Any, Literal

from pymodbus.framer.rtu import FramerRTU

from twin.errors import ServeError
from twin.modbus.endpoint import Interceptor, MeterEndpoint, TraceHook, unit_ids_text

log = logging.getLogger(__name__)

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
            unit_ids_text(self.units),
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
