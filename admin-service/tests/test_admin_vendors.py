"""The vendor rows of SPEC's Admin section: list, verify and suspend through user-service."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from conftest import AuditRows, UserServiceStub


def assert_forwarded_as_admin_service(
    request: httpx.Request, user_service: UserServiceStub, request_id: str
) -> None:
    assert request.headers["X-Service-Key"] == user_service.service_key
    assert request.headers["X-Request-ID"] == request_id


async def test_list_passes_the_verified_filter_and_paging_through(
    admin_client: httpx.AsyncClient,
    user_service: UserServiceStub,
    platform_admin: dict[str, str],
) -> None:
    pending = [user_service.add_vendor(f"Pending {i}") for i in range(3)]
    user_service.add_vendor("Already verified", verified=True)

    response = await admin_client.get(
        "/api/v1/admin/vendors",
        params={"verified": "false", "page": 2, "page_size": 2},
        headers={**platform_admin, "X-Request-ID": "list-vendors-1"},
    )

    assert response.status_code == 200
    assert response.json() == {"items": [pending[2]], "page": 2, "page_size": 2, "total": 3}
    [forwarded] = user_service.requests
    assert forwarded.method == "GET"
    assert forwarded.url.path == "/internal/organizations/vendors"
    assert dict(forwarded.url.params) == {"verified": "false", "page": "2", "page_size": "2"}
    assert_forwarded_as_admin_service(forwarded, user_service, "list-vendors-1")


async def test_list_without_filter_defaults_to_the_first_page_of_twenty(
    admin_client: httpx.AsyncClient,
    user_service: UserServiceStub,
    platform_admin: dict[str, str],
) -> None:
    user_service.add_vendor("Pending")
    user_service.add_vendor("Verified", verified=True)

    response = await admin_client.get("/api/v1/admin/vendors", headers=platform_admin)

    assert response.status_code == 200
    body = response.json()
    assert (body["page"], body["page_size"], body["total"]) == (1, 20, 2)
    [forwarded] = user_service.requests
    assert dict(forwarded.url.params) == {"page": "1", "page_size": "20"}
    # A generated correlation id is passed on as well as echoed.
    assert forwarded.headers["X-Request-ID"] == response.headers["X-Request-ID"]


async def test_list_refuses_page_sizes_over_one_hundred(
    admin_client: httpx.AsyncClient,
    user_service: UserServiceStub,
    platform_admin: dict[str, str],
) -> None:
    response = await admin_client.get(
        "/api/v1/admin/vendors", params={"page_size": 101}, headers=platform_admin
    )

    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert [e["loc"] for e in response.json()["errors"]] == [["query", "page_size"]]
    assert user_service.requests == []


async def test_verify_forwards_the_admin_and_records_an_audit_row(
    admin_client: httpx.AsyncClient,
    user_service: UserServiceStub,
    platform_admin: dict[str, str],
    platform_admin_id: uuid.UUID,
    audit_rows: AuditRows,
) -> None:
    vendor = user_service.add_vendor("Oxy Supplies")

    response = await admin_client.post(
        f"/api/v1/admin/vendors/{vendor['id']}/verify",
        headers={**platform_admin, "X-Request-ID": "verify-1"},
    )

    assert response.status_code == 200
    assert response.json()["verified"] is True
    assert response.json()["id"] == vendor["id"]
    [forwarded] = user_service.requests
    assert forwarded.method == "POST"
    assert forwarded.url.path == f"/internal/organizations/{vendor['id']}/verify"
    assert json.loads(forwarded.content) == {"actor_id": str(platform_admin_id)}
    assert_forwarded_as_admin_service(forwarded, user_service, "verify-1")
    [row] = await audit_rows(vendor["id"])
    assert (row.action, row.actor_id, row.reason) == ("verify", platform_admin_id, None)
    assert row.correlation_id == "verify-1"
    assert row.created_at.tzinfo is not None


async def test_suspend_forwards_the_admin_and_reason_and_records_an_audit_row(
    admin_client: httpx.AsyncClient,
    user_service: UserServiceStub,
    platform_admin: dict[str, str],
    platform_admin_id: uuid.UUID,
    audit_rows: AuditRows,
) -> None:
    vendor = user_service.add_vendor("Shady Gas Ltd", verified=True)

    response = await admin_client.post(
        f"/api/v1/admin/vendors/{vendor['id']}/suspend",
        json={"reason": "expired licence"},
        headers=platform_admin,
    )

    assert response.status_code == 200
    assert response.json()["suspended"] is True
    [forwarded] = user_service.requests
    assert forwarded.url.path == f"/internal/organizations/{vendor['id']}/suspend"
    assert json.loads(forwarded.content) == {
        "actor_id": str(platform_admin_id),
        "reason": "expired licence",
    }
    assert forwarded.headers["X-Service-Key"] == user_service.service_key
    [row] = await audit_rows(vendor["id"])
    assert (row.action, row.actor_id) == ("suspend", platform_admin_id)
    assert row.reason == "expired licence"


async def test_suspend_without_a_body_needs_no_reason(
    admin_client: httpx.AsyncClient,
    user_service: UserServiceStub,
    platform_admin: dict[str, str],
    platform_admin_id: uuid.UUID,
    audit_rows: AuditRows,
) -> None:
    vendor = user_service.add_vendor("Quiet Gas")

    response = await admin_client.post(
        f"/api/v1/admin/vendors/{vendor['id']}/suspend", headers=platform_admin
    )

    assert response.status_code == 200
    [forwarded] = user_service.requests
    assert json.loads(forwarded.content) == {"actor_id": str(platform_admin_id)}
    [row] = await audit_rows(vendor["id"])
    assert (row.action, row.reason) == ("suspend", None)


async def test_suspend_refuses_a_reason_longer_than_user_service_keeps(
    admin_client: httpx.AsyncClient,
    user_service: UserServiceStub,
    platform_admin: dict[str, str],
) -> None:
    vendor = user_service.add_vendor("Verbose Gas")

    response = await admin_client.post(
        f"/api/v1/admin/vendors/{vendor['id']}/suspend",
        json={"reason": "x" * 501},
        headers=platform_admin,
    )

    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["errors"]] == [["body", "reason"]]
    assert user_service.requests == []


async def test_suspend_refuses_unknown_body_fields(
    admin_client: httpx.AsyncClient,
    user_service: UserServiceStub,
    platform_admin: dict[str, str],
    audit_rows: AuditRows,
) -> None:
    vendor = user_service.add_vendor("Gas Co")

    response = await admin_client.post(
        f"/api/v1/admin/vendors/{vendor['id']}/suspend",
        json={"reason": "fraud", "actor_id": str(uuid.uuid4())},
        headers=platform_admin,
    )

    assert response.status_code == 422
    assert user_service.requests == []
    assert await audit_rows(vendor["id"]) == []


async def test_unknown_organisation_is_404_and_leaves_no_audit_row(
    admin_client: httpx.AsyncClient,
    user_service: UserServiceStub,
    platform_admin: dict[str, str],
    audit_rows: AuditRows,
) -> None:
    unknown = str(uuid.uuid4())

    for action in ("verify", "suspend"):
        response = await admin_client.post(
            f"/api/v1/admin/vendors/{unknown}/{action}", headers=platform_admin
        )

        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")
        body = response.json()
        assert body["status"] == 404
        assert body["correlation_id"] == response.headers["X-Request-ID"]
    assert len(user_service.requests) == 2
    # The audit row was flushed before the call; the failed request rolled it back.
    assert await audit_rows(unknown) == []
