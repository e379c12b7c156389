"""The route table and policies live in configuration: SPEC's table by default, and a new
service or a changed limit is an environment variable, not code."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import pytest

from api_gateway.config import Settings
from flow_shared.http import SERVER_KEEPALIVE_SECONDS

UPSTREAM_URL_FIELDS = [name for name in Settings.model_fields if name.endswith("_service_url")]

if TYPE_CHECKING:
    from conftest import Gateway

    from flow_shared.testing.tokens import TokenIssuer

    OpenGateway = Callable[..., AbstractAsyncContextManager[Gateway]]


def test_default_route_table_is_specs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROUTES", raising=False)
    assert Settings().routes == {
        "auth": "user-service",
        "users": "user-service",
        "organizations": "user-service",
        "locations": "location-service",
        "catalog": "inventory-service",
        "inventory": "inventory-service",
        "vendors": "inventory-service",
        "supply": "inventory-service",
        "cylinders": "inventory-service",
        "orders": "order-service",
        "allocation": "order-service",
        "sos": "order-service",
        "pricing": "pricing-service",
        "payments": "payment-service",
        "reviews": "review-service",
        "notifications": "notification-service",
        "admin": "admin-service",
        "shortages": "admin-service",
    }


def test_upstreams_come_from_service_url_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("ROUTES", "UPSTREAM_URLS", *(f.upper() for f in UPSTREAM_URL_FIELDS)):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("USER_SERVICE_URL", "http://127.0.0.1:8001/")
    monkeypatch.setenv("ADMIN_SERVICE_URL", "http://127.0.0.1:8011")

    settings = Settings()

    assert settings.routed_services() == {
        "user-service": "http://127.0.0.1:8001",
        "admin-service": "http://127.0.0.1:8011",
    }


def test_rate_limit_overrides_merge_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "RATE_LIMITS",
        '{"anonymous": null, "auth-login": {"per": "ip", "path_prefix": "/api/v1/auth/login",'
        ' "methods": ["post"], "requests": 5, "per_seconds": 60, "fail_closed": true}}',
    )
    monkeypatch.setenv("UPSTREAM_POLICIES", '{"order-service": {"read_timeout": 60}}')

    settings = Settings()

    assert "anonymous" not in settings.rate_limits
    assert settings.rate_limits["auth-login"].requests == 5
    assert settings.rate_limits["auth-login"].methods == frozenset({"POST"})
    # Untouched rules keep their defaults, credential routes fail closed.
    assert settings.rate_limits["auth-register"].fail_closed
    assert not settings.rate_limits["user-staff"].fail_closed
    assert settings.upstream_policy("order-service").read_timeout == 60
    assert settings.upstream_policy("order-service").connect_timeout == 1.0
    assert settings.upstream_policy("user-service").read_timeout == 30.0


def test_invalid_policy_or_public_route_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPSTREAM_POLICIES", '{"order-service": {"read_timeout": -1}}')
    with pytest.raises(ValueError, match="read_timeout"):
        Settings()
    monkeypatch.delenv("UPSTREAM_POLICIES")
    monkeypatch.setenv("PUBLIC_ROUTES", "POST /internal/users")
    with pytest.raises(ValueError, match="public route"):
        Settings()


def test_pooled_upstream_connections_are_let_go_before_the_server_closes_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Reusing a connection the upstream is closing fails a POST with 503 (seen in the e2e).
    assert Settings().upstream_keepalive_seconds < SERVER_KEEPALIVE_SECONDS
    monkeypatch.setenv("UPSTREAM_KEEPALIVE_SECONDS", str(SERVER_KEEPALIVE_SECONDS))
    with pytest.raises(ValueError, match="upstream_keepalive_seconds"):
        Settings()


async def test_a_new_service_is_routed_by_configuration_alone(
    open_gateway: OpenGateway, stub_factory: Any, token_issuer: TokenIssuer
) -> None:
    runway = await stub_factory("runway-service")
    async with open_gateway(
        routes={"runway": "runway-service"}, upstream_urls={"runway-service": runway.url}
    ) as gw:
        response = await gw.client.get("/api/v1/runway/sites/1", headers=token_issuer.headers())

    assert response.status_code == 200
    assert response.json()["service"] == "runway-service"
