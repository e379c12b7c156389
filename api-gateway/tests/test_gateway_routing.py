"""Routing and edge hygiene: the route table, refused paths, headers in and out, body limits,
streaming both ways, CORS and security headers (SPEC "Gateway")."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from conftest import Gateway

    from flow_shared.testing.tokens import TokenIssuer

    OpenGateway = Callable[..., AbstractAsyncContextManager[Gateway]]

PROBLEM = "application/problem+json"


async def test_prefixes_route_to_their_owning_service(
    open_gateway: OpenGateway, stub_factory: Any, token_issuer: TokenIssuer
) -> None:
    users = await stub_factory("user-service")
    orders = await stub_factory("order-service")
    admin = await stub_factory("admin-service")
    auth = token_issuer.headers()
    async with open_gateway(
        user_service_url=users.url, order_service_url=orders.url, admin_service_url=admin.url
    ) as gw:
        answers = {
            path: (await gw.client.get(path, headers=auth)).json()["service"]
            for path in (
                "/api/v1/users/me",
                "/api/v1/organizations/42",
                "/api/v1/orders",
                "/api/v1/orders/7/items",
                "/api/v1/admin/stats",
            )
        }
        query = await gw.client.get("/api/v1/orders?page=2&page_size=5", headers=auth)

    assert answers == {
        "/api/v1/users/me": "user-service",
        "/api/v1/organizations/42": "user-service",
        "/api/v1/orders": "order-service",
        "/api/v1/orders/7/items": "order-service",
        "/api/v1/admin/stats": "admin-service",
    }
    assert query.json()["path"] == "/api/v1/orders"
    assert query.json()["query"] == "page=2&page_size=5"


async def test_unknown_prefix_and_unconfigured_service_are_404_problems(
    open_gateway: OpenGateway, stub_factory: Any, token_issuer: TokenIssuer
) -> None:
    users = await stub_factory("user-service")
    auth = token_issuer.headers()
    async with open_gateway(user_service_url=users.url) as gw:
        unknown = await gw.client.get("/api/v1/nonsense/1", headers=auth)
        # payments → payment-service, which has no URL configured: not routed yet.
        unrouted = await gw.client.get("/api/v1/payments", headers=auth)
        bare = await gw.client.get("/api/v1/", headers=auth)

    for response in (unknown, unrouted, bare):
        assert response.status_code == 404
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["status"] == 404
        assert response.json()["correlation_id"]
    assert users.requests == []


@pytest.mark.parametrize(
    "raw_path",
    [
        b"/internal/organizations",
        b"/api/v1/users/internal/organizations",
        b"/api/v1/users/Internal",
        b"/api/v1/users/../internal/organizations",
        b"/api/v1/users/%2e%2e/%2e%2e/internal/x",
        b"/api/v1/users/..%2finternal",
        b"/api/v1/users/%2Finternal",
        b"/api/v1/users/./me",
        b"/api/v1//users/me",
        b"/api/v1/users%5c..%5cinternal",
        b"/health/../internal/x",
    ],
)
async def test_internal_and_traversal_paths_are_refused_never_proxied(
    open_gateway: OpenGateway, stub_factory: Any, token_issuer: TokenIssuer, raw_path: bytes
) -> None:
    users = await stub_factory("user-service")
    async with open_gateway(user_service_url=users.url) as gw:
        status, body = await gw.raw_get(raw_path, token_issuer.headers())

    assert status == 404
    assert json.loads(body)["status"] == 404
    assert users.requests == []


async def test_identity_and_service_headers_from_clients_never_reach_upstream(
    open_gateway: OpenGateway, stub_factory: Any, token_issuer: TokenIssuer
) -> None:
    users = await stub_factory("user-service")
    auth = token_issuer.headers()
    spoofed = {
        "X-User-Id": "00000000-0000-0000-0000-000000000001",
        "X-Org-Id": "00000000-0000-0000-0000-000000000002",
        "X-Org-Kind": "platform",
        "X-Role": "platform_admin",
        "X-Service-Key": "stolen-key",
        "X-Forwarded-User": "admin",
        "X-Flow-Caller": "admin-service",
        "X-Forwarded-For": "203.0.113.66",
        "X-Real-IP": "203.0.113.66",
        "Forwarded": "for=203.0.113.66",
        "Connection": "close, X-Custom-Hop",
        "X-Custom-Hop": "hop-only",
        "X-Request-ID": "client-chosen-id-123",
        "Accept": "application/json",
    }
    async with open_gateway(user_service_url=users.url) as gw:
        response = await gw.client.get("/api/v1/users/me", headers={**auth, **spoofed})

    assert response.status_code == 200
    received = users.requests[0].headers
    for name in (
        "x-user-id",
        "x-org-id",
        "x-org-kind",
        "x-role",
        "x-service-key",
        "x-forwarded-user",
        "x-flow-caller",
        "x-real-ip",
        "forwarded",
        "x-custom-hop",
    ):
        assert name not in received, name
    # The gateway states who called: the TCP peer, not what the client claims.
    assert received["x-forwarded-for"] == "127.0.0.1"
    assert received["x-forwarded-proto"] == "http"
    # Services verify the token themselves, so it is passed on unchanged.
    assert received["authorization"] == auth["Authorization"]
    assert received["accept"] == "application/json"
    # The correlation id is echoed to the client and passed to the service.
    assert response.headers["x-request-id"] == "client-chosen-id-123"
    assert received["x-request-id"] == "client-chosen-id-123"


async def test_generated_request_id_is_the_one_forwarded(
    open_gateway: OpenGateway, stub_factory: Any, token_issuer: TokenIssuer
) -> None:
    users = await stub_factory("user-service")
    async with open_gateway(user_service_url=users.url) as gw:
        response = await gw.client.get("/api/v1/users/me", headers=token_issuer.headers())

    generated = response.headers["x-request-id"]
    assert generated
    assert users.requests[0].headers["x-request-id"] == generated


async def test_trusted_proxy_hops_take_the_client_address_from_x_forwarded_for(
    open_gateway: OpenGateway, stub_factory: Any, token_issuer: TokenIssuer
) -> None:
    users = await stub_factory("user-service")
    async with open_gateway(user_service_url=users.url, trusted_proxy_hops=1) as gw:
        await gw.client.get(
            "/api/v1/users/me",
            headers={**token_issuer.headers(), "X-Forwarded-For": "198.51.100.1, 203.0.113.9"},
        )

    # Only the last hop (appended by our trusted proxy) is kept, then the peer is appended.
    assert users.requests[0].headers["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"


async def test_response_headers_hop_by_hop_dropped_and_redirects_stay_on_the_gateway(
    open_gateway: OpenGateway, stub_factory: Any, token_issuer: TokenIssuer
) -> None:
    orders = await stub_factory("order-service")
    auth = token_issuer.headers()
    async with open_gateway(order_service_url=orders.url) as gw:
        echoed = await gw.client.get("/api/v1/orders/1", headers=auth)
        redirected = await gw.client.get("/api/v1/orders/redirect", headers=auth)

    assert echoed.headers["x-upstream"] == "order-service"
    assert "x-upstream-hop" not in echoed.headers
    assert "aiohttp" not in echoed.headers.get("server", "")
    assert redirected.status_code == 307
    # Not the upstream's internal address.
    assert redirected.headers["location"] == "/api/v1/orders/elsewhere"


async def test_security_headers_on_proxied_and_gateway_responses(
    open_gateway: OpenGateway, stub_factory: Any, token_issuer: TokenIssuer
) -> None:
    users = await stub_factory("user-service")
    async with open_gateway(user_service_url=users.url) as gw:
        proxied = await gw.client.get("/api/v1/users/me", headers=token_issuer.headers())
        refused = await gw.client.get("/api/v1/users/me")

    for response in (proxied, refused):
        assert response.headers["strict-transport-security"].startswith("max-age=")
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "default-src 'none'" in response.headers["content-security-policy"]


async def test_body_over_the_limit_is_413_and_never_reaches_upstream(
    open_gateway: OpenGateway, stub_factory: Any, token_issuer: TokenIssuer
) -> None:
    orders = await stub_factory("order-service")
    two_mb = b"x" * (2 * 1024 * 1024)

    async def chunked() -> AsyncIterator[bytes]:
        for start in range(0, len(two_mb), 64 * 1024):
            yield two_mb[start : start + 64 * 1024]

    async with open_gateway(order_service_url=orders.url) as gw:
        declared = await gw.client.post(
            "/api/v1/orders", content=two_mb, headers=token_issuer.headers()
        )
        streamed = await gw.client.post(
            "/api/v1/orders", content=chunked(), headers=token_issuer.headers()
        )
        after = await gw.client.post(
            "/api/v1/orders", content=b'{"ok": 1}', headers=token_issuer.headers()
        )

    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.headers["content-type"] == PROBLEM
    # The gateway still works and the upstream only ever saw the small request.
    assert after.status_code == 200
    assert [r.body for r in orders.requests] == [b'{"ok": 1}']


async def test_request_body_is_streamed_through_intact(
    open_gateway: OpenGateway, stub_factory: Any, token_issuer: TokenIssuer
) -> None:
    orders = await stub_factory("order-service")
    body = os.urandom(900 * 1024)

    async def chunked() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 50_000):
            yield body[start : start + 50_000]

    async with open_gateway(order_service_url=orders.url) as gw:
        response = await gw.client.post(
            "/api/v1/orders",
            content=chunked(),
            headers={**token_issuer.headers(), "Content-Type": "application/octet-stream"},
        )

    assert response.status_code == 200
    assert response.json()["body_length"] == len(body)
    assert response.json()["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert orders.requests[0].headers["content-type"] == "application/octet-stream"


async def test_large_streamed_response_arrives_intact(
    open_gateway: OpenGateway, stub_factory: Any, token_issuer: TokenIssuer
) -> None:
    size = 6 * 1024 * 1024
    orders = await stub_factory("order-service", stream_size=size)
    async with (
        open_gateway(order_service_url=orders.url) as gw,
        gw.client.stream("GET", "/api/v1/orders/stream", headers=token_issuer.headers()) as resp,
    ):
        received = b"".join([chunk async for chunk in resp.aiter_raw()])

    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/octet-stream"
    assert len(received) == size
    assert hashlib.sha256(received).digest() == hashlib.sha256(orders.stream_bytes()).digest()


async def test_an_event_stream_sending_within_each_read_timeout_stays_open_past_it(
    open_gateway: OpenGateway, stub_factory: Any, token_issuer: TokenIssuer
) -> None:
    """The read timeout bounds the silence between bytes, not the response: notification-
    service's event stream, kept alive by heartbeats, lasts as long as the client stays."""
    events = await stub_factory("notification-service", trickle_blocks=8, trickle_gap_seconds=0.3)
    policy = {"notification-service": {"read_timeout": 1.0}}
    async with (
        open_gateway(notification_service_url=events.url, upstream_policies=policy) as gw,
        gw.client.stream(
            "GET", "/api/v1/notifications/trickle", headers=token_issuer.headers()
        ) as resp,
    ):
        received = b"".join([chunk async for chunk in resp.aiter_raw()])

    assert resp.status_code == 200
    # 2.4 s of stream through a 1 s read timeout, every heartbeat through.
    assert received == events.trickle_block * 8


