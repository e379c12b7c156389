"""The /internal API admin-service uses: list vendors, verify, suspend (service key
required), the events they emit, and what a suspension does to the org's users."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from flow_shared.auth import suspended_org_key
from flow_shared.testing.outbox import outbox_events

VENDORS = "/internal/organizations/vendors"


async def test_internal_routes_need_a_trusted_service_key(
    client: httpx.AsyncClient, accounts: Any
) -> None:
    vendor = await accounts.register(client, kind="vendor", log_in=False)
    verify = f"/internal/organizations/{vendor.organization['id']}/verify"
    body = {"actor_id": str(uuid.uuid4())}
    for headers in ({}, {"X-Service-Key": "wrong-key"}, {"X-Service-Key": ""}):
        assert (await client.get(VENDORS, headers=headers)).status_code == 401
        assert (await client.post(verify, headers=headers, json=body)).status_code == 401
    # A user's token is no service key either.
    hospital = await accounts.register(client)
    assert (await client.get(VENDORS, headers=hospital.headers)).status_code == 401
    listed = await client.get(VENDORS, headers=accounts.internal_headers)
    assert listed.status_code == 200
    # Internal routes are not part of the public OpenAPI.
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not [p for p in paths if p.startswith("/internal")]


async def test_list_vendors_awaiting_verification(client: httpx.AsyncClient, accounts: Any) -> None:
    vendor = await accounts.register(client, kind="vendor", log_in=False)
    hospital = await accounts.register(client, log_in=False)
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        response = await client.get(
            VENDORS,
            headers=accounts.internal_headers,
            params={"verified": "false", "page": page, "page_size": 100},
        )
        assert response.status_code == 200
        body = response.json()
        items += body["items"]
        if page * body["page_size"] >= body["total"]:
            break
        page += 1
    ids = [item["id"] for item in items]
    assert vendor.organization["id"] in ids
    assert hospital.organization["id"] not in ids
    assert all(item["verified"] is False for item in items)
    item = next(i for i in items if i["id"] == vendor.organization["id"])
    assert set(item) == {"id", "name", "license_number", "verified", "suspended", "created_at"}
    created = [i["created_at"] for i in items]
    assert created == sorted(created)  # oldest first
    too_big = await client.get(
        VENDORS, headers=accounts.internal_headers, params={"page_size": 101}
    )
    assert too_big.status_code == 422


async def test_verify_vendor_once_and_idempotently(
    client: httpx.AsyncClient, accounts: Any, users_db: AsyncEngine
) -> None:
    vendor = await accounts.register(client, kind="vendor")
    org_id = vendor.organization["id"]
    actor = str(uuid.uuid4())
    url = f"/internal/organizations/{org_id}/verify"

    first = await client.post(url, headers=accounts.internal_headers, json={"actor_id": actor})
    assert first.status_code == 200, first.text
    assert first.json()["verified"] is True
    again = await client.post(url, headers=accounts.internal_headers, json={"actor_id": actor})
    assert again.status_code == 200
    assert again.json() == first.json()

    events = await outbox_events(users_db, "organization.verified", org_id=org_id)
    assert len(events) == 1
    assert events[0]["data"]["actor_id"] == actor
    assert events[0]["data"]["kind"] == "vendor"
    assert events[0]["producer"] == "user-service"

    org = await client.get(f"/api/v1/organizations/{org_id}", headers=vendor.headers)
    assert org.json()["verified"] is True
    verified_list = await client.get(
        VENDORS, headers=accounts.internal_headers, params={"verified": "true", "page_size": 100}
    )
    assert all(i["verified"] for i in verified_list.json()["items"])


async def test_actions_take_hospitals_and_vendors_and_the_vendor_paths_only_vendors(
    client: httpx.AsyncClient, accounts: Any, users_db: AsyncEngine
) -> None:
    hospital = await accounts.register(client, log_in=False)
    async with users_db.connect() as conn:
        platform_id = await conn.scalar(text("SELECT id FROM organizations WHERE kind='platform'"))
    body = {"actor_id": str(uuid.uuid4())}
    for org_id in (str(uuid.uuid4()), str(platform_id) if platform_id else str(uuid.uuid4())):
        for action in ("verify", "suspend", "reinstate"):
            response = await client.post(
                f"/internal/organizations/{org_id}/{action}",
                headers=accounts.internal_headers,
                json=body,
            )
            assert response.status_code == 404, (org_id, action)
    # admin-service's vendor paths ask for vendors only: a hospital is not one.
    for action in ("verify", "suspend"):
        response = await client.post(
            f"/internal/organizations/{hospital.organization['id']}/{action}",
            headers=accounts.internal_headers,
            params={"kind": "vendor"},
            json=body,
        )
        assert response.status_code == 404, action
    unknown_field = await client.post(
        f"/internal/organizations/{hospital.organization['id']}/verify",
        headers=accounts.internal_headers,
        json={**body, "verified": False},
    )
    assert unknown_field.status_code == 422


async def test_suspension_locks_the_org_out(
    client: httpx.AsyncClient,
    accounts: Any,
    users_db: AsyncEngine,
    redis: Redis,
    infra: Any,
) -> None:
    vendor = await accounts.register(client, kind="vendor")
    org_id = vendor.organization["id"]
    actor = str(uuid.uuid4())
    url = f"/internal/organizations/{org_id}/suspend"
    body = {"actor_id": actor, "reason": "licence revoked"}

    first = await client.post(url, headers=accounts.internal_headers, json=body)
    assert first.status_code == 200, first.text
    assert first.json()["suspended"] is True
    assert (await client.post(url, headers=accounts.internal_headers, json=body)).status_code == 200

    events = await outbox_events(users_db, "organization.suspended", org_id=org_id)
    assert len(events) == 1
    assert events[0]["data"]["reason"] == "licence revoked"
    assert events[0]["data"]["actor_id"] == actor
    assert await redis.get(suspended_org_key(infra.redis_prefix, org_id)) is not None

    # A token issued before the suspension no longer works...
    assert (await client.get("/api/v1/users/me", headers=vendor.headers)).status_code == 401
    # ...logging in is refused (only after the right password, with a clear reason)...
    login = await client.post(
        "/api/v1/auth/login", json={"email": vendor.email, "password": vendor.password}
    )
    assert login.status_code == 403
    assert login.json()["type"].endswith("organization-suspended")
    wrong = await client.post(
        "/api/v1/auth/login", json={"email": vendor.email, "password": "wrong password!"}
    )
    assert wrong.status_code == 401
    # ...and so is refreshing.
    refresh = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": vendor.refresh_token}
    )
    assert refresh.status_code in (401, 403)


async def test_suspension_marks_are_restored_at_start_up(
    make_settings: Any, accounts: Any, redis: Redis, infra: Any
) -> None:
    from user_service.main import create_app

    async with accounts.serve(create_app(make_settings())) as http:
        vendor = await accounts.register(http, kind="vendor", log_in=False)
        org_id = vendor.organization["id"]
        suspended = await http.post(
            f"/internal/organizations/{org_id}/suspend",
            headers=accounts.internal_headers,
            json={"actor_id": str(uuid.uuid4())},
        )
        assert suspended.status_code == 200
    # Redis lost the mark (a restart without persistence); the database still knows.
    await redis.delete(suspended_org_key(infra.redis_prefix, org_id))
    async with accounts.serve(create_app(make_settings())):
        assert await redis.get(suspended_org_key(infra.redis_prefix, org_id)) is not None
