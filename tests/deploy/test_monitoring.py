"""The monitoring artefacts, proven by Prometheus' own tool and by reading them.

promtool checks the Prometheus configuration (with its rule file resolved) and the alert
rules, and runs unit tests that feed series to the rules and check which alerts fire; the
Grafana provisioning and dashboards are checked to be valid, unique, and to query the
provisioned Prometheus with expressions promtool parses. Whether the metrics they name are
really exported is the end-to-end test's job (tests/e2e/test_e2e_monitoring.py).
"""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from flow_shared.testing.prometheus import alert_rules, as_promql, dashboards, panels

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
PROMETHEUS_CONFIG = MONITORING / "prometheus.yml"
ALERT_RULES = MONITORING / "alerts.yml"
GRAFANA = MONITORING / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
DATASOURCE_UID = "flow-prometheus"
REQUIRED_ALERTS = {
    "FlowServiceDown",
    "FlowHigh5xxRate",
    "FlowHighP99Latency",
    "FlowCircuitBreakerOpen",
    "FlowOutboxLag",
    "FlowEventsUnroutable",
    "FlowDeadLetterQueueNotEmpty",
    "FlowLowStockBacklog",
}


def services() -> dict[str, dict[str, Any]]:
    data = tomllib.loads((ROOT / "services.toml").read_text())
    return dict(data["services"])


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip("promtool not found: install Debian's prometheus package (make setup does)")
    return subprocess.run(
        [binary, *args], capture_output=True, text=True, timeout=60, check=False, cwd=ROOT
    )


# -- Prometheus ---------------------------------------------------------------------------


def test_promtool_accepts_the_config_with_its_rule_file_resolved() -> None:
    result = promtool("check", "config", str(PROMETHEUS_CONFIG))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


def test_promtool_accepts_the_alert_rules() -> None:
    result = promtool("check", "rules", str(ALERT_RULES))

    assert result.returncode == 0, result.stdout + result.stderr


def test_every_service_is_one_scrape_job_with_its_port_and_service_label() -> None:
    config = load_yaml(PROMETHEUS_CONFIG)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}

    assert set(jobs) == set(services())
    assert config["rule_files"] == ["alerts.yml"]
    for name, spec in services().items():
        job = jobs[name]
        assert job.get("metrics_path", "/metrics") == "/metrics"
        # Without it the services' own `service` label would become exported_service.
        assert job["honor_labels"] is True
        [static] = job["static_configs"]
        assert static["targets"] == [f"{name}:{spec['port']}"]
        assert static["labels"] == {"service": name}


def test_every_required_alert_has_a_delay_a_severity_and_explains_itself() -> None:
    rules = alert_rules(ALERT_RULES)

    assert set(rules) >= REQUIRED_ALERTS
    for name, rule in rules.items():
        assert rule.get("for"), f"{name} fires on a single evaluation"
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert rule["annotations"]["summary"].strip(), name
        assert rule["annotations"]["description"].strip(), name


def test_p99_alert_reads_the_request_histogram() -> None:
    expr = alert_rules(ALERT_RULES)["FlowHighP99Latency"]["expr"]

    assert "histogram_quantile(" in expr
    assert "0.99" in expr
    assert "flow_http_request_duration_seconds_bucket" in expr


# -- alert unit tests (promtool test rules) --------------------------------------------------

ORDER = {"job": "order-service", "instance": "order-service:8005", "service": "order-service"}


def series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    rendered = ", ".join(f'{key}="{value}"' for key, value in labels.items())
    return {"series": f"{name}{{{rendered}}}", "values": values}


def case(
    interval: str, input_series: list[dict[str, str]], checks: list[dict[str, Any]]
) -> dict[str, Any]:
    return {"interval": interval, "input_series": input_series, "alert_rule_test": checks}


def expect(at: str, alert: str, *alerts: tuple[dict[str, str], dict[str, str]]) -> dict[str, Any]:
    return {
        "eval_time": at,
        "alertname": alert,
        "exp_alerts": [
            {"exp_labels": labels, "exp_annotations": notes} for labels, notes in alerts
        ],
    }


