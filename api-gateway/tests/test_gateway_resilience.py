"""Per-upstream timeouts, circuit breakers (503 naming the service) and retries for idempotent
requests only, against real local servers that fail, hang, or are not there."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY

from flow_shared.resilience import BreakerState

if TYPE_CHECKING:
    from conftest import Gateway

    from flow_shared.testing.tokens import TokenIssuer

    OpenGateway = Callable[..., AbstractAsyncContextManager[Gateway]]

PROBLEMS = "https://flow.example/problems/"


async def test_breaker_opens_after_failures_then_half_opens_and_closes(
    open_gateway: OpenGateway, stub_factory: Any, token_issuer: TokenIssuer
) -> None:
    orders = await stub_factory("order-service", failing=True)
    policy = {"order-service": {"failure_threshold": 3, "reset_timeout": 0.5}}
    auth = token_issuer.headers()
    async with open_gateway(order_service_url=orders.url, upstream_policies=policy) as gw:
        breaker = gw.app.state.proxy.upstream("order-service").breaker
        failures = [(await gw.client.get("/api/v1/orders", headers=auth)) for _ in range(3)]
        opened = await gw.client.get("/api/v1/orders", headers=auth)
        reached_while_open = len(orders.requests)
        state_when_open = breaker.state

        orders.failing = False
        await asyncio.sleep(0.6)  # past reset_timeout: the next call is a probe
        probe = await gw.client.get("/api/v1/orders", headers=auth)
        state_after_probe = breaker.state
        after = await gw.client.get("/api/v1/orders", headers=auth)

    # The upstream's own 500 answers pass through while the breaker counts them.
    assert [f.status_code for f in failures] == [500, 500, 500]
    assert opened.status_code == 503
    assert opened.headers["content-type"] == "application/problem+json"
    assert opened.json()["type"] == PROBLEMS + "circuit-open"
    assert "order-service" in opened.json()["detail"]
    assert "retry-after" in opened.headers
    assert reached_while_open == 3
    assert state_when_open is BreakerState.OPEN
    assert probe.status_code == 200
    assert state_after_probe is BreakerState.CLOSED
    assert after.status_code == 200
    assert len(orders.requests) == 5


async def test_failed_probe_opens_the_breaker_again(
    open_gateway: OpenGateway, stub_factory: Any, token_issuer: TokenIssuer
) -> None:
    orders = await stub_factory("order-service", failing=True)
    policy = {"order-service": {"failure_threshold": 2, "reset_timeout": 0.3}}
    auth = token_issuer.headers()
    async with open_gateway(order_service_url=orders.url, upstream_policies=policy) as gw:
        for _ in range(2):
            await gw.client.get("/api/v1/orders", headers=auth)
        await asyncio.sleep(0.4)
        probe = await gw.client.get("/api/v1/orders", headers=auth)
        right_after = await gw.client.get("/api/v1/orders", headers=auth)

    assert probe.status_code == 500
    assert right_after.status_code == 503
    assert right_after.json()["type"] == PROBLEMS + "circuit-open"
    assert len(orders.requests) == 3


async def test_down_upstream_is_503_naming_it_then_the_breaker_opens(
    open_gateway: OpenGateway, closed_port_url: str, token_issuer: TokenIssuer
) -> None:
    policy = {"order-service": {"failure_threshold": 2, "retry_attempts": 1}}
    auth = token_issuer.headers()
    async with open_gateway(order_service_url=closed_port_url, upstream_policies=policy) as gw:
        down = [await gw.client.get("/api/v1/orders", headers=auth) for _ in range(2)]
        opened = await gw.client.get("/api/v1/orders", headers=auth)

    for response in down:
        assert response.status_code == 503
        assert response.json()["type"] == PROBLEMS + "upstream-unavailable"
        assert "order-service" in response.json()["detail"]
    assert opened.status_code == 503
    assert opened.json()["type"] == PROBLEMS + "circuit-open"


async def test_read_timeout_is_503_not_retried_and_the_open_breaker_answers_fast(
    open_gateway: OpenGateway, stub_factory: Any, token_issuer: TokenIssuer
) -> None:
    orders = await stub_factory("order-service")
    read_timeout = 1.0
    policy = {"order-service": {"read_timeout": read_timeout, "failure_threshold": 1}}
    auth = token_issuer.headers()
    async with open_gateway(order_service_url=orders.url, upstream_policies=policy) as gw:
        timed_out = await gw.client.get("/api/v1/orders/slow", headers=auth)
        started = time.perf_counter()
        fast = await gw.client.get("/api/v1/orders/slow", headers=auth)
        elapsed = time.perf_counter() - started

    assert timed_out.status_code == 503
    assert "order-service" in timed_out.json()["detail"]
    # The upstream got the request: a GET that timed out waiting for an answer is not resent.
    assert len(orders.requests) == 1
    assert fast.status_code == 503
    assert fast.json()["type"] == PROBLEMS + "circuit-open"
    assert elapsed < read_timeout / 2


async def test_idempotent_request_is_retried_after_a_dropped_connection(
    open_gateway: OpenGateway, flaky_factory: Any, token_issuer: TokenIssuer
) -> None:
    flaky = await flaky_factory(1)  # the first connection is dropped before any response
    async with open_gateway(order_service_url=flaky.url) as gw:
        response = await gw.client.get("/api/v1/orders/1", headers=token_issuer.headers())

    assert response.status_code == 200
    assert response.json() == {"ok": True}
    assert len(flaky.request_heads) == 2
    assert all(head.startswith(b"GET /api/v1/orders/1 ") for head in flaky.request_heads)


async def test_post_is_sent_exactly_once_even_when_it_fails(
    open_gateway: OpenGateway, flaky_factory: Any, token_issuer: TokenIssuer
) -> None:
    flaky = await flaky_factory(10)  # every connection is dropped without an answer
    async with open_gateway(order_service_url=flaky.url) as gw:
        response = await gw.client.post(
            "/api/v1/orders", json={"product": "o2-cylinder"}, headers=token_issuer.headers()
        )

    assert response.status_code == 503
    assert "order-service" in response.json()["detail"]
    assert len(flaky.request_heads) == 1
    assert flaky.request_heads[0].startswith(b"POST /api/v1/orders ")


async def test_idempotent_retries_stop_at_the_configured_attempts(
    open_gateway: OpenGateway, flaky_factory: Any, token_issuer: TokenIssuer
) -> None:
    flaky = await flaky_factory(10)
    policy = {"order-service": {"retry_attempts": 3, "failure_threshold": 10}}
    async with open_gateway(order_service_url=flaky.url, upstream_policies=policy) as gw:
        response = await gw.client.delete("/api/v1/orders/1", headers=token_issuer.headers())

    assert response.status_code == 503
    assert len(flaky.request_heads) == 3


def upstream_count(upstream: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "flow_gateway_upstream_duration_seconds_count",
        {"upstream": upstream, "status_class": outcome},
    )
    return value or 0.0


async def test_upstream_latency_is_measured_per_service_and_outcome(
    open_gateway: OpenGateway, stub_factory: Any, token_issuer: TokenIssuer
) -> None:
    reviews = await stub_factory("review-service")
    policy = {"review-service": {"failure_threshold": 1, "reset_timeout": 60}}
    auth = token_issuer.headers()
    before = {o: upstream_count("review-service", o) for o in ("2xx", "5xx", "circuit_open")}
    async with open_gateway(review_service_url=reviews.url, upstream_policies=policy) as gw:
        await gw.client.get("/api/v1/reviews", headers=auth)
        await gw.client.get("/api/v1/reviews/fail", headers=auth)
        await gw.client.get("/api/v1/reviews", headers=auth)
        exposed = (await gw.client.get("/metrics")).text

    after = {o: upstream_count("review-service", o) for o in before}
    assert {o: after[o] - before[o] for o in before} == {"2xx": 1, "5xx": 1, "circuit_open": 1}
    assert (
        'flow_gateway_upstream_duration_seconds_count{status_class="2xx",upstream="review-service"}'
        in exposed
    )
