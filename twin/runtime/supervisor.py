"""``minimeter run --workers K``: K shard processes of one fleet under one supervisor.

Theory of operation
-------------------
One Python process serves about a thousand meters on one core; ``--workers K`` uses
K cores of one host. :func:`run_workers` validates the K shard configs up front
(shard I of K of the same fleet file, :mod:`twin.runtime.shard`; the state of shard I
in ``STATE_DIR/shard-I``, the layout a StatefulSet's per-pod volume has too) and
starts each as a ``multiprocessing`` *spawn* child running a :class:`Twin`. The
supervisor itself is a plain loop over ``multiprocessing.connection.wait``: worker
pipes (each worker reports "serving" once, then its totals every ~2 s), worker exit
sentinels and a self-pipe that signal handlers write to.

- **Signals forwarded.** Workers run in their own process group, so a terminal's
  Ctrl-C reaches only the supervisor, which sends SIGTERM to every worker (each
  writes its last checkpoint and closes its store), waits ``STOP_GRACE_S`` and then
  kills what is left. A worker whose supervisor vanished (``SIGKILL``) notices within
  one status period (its parent pid changes) and stops itself the same clean way.
- **One status line**: the first line (``serving K workers: ...``) once every worker
  serves, then fleet totals every ``STATUS_PERIOD_S``, redrawn in place on a terminal.
- **Crash restart.** A worker that dies (a crash, the OOM killer, ``kill -9``) is
  started again with the same config after a backoff (0.5 s doubling to 30 s while it
  keeps dying within a minute): it reopens its own store, so its meters continue
  from their last checkpoint (the store's lock dies with the process). A worker that
  fails before it ever served (a port in use, a bad profile) is a configuration
  error, not a crash: the supervisor stops the others and exits 1 with its message.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any, TextIO

from twin.errors import ConfigError, TwinError
from twin.runtime.config import TwinConfig
from twin.runtime.groups import fleet_totals
from twin.runtime.shard import ShardSpec
from twin.runtime.twin import Twin

log = logging.getLogger(__name__)

MAX_WORKERS = 256
STATUS_PERIOD_S = 2.0
STOP_GRACE_S = 20.0  # stopping a 1,000-meter worker (last checkpoint) took ~0.15 s
BACKOFF_FIRST_S, BACKOFF_MAX_S, STABLE_S = 0.5, 30.0, 60.0

#: What a worker runs its event loop in (``asyncio.Runner`` or one on uvloop); it
#: must be a module-level function so a spawned worker can unpickle it.
RunnerFactory = Callable[[], Any]


def worker_configs(config: TwinConfig, workers: int) -> list[TwinConfig]:
    """Shard I of ``workers`` for each I, state in ``state_dir/shard-I``; validated."""
    if not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(f"--workers {workers}: expected 1..{MAX_WORKERS}")
    if config.shard is not None:
        raise ConfigError("--workers and --shard exclude each other (workers pick shards)")
    if config.serial is not None:
        raise ConfigError("--workers with --serial: one RTU line cannot be shared by workers")
    if config.http is not None:
        raise ConfigError(
            "--workers with --http: one HTTP port cannot be shared by workers; expected "
            "shard processes (--shard I/N) with an --http port each"
        )
    out = []
    for i in range(workers):
        state = None if config.state_dir is None else config.state_dir / f"shard-{i}"
        out.append(replace(config, shard=ShardSpec(i, workers), state_dir=state))
    return out


def run_workers(
    config: TwinConfig, workers: int, *, runner: RunnerFactory, out: TextIO | None = None
) -> int:
    """Serve ``config``'s fleet as ``workers`` shard processes until SIGINT/SIGTERM."""
    sup = Supervisor(worker_configs(config, workers), runner, out or sys.stdout)
    return sup.run()


# ------------------------------------------------------------------ the worker side


def _worker_main(config: TwinConfig, conn: Connection, runner: RunnerFactory, level: int) -> None:
    os.setpgrp()  # signals come from the supervisor, not from the terminal
    logging.basicConfig(
        level=level, format=f"%(asctime)s %(levelname)s shard {config.shard} %(name)s: %(message)s"
    )
    try:
        with runner() as loop_runner:
            loop_runner.run(_serve(config, conn))
    except TwinError as exc:
        with contextlib.suppress(OSError):
            conn.send(("error", str(exc)))
        raise SystemExit(1) from None


