"""SPEC "Verified hospitals and licences", admin-service's part: platform admins list
hospitals and vendors, verify them with a licence expiry, suspend and reinstate them,
through user-service's /internal API, each action audited; the projection follows a
reinstatement."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import httpx

from flow_shared.testing.tokens import TokenIssuer

if TYPE_CHECKING:
    from conftest import AuditRows, Projection, UserServiceStub

ORGS = "/api/v1/admin/organizations"


def _future(days: int = 365) -> str:
    return (datetime.now(UTC).date() + timedelta(days=days)).isoformat()


async def test_list_filters_by_kind_verified_and_suspended(
    admin_client: httpx.AsyncClient, user_service: UserServiceStub, platform_admin: dict[str, str]
) -> None:
    waiting = user_service.add_organization("St. Mary")
    user_service.add_organization("Verified General", verified=True)
    user_service.add_organization("Oxy Depot", kind="vendor")

    response = await admin_client.get(
        ORGS,
        params={"kind": "hospital", "verified": "false", "suspended": "false", "page_size": 10},
        headers=platform_admin,
    )

    assert response.status_code == 200, response.text
    assert response.json() == {"items": [waiting], "page": 1, "page_size": 10, "total": 1}
    [forwarded] = user_service.requests
    assert forwarded.url.path == "/internal/organizations"
    assert dict(forwarded.url.params) == {
        "kind": "hospital",
        "verified": "false",
        "suspended": "false",
        "page": "1",
        "page_size": "10",
    }
    everyone = await admin_client.get(ORGS, headers=platform_admin)
    assert everyone.json()["total"] == 3
    bad_kind = await admin_client.get(ORGS, params={"kind": "platform"}, headers=platform_admin)
    assert bad_kind.status_code == 422


async def test_verify_sends_the_licence_expiry_and_is_audited(
    admin_client: httpx.AsyncClient,
    user_service: UserServiceStub,
    platform_admin: dict[str, str],
    platform_admin_id: uuid.UUID,
    audit_rows: AuditRows,
) -> None:
    hospital = user_service.add_organization("St. Mary")
    url = f"{ORGS}/{hospital['id']}/verify"
    for bad in ({}, {"license_expires_on": _future(-1)}, {"license_expires_on": _future(0)}):
        refused = await admin_client.post(url, json=bad, headers=platform_admin)
        assert refused.status_code == 422, bad
    assert user_service.requests == []

    expires = _future()
    response = await admin_client.post(
        url, json={"license_expires_on": expires}, headers=platform_admin
    )

    assert response.status_code == 200, response.text
    assert response.json()["verified"] is True
    assert response.json()["license_expires_on"] == expires
    [forwarded] = user_service.requests
    assert forwarded.url.path == f"/internal/organizations/{hospital['id']}/verify"
    assert json.loads(forwarded.content) == {
        "actor_id": str(platform_admin_id),
        "license_expires_on": expires,
    }
    [row] = await audit_rows(hospital["id"])
    assert (row.action, row.actor_id) == ("verify", platform_admin_id)


async def test_suspend_needs_a_reason_and_reinstate_lifts_it(
    admin_client: httpx.AsyncClient,
    user_service: UserServiceStub,
    platform_admin: dict[str, str],
    platform_admin_id: uuid.UUID,
    audit_rows: AuditRows,
) -> None:
    hospital = user_service.add_organization("St. Mary", verified=True)
    suspend = f"{ORGS}/{hospital['id']}/suspend"
    assert (await admin_client.post(suspend, json={}, headers=platform_admin)).status_code == 422

    suspended = await admin_client.post(
        suspend, json={"reason": "fraud inquiry"}, headers=platform_admin
    )
    assert suspended.status_code == 200, suspended.text
    assert suspended.json()["suspended"] is True
    assert json.loads(user_service.requests[-1].content) == {
        "actor_id": str(platform_admin_id),
        "reason": "fraud inquiry",
    }

    reinstated = await admin_client.post(
        f"{ORGS}/{hospital['id']}/reinstate", headers=platform_admin
    )
    assert reinstated.status_code == 200, reinstated.text
    assert reinstated.json()["suspended"] is False
    assert user_service.requests[-1].url.path.endswith("/reinstate")
    assert json.loads(user_service.requests[-1].content) == {"actor_id": str(platform_admin_id)}
    rows = await audit_rows(hospital["id"])
    assert [(r.action, r.reason) for r in rows] == [
        ("suspend", "fraud inquiry"),
        ("reinstate", None),
    ]


async def test_refused_reinstatement_is_409_and_leaves_no_audit_row(
    admin_client: httpx.AsyncClient,
    user_service: UserServiceStub,
    platform_admin: dict[str, str],
    audit_rows: AuditRows,
) -> None:
    hospital = user_service.add_organization("St. Mary", verified=True)
    user_service.refuse_reinstatement = True
    response = await admin_client.post(f"{ORGS}/{hospital['id']}/reinstate", headers=platform_admin)
    assert response.status_code == 409
    assert response.json()["detail"] == "Renew first."
    assert await audit_rows(hospital["id"]) == []
    unknown = await admin_client.post(f"{ORGS}/{uuid.uuid4()}/reinstate", headers=platform_admin)
    assert unknown.status_code == 404


async def test_vendor_paths_ask_for_vendors_only(
    admin_client: httpx.AsyncClient, user_service: UserServiceStub, platform_admin: dict[str, str]
) -> None:
    hospital = user_service.add_organization("St. Mary")
    for action in ("verify", "suspend"):
        response = await admin_client.post(
            f"/api/v1/admin/vendors/{hospital['id']}/{action}", headers=platform_admin
        )
        assert response.status_code == 404, action
        assert user_service.requests[-1].url.params["kind"] == "vendor"


async def test_organisation_paths_are_for_platform_admins_only(
    admin_client: httpx.AsyncClient, user_service: UserServiceStub, token_issuer: TokenIssuer
) -> None:
    hospital = user_service.add_organization("St. Mary")
    org_admin = token_issuer.headers(org_id=uuid.UUID(hospital["id"]), role="org_admin")
    calls = [
        ("GET", ORGS, None),
        ("POST", f"{ORGS}/{hospital['id']}/verify", {"license_expires_on": _future()}),
        ("POST", f"{ORGS}/{hospital['id']}/suspend", {"reason": "x"}),
        ("POST", f"{ORGS}/{hospital['id']}/reinstate", None),
    ]
    for method, url, body in calls:
        assert (await admin_client.request(method, url, json=body)).status_code == 401
        refused = await admin_client.request(method, url, json=body, headers=org_admin)
        assert refused.status_code == 403, url
    assert user_service.requests == []


async def test_projection_follows_a_reinstatement_whatever_the_delivery_order(
    projection: Projection,
) -> None:
    at = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    hospital = uuid.uuid4()
    registered = projection.user_registered(hospital, kind="hospital", verified=False, at=at)
    verified = projection.organization_event(
        "verified", hospital, kind="hospital", at=at + timedelta(hours=1)
    )
    suspended = projection.organization_event(
        "suspended", hospital, kind="hospital", at=at + timedelta(hours=2)
    )
    reinstated = projection.organization_event(
        "reinstated", hospital, kind="hospital", at=at + timedelta(hours=3)
    )
    await projection.feed(reinstated, suspended, verified, registered)
    fact = await projection.org(hospital)
    assert fact is not None
    assert (fact.kind, fact.verified, fact.suspended) == ("hospital", True, False)

    again = uuid.uuid4()
    await projection.feed(
        projection.organization_event("reinstated", again, at=at + timedelta(hours=1)),
        projection.organization_event("suspended", again, at=at + timedelta(hours=2)),
    )
    fact = await projection.org(again)
    assert fact is not None
    assert fact.suspended is True