UNIT_TESTS: list[dict[str, Any]] = [
    # A scrape target that stops answering fires after a minute, and only for that target.
    case(
        "1m",
        [
            series("up", ORDER, "1 1 0 0 0 0"),
            series(
                "up",
                {"job": "user-service", "instance": "user-service:8001", "service": "user-service"},
                "1 1 1 1 1 1",
            ),
        ],
        [
            expect("2m", "FlowServiceDown"),  # down, but not for a minute yet
            expect(
                "4m",
                "FlowServiceDown",
                (
                    {**ORDER, "severity": "critical"},
                    {
                        "summary": "order-service is down",
                        "description": "Prometheus has not been able to scrape order-service at "
                        "order-service:8005 for a minute: the process is gone, hung, or "
                        "unreachable from Prometheus.",
                    },
                ),
            ),
        ],
    ),
    # Dead letters: one alert per service however many processes report the depth.
    case(
        "1m",
        [
            series("flow_events_dlq_depth", {**ORDER, "instance": "a"}, "0 0 3 3 3 3 3 3 3 3"),
            series("flow_events_dlq_depth", {**ORDER, "instance": "b"}, "0 0 3 3 3 3 3 3 3 3"),
            series(
                "flow_events_dlq_depth",
                {"job": "review-service", "instance": "r", "service": "review-service"},
                "0 0 0 0 0 0 0 0 0 0",
            ),
        ],
        [
            expect("4m", "FlowDeadLetterQueueNotEmpty"),  # not for five minutes yet
            expect(
                "9m",
                "FlowDeadLetterQueueNotEmpty",
                (
                    {"service": "order-service", "severity": "warning"},
                    {
                        "summary": "order-service has 3 events in its dead-letter queue",
                        "description": "Events that failed every retry wait in the queue "
                        "order-service.events.dlq; their effect has not happened until someone "
                        "fixes the cause and re-queues them.",
                    },
                ),
            ),
        ],
    ),
    # A breaker that is open fires; half-open (probing) does not.
    case(
        "1m",
        [
            series(
                "flow_circuit_breaker_state",
                {**ORDER, "upstream": "inventory-service"},
                "0 2 2 2 2 2",
            ),
            series(
                "flow_circuit_breaker_state",
                {**ORDER, "upstream": "pricing-service"},
                "0 1 1 1 1 1",
            ),
        ],
        [
            expect(
                "4m",
                "FlowCircuitBreakerOpen",
                (
                    {
                        "service": "order-service",
                        "upstream": "inventory-service",
                        "severity": "warning",
                    },
                    {
                        "summary": "order-service has opened its circuit breaker to "
                        "inventory-service",
                        "description": "order-service stopped calling inventory-service after "
                        "repeated failures; requests that need it fail fast with 503 until a "
                        "probe call succeeds.",
                    },
                ),
            ),
        ],
    ),
    # 1 request in 11 failing is over 5 %: fires. The review-service's 1 in 100 does not.
    case(
        "1m",
        [
            series("flow_http_requests_total", {**ORDER, "status": "500"}, "0+60x20"),
            series("flow_http_requests_total", {**ORDER, "status": "200"}, "0+600x20"),
            series(
                "flow_http_requests_total",
                {"job": "review-service", "service": "review-service", "status": "503"},
                "0+6x20",
            ),
            series(
                "flow_http_requests_total",
                {"job": "review-service", "service": "review-service", "status": "200"},
                "0+594x20",
            ),
        ],
        [
            expect(
                "15m",
                "FlowHigh5xxRate",
                (
                    {"service": "order-service", "severity": "critical"},
                    {
                        "summary": "order-service answers more than 5% of requests with 5xx",
                        "description": "9.091% of order-service's requests failed with a 5xx "
                        "status over the last 5 minutes (503 is a dependency or a breaker; "
                        "500 is a bug).",
                    },
                ),
            ),
        ],
    ),
    # Every request in the 2.5 s bucket: p99 above a second for ten minutes.
    case(
        "1m",
        [
            series("flow_http_request_duration_seconds_bucket", {**ORDER, "le": "1"}, "0+0x30"),
            series("flow_http_request_duration_seconds_bucket", {**ORDER, "le": "2.5"}, "0+60x30"),
            series("flow_http_request_duration_seconds_bucket", {**ORDER, "le": "+Inf"}, "0+60x30"),
            series("flow_http_request_duration_seconds_count", ORDER, "0+60x30"),
        ],
        [
            expect("10m", "FlowHighP99Latency"),  # high, but not for ten minutes yet
            expect(
                "20m",
                "FlowHighP99Latency",
                (
                    {"service": "order-service", "severity": "warning"},
                    {
                        "summary": "order-service p99 latency above 1 s",
                        "description": "The 99th percentile of order-service's request latency "
                        "has been 2.485s for 10 minutes.",
                    },
                ),
            ),
        ],
    ),
    # The oldest unpublished event keeps getting older: lag.
    case(
        "1m",
        [
            series(
                "flow_outbox_oldest_pending_age_seconds",
                {**ORDER, "instance": "a"},
                "0 60+60x10",
            )
        ],
        [
            expect("3m", "FlowOutboxLag"),
            expect(
                "8m",
                "FlowOutboxLag",
                (
                    {"service": "order-service", "severity": "warning"},
                    {
                        "summary": "order-service has not published events for over 2 minutes",
                        "description": "The oldest unpublished outbox event of order-service is "
                        "8m 0s old: the relay cannot reach RabbitMQ or is stuck. Nothing is lost "
                        "(events wait in the outbox), but other services do not see them.",
                    },
                ),
            ),
        ],
    ),
    # An event type returned as unroutable again and again fires; one that was returned
    # long ago (the counter no longer grows) does not.
    case(
        "1m",
        [
            series(
                "flow_events_unroutable_total",
                {**ORDER, "event_type": "order.placed"},
                "0 2 4 6 8 10",
            ),
            series(
                "flow_events_unroutable_total",
                {**ORDER, "event_type": "order.confirmed"},
                "5 5 5 5 5 5",
            ),
        ],
        [
            expect("1m", "FlowEventsUnroutable"),  # not for a minute yet
            expect(
                "3m",
                "FlowEventsUnroutable",
                (
                    {
                        "service": "order-service",
                        "event_type": "order.placed",
                        "severity": "critical",
                    },
                    {
                        "summary": "order-service cannot deliver order.placed: no queue is bound",
                        "description": "RabbitMQ returns order-service's order.placed events as "
                        "unroutable: no consumer's queue is bound to that type, so nobody hears "
                        "them. They wait in the outbox (nothing is lost) and go out once a queue "
                        "is bound.",
                    },
                ),
            ),
        ],
    ),
    # A backlog of 12 low-stock lines for half an hour fires; 3 never does.
    case(
        "5m",
        [
            series(
                "flow_inventory_low_stock_items",
                {"job": "inventory-service", "instance": "i", "service": "inventory-service"},
                "3 3 12 12 12 12 12 12 12 12",
            )
        ],
        [
            expect("5m", "FlowLowStockBacklog"),
            expect(
                "45m",
                "FlowLowStockBacklog",
                (
                    {"service": "inventory-service", "severity": "warning"},
                    {
                        "summary": "12 stock lines are below their low-stock threshold",
                        "description": "For 30 minutes at least 12 product lines at vendors' "
                        "depots have had less available stock than their low-stock threshold: "
                        "hospitals may soon find no oxygen.",
                    },
                ),
            ),
        ],
    ),
]


