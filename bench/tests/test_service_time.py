"""Reading the services' request-duration metrics into time per route."""

from __future__ import annotations

from flow_bench.service_time import breakdown, parse_totals

METRIC = "flow_http_request_duration_seconds"


def sample(kind: str, service: str, method: str, route: str, value: float) -> str:
    return f'{METRIC}_{kind}{{method="{method}",route="{route}",service="{service}"}} {value}'


def exposition(counts: dict[tuple[str, str, str], tuple[float, float]]) -> str:
    lines = [f"# HELP {METRIC} HTTP request latency.", f"# TYPE {METRIC} histogram"]
    for (service, method, route), (count, seconds) in counts.items():
        lines.append(
            f'{METRIC}_bucket{{le="0.005",method="{method}",route="{route}",'
            f'service="{service}"}} 1.0'
        )
        lines.append(sample("count", service, method, route, count))
        lines.append(sample("sum", service, method, route, seconds))
    return "\n".join(lines) + "\n"


ORDERS = ("order-service", "POST", "/api/v1/orders")
CONFIRM = ("order-service", "POST", "/api/v1/orders/{order_id}/confirm")
SCRAPE = ("order-service", "GET", "<unmatched>")
RESERVE = ("inventory-service", "POST", "/internal/reservations")
READY = ("order-service", "GET", "/health/ready")
BEFORE = exposition({ORDERS: (10.0, 1.0), READY: (5.0, 0.1), SCRAPE: (1.0, 0.01)})
AFTER = exposition({ORDERS: (110.0, 11.0), RESERVE: (100.0, 2.5), READY: (50.0, 1.1)})


def test_totals_per_route_without_probes() -> None:
    assert parse_totals(BEFORE) == {ORDERS: (10.0, 1.0)}


def test_route_templates_with_braces_are_read_whole() -> None:
    assert parse_totals(exposition({CONFIRM: (3.0, 0.3)})) == {CONFIRM: (3.0, 0.3)}


def test_breakdown_is_the_difference_largest_first() -> None:
    rows = breakdown(parse_totals(BEFORE), parse_totals(AFTER))
    assert rows == [
        {
            "service": "order-service",
            "route": "POST /api/v1/orders",
            "requests": 100,
            "mean_ms": 100.0,
            "total_s": 10.0,
        },
        {
            "service": "inventory-service",
            "route": "POST /internal/reservations",
            "requests": 100,
            "mean_ms": 25.0,
            "total_s": 2.5,
        },
    ]
    assert breakdown(parse_totals(AFTER), parse_totals(AFTER)) == []
