"""SPEC Identity: GET /organizations/{id} (members, platform admin; 404 to others) and
POST /organizations/{id}/members (that org's org_admin only)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from user_service.main import create_app


@pytest.fixture
async def platform_admin(make_settings: Any, accounts: Any) -> dict[str, str]:
    """A platform admin created by the bootstrap, and its access token."""
    email = accounts.unique_email("admin")
    settings = make_settings(
        bootstrap_admin_email=email, bootstrap_admin_password=accounts.password
    )
    async with accounts.serve(create_app(settings)) as http:
        tokens = await accounts.login(http, email, accounts.password)
    return {"email": email, "access_token": tokens["access_token"]}


async def test_member_reads_own_organization(client: httpx.AsyncClient, accounts: Any) -> None:
    account = await accounts.register(client)
    org_id = account.organization["id"]
    response = await client.get(f"/api/v1/organizations/{org_id}", headers=account.headers)
    assert response.status_code == 200
    assert response.json()["id"] == org_id
    assert response.json()["kind"] == "hospital"


async def test_other_organization_is_404(client: httpx.AsyncClient, accounts: Any) -> None:
    hospital = await accounts.register(client)
    vendor = await accounts.register(client, kind="vendor")
    foreign = await client.get(
        f"/api/v1/organizations/{vendor.organization['id']}", headers=hospital.headers
    )
    missing = await client.get(f"/api/v1/organizations/{uuid.uuid4()}", headers=hospital.headers)
    assert foreign.status_code == 404
    assert missing.status_code == 404
    # Not even the shape of the answer tells an existing foreign org from a missing one.
    assert foreign.json()["detail"] == missing.json()["detail"]
    members = await client.get(
        f"/api/v1/organizations/{vendor.organization['id']}/members", headers=hospital.headers
    )
    assert members.status_code == 404


async def test_platform_admin_reads_any_organization(
    client: httpx.AsyncClient, accounts: Any, platform_admin: dict[str, str]
) -> None:
    vendor = await accounts.register(client, kind="vendor", log_in=False)
    response = await client.get(
        f"/api/v1/organizations/{vendor.organization['id']}",
        headers=accounts.bearer(platform_admin["access_token"]),
    )
    assert response.status_code == 200
    assert response.json()["verified"] is False


async def test_org_admin_adds_members(client: httpx.AsyncClient, accounts: Any) -> None:
    admin = await accounts.register(client)
    org_id = admin.organization["id"]
    staff_email = accounts.unique_email("staff")
    response = await client.post(
        f"/api/v1/organizations/{org_id}/members",
        headers=admin.headers,
        json={
            "email": staff_email,
            "full_name": "Sam Staff",
            "password": accounts.password,
            "role": "staff",
        },
    )
    assert response.status_code == 201, response.text
    assert response.json()["role"] == "staff"
    assert response.json()["org_id"] == org_id

    staff_tokens = await accounts.login(client, staff_email, accounts.password)
    staff_headers = accounts.bearer(staff_tokens["access_token"])
    assert (
        await client.get(f"/api/v1/organizations/{org_id}", headers=staff_headers)
    ).status_code == 200
    members = await client.get(f"/api/v1/organizations/{org_id}/members", headers=admin.headers)
    assert members.status_code == 200
    assert members.json()["total"] == 2
    assert {m["email"] for m in members.json()["items"]} == {admin.email, staff_email}

    # Staff are members but not admins: 403.
    by_staff = await client.post(
        f"/api/v1/organizations/{org_id}/members",
        headers=staff_headers,
        json={
            "email": accounts.unique_email(),
            "full_name": "X",
            "password": accounts.password,
            "role": "staff",
        },
    )
    assert by_staff.status_code == 403


async def test_members_endpoint_refuses_outsiders_and_bad_bodies(
    client: httpx.AsyncClient, accounts: Any, platform_admin: dict[str, str]
) -> None:
    owner = await accounts.register(client)
    outsider = await accounts.register(client)
    org_id = owner.organization["id"]
    body = {
        "email": accounts.unique_email("m"),
        "full_name": "New Member",
        "password": accounts.password,
        "role": "staff",
    }
    url = f"/api/v1/organizations/{org_id}/members"
    assert (await client.post(url, headers=outsider.headers, json=body)).status_code == 404
    as_admin = await client.post(
        url, headers=accounts.bearer(platform_admin["access_token"]), json=body
    )
    assert as_admin.status_code == 403
    assert (await client.post(url, json=body)).status_code == 401
    for bad in (
        {**body, "role": "platform_admin"},
        {**body, "password": "too short"},
        {**body, "org_id": str(uuid.uuid4())},
    ):
        assert (await client.post(url, headers=owner.headers, json=bad)).status_code == 422
    taken = {**body, "email": outsider.email.upper()}
    assert (await client.post(url, headers=owner.headers, json=taken)).status_code == 409
    # None of the refused attempts created anyone.
    members = await client.get(url, headers=owner.headers)
    assert members.json()["total"] == 1


async def test_member_list_pages(client: httpx.AsyncClient, accounts: Any) -> None:
    admin = await accounts.register(client)
    url = f"/api/v1/organizations/{admin.organization['id']}/members"
    for _ in range(2):
        await client.post(
            url,
            headers=admin.headers,
            json={
                "email": accounts.unique_email(),
                "full_name": "Member",
                "password": accounts.password,
                "role": "staff",
            },
        )
    page = await client.get(url, headers=admin.headers, params={"page": 2, "page_size": 2})
    assert page.status_code == 200
    body = page.json()
    assert (body["page"], body["page_size"], body["total"], len(body["items"])) == (2, 2, 3, 1)
    too_big = await client.get(url, headers=admin.headers, params={"page_size": 101})
    assert too_big.status_code == 422