def test_alerts_fire_when_and_only_when_they_should(tmp_path: Path) -> None:
    tests_file = tmp_path / "alerts.test.yml"
    tests_file.write_text(
        yaml.safe_dump(
            {
                "rule_files": [str(ALERT_RULES)],
                "evaluation_interval": "1m",
                "tests": UNIT_TESTS,
            },
            sort_keys=False,
        )
    )

    result = promtool("test", "rules", str(tests_file))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_unit_tests_cover_every_required_alert() -> None:
    tested = {check["alertname"] for test in UNIT_TESTS for check in test["alert_rule_test"]}

    assert tested == REQUIRED_ALERTS


# -- Grafana ---------------------------------------------------------------------------------


def test_datasource_is_the_compose_prometheus_with_the_uid_dashboards_use() -> None:
    config = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")

    [datasource] = config["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    assert datasource["uid"] == DATASOURCE_UID
    assert datasource["isDefault"] is True


def test_dashboard_provider_loads_the_mounted_dashboard_files() -> None:
    config = load_yaml(GRAFANA / "provisioning" / "dashboards" / "flow.yml")

    [provider] = config["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_the_five_dashboards_exist_with_unique_uids_and_titles() -> None:
    loaded = dashboards(DASHBOARDS)
    uids = [board["uid"] for _, board in loaded]
    titles = [board["title"] for _, board in loaded]

    assert len(loaded) >= 5
    assert len(set(uids)) == len(uids)
    assert len(set(titles)) == len(titles)
    assert {
        "flow-service-red",
        "flow-orders",
        "flow-inventory",
        "flow-breakers",
        "flow-events",
    } <= (set(uids))


def test_every_panel_queries_the_provisioned_prometheus() -> None:
    for path, board in dashboards(DASHBOARDS):
        ids = [panel["id"] for panel in panels(board)]
        assert len(set(ids)) == len(ids), f"{path.name}: duplicate panel ids"
        for panel in panels(board):
            if panel["type"] == "row":
                continue
            where = f"{path.name}: {panel['title']}"
            assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}, where
            assert panel["targets"], f"{where} has no query"
            for target in panel["targets"]:
                assert target["expr"].strip(), f"{where} has an empty query"
                assert target.get("datasource", panel["datasource"])["uid"] == DATASOURCE_UID


def test_red_dashboard_is_per_service_with_rate_errors_and_duration() -> None:
    board = next(b for _, b in dashboards(DASHBOARDS) if b["uid"] == "flow-service-red")
    [variable] = [v for v in board["templating"]["list"] if v["name"] == "service"]
    expressions = [t["expr"] for panel in panels(board) for t in panel.get("targets", [])]

    assert variable["type"] == "query"
    assert "flow_http_requests_total" in variable["query"]["query"]
    assert any("rate(flow_http_requests_total" in e for e in expressions)
    assert any('status=~"5.."' in e for e in expressions)
    assert any("histogram_quantile(0.99" in e for e in expressions)
    per_service = [e for e in expressions if "flow_http_" in e]
    assert all('service="$service"' in e for e in per_service)


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    expressions = [
        as_promql(target["expr"])
        for _, board in dashboards(DASHBOARDS)
        for panel in panels(board)
        for target in panel.get("targets", [])
    ]
    rules_file = tmp_path / "dashboard-queries.yml"
    rules_file.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "dashboard-queries",
                        "rules": [
                            {"record": f"dashboard:query_{n}", "expr": expr}
                            for n, expr in enumerate(expressions)
                        ],
                    }
                ]
            }
        )
    )

    result = promtool("check", "rules", str(rules_file))

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(expressions)} rules found" in result.stdout
