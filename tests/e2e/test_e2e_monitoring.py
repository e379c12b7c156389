"""The shipped monitoring configuration against the real fleet and a real Prometheus.

Prometheus (/usr/bin/prometheus) runs with deploy/monitoring/prometheus.yml and alerts.yml
as shipped; only each job's target moves from its compose name (`order-service:8005`) to
the running fleet's port on 127.0.0.1, and the intervals shrink so the test is quick. Every
target must be up, every alert rule must load and evaluate without error, every dashboard
query must run, and every metric a dashboard or alert rule names must be exported by some
service (checked against the fleet's live /metrics).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import yaml

from flow_shared.testing.polling import eventually
from flow_shared.testing.ports import free_port
from flow_shared.testing.prometheus import (
    as_promql,
    dashboard_expressions,
    dashboards,
    exported_families,
    grafana_variable_metrics,
    metric_names,
    referenced_metrics,
    rule_names,
    sample_names,
)

if TYPE_CHECKING:
    from flow_shared.testing.fleet import IsolatedFleet

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
DASHBOARDS = MONITORING / "grafana" / "dashboards"
ALERT_RULES = MONITORING / "alerts.yml"
PROMETHEUS = "/usr/bin/prometheus"
TARGET = re.compile(r"^(?P<host>[a-z0-9-]+):(?P<port>\d+)$")
# Series Prometheus itself writes for every target, not exported by any service.
PROMETHEUS_SERIES = frozenset({"up"})


def test_metric_names_are_read_from_promql_as_prometheus_would() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (service, le) (rate(flow_a_seconds_bucket{route!="x",'
        'service="$service"}[$__rate_interval]))) > 1 and on (service) sum without (le) '
        "(flow_b_total offset 5m) / ignoring(x) group_left(y) max(flow_c) or vector(0) > 1e3"
    )

    assert metric_names(expr) == {"flow_a_seconds_bucket", "flow_b_total", "flow_c"}
    assert grafana_variable_metrics("label_values(flow_d_total, service)") == {"flow_d_total"}


# -- Prometheus ----------------------------------------------------------------------------


def config_for_fleet(shipped: dict[str, Any], port_offset: int) -> dict[str, Any]:
    """The shipped configuration with each target moved to the fleet's port on 127.0.0.1."""
    config = json.loads(json.dumps(shipped))
    config["global"]["scrape_interval"] = "1s"
    config["global"]["scrape_timeout"] = "1s"
    config["global"]["evaluation_interval"] = "1s"
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            moved = []
            for target in static["targets"]:
                match = TARGET.match(target)
                assert match, f"unexpected target {target}"
                moved.append(f"127.0.0.1:{int(match['port']) + port_offset}")
            static["targets"] = moved
    return config


@dataclass(frozen=True)
class RunningPrometheus:
    url: str
    shipped: dict[str, Any]


@pytest.fixture(scope="module")
def prometheus(
    fleet: IsolatedFleet, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningPrometheus]:
    if not Path(PROMETHEUS).exists():
        pytest.skip("prometheus is not installed: make setup installs Debian's package")
    work = tmp_path_factory.mktemp("prometheus")
    shipped = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    (work / "prometheus.yml").write_text(
        yaml.safe_dump(config_for_fleet(shipped, fleet.port_offset), sort_keys=False)
    )
    # rule_files stays as shipped (`alerts.yml`, next to the configuration).
    shutil.copy(ALERT_RULES, work / "alerts.yml")
    address = f"127.0.0.1:{free_port()}"
    log = (work / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address={address}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        yield RunningPrometheus(f"http://{address}", shipped)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture
async def prometheus_api(prometheus: RunningPrometheus) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=prometheus.url, timeout=10) as client:

        async def ready() -> bool:
            with contextlib.suppress(httpx.TransportError):
                return (await client.get("/-/ready")).status_code == 200
            return False

        await eventually(ready, "Prometheus ready", seconds=60)
        yield client