async def test_an_event_stream_silent_past_the_read_timeout_is_cut(
    open_gateway: OpenGateway, stub_factory: Any, token_issuer: TokenIssuer
) -> None:
    """Why notification-service's SSE_HEARTBEAT_SECONDS stays under this read timeout."""
    events = await stub_factory("notification-service", trickle_blocks=4, trickle_gap_seconds=1.0)
    policy = {"notification-service": {"read_timeout": 0.3}}
    received = b""
    async with (
        open_gateway(notification_service_url=events.url, upstream_policies=policy) as gw,
        gw.client.stream(
            "GET", "/api/v1/notifications/trickle", headers=token_issuer.headers()
        ) as resp,
    ):
        with contextlib.suppress(httpx.TransportError):
            async for chunk in resp.aiter_raw():
                received += chunk

    assert resp.status_code == 200
    assert received == events.trickle_block  # the first heartbeat, then the cut


async def test_cors_allows_only_configured_origins_without_wildcard(
    open_gateway: OpenGateway, stub_factory: Any
) -> None:
    users = await stub_factory("user-service")
    origin = "https://app.flow.example"
    preflight = {"Access-Control-Request-Method": "POST"}
    async with open_gateway(user_service_url=users.url, cors_origins=[origin]) as gw:
        allowed = await gw.client.options(
            "/api/v1/auth/login", headers={"Origin": origin, **preflight}
        )
        foreign = await gw.client.options(
            "/api/v1/auth/login", headers={"Origin": "https://evil.example", **preflight}
        )

    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == origin
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert foreign.headers.get("access-control-allow-origin") != "https://evil.example"
    assert "*" not in foreign.headers.get("access-control-allow-origin", "")
    assert users.requests == []
