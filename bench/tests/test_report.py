"""The report: every figure in the table with its verdict, and bench/README.md's
section replaced between its markers (the rest of the README kept)."""

from __future__ import annotations

import json
from pathlib import Path

from flow_bench.report import (
    README_END,
    README_START,
    Figure,
    Report,
    figures_table,
    render_markdown,
    update_readme,
)


def figures() -> list[Figure]:
    return [
        Figure(
            "1a",
            "1. Gateway overhead",
            "knee ratio",
            0.81,
            "x",
            ">= 0.95",
            False,
            detail="c 810 req/s",
            limited_by="api-gateway 0.98 cores",
        ),
        Figure(
            "3a",
            "3. Orders",
            "order knee",
            612.4,
            "orders/s",
            ">= 500",
            True,
            detail="p99 120 ms",
            limited_by="should not show",
        ),
        Figure("2a", "2. Nearby", "knee at 10,000 depots", None, "req/s", ">= 2,000", None),
        Figure("1b", "1. Gateway overhead", "added p50 | pipe", 0.254, "ms", "<= 0.3 ms", True),
    ]


def test_the_table_has_every_figure_with_its_verdict() -> None:
    table = figures_table(figures()).splitlines()
    assert table[0].startswith("| # | scenario | figure | measured | goal | verdict |")
    assert len(table) == 2 + 4
    assert table[2] == (
        "| 1a | 1. Gateway overhead | knee ratio | 0.81x — c 810 req/s | >= 0.95 "
        "| **not met** | api-gateway 0.98 cores |"
    )
    # Where a goal is met, no limit is shown; big numbers get thousands separators.
    assert table[3] == (
        "| 3a | 3. Orders | order knee | 612 orders/s — p99 120 ms | >= 500 | met |  |"
    )
    assert "| n/a | >= 2,000 | not measured |" in table[4]
    # A pipe inside a cell is escaped so the table keeps its columns.
    assert "added p50 \\| pipe" in table[5]
    assert "0.25 ms" in table[5]


def test_markdown_and_json_carry_the_run() -> None:
    report = Report(meta={"profile": "full", "timestamp": "20261124T120000Z", "note": "quiet"})
    for figure in figures():
        report.add(figure)
    report.checks = [
        {
            "after": "orders at 10/s",
            "ok": True,
            "invariants": [
                {"name": "no stock negative", "ok": True, "detail": "0 rows below zero"}
            ],
        }
    ]
    report.charts = ["latency_orders.png"]
    text = render_markdown(report)
    assert text.startswith("# Flow bench — full profile, 20261124T120000Z")
    assert "2 of 3 measured figures meet their goal." in text
    assert "- no stock negative: ok (0 rows below zero)" in text
    assert "![latency_orders.png](latency_orders.png)" in text
    assert "- **note**: quiet" in text
    data = json.loads(report.to_json())
    assert [f["key"] for f in data["figures"]] == ["1a", "3a", "2a", "1b"]
    assert data["figures"][2]["met"] is None


def test_readme_section_is_replaced_between_the_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Bench\n\nintro\n\n{README_START}\nold table\n{README_END}\n\nmore\n")
    report = Report(meta={"profile": "full", "timestamp": "T1", "git_commit": "abc"})
    report.add(figures()[0])
    update_readme(readme, report)
    text = readme.read_text()
    assert "old table" not in text
    assert text.startswith("# Bench\n\nintro\n\n" + README_START)
    assert text.endswith(README_END + "\n\nmore\n")
    assert "| 1a | 1. Gateway overhead |" in text
    assert "commit abc" in text
    update_readme(readme, report)  # twice: still one section
    assert readme.read_text().count(README_START) == 1


def test_a_readme_without_markers_gets_the_section_appended(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# Bench\n")
    update_readme(readme, Report(meta={}))
    text = readme.read_text()
    assert text.startswith("# Bench\n\n" + README_START)
    assert text.rstrip().endswith(README_END)
