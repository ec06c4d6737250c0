"""The cross-check report: ``report.json`` and ``registration.png`` in a directory.

The JSON holds the configuration, the final verdict with its bound terms, and the
cumulative registration at every mark (thinned to the mirror's history limit). The
PNG plots the cumulative registration error with its +- uncertainty band against the
class limit over time; it needs matplotlib (the ``plot`` extra).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final

from twin.errors import ConfigError
from twin.mirror.crosscheck import Check, HistoryPoint

REPORT_JSON: Final = "report.json"
REPORT_PNG: Final = "registration.png"


def _number(x: float) -> float | None:
    return None if math.isnan(x) else x


def report_document(
    check: Check, history: list[HistoryPoint], about: dict[str, Any]
) -> dict[str, Any]:
    bound = check.bound
    return {
        "about": about,
        "verdict": check.verdict.name.lower(),
        "registration_pct": _number(check.registration_pct),
        "error_pct": _number(check.error_pct),
        "bound": None
        if bound is None
        else {**asdict(bound), "uncertainty_pct": bound.uncertainty_pct},
        "window_counts": check.counts,
        "window_s": check.window_s,
        "history": [
            {
                "t_s": p.t_s,
                "counts": p.counts,
                "registration_pct": _number(p.registration_pct),
                "bound_pct": _number(p.bound_pct),
                "class_limit_pct": _number(p.class_limit_pct),
                "verdict": p.verdict.name.lower(),
            }
            for p in history
        ],
    }


def write_report(
    directory: Path, check: Check, history: list[HistoryPoint], about: dict[str, Any]
) -> list[Path]:
    """Write the JSON and the PNG; returns their paths."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        json_path = directory / REPORT_JSON
        json_path.write_text(json.dumps(report_document(check, history, about), indent=1))
    except OSError as exc:
        raise ConfigError(f"--report {directory}: cannot write: {exc.strerror or exc}") from None
    return [json_path, _plot(directory / REPORT_PNG, history)]


def _plot(path: Path, history: list[HistoryPoint]) -> Path:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError(
            "--report: the plot needs matplotlib: pip install 'minimeter-twin[plot]'"
        ) from None
    points = [p for p in history if not math.isnan(p.registration_pct)]
    hours = [p.t_s / 3600 for p in points]
    error = [p.registration_pct - 100 for p in points]
    bound = [p.bound_pct for p in points]
    limit = [p.class_limit_pct for p in points]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.fill_between(
        hours,
        [e - b for e, b in zip(error, bound, strict=True)],
        [e + b for e, b in zip(error, bound, strict=True)],
        alpha=0.3,
        label="error ± bound",
    )
    ax.plot(hours, error, label="cumulative registration error")
    ax.plot(hours, limit, "k--", linewidth=0.8, label="class limit")
    ax.plot(hours, [-x for x in limit], "k--", linewidth=0.8)
    ax.set_xlabel("mirror time (h)")
    ax.set_ylabel("error (%)")
    if points:
        span = max(3 * max(limit), 1.5 * max(abs(e) for e in error))
        ax.set_ylim(-span, span)
    ax.legend(loc="upper right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return path
