"""The token epoch (security finding 12): a password change, a suspension or a member's
removal ends every session of the user at once, live access tokens included, in
every service (the epoch is checked by the shared TokenVerifier), and the epoch
survives Redis losing it."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from flow_shared.auth import suspended_org_key, user_epoch_key
from user_service.main import create_app

NEW_PASSWORD = "a much better passphrase"


async def _change_password(http: httpx.AsyncClient, account: Any) -> httpx.Response:
    return await http.post(
        "/api/v1/users/me/password",
        headers=account.headers,
        json={"current_password": account.password, "new_password": NEW_PASSWORD},
    )


async def test_a_password_change_ends_every_live_access_token_at_once(
    client: httpx.AsyncClient, accounts: Any
) -> None:
    account = await accounts.register(client)
    other_session = await accounts.login(client, account.email, account.password)
    other_headers = accounts.bearer(other_session["access_token"])
    assert (await client.get("/api/v1/users/me", headers=other_headers)).status_code == 200

    assert (await _change_password(client, account)).status_code == 204

    # Both the session that changed it and the other one: tokens signed before are dead.
    for headers in (account.headers, other_headers):
        refused = await client.get("/api/v1/users/me", headers=headers)
        assert refused.status_code == 401
        assert "revoked" in refused.json()["detail"]
    # A login right after (within the same second) gets a token that works.
    fresh = await accounts.login(client, account.email, NEW_PASSWORD)
    me = await client.get("/api/v1/users/me", headers=accounts.bearer(fresh["access_token"]))
    assert me.status_code == 200


async def test_a_wrong_current_password_revokes_nothing(
    client: httpx.AsyncClient, accounts: Any
) -> None:
    account = await accounts.register(client)
    wrong = await client.post(
        "/api/v1/users/me/password",
        headers=account.headers,
        json={"current_password": "not my password", "new_password": NEW_PASSWORD},
    )
    assert wrong.status_code == 422
    assert (await client.get("/api/v1/users/me", headers=account.headers)).status_code == 200


async def test_the_epoch_is_kept_in_the_database_and_restored_when_redis_lost_it(
    make_settings: Any, accounts: Any, redis: Redis, infra: Any, users_db: AsyncEngine
) -> None:
    async with accounts.serve(create_app(make_settings())) as http:
        account = await accounts.register(http)
        assert (await _change_password(http, account)).status_code == 204
    user_id = account.user["id"]
    async with users_db.connect() as conn:
        stored = await conn.scalar(
            text("SELECT tokens_valid_after FROM users WHERE id = :id"), {"id": user_id}
        )
    assert stored is not None
    key = user_epoch_key(infra.redis_prefix, user_id)
    ttl = await redis.ttl(key)
    # Kept as long as a token it refuses could live (15 minutes and a margin), no longer.
    assert 900 < ttl <= 900 + 60

    # Redis lost it (a restart without persistence): the next start puts it back.
    await redis.delete(key)
    async with accounts.serve(create_app(make_settings())) as http:
        assert await redis.get(key) is not None
        refused = await http.get("/api/v1/users/me", headers=account.headers)
        assert refused.status_code == 401


async def test_a_suspension_ends_sessions_for_good_even_once_the_org_mark_is_gone(
    client: httpx.AsyncClient, accounts: Any, redis: Redis, infra: Any
) -> None:
    vendor = await accounts.register(client, kind="vendor")
    org_id = vendor.organization["id"]
    suspended = await client.post(
        f"/internal/organizations/{org_id}/suspend",
        headers=accounts.internal_headers,
        json={"actor_id": str(uuid.uuid4())},
    )
    assert suspended.status_code == 200

    # As after a reinstatement: without the org mark, the epoch still refuses old tokens.
    await redis.delete(suspended_org_key(infra.redis_prefix, org_id))

    refused = await client.get("/api/v1/users/me", headers=vendor.headers)
    assert refused.status_code == 401
    assert "revoked" in refused.json()["detail"]