async def _serve(config: TwinConfig, conn: Connection) -> None:
    parent = os.getppid()

    def report(twin: Twin) -> None:
        try:
            if os.getppid() != parent:
                raise BrokenPipeError("the supervisor is gone")
            conn.send(("status", _totals(twin)))
        except OSError:  # no supervisor: stop as SIGTERM does (last checkpoint)
            os.kill(os.getpid(), signal.SIGTERM)

    async with Twin(config) as twin:
        ports = [(s.host, s.port) for s in twin.servers.values()]
        conn.send(("serving", {"ports": ports, "meters": len(twin.meters)}))
        await twin.run_until_signal(report)


def _totals(twin: Twin) -> dict[str, float]:
    t = fleet_totals(twin.meters)  # from the core's bank: no snapshot per meter
    return {
        "meter_time_s": twin.meter_time_s,
        "energy_wh": float(t.energy_wh),
        "power_w": t.power_w,
        "unpowered": float(t.unpowered),
        "lag_s": twin.lag_s if twin.lagging else 0.0,
    }


# ------------------------------------------------------------------ the supervisor


@dataclass
class Worker:
    config: TwinConfig
    process: BaseProcess | None = None
    conn: Connection | None = None
    served: dict[str, Any] | None = None  # the last "serving" report
    totals: dict[str, float] = field(default_factory=dict)
    started_s: float = 0.0
    restarts: int = 0
    crashes_in_a_row: int = 0
    restart_at_s: float | None = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()


