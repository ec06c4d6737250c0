"""Stand-ins for pulse hardware, used by the devices tests' fixtures.

:class:`CounterModule` is a pymodbus TCP server on 127.0.0.1 playing a DI counter
module (ADAM-6051: holding registers, low word first; ioLogik E1200: input
registers from 0x10, high word first; or anything generic) and a DO module: every
coil write is logged in order. Its counters live here, not in the server, so the
module can go away (an outage) and come back with counters that kept counting.
"""

from __future__ import annotations

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

REGISTERS = 64
COILS = 16
UNIT = 1


class CounterModule:
    """A counter/DO module on ``127.0.0.1:port``; ``await set_counter(...)`` to count."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.holding = [0] * REGISTERS
        self.inputs = [0] * REGISTERS
        self.coil_writes: list[tuple[int, bool]] = []
        self._server: ModbusTcpServer | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        device = SimDevice(
            UNIT,
            simdata=(
                [SimData(0, count=COILS, values=False, datatype=DataType.BITS)],
                [SimData(0, count=COILS, values=False, datatype=DataType.BITS)],
                [SimData(0, values=list(self.holding), datatype=DataType.REGISTERS)],
                [SimData(0, values=list(self.inputs), datatype=DataType.REGISTERS)],
            ),
            action=self._action,
        )
        self._server = ModbusTcpServer(device, address=("127.0.0.1", self.port))
        await self._server.serve_forever(background=True)

    async def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            await server.shutdown()

    async def set_words(self, fc: int, address: int, words: list[int]) -> None:
        table = self.holding if fc == 3 else self.inputs
        table[address : address + len(words)] = words
        if self._server is not None:
            await self._server.async_setValues(UNIT, fc, address, words)

    async def set_counter(
        self, fc: int, address: int, value: int, *, width: int = 32, low_word_first: bool
    ) -> None:
        """Store ``value`` as the module would: one word, or two in its word order."""
        if width == 16:
            await self.set_words(fc, address, [value])
            return
        high, low = value >> 16, value & 0xFFFF
        await self.set_words(fc, address, [low, high] if low_word_first else [high, low])

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> None:
        if function_code in (5, 15) and set_values is not None:
            self.coil_writes.extend(
                (address + i, bool(value)) for i, value in enumerate(set_values)
            )
