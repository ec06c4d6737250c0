"""Fault injection and frame traces attached to a twin's Modbus servers.

Theory of operation
-------------------
:class:`WireHooks` owns the twin's :class:`~twin.modbus.faults.FaultInjector`, its trace
hooks and the ``--trace`` file, and keeps the servers in step with them: a server's
dispatcher gets an interceptor only while a fault is armed and the server a trace
callback only while a hook is registered, so an unhooked twin keeps the fast path
(a frame never leaves ``data_received``). Each server gets its own closures, which
add its dispatcher's port (``RTU_PORT`` on a serial line) to what the server reports,
so a fault can target one port and a trace line names the port. Call :meth:`sync`
after any change; the runtime also calls it when every fault has expired.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import IO, Any, Protocol

from twin.errors import ServeError
from twin.modbus.dispatch import Dispatcher, Intercept, Interceptor, TraceHook
from twin.modbus.faults import FaultInjector, FaultSpec, as_fault

WireTrace = Callable[[str, int, int, bytes, float], None]  # direction, port, unit, frame, time


class Server(Protocol):
    """What the hooks need of a transport (the TCP and RTU servers)."""

    dispatcher: Dispatcher
    trace: TraceHook | None


class WireHooks:
    """Faults and traces of one twin, applied to its servers."""

    def __init__(self, fault_seed: int | None = None) -> None:
        self.faults = FaultInjector(seed=fault_seed)
        self.servers: list[Server] = []
        self._traces: list[WireTrace] = []
        self._trace_file: IO[str] | None = None
        self.intercepting = False

    # -- faults ----------------------------------------------------------------------

    def add_fault(
        self,
        spec: FaultSpec | str | Mapping[str, Any],
        *,
        port: int | None = None,
        unit: int | None = None,
    ) -> int:
        fault = as_fault(spec)
        if port is not None:
            fault = replace(fault, ports=frozenset({port}))
        if unit is not None:
            fault = replace(fault, units=frozenset({unit}))
        fault_id = self.faults.add(fault)
        self.sync()
        return fault_id

    def add_faults(self, specs: Iterable[FaultSpec]) -> None:
        for spec in specs:
            self.faults.add(spec)
        self.sync()

    def remove_fault(self, fault_id: int) -> bool:
        removed = self.faults.remove(fault_id)
        self.sync()
        return removed

    def clear_faults(self) -> None:
        self.faults.clear()
        self.sync()

    # -- traces ----------------------------------------------------------------------

    def add_trace(self, hook: WireTrace) -> None:
        self._traces.append(hook)
        self.sync()

    def remove_trace(self, hook: WireTrace) -> None:
        self._traces.remove(hook)
        self.sync()

    def open_trace_file(self, path: Path) -> None:
        """``--trace FILE``: one JSON line per frame (flushed by :meth:`flush`)."""
        try:
            self._trace_file = open(path, "w", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise ServeError(f"--trace {path}: {exc.strerror}") from None
        self.add_trace(self._write_trace)

    def _write_trace(self, direction: str, port: int, unit: int, frame: bytes, at: float) -> None:
        if self._trace_file is not None:
            record = {"t": round(at, 6), "dir": direction, "port": port, "unit": unit}
            self._trace_file.write(json.dumps({**record, "hex": frame.hex()}) + "\n")

    def flush(self) -> None:
        if self._trace_file is not None:
            self._trace_file.flush()

    def close(self) -> None:
        if self._trace_file is not None:
            self._traces.remove(self._write_trace)
            self._trace_file.close()
            self._trace_file = None
        self.sync()

    # -- servers ---------------------------------------------------------------------

    def sync(self) -> None:
        """Give the servers an interceptor/trace only while needed (the fast path)."""
        self.intercepting = bool(self.faults.active)
        closed = self.faults.connection_closed if self.intercepting else None
        for server in self.servers:
            dispatcher = server.dispatcher
            port = dispatcher.port
            dispatcher.interceptor = self._intercept_for(port) if self.intercepting else None
            dispatcher.connection_closed_hook = closed
            server.trace = self._trace_for(port) if self._traces else None

    def _intercept_for(self, port: int) -> Interceptor:
        faults = self.faults

        def intercept(unit: int, pdu: bytes, connection: int) -> Intercept | None:
            return faults(unit, pdu, connection, port)

        return intercept

    def _trace_for(self, port: int) -> TraceHook:
        hooks = self._traces

        def trace(direction: str, unit: int, frame: bytes, at: float) -> None:
            for hook in hooks:
                hook(direction, port, unit, frame, at)

        return trace
