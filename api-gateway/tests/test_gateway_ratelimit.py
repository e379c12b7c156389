"""Rate limits at the edge (Redis): per IP on credential routes (fail closed), per user by
role on authenticated routes, per IP for anonymous callers; 429 with Retry-After."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conftest import Gateway

    from flow_shared.testing.tokens import TokenIssuer

    OpenGateway = Callable[..., AbstractAsyncContextManager[Gateway]]

LOGIN = "/api/v1/auth/login"


def login_rule(requests: int) -> dict[str, Any]:
    return {
        "per": "ip",
        "path_prefix": LOGIN,
        "methods": ["POST"],
        "requests": requests,
        "per_seconds": 60,
        "fail_closed": True,
    }


async def test_login_is_limited_per_ip_with_retry_after(
    open_gateway: OpenGateway, stub_factory: Any
) -> None:
    users = await stub_factory("user-service")
    async with open_gateway(
        user_service_url=users.url, rate_limits={"auth-login": login_rule(3)}
    ) as gw:
        allowed = [(await gw.client.post(LOGIN, json={})).status_code for _ in range(3)]
        limited = await gw.client.post(LOGIN, json={})
        async with gw.client_from("198.51.100.20") as other_ip:
            other = await other_ip.post(LOGIN, json={})
        # Another route from the same IP is not charged to the login rule.
        jwks = await gw.client.get("/api/v1/auth/jwks")

    assert allowed == [200, 200, 200]
    assert limited.status_code == 429
    assert limited.headers["content-type"] == "application/problem+json"
    # 3 per 60 s frees a slot every 20 s: the client is told when to come back.
    assert 1 <= int(limited.headers["retry-after"]) <= 20
    assert other.status_code == 200
    assert jwks.status_code == 200
    assert [r.path for r in users.requests].count(LOGIN) == 4


async def test_authenticated_limits_are_per_user_and_by_role(
    open_gateway: OpenGateway, stub_factory: Any, token_issuer: TokenIssuer
) -> None:
    orders = await stub_factory("order-service")
    staff_rule = {"per": "user", "roles": ["staff"], "requests": 2, "per_seconds": 60}
    staff_a = token_issuer.headers(role="staff", user_id=uuid.uuid4())
    staff_b = token_issuer.headers(role="staff", user_id=uuid.uuid4())
    admin = token_issuer.headers(role="org_admin", user_id=uuid.uuid4())
    async with open_gateway(
        order_service_url=orders.url, rate_limits={"user-staff": staff_rule}
    ) as gw:
        a = [(await gw.client.get("/api/v1/orders", headers=staff_a)).status_code for _ in range(3)]
        b = (await gw.client.get("/api/v1/orders", headers=staff_b)).status_code
        org_admin = [
            (await gw.client.get("/api/v1/orders", headers=admin)).status_code for _ in range(3)
        ]

    assert a == [200, 200, 429]
    assert b == 200
    assert org_admin == [200, 200, 200]


async def test_route_specific_rule_limits_only_its_route(
    open_gateway: OpenGateway, stub_factory: Any, token_issuer: TokenIssuer
) -> None:
    orders = await stub_factory("order-service")
    place_orders = {
        "per": "user",
        "path_prefix": "/api/v1/orders",
        "methods": ["POST"],
        "requests": 1,
        "per_seconds": 60,
    }
    user = token_issuer.headers(user_id=uuid.uuid4())
    async with open_gateway(
        order_service_url=orders.url, rate_limits={"orders-create": place_orders}
    ) as gw:
        first = await gw.client.post("/api/v1/orders", headers=user, json={})
        second = await gw.client.post("/api/v1/orders", headers=user, json={})
        reads = [
            (await gw.client.get("/api/v1/orders/1", headers=user)).status_code for _ in range(3)
        ]

    assert first.status_code == 200
    assert second.status_code == 429
    assert reads == [200, 200, 200]


async def test_anonymous_callers_are_limited_per_ip(
    open_gateway: OpenGateway, stub_factory: Any
) -> None:
    users = await stub_factory("user-service")
    anonymous = {"per": "ip", "anonymous_only": True, "requests": 2, "per_seconds": 60}
    async with open_gateway(user_service_url=users.url, rate_limits={"anonymous": anonymous}) as gw:
        answers = [(await gw.client.get("/api/v1/auth/jwks")).status_code for _ in range(3)]

    assert answers == [200, 200, 429]


async def test_redis_down_closes_login_and_leaves_fail_open_routes_open(
    open_gateway: OpenGateway, stub_factory: Any
) -> None:
    users = await stub_factory("user-service")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    async with open_gateway(
        user_service_url=users.url, redis_url=f"redis://127.0.0.1:{dead_port}/0"
    ) as gw:
        login = await gw.client.post(LOGIN, json={})
        # jwks is public and only under the fail-open "anonymous" rule.
        jwks = await gw.client.get("/api/v1/auth/jwks")

    assert login.status_code == 503
    assert login.headers["content-type"] == "application/problem+json"
    assert "retry-after" in login.headers
    assert jwks.status_code == 200
    assert [r.path for r in users.requests] == ["/api/v1/auth/jwks"]
