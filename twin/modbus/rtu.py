"""Modbus RTU transport on a serial device or pty: the only server-side pymodbus import.

Theory of operation
-------------------
The RTU server reads a serial device (or a pty) through termios, frames requests
by function-code length, and checks CRCs with pymodbus's RTU framer. Who answers
what is decided by the line's :class:`~twin.modbus.dispatch.Dispatcher`, the same
code the TCP ports use, built as a serial line: unknown unit ids stay silent (the
line has other slaves), broadcast writes (unit 0) act on every meter and nobody
answers, and interceptors see connection 0 (a line has no connections, so a drop
fault is one unanswered request). Line settings are
:class:`~twin.modbus.serial.SerialSettings`.

The receive buffer never holds more than one frame's worth (:data:`RTU_MAX_FRAME`,
the spec's 256 bytes): bytes beyond that without a frame are noise, so the slave
drops them and everything up to the next 3.5-character silence, as a real slave
does, instead of growing the buffer and scanning CRCs over megabytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import termios
import time
from typing import Any, Final

from pymodbus.framer.rtu import FramerRTU

from twin.errors import ServeError
from twin.modbus.dispatch import RTU_PORT, Dispatcher, TraceHook, unit_ids_text
from twin.modbus.endpoint import MeterEndpoint
from twin.modbus.serial import BAUD_RATES, SerialSettings

log = logging.getLogger(__name__)

RTU_MAX_FRAME: Final = 256  # address + PDU (253) + CRC: the longest RTU frame
_BAUDS: Final = {b: getattr(termios, f"B{b}") for b in BAUD_RATES if hasattr(termios, f"B{b}")}


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


def rtu_request_size(buf: bytes) -> int | None:
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
        self.dispatcher = Dispatcher(units, serial_line=True, port=RTU_PORT)
        self.settings = settings
        self.trace: TraceHook | None = None
        self._fd: int | None = None
        self._buf = b""
        self._discarding = False  # an overlong frame: drop bytes until the line is silent
        self.overruns = 0  # overlong frames dropped (noise without inter-frame gaps)
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
            unit_ids_text(self.dispatcher.units),
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
        if not self._discarding:
            self._buf += data
            self._parse()
            if len(self._buf) > RTU_MAX_FRAME:
                self._buf = b""
                self._discarding = True
                self.overruns += 1
        if self._silence is not None:
            self._silence.cancel()
        if self._buf or self._discarding:
            self._silence = asyncio.get_running_loop().call_later(self._gap_s, self._flush)

    def _flush(self) -> None:
        """Silence after bytes that never made a frame: drop them (noise or foreign fc)."""
        self._silence = None
        self._discarding = False
        if self._buf:
            self._answer(self._buf)  # an unsupported function still gets its 0x01
            self._buf = b""

    def _parse(self) -> None:
        while len(self._buf) >= 4:
            size = rtu_request_size(self._buf)
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
        unit = frame[0]
        if self.trace is not None:
            self.trace("rx", unit, frame, time.time())
        pdu, action = self.dispatcher.decide(unit, frame[1:-2], 0)
        if pdu is None:
            return True
        body = bytes((unit,)) + pdu
        out = body + FramerRTU.compute_CRC(body).to_bytes(2, "big")
        if action is not None:
            out = action.wire(out)
            if action.delay_s > 0:
                asyncio.get_running_loop().call_later(action.delay_s, self._send, unit, out)
                return True
        self._send(unit, out)
        return True

    def _send(self, unit: int, out: bytes) -> None:
        if self.trace is not None:
            self.trace("tx", unit, out, time.time())
        if self._fd is not None:
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(self._fd, out)
