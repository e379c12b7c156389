"""The report: every figure of issue 6 against its goal (met or not, and what limits
it where not), as report.json and report.md, and the table copied into
bench/README.md between markers."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

README_START = "<!-- bench:latest:start -->"
README_END = "<!-- bench:latest:end -->"


@dataclass(frozen=True, slots=True)
class Figure:
    key: str
    scenario: str
    name: str
    value: float | None
    unit: str
    goal: str
    # None: not measured in this run (e.g. a scale the smoke profile skips).
    met: bool | None
    detail: str = ""
    limited_by: str = ""

    def value_text(self) -> str:
        if self.value is None:
            return "n/a"
        if self.unit == "x":
            return f"{self.value:.3g}x"
        if abs(self.value) >= 100:
            return f"{self.value:,.0f} {self.unit}"
        return f"{self.value:.2f} {self.unit}"

    def verdict(self) -> str:
        return {True: "met", False: "**not met**", None: "not measured"}[self.met]


@dataclass
class Report:
    meta: dict[str, Any]
    figures: list[Figure] = field(default_factory=list)
    scenarios: dict[str, Any] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    charts: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    # scenario -> routes by time spent in the services (their own metrics)
    service_time: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, figure: Figure) -> None:
        self.figures.append(figure)

    def to_json(self) -> str:
        return json.dumps(
            {
                "meta": self.meta,
                "figures": [asdict(f) for f in self.figures],
                "scenarios": self.scenarios,
                "checks": self.checks,
                "runs": self.runs,
                "charts": self.charts,
                "failures": self.failures,
                "service_time": self.service_time,
            },
            indent=2,
            default=str,
        )


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def figures_table(figures: list[Figure]) -> str:
    lines = [
        "| # | scenario | figure | measured | goal | verdict | where not met, what limits it |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for f in figures:
        measured = f.value_text() + (f" — {f.detail}" if f.detail else "")
        limits = f.limited_by if f.met is not True else ""
        lines.append(
            "| "
            + " | ".join(
                _cell(c) for c in (f.key, f.scenario, f.name, measured, f.goal, f.verdict(), limits)
            )
            + " |"
        )
    return "\n".join(lines)


def render_markdown(report: Report) -> str:
    meta = report.meta
    met = sum(1 for f in report.figures if f.met is True)
    measured = sum(1 for f in report.figures if f.met is not None)
    parts = [
        f"# Flow bench — {meta.get('profile', '?')} profile, {meta.get('timestamp', '?')}",
        "",
        f"{met} of {measured} measured figures meet their goal.",
        "",
        figures_table(report.figures),
        "",
        "## How this was measured",
        "",
    ]
    for key in (
        "machine",
        "machine_speed",
        "git_commit",
        "fleet",
        "generator",
        "data",
        "note",
    ):
        if key in meta:
            parts.append(f"- **{key}**: {meta[key]}")
    if report.failures:
        parts += ["", "## Failures", ""] + [f"- {failure}" for failure in report.failures]
    if report.checks:
        ok = sum(1 for c in report.checks if c["ok"])
        parts += [
            "",
            "## Correctness after the order runs",
            "",
            f"{ok} of {len(report.checks)} checks passed (one after every order run).",
        ]
        last = report.checks[-1]
        parts += [
            f"- {i['name']}: {'ok' if i['ok'] else 'FAILED'} ({i['detail']})"
            for i in last["invariants"]
        ]
    if report.service_time:
        parts += [
            "",
            "## Where the time went in the services",
            "",
            "Each service's own `flow_http_request_duration_seconds`, over the whole scenario "
            "(probes, warm-ups and runs): requests, mean time and total time per route.",
        ]
        for scenario, rows in report.service_time.items():
            parts += [
                "",
                f"### {scenario}",
                "",
                "| service | route | requests | mean | total |",
                "| --- | --- | --- | --- | --- |",
            ]
            parts += [
                f"| {r['service']} | {_cell(r['route'])} | {r['requests']:,} | "
                f"{r['mean_ms']:.2f} ms | {r['total_s']:.1f} s |"
                for r in rows
            ]
    if report.charts:
        parts += ["", "## Charts", ""] + [f"![{name}]({name})" for name in report.charts]
    return "\n".join(parts) + "\n"


def readme_section(report: Report) -> str:
    meta = report.meta
    return "\n".join(
        [
            README_START,
            f"Latest `make bench` ({meta.get('profile', '?')} profile) at "
            f"{meta.get('timestamp', '?')}, commit {meta.get('git_commit', '?')}; "
            f"{meta.get('machine', '')}."
            + (f" Machine speed: {meta['machine_speed']}." if meta.get("machine_speed") else "")
            + (f" Note: {meta['note']}." if meta.get("note") else ""),
            "",
            figures_table(report.figures),
            README_END,
        ]
    )


def update_readme(readme: Path, report: Report) -> None:
    """Replace the text between the markers (or append the section if they are missing)."""
    section = readme_section(report)
    text = readme.read_text() if readme.exists() else ""
    start, end = text.find(README_START), text.find(README_END)
    if start != -1 and end > start:
        text = text[:start] + section + text[end + len(README_END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    readme.write_text(text)
