"""The suite's Markdown report: the C12.1 table and averages, then every test's outcome.

Rows are collected while the tests run (:class:`Collector`, kept in the pytest
config's stash) and written once at the end of the session to ``--hil-report``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hil_tests.c12 import Row


@dataclass
class Average:
    key: str
    formula: str
    error_pct: float
    bound_pct: float
    limit_pct: float
    passed: bool


@dataclass
class Collector:
    target: str
    model: str
    rows: dict[str, Row] = field(default_factory=dict)
    averages: list[Average] = field(default_factory=list)
    outcomes: list[tuple[str, str, str]] = field(default_factory=list)  # test, outcome, reason

    def c12_lines(self) -> list[str]:
        out = [
            "| point | conditions | duration | expected Wh | registered Wh | error % "
            "| limit | verdict |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in self.rows.values():
            err = "—" if r.error_pct is None else f"{r.error_pct:+.3f}"
            if r.error_pct is not None and r.bound_pct is not None:
                err += f" ± {r.bound_pct:.3f}"
            out.append(
                f"| {r.title} | {r.conditions} | {r.duration_s:g} s | {r.expected_wh:.1f} "
                f"| {r.registered_wh:g} | {err} | {r.limit} | {verdict(r.passed)} |"
            )
        if self.averages:
            out += ["", "| average | error % | limit | verdict |", "|---|---|---|---|"]
            for a in self.averages:
                out.append(
                    f"| {a.formula} | {a.error_pct:+.3f}{_pm(a.bound_pct)} | ±{a.limit_pct:g} % "
                    f"| {verdict(a.passed)} |"
                )
        return out

    def markdown(self) -> str:
        lines = [
            "# HIL contract suite report",
            "",
            f"Target: `{self.target}`; model: {self.model}.",
            "",
            "## ANSI C12.1 points",
            "",
        ]
        lines += self.c12_lines() if self.rows else ["No C12.1 point was measured."]
        lines += ["", "## Tests", "", "| test | outcome | reason |", "|---|---|---|"]
        for name, outcome, reason in self.outcomes:
            lines.append(f"| `{name}` | {outcome} | {reason.replace('|', '/')} |")
        return "\n".join(lines) + "\n"

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.markdown())


def _pm(bound_pct: float) -> str:
    return f" ± {bound_pct:.3f}" if bound_pct else ""


def verdict(passed: bool) -> str:
    return "PASS" if passed else "**FAIL**"
