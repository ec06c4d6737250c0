"""The one Modbus client helper (pymodbus) for tests, HIL fixtures and scripts.

:class:`MeterClient` wraps pymodbus's async TCP client with what talking to a meter
needs: reads that return plain ints/bools or raise :class:`ExceptionReply` carrying
the Modbus exception code, decoders for the map's number types in either word order,
and FC43/14 device identification as ``{object id: bytes}``. pymodbus retries and
reconnects are off: a test should see exactly what the server did.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from pymodbus.client import AsyncModbusTcpClient

from twin.registers import WordOrder


class ExceptionReply(Exception):
    """The server answered a Modbus exception (``code``: 1 illegal function, 2, 3, ...)."""

    def __init__(self, function_code: int, code: int) -> None:
        super().__init__(f"function 0x{function_code:02x}: exception 0x{code:02x}")
        self.function_code = function_code
        self.code = code


def words_to_bytes(words: Sequence[int], word_order: WordOrder = WordOrder.BIG) -> bytes:
    """Registers -> big-endian bytes, most significant word first (undoing LITTLE)."""
    ordered = list(words) if word_order is WordOrder.BIG else list(reversed(words))
    return b"".join(w.to_bytes(2, "big") for w in ordered)


def decode_uint(words: Sequence[int], word_order: WordOrder = WordOrder.BIG) -> int:
    return int.from_bytes(words_to_bytes(words, word_order), "big")


def decode_float32(words: Sequence[int], word_order: WordOrder = WordOrder.BIG) -> float:
    value: float = struct.unpack(">f", words_to_bytes(words, word_order))[0]
    return value


def decode_string(words: Sequence[int]) -> str:
    """ASCII, NUL-padded, first character in the high byte (never word-swapped)."""
    return words_to_bytes(words).rstrip(b"\x00").decode("ascii", "replace")


def same_float(a: float, b: float, rel: float = 1e-6) -> bool:
    """Equal as float32 round trips are (NaN equals NaN)."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-6)


class MeterClient:
    """``async with MeterClient(port=5020) as c: await c.read_registers(0, 40)``."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 5020,
        unit: int = 1,
        *,
        timeout_s: float = 2.0,
    ) -> None:
        self.unit = unit
        self._client = AsyncModbusTcpClient(
            host, port=port, timeout=timeout_s, retries=0, reconnect_delay=0
        )

    async def connect(self) -> None:
        if not await self._client.connect():
            params = self._client.comm_params
            raise ConnectionError(f"cannot connect to {params.host}:{params.port}")

    def close(self) -> None:
        self._client.close()

    async def __aenter__(self) -> MeterClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @staticmethod
    def _check(reply: Any) -> Any:
        if reply.isError():
            raise ExceptionReply(reply.function_code & 0x7F, int(reply.exception_code))
        return reply

    async def read_registers(self, address: int, count: int, fc: int = 3) -> list[int]:
        read = self._client.read_holding_registers if fc == 3 else self._client.read_input_registers
        reply = self._check(await read(address, count=count, device_id=self.unit))
        return list(reply.registers)

    async def read_bits(self, fc: int, address: int, count: int) -> list[bool]:
        read = self._client.read_coils if fc == 1 else self._client.read_discrete_inputs
        reply = self._check(await read(address, count=count, device_id=self.unit))
        return list(reply.bits[:count])

    async def write_register(self, address: int, value: int) -> None:
        self._check(await self._client.write_register(address, value, device_id=self.unit))

    async def write_registers(self, address: int, values: Sequence[int]) -> None:
        self._check(await self._client.write_registers(address, list(values), device_id=self.unit))

    async def device_identification(self, read_code: int = 3) -> dict[int, bytes]:
        reply = self._check(
            await self._client.read_device_information(read_code=read_code, device_id=self.unit)
        )
        return {int(k): bytes(v) for k, v in reply.information.items()}

    async def read_uint(
        self, address: int, words: int, word_order: WordOrder = WordOrder.BIG
    ) -> int:
        return decode_uint(await self.read_registers(address, words), word_order)

    async def read_float32(self, address: int, word_order: WordOrder = WordOrder.BIG) -> float:
        return decode_float32(await self.read_registers(address, 2), word_order)
