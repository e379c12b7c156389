"""Members by invitation (security finding 4): POST /organizations/{id}/members invites
(the same answer whether or not the address has an account), the invitee accepts
with the e-mailed one-time token, org admins list and revoke invitations and
remove members, which ends the member's sessions at once."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

ACCEPT = "/api/v1/auth/invitations/accept"


def _members_url(account: Any) -> str:
    return f"/api/v1/organizations/{account.organization['id']}/members"


async def _invite(
    http: httpx.AsyncClient, admin: Any, email: str, role: str = "staff"
) -> httpx.Response:
    return await http.post(
        _members_url(admin),
        headers=admin.headers,
        json={"email": email, "full_name": "Invited Person", "role": role},
    )


async def test_an_invitation_answers_alike_whether_or_not_the_address_has_an_account(
    client: httpx.AsyncClient, accounts: Any, mailbox: Any
) -> None:
    admin = await accounts.register(client)
    elsewhere = await accounts.register(client, kind="vendor", log_in=False)
    fresh_email = accounts.unique_email("fresh")

    for_existing = await _invite(client, admin, elsewhere.email.upper())
    for_fresh = await _invite(client, admin, fresh_email)

    assert for_existing.status_code == for_fresh.status_code == 202
    existing_body, fresh_body = for_existing.json(), for_fresh.json()
    assert set(existing_body) == set(fresh_body) == {"id", "email", "role", "status", "expires_at"}
    assert existing_body["status"] == fresh_body["status"] == "pending"
    assert existing_body["email"] == elsewhere.email

    # Byte for byte the same once the address, id and moment are set aside.
    def masked(body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "id": "-", "email": "-", "expires_at": "-"}

    assert masked(existing_body) == masked(fresh_body)
    assert for_existing.headers["content-type"] == for_fresh.headers["content-type"]
    # Both got an e-mail; only the invitee's own mailbox learns the account exists.
    assert mailbox.last_to(elsewhere.email)["has_account"] is True
    assert mailbox.last_to(fresh_email)["has_account"] is False
    assert all(key for key in mailbox.service_keys)


async def test_the_invitee_accepts_with_the_token_and_their_password(
    client: httpx.AsyncClient, accounts: Any, mailbox: Any, users_db: AsyncEngine
) -> None:
    admin = await accounts.register(client)
    email = accounts.unique_email("ward")
    invited = await _invite(client, admin, email, role="org_admin")
    token = mailbox.last_to(email)["token"]

    # Only the token's hash is stored.
    async with users_db.connect() as conn:
        stored = (
            await conn.execute(
                text("SELECT token_hash FROM invitations WHERE id = :id"),
                {"id": invited.json()["id"]},
            )
        ).scalar_one()
    assert stored == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(invited.json())

    accepted = await client.post(
        ACCEPT, json={"token": token, "password": accounts.password, "full_name": "Wanda Ward"}
    )
    assert accepted.status_code == 201, accepted.text
    user = accepted.json()
    assert (user["email"], user["role"], user["full_name"]) == (email, "org_admin", "Wanda Ward")
    assert user["org_id"] == admin.organization["id"]
    tokens = await accounts.login(client, email, accounts.password)
    me = await client.get("/api/v1/users/me", headers=accounts.bearer(tokens["access_token"]))
    assert me.json()["organization"]["id"] == admin.organization["id"]

    pending = await client.get(
        f"/api/v1/organizations/{admin.organization['id']}/invitations", headers=admin.headers
    )
    assert pending.json()["total"] == 0


async def test_spent_unknown_revoked_and_expired_tokens_get_one_answer(
    client: httpx.AsyncClient, accounts: Any, mailbox: Any, users_db: AsyncEngine
) -> None:
    admin = await accounts.register(client)
    spent_email, revoked_email, expired_email = (
        accounts.unique_email(label) for label in ("spent", "revoked", "expired")
    )
    await _invite(client, admin, spent_email)
    spent = mailbox.last_to(spent_email)["token"]
    assert (
        await client.post(ACCEPT, json={"token": spent, "password": accounts.password})
    ).status_code == 201

    revoked_invitation = (await _invite(client, admin, revoked_email)).json()
    revoke = await client.delete(
        f"/api/v1/organizations/{admin.organization['id']}/invitations/{revoked_invitation['id']}",
        headers=admin.headers,
    )
    assert revoke.status_code == 204

    expired_invitation = (await _invite(client, admin, expired_email)).json()
    async with users_db.begin() as conn:
        await conn.execute(
            text("UPDATE invitations SET expires_at = now() - interval '1 second' WHERE id = :i"),
            {"i": expired_invitation["id"]},
        )

    answers = [
        await client.post(ACCEPT, json={"token": token, "password": accounts.password})
        for token in (
            spent,
            mailbox.last_to(revoked_email)["token"],
            mailbox.last_to(expired_email)["token"],
            "never-issued-" + uuid.uuid4().hex,
        )
    ]
    assert {a.status_code for a in answers} == {400}
    bodies = [{k: v for k, v in a.json().items() if k != "correlation_id"} for a in answers]
    assert all(body == bodies[0] for body in bodies)
    assert bodies[0]["type"].endswith("invalid-invitation")
    async with users_db.connect() as conn:
        created = await conn.scalar(
            text("SELECT count(*) FROM users WHERE email IN (:a, :b)"),
            {"a": revoked_email, "b": expired_email},
        )
    assert created == 0


async def test_accepting_never_moves_an_existing_account(
    client: httpx.AsyncClient, accounts: Any, mailbox: Any
) -> None:
    admin = await accounts.register(client)
    other = await accounts.register(client, kind="vendor")
    await _invite(client, admin, other.email)
    token = mailbox.last_to(other.email)["token"]

    refused = await client.post(ACCEPT, json={"token": token, "password": "a brand new password"})

    assert refused.status_code == 409
    assert refused.json()["type"].endswith("account-exists")
    me = await client.get("/api/v1/users/me", headers=other.headers)
    assert me.json()["organization"]["id"] == other.organization["id"]
    # The old password still works, the new one was not set.
    await accounts.login(client, other.email, other.password)
    pending = await client.get(
        f"/api/v1/organizations/{admin.organization['id']}/invitations", headers=admin.headers
    )
    assert [i["email"] for i in pending.json()["items"]] == [other.email]


async def test_a_new_invitation_replaces_the_pending_one(
    client: httpx.AsyncClient, accounts: Any, mailbox: Any
) -> None:
    admin = await accounts.register(client)
    email = accounts.unique_email("twice")
    await _invite(client, admin, email)
    first = mailbox.last_to(email)["token"]
    await _invite(client, admin, email, role="org_admin")

    old = await client.post(ACCEPT, json={"token": first, "password": accounts.password})
    new = await client.post(
        ACCEPT, json={"token": mailbox.last_to(email)["token"], "password": accounts.password}
    )
    assert old.status_code == 400
    assert new.status_code == 201
    assert new.json()["role"] == "org_admin"


async def test_no_invitation_is_kept_when_its_email_cannot_be_sent(
    client: httpx.AsyncClient, accounts: Any, mailbox: Any
) -> None:
    admin = await accounts.register(client)
    mailbox.refusing = True
    refused = await _invite(client, admin, accounts.unique_email("lost"))
    assert refused.status_code == 503
    pending = await client.get(
        f"/api/v1/organizations/{admin.organization['id']}/invitations", headers=admin.headers
    )
    assert pending.json()["total"] == 0


async def test_only_the_orgs_admin_invites_lists_and_revokes(
    client: httpx.AsyncClient, accounts: Any, mailbox: Any
) -> None:
    admin = await accounts.register(client)
    outsider = await accounts.register(client)
    staff = await accounts.add_member(client, admin, mailbox)
    org_id = admin.organization["id"]
    body = {"email": accounts.unique_email("m"), "full_name": "New Member", "role": "staff"}
    url = f"/api/v1/organizations/{org_id}/members"

    assert (await client.post(url, headers=outsider.headers, json=body)).status_code == 404
    assert (await client.post(url, headers=staff.headers, json=body)).status_code == 403
    assert (await client.post(url, json=body)).status_code == 401
    for bad in (
        {**body, "role": "platform_admin"},
        {**body, "password": accounts.password},  # the invitee chooses their own
        {**body, "org_id": str(uuid.uuid4())},
    ):
        assert (await client.post(url, headers=admin.headers, json=bad)).status_code == 422
    invitation = (await client.post(url, headers=admin.headers, json=body)).json()
    invitations = f"/api/v1/organizations/{org_id}/invitations"
    assert (await client.get(invitations, headers=staff.headers)).status_code == 403
    assert (await client.get(invitations, headers=outsider.headers)).status_code == 404
    listed = await client.get(invitations, headers=admin.headers)
    assert [i["id"] for i in listed.json()["items"]] == [invitation["id"]]
    revoke_url = f"{invitations}/{invitation['id']}"
    assert (await client.delete(revoke_url, headers=staff.headers)).status_code == 403
    assert (await client.delete(revoke_url, headers=admin.headers)).status_code == 204
    assert (await client.delete(revoke_url, headers=admin.headers)).status_code == 404


async def test_removing_a_member_ends_their_sessions_at_once(
    client: httpx.AsyncClient, accounts: Any, mailbox: Any
) -> None:
    admin = await accounts.register(client)
    staff = await accounts.add_member(client, admin, mailbox)
    org = f"/api/v1/organizations/{admin.organization['id']}"
    assert (await client.get(org, headers=staff.headers)).status_code == 200

    removed = await client.delete(
        f"{_members_url(admin)}/{staff.user['id']}", headers=admin.headers
    )

    assert removed.status_code == 204
    # The live access token dies now (the token epoch), not when it expires: even where
    # the account itself is not looked up.
    assert (await client.get(org, headers=staff.headers)).status_code == 401
    assert (await client.get("/api/v1/users/me", headers=staff.headers)).status_code == 401
    assert (
        await client.post("/api/v1/auth/refresh", json={"refresh_token": staff.refresh_token})
    ).status_code == 401
    gone = await client.post(
        "/api/v1/auth/login", json={"email": staff.email, "password": staff.password}
    )
    assert gone.status_code == 401
    members = await client.get(_members_url(admin), headers=admin.headers)
    assert [m["email"] for m in members.json()["items"]] == [admin.email]
    # The address is free again: it can be invited anew.
    assert (await _invite(client, admin, staff.email)).status_code == 202


async def test_the_last_org_admin_cannot_be_removed(
    client: httpx.AsyncClient, accounts: Any, mailbox: Any
) -> None:
    admin = await accounts.register(client)
    staff = await accounts.add_member(client, admin, mailbox)
    outsider = await accounts.register(client)
    url = _members_url(admin)

    alone = await client.delete(f"{url}/{admin.user['id']}", headers=admin.headers)
    assert alone.status_code == 409
    assert alone.json()["type"].endswith("last-org-admin")
    assert (
        await client.delete(f"{url}/{admin.user['id']}", headers=staff.headers)
    ).status_code == 403
    assert (
        await client.delete(f"{url}/{admin.user['id']}", headers=outsider.headers)
    ).status_code == 404
    assert (
        await client.delete(f"{url}/{outsider.user['id']}", headers=admin.headers)
    ).status_code == 404

    # With a second org_admin, one may leave; the one left cannot.
    second = await accounts.add_member(client, admin, mailbox, role="org_admin")
    assert (
        await client.delete(f"{url}/{admin.user['id']}", headers=admin.headers)
    ).status_code == 204
    last = await client.delete(f"{url}/{second.user['id']}", headers=second.headers)
    assert last.status_code == 409


async def test_two_admins_removing_each_other_at_once_leave_one(
    client: httpx.AsyncClient, accounts: Any, mailbox: Any, users_db: AsyncEngine
) -> None:
    first = await accounts.register(client)
    second = await accounts.add_member(client, first, mailbox, role="org_admin")
    url = _members_url(first)

    answers = await asyncio.gather(
        client.delete(f"{url}/{second.user['id']}", headers=first.headers),
        client.delete(f"{url}/{first.user['id']}", headers=second.headers),
    )

    statuses = sorted(a.status_code for a in answers)
    assert statuses[0] == 204, statuses
    # The other saw one admin left (409), or its token was already revoked (401).
    assert statuses[1] in (401, 409), statuses
    async with users_db.connect() as conn:
        admins = await conn.scalar(
            text("SELECT count(*) FROM users WHERE org_id = :o AND role = 'org_admin'"),
            {"o": first.organization["id"]},
        )
    assert admins == 1
