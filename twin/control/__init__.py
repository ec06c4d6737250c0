"""The commands a running twin accepts, one control path for every channel.

Modbus block-C writes, MQTT, HTTP, the pytest plugin and Python callers name a
command (:class:`CommandName`) with a JSON-like body; :func:`parse_command` validates
it once against :data:`COMMAND_SPECS` (which also generate the OpenAPI and MQTT docs),
:func:`execute` applies it to a :class:`ControlTarget` (a running ``twin.runtime.Twin``)
after checking the locks, and the answer is a :class:`Result`: applied, or refused
with a reason, changing nothing. :func:`run_command` does both. The same settings
chosen at start (command line, fleet file, profile) are :class:`MeterChoices` layers,
merged by :func:`resolve`.
"""

from twin.control.choices import (
    CHOICE_KEYS,
    DEMAND_KEYS,
    SUPPLY_KEYS,
    MeterChoices,
    chosen_demand,
    enum_choices,
    profile_choices,
    resolve,
)
from twin.control.commands import (
    AddFault,
    ClearFaults,
    ClearLoad,
    CommandName,
    ControlCommand,
    CoreCommand,
    ElementLoad,
    Result,
    SetLoad,
    SetSpeed,
    SwitchProfile,
)
from twin.control.execute import (
    ENERGY_RESET_LOCKED,
    WRITES_LOCKED,
    Controller,
    ControlTarget,
    FaultTarget,
    Locks,
    MeterPlace,
    MeterTarget,
    execute,
    run_command,
)
from twin.control.parse import parse_command
from twin.control.specs import (
    COMMAND_SPECS,
    MAX_OVERRIDE_S,
    MAX_SPEED,
    MIN_OVERRIDE_S,
    CommandSpec,
    ParamSpec,
)

__all__ = [
    "CHOICE_KEYS",
    "COMMAND_SPECS",
    "DEMAND_KEYS",
    "ENERGY_RESET_LOCKED",
    "MAX_OVERRIDE_S",
    "MAX_SPEED",
    "MIN_OVERRIDE_S",
    "SUPPLY_KEYS",
    "WRITES_LOCKED",
    "AddFault",
    "ClearFaults",
    "ClearLoad",
    "CommandName",
    "CommandSpec",
    "ControlCommand",
    "ControlTarget",
    "Controller",
    "CoreCommand",
    "ElementLoad",
    "FaultTarget",
    "Locks",
    "MeterChoices",
    "MeterPlace",
    "MeterTarget",
    "ParamSpec",
    "Result",
    "SetLoad",
    "SetSpeed",
    "SwitchProfile",
    "chosen_demand",
    "enum_choices",
    "execute",
    "parse_command",
    "profile_choices",
    "resolve",
    "run_command",
]
