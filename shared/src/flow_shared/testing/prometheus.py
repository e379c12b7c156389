"""Reading the monitoring artefacts (deploy/monitoring: alert rules, Grafana dashboards)
and what services export on /metrics, for the deploy and end-to-end tiers alike."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

# Sample names each metric family type exposes, after the family name.
SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "untyped": ("",),
    "info": ("_info",),
    "stateset": ("",),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
}
PROMQL_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right"}
    | {"and", "or", "unless", "bool", "offset", "inf", "nan"}
)
# Grafana's built-in variables, as durations Prometheus parses.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


# -- alert rules ---------------------------------------------------------------------------


def rules(rules_file: Path) -> list[dict[str, Any]]:
    """Every rule of a Prometheus rule file, alerting and recording, in file order."""
    loaded = yaml.safe_load(rules_file.read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def alert_rules(rules_file: Path) -> dict[str, dict[str, Any]]:
    """Alert name -> its rule (recording rules left out)."""
    return {rule["alert"]: rule for rule in rules(rules_file) if "alert" in rule}


def rule_names(rules_file: Path) -> set[str]:
    """The names Prometheus reports the rules under: the alert's, or the recorded series'."""
    return {rule.get("alert") or rule["record"] for rule in rules(rules_file)}


# -- Grafana dashboards --------------------------------------------------------------------


def dashboards(dashboard_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """(file, dashboard) for each dashboard JSON in the directory, by file name."""
    return [(path, json.loads(path.read_text())) for path in sorted(dashboard_dir.glob("*.json"))]


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for panel in dashboard.get("panels", []):
        found.append(panel)
        found.extend(panel.get("panels", []))  # panels inside collapsed rows
    return found


def dashboard_expressions(boards: Iterable[dict[str, Any]]) -> list[str]:
    """Every panel query of the dashboards, rows' panels included, in order."""
    return [
        target["expr"]
        for board in boards
        for panel in panels(board)
        for target in panel.get("targets", [])
    ]


def variable_queries(board: dict[str, Any]) -> list[str]:
    """The queries of a dashboard's template variables (`label_values(...)`)."""
    found = []
    for variable in board.get("templating", {}).get("list", []):
        query = variable.get("query")
        found.append(query.get("query", "") if isinstance(query, dict) else str(query or ""))
    return found


def as_promql(expr: str, variables: Mapping[str, str] | None = None) -> str:
    """A dashboard expression as Prometheus can run it: Grafana's built-in variables as
    durations, each dashboard variable (`$service`, `${service}`) as its value in
    `variables`, else as its own name."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    values = variables or {}
    return re.sub(r"\$\{?(\w+)\}?", lambda m: values.get(m.group(1), m.group(1)), expr)


# -- reading PromQL ------------------------------------------------------------------------


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: not functions, labels, keywords or variables."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"'(?:[^'\\]|\\.)*'", "''", text)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers (and the names in them)
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range and subquery durations
    text = re.sub(
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text
    )  # grouping label lists
    names = set()
    for match in re.finditer(r"(?<![\w$.])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?", text):
        name, is_call = match.group(1), match.group(2)
        if not is_call and name not in PROMQL_KEYWORDS:
            names.add(name)
    return names


def grafana_variable_metrics(query: str) -> set[str]:
    """`label_values(metric, label)`: the metric, not the label."""
    return {m.group(1) for m in re.finditer(r"label_values\(\s*([A-Za-z_:][\w:]*)\s*,", query)}


def referenced_metrics(rules_file: Path, dashboard_dir: Path) -> set[str]:
    """Every metric a rule, a dashboard panel or a dashboard variable names."""
    boards = [board for _, board in dashboards(dashboard_dir)]
    expressions = [rule["expr"] for rule in rules(rules_file)] + dashboard_expressions(boards)
    names = set().union(*(metric_names(expr) for expr in expressions))
    for board in boards:
        for query in variable_queries(board):
            names |= grafana_variable_metrics(query)
    return names


# -- what a service exports ----------------------------------------------------------------


def exported_families(exposition: str) -> dict[str, str]:
    """Metric family -> type, from the `# TYPE` lines (present even before a first sample)."""
    families = {}
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            families[name] = kind.strip()
    return families


def sample_names(families: dict[str, str]) -> set[str]:
    names = set()
    for family, kind in families.items():
        for suffix in SAMPLE_SUFFIXES.get(kind, ("",)):
            # prometheus_client keeps `_total` in a counter's TYPE line for some versions.
            names.add(family + suffix if not family.endswith(suffix) else family)
    return names
