"""Admin routes are for platform admins only: others 403, anonymous callers 401, and
nothing is asked of another service on their behalf."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import httpx
import pytest

from flow_shared.testing.tokens import TokenIssuer

if TYPE_CHECKING:
    from conftest import FleetStub, UserServiceStub

ORG_ID = str(uuid.uuid4())
ADMIN_ROUTES = [
    ("GET", "/api/v1/admin/vendors"),
    ("GET", "/api/v1/admin/vendors?verified=false"),
    ("POST", f"/api/v1/admin/vendors/{ORG_ID}/verify"),
    ("POST", f"/api/v1/admin/vendors/{ORG_ID}/suspend"),
    ("GET", "/api/v1/admin/stats"),
    ("GET", "/api/v1/admin/audit"),
    ("GET", "/api/v1/admin/audit?type=order.placed&page=2"),
    ("GET", "/api/v1/admin/health"),
]


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
@pytest.mark.parametrize(
    ("org_kind", "role"),
    [
        ("hospital", "org_admin"),
        ("vendor", "org_admin"),
        ("hospital", "staff"),
        # The admin role claimed outside the platform organisation.
        ("vendor", "platform_admin"),
    ],
)
async def test_non_admins_are_forbidden_on_every_admin_route(
    admin_client: httpx.AsyncClient,
    token_issuer: TokenIssuer,
    user_service: UserServiceStub,
    fleet: FleetStub,
    method: str,
    path: str,
    org_kind: str,
    role: str,
) -> None:
    headers = token_issuer.headers(org_kind=org_kind, role=role)

    response = await admin_client.request(method, path, headers=headers)

    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 403
    # Refused before anything reaches user-service or the other services.
    assert user_service.requests == []
    assert fleet.requests == []


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
async def test_admin_routes_need_a_token(
    admin_client: httpx.AsyncClient,
    user_service: UserServiceStub,
    fleet: FleetStub,
    method: str,
    path: str,
) -> None:
    response = await admin_client.request(method, path)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"].startswith("application/problem+json")
    assert user_service.requests == []
    assert fleet.requests == []


async def test_a_token_signed_by_another_key_is_refused(
    admin_client: httpx.AsyncClient, user_service: UserServiceStub
) -> None:
    stranger = TokenIssuer.create()
    headers = stranger.headers(org_kind="platform", role="platform_admin")

    response = await admin_client.get("/api/v1/admin/vendors", headers=headers)

    assert response.status_code == 401
    assert user_service.requests == []
