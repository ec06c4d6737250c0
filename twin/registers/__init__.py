"""The register map v1 and everything derived from it: the map as data (:mod:`.map`),
the encoders (:mod:`.codec`), the prebuilt image a meter is read from (:mod:`.image`),
block C writes decoded into control commands (:mod:`.writes`), SunSpec block D
(:mod:`.sunspec`) and the rendered docs (:mod:`.docs`). Pure: no sockets, no pymodbus.
"""

from twin.registers.codec import RegisterKind, WordOrder, decode, encode
from twin.registers.docs import render_table
from twin.registers.image import Identity, RegisterImage, device_identification
from twin.registers.map import (
    BLOCK_RANGES,
    BY_NAME,
    COILS,
    COMMAND_ADDRESS,
    CONFIG_ADDRESS,
    CONFIG_NAMES,
    DISCRETE_INPUTS,
    EXTRA_DEFAULTS,
    MAIN_REGISTERS,
    MAP_VERSION,
    MAX_READ_BITS,
    MAX_READ_REGISTERS,
    MAX_WRITE_REGISTERS,
    REGISTERS,
    Block,
    ExceptionCode,
    ModbusException,
    Register,
    block_registers,
    field_names,
)
from twin.registers.writes import (
    COMMAND_CODES,
    ENERGY_RESET_CODE,
    SETTINGS_COMMAND,
    BlockCWrite,
    decode_write,
)

__all__ = [
    "BLOCK_RANGES",
    "BY_NAME",
    "COILS",
    "COMMAND_ADDRESS",
    "COMMAND_CODES",
    "CONFIG_ADDRESS",
    "CONFIG_NAMES",
    "DISCRETE_INPUTS",
    "ENERGY_RESET_CODE",
    "EXTRA_DEFAULTS",
    "MAIN_REGISTERS",
    "MAP_VERSION",
    "MAX_READ_BITS",
    "MAX_READ_REGISTERS",
    "MAX_WRITE_REGISTERS",
    "REGISTERS",
    "SETTINGS_COMMAND",
    "Block",
    "BlockCWrite",
    "ExceptionCode",
    "Identity",
    "ModbusException",
    "Register",
    "RegisterImage",
    "RegisterKind",
    "WordOrder",
    "block_registers",
    "decode",
    "decode_write",
    "device_identification",
    "encode",
    "field_names",
    "render_table",
]
