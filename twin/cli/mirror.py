"""`minimeter mirror`: follow and cross-check a physical meter's pulse output, serve it.

A twin (:class:`twin.runtime.Twin`) whose one meter follows the pulse source
(``--source``, a ``devices`` URL; :mod:`twin.mirror.part`): served over Modbus TCP
like ``run`` through the same register map with ``source_mode`` 1. With
``--profile`` or ``--reference`` the pulses are cross-checked against the model of
the profile the rig applies or a reference meter read over Modbus (registers 72-78,
status bits 14-15). The state directory keeps the counter, demand and cross-check
window across a restart. The first stdout line says what is mirrored and where it
is served; then a status line every ``--status`` seconds (ending with the twin's
other conditions in force, e.g. ``store_failing``, ``mqtt_disconnected``). On
SIGINT/SIGTERM the report (``--report DIR``) is written and the process exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from pathlib import Path

from twin.errors import ConfigError
from twin.mirror import Mirror, MirrorConfig
from twin.mirror.report import write_report
from twin.mqtt import config as mqtt_options
from twin.runtime import Twin, TwinConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("--source", required=True, metavar="URL", help="pulse source, e.g. adam6051://HOST?kh=10")
    a("--profile", default=None, help="the profile the rig applies: cross-check against it")
    a(
        "--reference",
        default=None,
        metavar="URL",
        help="a reference meter: modbus-meter://HOST:PORT?unit=1&energy=ADDR&uncertainty=0.2",
    )
    a("--reference-uncertainty", type=float, default=0.0, help="the reference's accuracy, %% (0)")
    a("--profile-offset", type=float, default=0.0, help="profile time at mirror start, s (0)")
    a("--rolling", type=int, default=400, help="rolling window, counts (400)")
    a("--model", default="MMD-200A", help="the mirrored meter's model (MMD-200A)")
    a("--serial-number", default="MIRROR0001", help="serial number served (MIRROR0001)")
    a("--host", default="127.0.0.1", help="TCP address to listen on (127.0.0.1)")
    a("--port", type=int, default=5020, help="TCP port, 0 for any free port (5020)")
    a("--unit", type=int, default=1, help="Modbus unit id (1)")
    a("--state-dir", type=Path, default=None, help="counter records (per-user state dir)")
    a("--no-state", action="store_true", help="keep no counter, demand or window records")
    a("--checkpoint-interval", type=float, default=10.0, help="wall seconds between fsyncs (10)")
    a("--report", type=Path, default=None, metavar="DIR", help="write report.json and a PNG")
    a("--status", type=float, default=5.0, help="seconds between status lines (5)")
    mqtt_options.add_arguments(parser)  # the mirrored meter published like a simulated one


def config_from_args(args: argparse.Namespace) -> TwinConfig:
    from twin.store.sqlite import default_state_dir

    if args.no_state and args.state_dir is not None:
        raise ConfigError("--no-state and --state-dir exclude each other")
    if not 0 < args.status <= 3600:
        raise ConfigError(f"--status {args.status}: expected 0 < seconds <= 3600")
    mirror = MirrorConfig(
        source_url=args.source,
        profile=args.profile,
        profile_offset_s=args.profile_offset,
        reference_url=args.reference,
        reference_uncertainty_pct=args.reference_uncertainty,
        rolling_counts=args.rolling,
    )
    return TwinConfig(
        model=args.model,
        serial_number=args.serial_number,
        host=args.host,
        port=args.port,
        unit=args.unit,
        state_dir=None if args.no_state else (args.state_dir or default_state_dir()),
        checkpoint_interval_s=args.checkpoint_interval,
        mirror=mirror,
        mqtt=mqtt_options.config_from_args(args),
    )


_MIRROR_WORDS = ("pulse_source_stale", "reference_down")  # STALE, REFERENCE-DOWN


def status_line(mirror: Mirror) -> str:
    s, c = mirror.snapshot, mirror.check
    assert s is not None
    return (
        f"t={mirror.now():.0f}s E={s.energy_delivered_wh}Wh P={s.power_w:.1f}W "
        f"pulses={mirror.source.total_counts} verdict={c.verdict.name.lower()} "
        f"reg={c.registration_pct:.3f}% ±{c.bound_pct:.3f}%"
        + (" REFERENCE-DOWN" if mirror.reference_down else "")
        + (" STALE" if mirror.stale else "")
    )


async def _serve(config: TwinConfig, status_s: float, report: Path | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Twin(config) as twin:
        mirror = twin.mirror
        assert mirror is not None
        print(
            f"mirroring {mirror.config.source_url} ({mirror.source.total_counts} counts "
            f"restored{', window continued' if mirror.continued else ''}), serving modbus "
            f"tcp {config.host}:{twin.port} unit {config.unit}",
            flush=True,
        )
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), status_s)
            # the twin's conditions the mirror's own words do not already say
            others = [c for c in twin.health.conditions if c not in _MIRROR_WORDS]
            print(" ".join([status_line(mirror), *others]), flush=True)
        if report is not None:
            cfg = mirror.config
            about = {
                "source": cfg.source_url,
                "profile": cfg.profile,
                "reference": cfg.reference_url,
                "model": cfg.model,
            }
            for path in write_report(report, mirror.check, mirror.history, about):
                print(f"wrote {path}", flush=True)


def main(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    asyncio.run(_serve(config, args.status, args.report))
    return 0
