"""When user-service is down or refuses us, admins get a clear problem, never a hang or a lie."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from conftest import AdminClientFactory, AuditRows, UserServiceStub


def assert_problem_naming_user_service(response: httpx.Response, status: int) -> None:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert "user-service" in body["detail"]
    assert body["correlation_id"] == response.headers["X-Request-ID"]
    assert "Traceback" not in response.text


async def test_user_service_down_is_503_naming_it_when_listing(
    admin_client: httpx.AsyncClient,
    user_service: UserServiceStub,
    platform_admin: dict[str, str],
) -> None:
    user_service.failure = httpx.ConnectError

    response = await admin_client.get("/api/v1/admin/vendors", headers=platform_admin)

    assert_problem_naming_user_service(response, 503)
    # A read is safe to retry, so it was tried more than once before giving up.
    assert len(user_service.requests) > 1


async def test_user_service_down_is_503_on_verify_sent_once_and_not_audited(
    admin_client: httpx.AsyncClient,
    user_service: UserServiceStub,
    platform_admin: dict[str, str],
    audit_rows: AuditRows,
) -> None:
    user_service.failure = httpx.ConnectError
    org_id = str(uuid.uuid4())

    response = await admin_client.post(
        f"/api/v1/admin/vendors/{org_id}/verify", headers=platform_admin
    )

    assert_problem_naming_user_service(response, 503)
    # A POST may already have taken effect: it is never repeated.
    assert len(user_service.requests) == 1
    assert await audit_rows(org_id) == []


async def test_user_service_rejecting_our_service_key_is_a_bad_gateway_not_a_401(
    admin_client_for: AdminClientFactory,
    user_service: UserServiceStub,
    platform_admin: dict[str, str],
) -> None:
    vendor = user_service.add_vendor("Gas Co")

    async with admin_client_for(service_key="a-key-user-service-does-not-trust") as client:
        response = await client.post(
            f"/api/v1/admin/vendors/{vendor['id']}/verify", headers=platform_admin
        )

    # The admin's own credentials are fine; telling them 401 would mislead.
    assert_problem_naming_user_service(response, 502)
    assert vendor["verified"] is False
