"""Calling another Flow service as every service does: a client built from the caller's
settings, the upstream's problem+json read back (code, detail, its own members), and an
answer outside the contract as a 502 naming the upstream."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, SecretStr

from flow_shared.errors import Conflict, install_error_handlers
from flow_shared.http import AnswerHeaders, ServiceClient, UpstreamAnswer, UpstreamUnavailable
from flow_shared.resilience import BreakerState
from flow_shared.upstream import (
    BadUpstreamResponse,
    parse_answer,
    problem_code,
    problem_detail,
    problem_extensions,
    problem_of,
    unexpected_answer,
)

UPSTREAM = "inventory-service"
CALLER_KEY = SecretStr("order-service-key-for-upstream-tests")


@dataclass(frozen=True)
class Caller:
    """What ServiceClient.from_settings reads of a service's Settings."""

    service_name: str = "order-service"
    service_key: SecretStr | None = CALLER_KEY
    upstream_connect_timeout_seconds: float = 1.0
    upstream_read_timeout_seconds: float = 5.0
    upstream_attempts: int = 2
    breaker_failure_threshold: int = 2
    breaker_reset_timeout_seconds: float = 30.0


class ShortStock(Conflict):
    code = "insufficient-stock"
    title = "Insufficient stock"


class Reservation(BaseModel):
    reservation_id: str
    quantity: int


def upstream_app() -> FastAPI:
    """A Flow upstream answering with its real problem+json handlers."""
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/internal/reservations")
    async def reserve() -> dict[str, object]:
        raise ShortStock("Only 2 left.", extra={"short_items": [{"available": 2}]})

    @app.get("/internal/reservations/r-1")
    async def read() -> dict[str, object]:
        return {"reservation_id": "r-1", "quantity": 3, "added_later": True}

    @app.get("/internal/reservations/r-2")
    async def unreadable() -> dict[str, object]:
        return {"reservation_id": "r-2"}

    return app


def client_of(app: FastAPI, settings: Caller | None = None) -> ServiceClient:
    return ServiceClient.from_settings(
        settings or Caller(),
        UPSTREAM,
        "http://inventory.test",
        transport=httpx.ASGITransport(app=app),
    )


async def test_a_client_from_settings_sends_the_key_and_uses_its_attempts_and_breaker() -> None:
    seen: list[httpx.Request] = []

    def failing(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(503)

    client = ServiceClient.from_settings(
        Caller(), UPSTREAM, "http://inventory.test", transport=httpx.MockTransport(failing)
    )
    try:
        with pytest.raises(UpstreamUnavailable, match=UPSTREAM):
            await client.get("/internal/stock")
    finally:
        await client.aclose()

    assert len(seen) == 2  # upstream_attempts
    assert seen[0].headers["X-Service-Key"] == "order-service-key-for-upstream-tests"
    # Two failures reach breaker_failure_threshold; it stays open for the reset timeout.
    assert client.breaker.state is BreakerState.OPEN
    assert client.breaker.reset_timeout == 30.0
    assert client.upstream == UPSTREAM


async def test_a_caller_without_a_key_sends_none() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    client = ServiceClient.from_settings(
        Caller(service_key=None),
        UPSTREAM,
        "http://inventory.test",
        transport=httpx.MockTransport(answer),
    )
    try:
        await client.get("/internal/stock")
    finally:
        await client.aclose()
    assert "X-Service-Key" not in seen[0].headers


async def test_an_upstream_outside_flow_never_receives_the_callers_key() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    client = ServiceClient.from_settings(
        Caller(),
        "geocoder",
        "http://geocoder.test",
        transport=httpx.MockTransport(answer),
        send_service_key=False,
    )
    try:
        await client.get("/search")
    finally:
        await client.aclose()
    assert "X-Service-Key" not in seen[0].headers
    # Everything else is the caller's, as for a Flow upstream.
    assert client.attempts == 2
    assert client.breaker.failure_threshold == 2


async def test_an_upstream_problem_is_read_back_with_its_code_detail_and_own_members() -> None:
    client = client_of(upstream_app())
    try:
        answer = await client.post("/internal/reservations", json={"quantity": 3})
    finally:
        await client.aclose()

    assert answer.status_code == 409
    problem = problem_of(answer)
    # Flow's problems carry the code as the last segment of `type`.
    assert problem_code(problem) == "insufficient-stock"
    assert problem_detail(problem, "default") == "Only 2 left."
    assert problem_extensions(problem) == {"short_items": [{"available": 2}]}


def test_problem_members_fall_back_when_missing_or_not_a_problem() -> None:
    no_headers = AnswerHeaders([])
    assert problem_of(UpstreamAnswer(409, no_headers, b"not json")) == {}
    assert problem_of(UpstreamAnswer(409, no_headers, b'["a", "list"]')) == {}
    assert problem_code({"code": "no-price", "type": "https://x/problems/other"}) == "no-price"
    assert problem_code({}) == ""
    assert problem_detail({"detail": ""}, "the default") == "the default"
    assert problem_extensions({"type": "t", "title": "x", "status": 409, "product_ids": []}) == {
        "product_ids": []
    }


async def test_a_readable_answer_is_its_model_and_unknown_fields_are_ignored() -> None:
    client = client_of(upstream_app())
    try:
        answer = await client.get("/internal/reservations/r-1")
    finally:
        await client.aclose()

    assert parse_answer(UPSTREAM, answer, Reservation) == Reservation(
        reservation_id="r-1", quantity=3
    )
    assert parse_answer(UPSTREAM, answer, Reservation, expect=200).quantity == 3


async def test_an_answer_outside_the_contract_is_a_502_naming_the_upstream() -> None:
    client = client_of(upstream_app())
    try:
        unreadable = await client.get("/internal/reservations/r-2")
        refused = await client.post("/internal/reservations", json={})
    finally:
        await client.aclose()

    with pytest.raises(BadUpstreamResponse, match=f"{UPSTREAM} sent an unreadable answer"):
        parse_answer(UPSTREAM, unreadable, Reservation)
    error = unexpected_answer(UPSTREAM, refused)
    assert (error.status, error.code) == (502, "bad-upstream-response")
    assert error.detail == f"{UPSTREAM} answered 409."
    # Expecting a status: any other is outside the contract, before the body is read.
    with pytest.raises(BadUpstreamResponse, match=f"{UPSTREAM} answered 409"):
        parse_answer(UPSTREAM, refused, Reservation, expect=200)


async def test_bad_upstream_response_reaches_our_client_as_a_502_problem() -> None:
    caller = FastAPI()
    install_error_handlers(caller)

    @caller.get("/api/v1/orders")
    async def orders() -> None:
        raise BadUpstreamResponse(f"{UPSTREAM} answered 401.")

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=caller), base_url="http://caller.test"
    ) as client:
        response = await client.get("/api/v1/orders")

    assert response.status_code == 502
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"].endswith("/bad-upstream-response")
    assert body["title"] == "Bad gateway"
    assert UPSTREAM in body["detail"]
