"""`minimeter mirror`: follow and cross-check a physical meter's pulse output, serve it.

The pulse source (``--source``, a ``devices`` URL) is read into the twin's register
map with ``source_mode`` 1 and served over Modbus TCP like ``run``; with
``--profile`` the pulses are cross-checked against the model of the profile the rig
applies (registers 72-78, status bits 14-15). The first stdout line says what is
mirrored and where it is served; then a status line every ``--status`` seconds. On
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
from twin.modbus.tcp import ModbusTcpServer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("--source", required=True, metavar="URL", help="pulse source, e.g. adam6051://HOST?kh=10")
    a("--profile", default=None, help="the profile the rig applies: cross-check against it")
    a("--reference", default=None, metavar="URL", help="a reference meter (modbus-meter://...)")
    a("--reference-uncertainty", type=float, default=0.0, help="the rig's accuracy, %% (0)")
    a("--profile-offset", type=float, default=0.0, help="profile time at mirror start, s (0)")
    a("--rolling", type=int, default=400, help="rolling window, counts (400)")
    a("--model", default="MMD-200A", help="the mirrored meter's model (MMD-200A)")
    a("--serial-number", default="MIRROR0001", help="serial number served (MIRROR0001)")
    a("--host", default="127.0.0.1", help="TCP address to listen on (127.0.0.1)")
    a("--port", type=int, default=5020, help="TCP port, 0 for any free port (5020)")
    a("--unit", type=int, default=1, help="Modbus unit id (1)")
    a("--state-dir", type=Path, default=None, help="counter records (per-user state dir)")
    a("--no-state", action="store_true", help="keep no counter records")
    a("--report", type=Path, default=None, metavar="DIR", help="write report.json and a PNG")
    a("--status", type=float, default=5.0, help="seconds between status lines (5)")


def config_from_args(args: argparse.Namespace) -> MirrorConfig:
    from twin.store.sqlite import default_state_dir

    if args.no_state and args.state_dir is not None:
        raise ConfigError("--no-state and --state-dir exclude each other")
    if args.reference is not None:
        if args.profile is not None:
            raise ConfigError("--profile and --reference exclude each other: one reference")
        raise ConfigError(
            f"--reference {args.reference}: a Modbus reference meter is not supported yet; "
            "expected --profile NAME"
        )
    if not 0 < args.status <= 3600:
        raise ConfigError(f"--status {args.status}: expected 0 < seconds <= 3600")
    return MirrorConfig(
        source_url=args.source,
        model=args.model,
        serial_number=args.serial_number,
        unit=args.unit,
        profile=args.profile,
        profile_offset_s=args.profile_offset,
        reference_uncertainty_pct=args.reference_uncertainty,
        rolling_counts=args.rolling,
        state_dir=None if args.no_state else (args.state_dir or default_state_dir()),
    )


def status_line(mirror: Mirror) -> str:
    s, c = mirror.snapshot, mirror.check
    assert s is not None
    return (
        f"t={mirror.now():.0f}s E={s.energy_delivered_wh}Wh P={s.power_w:.1f}W "
        f"pulses={mirror.source.total_counts} verdict={c.verdict.name.lower()} "
        f"reg={c.registration_pct:.3f}% ±{c.bound_pct:.3f}%" + (" STALE" if mirror.stale else "")
    )


async def _serve(
    config: MirrorConfig, host: str, port: int, status_s: float, report: Path | None
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Mirror(config) as mirror:
        assert mirror.endpoint is not None
        server = ModbusTcpServer({config.unit: mirror.endpoint}, host, port)
        await server.start()
        try:
            print(
                f"mirroring {config.source_url} ({mirror.source.total_counts} counts restored), "
                f"serving modbus tcp {server.host}:{server.port} unit {config.unit}",
                flush=True,
            )
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), status_s)
                print(status_line(mirror), flush=True)
        finally:
            await server.close()
        if report is not None:
            about = {"source": config.source_url, "profile": config.profile, "model": config.model}
            for path in write_report(report, mirror.check, mirror.history, about):
                print(f"wrote {path}", flush=True)


def main(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    asyncio.run(_serve(config, args.host, args.port, args.status, args.report))
    return 0
