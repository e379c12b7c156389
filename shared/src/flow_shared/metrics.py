"""Prometheus RED metrics per route template, an in-flight gauge and `/metrics`.

Metrics live in the default registry once per process; `business_counter` and
friends let a service add its own without worrying about double registration
(tests build many apps in one process).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram
from prometheus_client import generate_latest as _generate_latest
from prometheus_client.metrics import MetricWrapperBase
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_M = TypeVar("_M", bound=MetricWrapperBase)
_metrics: dict[str, MetricWrapperBase] = {}


def _get_or_create(kind: type[_M], name: str, documentation: str, **kwargs: Any) -> _M:
    existing = _metrics.get(name)
    if existing is not None:
        if not isinstance(existing, kind):
            raise TypeError(f"metric {name} already registered as {type(existing).__name__}")
        return existing
    metric = kind(name, documentation, **kwargs)
    _metrics[name] = metric
    return metric


def business_counter(name: str, documentation: str, labels: tuple[str, ...] = ()) -> Counter:
    return _get_or_create(Counter, name, documentation, labelnames=labels)


def business_gauge(name: str, documentation: str, labels: tuple[str, ...] = ()) -> Gauge:
    return _get_or_create(Gauge, name, documentation, labelnames=labels)


def business_histogram(
    name: str,
    documentation: str,
    labels: tuple[str, ...] = (),
    buckets: tuple[float, ...] = Histogram.DEFAULT_BUCKETS,
) -> Histogram:
    return _get_or_create(Histogram, name, documentation, labelnames=labels, buckets=buckets)


REQUESTS = business_counter(
    "flow_http_requests_total",
    "HTTP requests handled, by route template and status code.",
    ("service", "method", "route", "status"),
)
LATENCY = business_histogram(
    "flow_http_request_duration_seconds",
    "HTTP request latency by route template.",
    ("service", "method", "route"),
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
IN_FLIGHT = business_gauge(
    "flow_http_requests_in_flight", "HTTP requests being handled now.", ("service",)
)

UNMATCHED_ROUTE = "<unmatched>"
_access_log = structlog.get_logger("flow.access")


def route_template(scope: Scope) -> str:
    """The matched route's template (`/orders/{id}`), never the raw path, to bound cardinality."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


def is_event_stream(response_start: Message) -> bool:
    """True for a `text/event-stream` (server-sent events) response."""
    for name, value in response_start.get("headers", ()):
        if name.lower() == b"content-type":
            return bytes(value).split(b";", 1)[0].strip().lower() == b"text/event-stream"
    return False


class MetricsMiddleware:
    """Counts, times and logs every HTTP request (one JSON access line each)."""

    def __init__(
        self,
        app: ASGIApp,
        service: str,
        skip_paths: frozenset[str] = frozenset(),
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.app = app
        self.service = service
        self.skip_paths = skip_paths
        self.clock = clock
        self.in_flight = IN_FLIGHT.labels(service)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = self.clock()
        status = 500
        stream_opened_at: float | None = None
        self.in_flight.inc()

        async def send_with_status(message: Message) -> None:
            nonlocal status, stream_opened_at
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if is_event_stream(message):
                    stream_opened_at = self.clock()
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            self.in_flight.dec()
            elapsed = self.clock() - start
            route = route_template(scope)
            method = scope["method"]
            REQUESTS.labels(self.service, method, route, str(status)).inc()
            # An event stream stays open for minutes: its latency is the time to open it,
            # else every stream would land in the top bucket and drown the p99.
            latency = elapsed if stream_opened_at is None else stream_opened_at - start
            LATENCY.labels(self.service, method, route).observe(latency)
            if scope["path"] not in self.skip_paths:
                _access_log.info(
                    "request",
                    method=method,
                    route=route,
                    path=scope["path"],
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                )


def generate_latest() -> bytes:
    return _generate_latest(REGISTRY)


async def metrics_endpoint(_request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
