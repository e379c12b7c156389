"""Edge hygiene of every service: security headers, the body size cap (413), trusted hosts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from flow_shared.security import BodySizeLimitMiddleware
from flow_shared.security_headers import API_CSP, DOCS_CSP

if TYPE_CHECKING:
    from conftest import ShowcaseClientFactory, ShowcaseState
    from starlette.types import Message, Receive, Scope, Send

LIMIT = 1024
BASE_HEADERS = {
    "strict-transport-security": "max-age=63072000; includeSubDomains",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def assert_security_headers(response: httpx.Response, csp: str) -> None:
    for name, value in BASE_HEADERS.items():
        assert response.headers[name] == value, name
    assert response.headers["content-security-policy"] == csp


@pytest.mark.parametrize("path", ["/items/1", "/no/such/route", "/items/x", "/metrics"])
async def test_api_answers_carry_the_security_headers(
    showcase: httpx.AsyncClient, path: str
) -> None:
    response = await showcase.get(path)

    assert_security_headers(response, API_CSP)


async def test_unexpected_errors_carry_the_security_headers_too(
    showcase: httpx.AsyncClient,
) -> None:
    response = await showcase.get("/boom")

    assert response.status_code == 500
    assert_security_headers(response, API_CSP)


@pytest.mark.parametrize("path", ["/openapi.json", "/docs", "/docs/oauth2-redirect"])
async def test_docs_paths_get_the_docs_csp(showcase: httpx.AsyncClient, path: str) -> None:
    response = await showcase.get(path)

    assert_security_headers(response, DOCS_CSP)


async def test_a_declared_oversized_body_is_413_before_the_handler_runs(
    showcase_client_for: ShowcaseClientFactory, showcase_state: ShowcaseState
) -> None:
    async with showcase_client_for(max_body_bytes=LIMIT) as client:
        response = await client.post("/upload", content=b"x" * (LIMIT + 1))

    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 413
    assert showcase_state.bodies_read == []


async def test_a_streamed_oversized_body_without_length_is_413(
    showcase_client_for: ShowcaseClientFactory, showcase_state: ShowcaseState
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b"x" * 256

    async with showcase_client_for(max_body_bytes=LIMIT) as client:
        request = client.build_request("POST", "/upload", content=chunks())
        assert "content-length" not in request.headers
        response = await client.send(request)

    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    # The handler never finished reading the body.
    assert showcase_state.bodies_read == []


async def test_a_streamed_oversized_json_body_is_413_not_the_frameworks_400(
    showcase_client_for: ShowcaseClientFactory,
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "'
        for _ in range(8):
            yield b"x" * 256
        yield b'", "password": "long-enough-password-123"}'

    async with showcase_client_for(max_body_bytes=LIMIT) as client:
        response = await client.post(
            "/items", content=chunks(), headers={"Content-Type": "application/json"}
        )

    assert response.status_code == 413
    assert response.json()["status"] == 413


async def test_bodies_within_the_limit_pass(showcase_client_for: ShowcaseClientFactory) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"x" * 256

    async with showcase_client_for(max_body_bytes=LIMIT) as client:
        declared = await client.post("/upload", content=b"x" * LIMIT)
        streamed = await client.post("/upload", content=chunks())

    assert declared.json() == {"size": LIMIT}
    assert streamed.json() == {"size": LIMIT}


@pytest.mark.parametrize(("declared", "status"), [("abc", 400), ("-1", 400), ("99999999", 413)])
async def test_content_length_is_checked_before_reading(declared: str, status: int) -> None:
    reached_app = False

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal reached_app
        reached_app = True

    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": "/upload",
        "raw_path": b"/upload",
        "query_string": b"",
        "headers": [(b"content-length", declared.encode()), (b"host", b"svc")],
        "scheme": "http",
        "server": ("svc", 80),
    }
    await BodySizeLimitMiddleware(app, max_bytes=LIMIT)(scope, receive, send)

    assert not reached_app
    assert sent[0]["status"] == status


async def test_an_unknown_host_is_refused_when_hosts_are_configured(
    showcase_client_for: ShowcaseClientFactory,
) -> None:
    async with showcase_client_for(trusted_hosts=["api.flow.test"]) as client:
        refused = await client.get("/items/1", headers={"Host": "evil.example"})
        allowed = await client.get("/items/1", headers={"Host": "api.flow.test"})

    assert refused.status_code == 400
    assert allowed.status_code == 200


async def test_an_unknown_host_is_refused_with_a_problem(
    showcase_client_for: ShowcaseClientFactory,
) -> None:
    async with showcase_client_for(trusted_hosts=["api.flow.test"]) as client:
        refused = await client.get("/items/1", headers={"Host": "evil.example"})

    assert refused.headers["content-type"] == "application/problem+json"
