"""SPEC Identity: /users/me (PATCH changes full_name only) and the password change."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


async def test_patch_me_changes_full_name(client: httpx.AsyncClient, accounts: Any) -> None:
    account = await accounts.register(client)
    response = await client.patch(
        "/api/v1/users/me", headers=account.headers, json={"full_name": "  Grace Hopper "}
    )
    assert response.status_code == 200, response.text
    assert response.json()["full_name"] == "Grace Hopper"
    me = await client.get("/api/v1/users/me", headers=account.headers)
    assert me.json()["full_name"] == "Grace Hopper"


async def test_patch_me_refuses_other_fields_and_changes_nothing(
    client: httpx.AsyncClient, accounts: Any, users_db: AsyncEngine
) -> None:
    account = await accounts.register(client)
    for body in (
        {"full_name": "Mallory", "role": "platform_admin"},
        {"role": "platform_admin"},
        {"full_name": "Mallory", "org_id": "00000000-0000-0000-0000-000000000001"},
        {"full_name": "Mallory", "email": "other@example.org"},
    ):
        response = await client.patch("/api/v1/users/me", headers=account.headers, json=body)
        assert response.status_code == 422, body
    async with users_db.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT role, full_name, org_id::text FROM users WHERE email = :e"),
                {"e": account.email},
            )
        ).one()
    assert tuple(row) == ("org_admin", "Test Person", account.organization["id"])


async def test_me_needs_a_valid_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/users/me")).status_code == 401
    bad = await client.get("/api/v1/users/me", headers={"Authorization": "Bearer not.a.jwt"})
    assert bad.status_code == 401
    assert bad.headers["content-type"].startswith("application/problem+json")


async def test_change_password(client: httpx.AsyncClient, accounts: Any) -> None:
    account = await accounts.register(client)
    new_password = "a much better passphrase"

    wrong = await client.post(
        "/api/v1/users/me/password",
        headers=account.headers,
        json={"current_password": "not my password", "new_password": new_password},
    )
    assert wrong.status_code == 422
    assert wrong.json()["type"].endswith("wrong-current-password")

    weak = await client.post(
        "/api/v1/users/me/password",
        headers=account.headers,
        json={"current_password": account.password, "new_password": "short"},
    )
    assert weak.status_code == 422

    changed = await client.post(
        "/api/v1/users/me/password",
        headers=account.headers,
        json={"current_password": account.password, "new_password": new_password},
    )
    assert changed.status_code == 204, changed.text

    old = await client.post(
        "/api/v1/auth/login", json={"email": account.email, "password": account.password}
    )
    assert old.status_code == 401
    await accounts.login(client, account.email, new_password)
    # Sessions opened with the old password end.
    refresh = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}
    )
    assert refresh.status_code == 401


async def test_wrong_current_password_counts_towards_the_lockout(
    client: httpx.AsyncClient, accounts: Any
) -> None:
    account = await accounts.register(client)
    body = {"current_password": "guess guess guess", "new_password": "whatever it is now"}
    for _ in range(5):
        response = await client.post(
            "/api/v1/users/me/password", headers=account.headers, json=body
        )
        assert response.status_code == 422
    locked = await client.post("/api/v1/users/me/password", headers=account.headers, json=body)
    assert locked.status_code == 423
    assert locked.headers["retry-after"]
