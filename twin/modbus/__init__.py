"""Modbus: the sans-IO endpoint that makes every protocol decision (:mod:`.endpoint`),
the thin TCP transport (:mod:`.tcp`), serial line settings (:mod:`.serial`), protocol
fault injection (:mod:`.faults`) and the hooks that arm faults and traces on a twin's
servers (:mod:`.hooks`). The pymodbus modules are imported by path only, so importing
this package never imports pymodbus: the RTU transport ``twin.modbus.rtu``
(``ModbusRtuServer``) and the client helper ``twin.modbus.client`` (``MeterClient``).
"""

from twin.modbus.endpoint import (
    CACHE_MAX,
    FLEET_CACHE_BUDGET,
    RTU_PORT,
    TCP_UNIT_ALIASES,
    Dispatcher,
    Intercept,
    Interceptor,
    MeterEndpoint,
    TraceHook,
    UnknownUnit,
    encode_device_id,
    exception_pdu,
)
from twin.modbus.faults import (
    FaultInjector,
    FaultKind,
    FaultSpec,
    as_fault,
    fault_from_mapping,
    parse_fault,
)
from twin.modbus.hooks import WireHooks, WireTrace
from twin.modbus.serial import BAUD_RATES, SerialSettings
from twin.modbus.tcp import ModbusTcpServer

__all__ = [
    "BAUD_RATES",
    "CACHE_MAX",
    "FLEET_CACHE_BUDGET",
    "RTU_PORT",
    "TCP_UNIT_ALIASES",
    "Dispatcher",
    "FaultInjector",
    "FaultKind",
    "FaultSpec",
    "Intercept",
    "Interceptor",
    "MeterEndpoint",
    "ModbusTcpServer",
    "SerialSettings",
    "TraceHook",
    "UnknownUnit",
    "WireHooks",
    "WireTrace",
    "as_fault",
    "encode_device_id",
    "exception_pdu",
    "fault_from_mapping",
    "parse_fault",
]