class Supervisor:
    def __init__(self, configs: list[TwinConfig], runner: RunnerFactory, out: TextIO) -> None:
        self.workers = [Worker(c) for c in configs]
        self.runner = runner
        self.out = out
        self.tty = out.isatty()
        self.ctx = multiprocessing.get_context("spawn")
        self.stopping = False
        self.error: str | None = None
        self.announced = False
        self._stop_deadline = math.inf
        self._wake_r, self._wake_w = socket.socketpair()

    # -- processes

    def _start(self, w: Worker) -> None:
        parent_conn, child_conn = self.ctx.Pipe(duplex=False)
        level = logging.getLogger().getEffectiveLevel()
        w.process = self.ctx.Process(
            target=_worker_main,
            args=(w.config, child_conn, self.runner, level),
            name=f"minimeter-shard-{w.config.shard}",
        )
        w.process.start()
        child_conn.close()
        w.conn, w.started_s, w.restart_at_s = parent_conn, time.monotonic(), None

    def _forward(self, sig: int) -> None:
        for w in self.workers:
            if w.alive and w.process is not None and w.process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(w.process.pid, sig)

    def _stop(self, reason: str) -> None:
        if not self.stopping:
            log.info("stopping %d workers (%s)", len(self.workers), reason)
            self.stopping = True
            self._stop_deadline = time.monotonic() + STOP_GRACE_S
        self._forward(signal.SIGTERM)

    # -- events

    def _on_message(self, w: Worker) -> None:
        assert w.conn is not None
        try:
            while w.conn.poll():
                kind, body = w.conn.recv()
                if kind == "serving":
                    w.served = body
                elif kind == "status":
                    w.totals = body
                elif kind == "error":
                    self.error = f"shard {w.config.shard}: {body}"
        except (EOFError, OSError):
            w.conn.close()
            w.conn = None

    def _on_exit(self, w: Worker, now: float) -> None:
        assert w.process is not None
        code = w.process.exitcode
        w.process.join()
        w.process = None
        if w.conn is not None:
            self._on_message(w)  # what it said before it died
        if self.stopping:
            return
        if w.served is None:  # never served: a configuration error, not a crash
            self.error = self.error or f"shard {w.config.shard}: worker exited {code} at start"
            self._stop("a worker could not start")
            return
        ran_s = now - w.started_s
        w.crashes_in_a_row = 1 if ran_s > STABLE_S else w.crashes_in_a_row + 1
        delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (w.crashes_in_a_row - 1))
        how = f"signal {-code}" if code is not None and code < 0 else f"status {code}"
        log.warning(
            "worker of shard %s died (%s); restarting in %.1f s with its state (%s)",
            w.config.shard,
            how,
            delay,
            w.config.state_dir or "no state dir: its meters start anew",
        )
        w.restart_at_s = now + delay

    @staticmethod
    def _on_signal(signum: int, frame: object) -> None:
        pass  # set_wakeup_fd has written the signal number to the self-pipe

    # -- output

    def _serving_line(self) -> str:
        parts = []
        for w in self.workers:
            assert w.served is not None
            ports = w.served["ports"]
            host = ports[0][0] if ports else "-"
            listed = ",".join(str(p) for _, p in ports)
            parts.append(f"shard {w.config.shard} modbus tcp {host}:{listed}")
        meters = sum(int(w.served["meters"]) for w in self.workers if w.served)
        writes = "writes on" if self.workers[0].config.allow_writes else "read-only"
        n = len(self.workers)
        return f"serving {n} workers: {'; '.join(parts)} ({meters} meters, {writes})"

    def status_line(self) -> str:
        up = sum(w.alive for w in self.workers)
        totals = [w.totals for w in self.workers if w.totals]
        t = min((x["meter_time_s"] for x in totals), default=0.0)
        energy = sum(x["energy_wh"] for x in totals)
        power = sum(x["power_w"] for x in totals)
        lag = max((x["lag_s"] for x in totals), default=0.0)
        meters = sum(int(w.served["meters"]) for w in self.workers if w.served)
        restarts = sum(w.restarts for w in self.workers)
        line = (
            f"t={t:.0f}s workers={up}/{len(self.workers)} meters={meters} "
            f"E={energy:.0f}Wh P={power:.0f}W restarts={restarts}"
        )
        return line + (f" lag={lag:.0f}s" if lag else "")

    def _print(self, line: str, *, redraw: bool = False) -> None:
        if redraw and self.tty:
            self.out.write(f"\r{line}\x1b[K")
        else:
            self.out.write(line + "\n")
        self.out.flush()

    # -- the loop

    def run(self) -> int:
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        previous = {s: signal.signal(s, self._on_signal) for s in handled}
        old_fd = signal.set_wakeup_fd(self._wake_w.fileno())
        try:
            for w in self.workers:
                self._start(w)
            self._loop()
        finally:
            signal.set_wakeup_fd(old_fd)
            for s, handler in previous.items():
                signal.signal(s, handler)
            self._wake_r.close()
            self._wake_w.close()
        if self.error is not None:
            raise ConfigError(self.error)
        return 0

    def _loop(self) -> None:
        next_status = time.monotonic() + STATUS_PERIOD_S
        while True:
            now = time.monotonic()
            if self.stopping:
                if not any(w.alive for w in self.workers):
                    if self.announced and self.tty:
                        self.out.write("\n")
                    return
                if now > self._stop_deadline:
                    log.warning("workers still running after %.0f s: killing", STOP_GRACE_S)
                    self._forward(signal.SIGKILL)
                    self._stop_deadline = now + STOP_GRACE_S
            for w in self.workers:
                if w.restart_at_s is not None and now >= w.restart_at_s and not self.stopping:
                    w.restarts += 1
                    self._start(w)
            waitables: list[Any] = [self._wake_r]
            for w in self.workers:
                if w.conn is not None:
                    waitables.append(w.conn)
                if w.process is not None:
                    waitables.append(w.process.sentinel)
            ready = set(wait(waitables, timeout=max(0.05, min(0.5, next_status - now))))
            if self._wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    signals = self._wake_r.recv(64)
                    if signals:
                        self._stop(f"signal {signal.Signals(signals[-1]).name}")
            now = time.monotonic()
            for w in self.workers:
                if w.conn is not None and w.conn in ready:
                    self._on_message(w)
                if w.process is not None and w.process.sentinel in ready:
                    self._on_exit(w, now)
            if not self.announced and all(w.served for w in self.workers):
                self.announced = True
                self._print(self._serving_line())
            if self.announced and now >= next_status and not self.stopping:
                self._print(self.status_line(), redraw=True)
                next_status = now + STATUS_PERIOD_S
