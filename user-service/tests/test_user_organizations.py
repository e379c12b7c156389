"""SPEC Identity: GET /organizations/{id} (members, platform admin; 404 to others) and
the member list; inviting and removing members is in test_user_members.py."""

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


async def test_member_list_pages(client: httpx.AsyncClient, accounts: Any, mailbox: Any) -> None:
    admin = await accounts.register(client)
    url = f"/api/v1/organizations/{admin.organization['id']}/members"
    for _ in range(2):
        await accounts.add_member(client, admin, mailbox)
    page = await client.get(url, headers=admin.headers, params={"page": 2, "page_size": 2})
    assert page.status_code == 200
    body = page.json()
    assert (body["page"], body["page_size"], body["total"], len(body["items"])) == (2, 2, 3, 1)
    too_big = await client.get(url, headers=admin.headers, params={"page_size": 101})
    assert too_big.status_code == 422