async def api_data(client: httpx.AsyncClient, path: str, **params: str) -> Any:
    response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success", body
    return body["data"]


async def all_targets_up(client: httpx.AsyncClient, jobs: int) -> list[dict[str, Any]] | None:
    targets = (await api_data(client, "/api/v1/targets", state="active"))["activeTargets"]
    if len(targets) == jobs and all(target["health"] == "up" for target in targets):
        return list(targets)
    return None


# -- the checks ----------------------------------------------------------------------------


async def test_every_service_is_scraped_and_up_with_its_job_and_service_label(
    prometheus: RunningPrometheus, prometheus_api: httpx.AsyncClient
) -> None:
    jobs = [job["job_name"] for job in prometheus.shipped["scrape_configs"]]

    targets = await eventually(
        lambda: all_targets_up(prometheus_api, len(jobs)), "every target up", seconds=60
    )

    assert sorted(target["labels"]["job"] for target in targets) == sorted(jobs)
    for target in targets:
        assert target["labels"]["service"] == target["labels"]["job"]
    # honor_labels: the services' own `service` label is kept, never renamed.
    renamed = await api_data(
        prometheus_api, "/api/v1/series", **{"match[]": '{exported_service!=""}'}
    )
    assert renamed == []
    in_flight = await api_data(
        prometheus_api, "/api/v1/query", query="flow_http_requests_in_flight"
    )
    assert {s["metric"]["service"] for s in in_flight["result"]} == set(jobs)


async def test_every_metric_named_by_a_dashboard_or_alert_is_exported(
    fleet: IsolatedFleet, prometheus: RunningPrometheus, prometheus_api: httpx.AsyncClient
) -> None:
    exported: set[str] = set()
    async with httpx.AsyncClient(timeout=10) as client:
        for job in prometheus.shipped["scrape_configs"]:
            [target] = job["static_configs"][0]["targets"]
            port = int(target.rsplit(":", 1)[1]) + fleet.port_offset
            response = await client.get(f"http://127.0.0.1:{port}/metrics")
            assert response.status_code == 200, job["job_name"]
            exported |= sample_names(exported_families(response.text))
    await eventually(
        lambda: all_targets_up(prometheus_api, len(prometheus.shipped["scrape_configs"])),
        "every target up",
        seconds=60,
    )
    stored = set(await api_data(prometheus_api, "/api/v1/label/__name__/values"))

    referenced = referenced_metrics(ALERT_RULES, DASHBOARDS)
    missing = sorted(referenced - exported - PROMETHEUS_SERIES)

    assert len(referenced) > 20  # the extraction found the dashboards' and rules' metrics
    assert missing == [], f"named by a dashboard or alert but exported by no service: {missing}"
    assert stored >= PROMETHEUS_SERIES
    assert "flow_http_requests_total" in stored


async def test_alert_rules_load_and_evaluate_without_errors(
    prometheus_api: httpx.AsyncClient,
) -> None:
    shipped = rule_names(ALERT_RULES)

    async def evaluated() -> list[dict[str, Any]] | None:
        groups = (await api_data(prometheus_api, "/api/v1/rules"))["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        # A rule never evaluated reports the zero time.
        if rules and not any(rule["lastEvaluation"].startswith("0001") for rule in rules):
            return rules
        return None

    rules = await eventually(evaluated, "every rule evaluated once", seconds=60)

    assert {rule["name"] for rule in rules} == shipped
    for rule in rules:
        assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))
        assert not rule.get("lastError"), rule["name"]


async def test_every_dashboard_query_runs(prometheus_api: httpx.AsyncClient) -> None:
    for expr in dashboard_expressions(board for _, board in dashboards(DASHBOARDS)):
        query = as_promql(expr, {"service": "order-service"})
        await api_data(prometheus_api, "/api/v1/query", query=query)
