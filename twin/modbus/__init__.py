"""Modbus: the sans-IO endpoint and dispatcher that make every protocol decision
(:mod:`.endpoint`, :mod:`.dispatch`), the thin TCP transport (:mod:`.tcp`, its
connections in :mod:`.mbap`), serial line settings (:mod:`.serial`), protocol
fault injection (:mod:`.faults`) and the hooks that arm faults and traces on a twin's
servers (:mod:`.hooks`). The transports are imported by path only, so importing this
package (as ``twin.control`` does for the fault specs) imports neither asyncio nor
pymodbus: the TCP transport ``twin.modbus.tcp`` (``ModbusTcpServer``), the RTU
transport ``twin.modbus.rtu`` (``ModbusRtuServer``) and the client helper
``twin.modbus.client`` (``MeterClient``).
"""

from twin.modbus.dispatch import (
    RTU_PORT,
    TCP_UNIT_ALIASES,
    Dispatcher,
    Intercept,
    Interceptor,
    TraceHook,
    exception_pdu,
)
from twin.modbus.endpoint import (
    CACHE_MAX,
    FLEET_CACHE_BUDGET,
    MeterEndpoint,
    UnknownUnit,
    encode_device_id,
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
