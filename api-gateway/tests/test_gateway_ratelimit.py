"""Rate limits at the edge (Redis): per IP on credential routes (fail closed), per user by
role on authenticated routes, per IP for anonymous callers; 429 with Retry-After."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import pytest
from prometheus_client import REGISTRY
from pydantic import ValidationError

from api_gateway.config import RateRule
from flow_shared.testing.ports import free_port

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
    async with open_gateway(
        user_service_url=users.url, redis_url=f"redis://127.0.0.1:{free_port()}/0"
    ) as gw:
        login = await gw.client.post(LOGIN, json={})
        # jwks is public and only under the fail-open "anonymous" rule.
        jwks = await gw.client.get("/api/v1/auth/jwks")

    assert login.status_code == 503
    assert login.headers["content-type"] == "application/problem+json"
    assert "retry-after" in login.headers
    assert jwks.status_code == 200
    assert [r.path for r in users.requests] == ["/api/v1/auth/jwks"]


# --- failed authentication is metered: per IP before the token, and invalid tokens -------

ME = "/api/v1/users/me"


def invalid_tokens_counted() -> float:
    return REGISTRY.get_sample_value("flow_gateway_invalid_tokens_total") or 0.0


async def test_requests_are_limited_per_ip_before_the_token_is_checked(
    open_gateway: OpenGateway, stub_factory: Any, token_issuer: TokenIssuer
) -> None:
    users = await stub_factory("user-service")
    per_ip = {"per": "ip", "requests": 3, "per_seconds": 60}
    async with open_gateway(
        user_service_url=users.url, rate_limits={"ip": per_ip, "invalid-token": None}
    ) as gw:
        forged = {"Authorization": "Bearer not.a.token"}
        failed = [(await gw.client.get(ME, headers=forged)).status_code for _ in range(3)]
        limited = await gw.client.get(ME, headers=forged)
        # The budget is the address's, whoever the token says it is.
        valid_same_ip = await gw.client.get(ME, headers=token_issuer.headers())
        async with gw.client_from("198.51.100.30") as other_ip:
            other = await other_ip.get(ME, headers=token_issuer.headers())

    assert failed == [401, 401, 401]
    assert limited.status_code == 429
    assert limited.headers["content-type"] == "application/problem+json"
    assert 1 <= int(limited.headers["retry-after"]) <= 20
    assert valid_same_ip.status_code == 429
    assert other.status_code == 200
    assert len(users.requests) == 1


async def test_invalid_tokens_have_a_stricter_budget_and_are_counted(
    open_gateway: OpenGateway, stub_factory: Any, token_issuer: TokenIssuer
) -> None:
    users = await stub_factory("user-service")
    budget = {"per": "ip", "counts": "invalid_tokens", "requests": 2, "per_seconds": 60}
    expired = {"Authorization": f"Bearer {token_issuer.token(ttl=-60)}"}
    garbage = {"Authorization": "Bearer not.a.token"}
    async with open_gateway(
        user_service_url=users.url, rate_limits={"invalid-token": budget}
    ) as gw:
        before = invalid_tokens_counted()
        answers = [
            (await gw.client.get(ME, headers=headers)).status_code for headers in (expired, garbage)
        ]
        spent = await gw.client.get(ME, headers=garbage)
        counted = invalid_tokens_counted() - before
        # Valid tokens from that address still pass; other addresses have their own budget.
        valid = [
            (await gw.client.get(ME, headers=token_issuer.headers())).status_code for _ in range(3)
        ]
        async with gw.client_from("198.51.100.31") as other_ip:
            other = await other_ip.get(ME, headers=garbage)
        # A request with no token at all is not an invalid token.
        missing = await gw.client.get(ME)

    assert answers == [401, 401]
    assert spent.status_code == 429
    assert 1 <= int(spent.headers["retry-after"]) <= 30
    assert counted == 3
    assert valid == [200, 200, 200]
    assert other.status_code == 401
    assert missing.status_code == 401
    assert len(users.requests) == 3


def test_an_invalid_token_budget_must_be_per_ip() -> None:
    with pytest.raises(ValidationError, match="invalid_tokens"):
        RateRule(per="user", counts="invalid_tokens", requests=1, per_seconds=60)


async def test_x_forwarded_for_counts_only_from_trusted_proxies(
    open_gateway: OpenGateway, stub_factory: Any, token_issuer: TokenIssuer
) -> None:
    users = await stub_factory("user-service")
    per_ip = {"per": "ip", "requests": 1, "per_seconds": 60}
    async with open_gateway(
        user_service_url=users.url,
        trusted_proxy_hops=1,
        trusted_proxies="10.0.0.0/8",
        rate_limits={"ip": per_ip},
    ) as gw:
        auth = token_issuer.headers()
        # Straight from a client (127.0.0.1 is not a trusted proxy here): its own
        # X-Forwarded-For and X-Flow-Client-IP choose nothing, both requests are 127.0.0.1's.
        direct = [
            await gw.client.get(
                ME,
                headers={
                    **auth,
                    "X-Forwarded-For": f"203.0.113.{n}",
                    "X-Flow-Client-IP": "1.2.3.4",
                },
            )
            for n in (1, 2)
        ]
        # Through the trusted proxy, the address it appended is the client.
        async with gw.client_from("10.1.2.3") as proxy:
            relayed = [
                await proxy.get(ME, headers={**auth, "X-Forwarded-For": f"198.51.100.{n}"})
                for n in (1, 2)
            ]

    assert [r.status_code for r in direct] == [200, 429]
    assert [r.status_code for r in relayed] == [200, 200]
    seen = [r.headers for r in users.requests]
    assert seen[0]["x-flow-client-ip"] == "127.0.0.1"
    assert seen[0]["x-forwarded-for"] == "127.0.0.1"
    assert [h["x-flow-client-ip"] for h in seen[1:]] == ["198.51.100.1", "198.51.100.2"]
    assert seen[1]["x-forwarded-for"] == "198.51.100.1, 10.1.2.3"
