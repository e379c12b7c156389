"""RED metrics per route template (never per raw path), an in-flight gauge, business metrics."""

from __future__ import annotations

import uuid

import httpx
import pytest
from prometheus_client import REGISTRY, Counter, Gauge
from starlette.types import Receive, Scope, Send

from flow_shared.metrics import (
    UNMATCHED_ROUTE,
    MetricsMiddleware,
    business_counter,
    business_gauge,
)

SERVICE = "shared-showcase"


def requests_total(route: str, status: str, method: str = "GET") -> float:
    labels = {"service": SERVICE, "method": method, "route": route, "status": status}
    return REGISTRY.get_sample_value("flow_http_requests_total", labels) or 0.0


def latency_count(route: str) -> float:
    labels = {"service": SERVICE, "method": "GET", "route": route}
    return REGISTRY.get_sample_value("flow_http_request_duration_seconds_count", labels) or 0.0


async def test_requests_are_counted_and_timed_per_route_template(
    showcase: httpx.AsyncClient,
) -> None:
    before_ok = requests_total("/items/{item_id}", "200")
    before_bad = requests_total("/items/{item_id}", "422")
    before_timed = latency_count("/items/{item_id}")

    for item_id in ("101", "202", "303"):
        await showcase.get(f"/items/{item_id}")
    await showcase.get("/items/not-a-number")

    assert requests_total("/items/{item_id}", "200") == before_ok + 3
    assert requests_total("/items/{item_id}", "422") == before_bad + 1
    assert latency_count("/items/{item_id}") == before_timed + 4
    exposition = (await showcase.get("/metrics")).text
    assert 'route="/items/{item_id}"' in exposition
    assert "/items/101" not in exposition


async def test_unmatched_paths_share_one_label(showcase: httpx.AsyncClient) -> None:
    before = requests_total(UNMATCHED_ROUTE, "404")

    await showcase.get("/wp-admin/scan-1")
    await showcase.get("/wp-admin/scan-2")

    assert requests_total(UNMATCHED_ROUTE, "404") == before + 2
    assert "scan-1" not in (await showcase.get("/metrics")).text


async def test_failures_are_counted_as_500(showcase: httpx.AsyncClient) -> None:
    before = requests_total("/boom", "500")

    await showcase.get("/boom")

    assert requests_total("/boom", "500") == before + 1


async def test_in_flight_gauge_counts_the_request_being_handled(
    showcase: httpx.AsyncClient,
) -> None:
    def in_flight() -> float | None:
        return REGISTRY.get_sample_value("flow_http_requests_in_flight", {"service": SERVICE})

    idle = in_flight()
    response = await showcase.get("/in-flight")

    assert response.json()["in_flight"] == (idle or 0) + 1
    assert in_flight() == idle


async def test_metrics_endpoint_speaks_the_prometheus_text_format(
    showcase: httpx.AsyncClient,
) -> None:
    response = await showcase.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert "# TYPE flow_http_requests_total counter" in response.text


def test_registering_a_business_metric_twice_returns_the_same_metric() -> None:
    first = business_counter("flow_test_orders_total", "Orders placed.", ("priority",))
    second = business_counter("flow_test_orders_total", "Orders placed.", ("priority",))

    assert first is second
    assert isinstance(first, Counter)
    first.labels("emergency").inc()
    assert REGISTRY.get_sample_value("flow_test_orders_total", {"priority": "emergency"}) == 1


def test_a_name_taken_by_another_kind_of_metric_is_refused() -> None:
    business_gauge("flow_test_open_emergencies", "Open emergency orders.")

    with pytest.raises(TypeError, match="flow_test_open_emergencies"):
        business_counter("flow_test_open_emergencies", "Open emergency orders.")
    assert isinstance(business_gauge("flow_test_open_emergencies", "again"), Gauge)


class SteppedClock:
    """A clock the test moves by hand: no real time is measured."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def latency_sum(service: str, route: str) -> float | None:
    labels = {"service": service, "method": "GET", "route": route}
    return REGISTRY.get_sample_value("flow_http_request_duration_seconds_sum", labels)


@pytest.mark.parametrize(
    ("content_type", "expected_latency"),
    [
        # The stream was open after 2 s and then streamed for ten minutes: latency is 2 s.
        ("text/event-stream; charset=utf-8", 2.0),
        # Any other response is timed to its end, however it is sent.
        ("application/json", 602.0),
    ],
)
async def test_an_event_stream_is_timed_to_its_opening_not_its_end(
    content_type: str, expected_latency: float
) -> None:
    clock = SteppedClock()
    service = f"stream-timing-{uuid.uuid4().hex[:8]}"

    async def streaming_app(scope: Scope, receive: Receive, send: Send) -> None:
        clock.now += 2.0
        headers = [(b"content-type", content_type.encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        clock.now += 600.0
        await send({"type": "http.response.body", "body": b"data: 1\n\n"})

    middleware = MetricsMiddleware(streaming_app, service=service, clock=clock)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=middleware), base_url="http://test"
    ) as client:
        response = await client.get("/stream")

    assert response.status_code == 200
    assert latency_sum(service, UNMATCHED_ROUTE) == expected_latency
