"""SPEC Identity: register, login (lockout, no enumeration), the token form,
refresh rotation with reuse detection, logout."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import httpx
import jwt
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from flow_shared.auth import revoked_jti_key
from user_service.main import create_app
from user_service.passwords import Passwords


def _problem_essentials(response: httpx.Response) -> dict[str, Any]:
    """A problem body without what differs per request."""
    body = response.json()
    return {k: v for k, v in body.items() if k not in ("correlation_id",)}


async def test_register_login_and_read_me(client: httpx.AsyncClient, accounts: Any) -> None:
    email = accounts.unique_email("Nurse")
    response = await client.post(
        "/api/v1/auth/register",
        json={
            "email": email,
            "password": accounts.password,
            "full_name": "Ada Nurse",
            "organization": {
                "name": "St. Mary",
                "kind": "hospital",
                "license_number": "H-1",
                "phone": "+1 555 0100",
            },
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["user"]["role"] == "org_admin"
    assert body["user"]["email"] == email.lower()
    assert body["user"]["org_id"] == body["organization"]["id"]
    assert body["organization"]["kind"] == "hospital"
    assert "password" not in str(body)
    assert "hash" not in str(body)

    login = await client.post(
        "/api/v1/auth/login", json={"email": email.upper(), "password": accounts.password}
    )
    assert login.status_code == 200, login.text
    tokens = login.json()
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 900
    assert tokens["refresh_token"]
    assert login.headers["cache-control"] == "no-store"
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert claims["sub"] == body["user"]["id"]
    assert claims["org"] == body["organization"]["id"]
    assert (claims["org_kind"], claims["role"]) == ("hospital", "org_admin")
    assert claims["iss"] == "flow-user-service"
    assert claims["aud"] == "flow"
    assert claims["exp"] - int(claims["iat"]) == 900  # iat keeps milliseconds (token epoch)
    assert claims["jti"]

    me = await client.get("/api/v1/users/me", headers=accounts.bearer(tokens["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["email"] == email.lower()
    assert me.json()["organization"]["id"] == body["organization"]["id"]


async def test_vendor_starts_unverified(client: httpx.AsyncClient, accounts: Any) -> None:
    vendor = await accounts.register(client, kind="vendor", log_in=False)
    assert vendor.organization["verified"] is False
    assert vendor.organization["suspended"] is False


async def test_registration_emits_user_registered(
    client: httpx.AsyncClient, accounts: Any, users_db: AsyncEngine
) -> None:
    account = await accounts.register(client, log_in=False)
    async with users_db.connect() as conn:
        payloads = (
            (
                await conn.execute(
                    text(
                        "SELECT payload FROM outbox WHERE event_type = 'user.registered' "
                        "AND payload->'data'->>'user_id' = :uid"
                    ),
                    {"uid": account.user["id"]},
                )
            )
            .scalars()
            .all()
        )
    assert len(payloads) == 1
    data = payloads[0]["data"]
    assert data["org_id"] == account.organization["id"]
    assert data["org_kind"] == "hospital"
    assert accounts.password not in str(payloads[0])


async def test_weak_password_is_422(client: httpx.AsyncClient, accounts: Any) -> None:
    response = await client.post(
        "/api/v1/auth/register",
        json={
            "email": accounts.unique_email(),
            "password": "short-pass1",  # 11 characters
            "full_name": "X",
            "organization": {"name": "H", "kind": "hospital", "license_number": "H-2"},
        },
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert any(err["loc"][-1] == "password" for err in response.json()["errors"])


async def test_taken_email_is_409_in_any_case(client: httpx.AsyncClient, accounts: Any) -> None:
    email = accounts.unique_email("taken")
    await accounts.register(client, email=email, log_in=False)
    for candidate in (email, email.upper()):
        response = await client.post(
            "/api/v1/auth/register",
            json={
                "email": candidate,
                "password": accounts.password,
                "full_name": "Someone Else",
                "organization": {"name": "Other", "kind": "vendor"},
            },
        )
        assert response.status_code == 409, response.text
        assert response.json()["type"].endswith("email-taken")


async def test_platform_kind_and_extra_fields_are_refused(
    client: httpx.AsyncClient, accounts: Any, users_db: AsyncEngine
) -> None:
    email = accounts.unique_email("sneaky")
    base: dict[str, Any] = {
        "email": email,
        "password": accounts.password,
        "full_name": "Sneaky",
        "organization": {"name": "Evil Corp", "kind": "hospital", "license_number": "H-3"},
    }
    attempts = [
        {**base, "role": "platform_admin"},
        {**base, "organization": {"name": "Evil Corp", "kind": "platform"}},
        {**base, "organization": {"name": "Evil Corp", "kind": "vendor", "verified": True}},
    ]
    for body in attempts:
        response = await client.post("/api/v1/auth/register", json=body)
        assert response.status_code == 422, body
    async with users_db.connect() as conn:
        stored = await conn.scalar(
            text("SELECT count(*) FROM users WHERE email = :e"), {"e": email}
        )
    assert stored == 0


async def test_lockout_after_five_failures_is_423_with_retry_after(
    client: httpx.AsyncClient, accounts: Any
) -> None:
    account = await accounts.register(client, log_in=False)
    wrong = {"email": account.email, "password": "not the password at all"}
    for _ in range(5):
        response = await client.post("/api/v1/auth/login", json=wrong)
        assert response.status_code == 401
    sixth = await client.post("/api/v1/auth/login", json=wrong)
    assert sixth.status_code == 423, sixth.text
    assert 0 < int(sixth.headers["retry-after"]) <= 900
    # Even the right password waits for the lock to end.
    right = await client.post(
        "/api/v1/auth/login", json={"email": account.email, "password": account.password}
    )
    assert right.status_code == 423


async def test_success_resets_the_failure_counter(client: httpx.AsyncClient, accounts: Any) -> None:
    account = await accounts.register(client, log_in=False)
    wrong = {"email": account.email, "password": "not the password at all"}
    for _ in range(4):
        assert (await client.post("/api/v1/auth/login", json=wrong)).status_code == 401
    await accounts.login(client, account.email, account.password)
    for _ in range(4):
        assert (await client.post("/api/v1/auth/login", json=wrong)).status_code == 401
    # Four more failures after a success: still not locked (the count restarted).
    await accounts.login(client, account.email, account.password)


async def test_unknown_email_answers_like_a_wrong_password(
    make_settings: Any, accounts: Any
) -> None:
    app = create_app(make_settings())
    counting = _CountingPasswords.wrap(app.state.passwords)
    app.state.passwords = counting
    async with accounts.serve(app) as http:
        account = await accounts.register(http, log_in=False)
        unknown = accounts.unique_email("nobody")
        answers: dict[str, list[httpx.Response]] = {"known": [], "unknown": []}
        for _ in range(6):
            answers["known"].append(
                await http.post(
                    "/api/v1/auth/login",
                    json={"email": account.email, "password": "wrong password here"},
                )
            )
            answers["unknown"].append(
                await http.post(
                    "/api/v1/auth/login",
                    json={"email": unknown, "password": "wrong password here"},
                )
            )
    for known, other in zip(answers["known"], answers["unknown"], strict=True):
        assert known.status_code == other.status_code
        assert _problem_essentials(known) == _problem_essentials(other)
        assert known.headers.get("www-authenticate") == other.headers.get("www-authenticate")
    assert [r.status_code for r in answers["unknown"]] == [401] * 5 + [423]
    assert answers["unknown"][5].headers["retry-after"]
    # The timing class: an unknown e-mail costs one Argon2 verification, like a wrong password.
    assert counting.verifications["unknown"] == 5
    assert counting.verifications["known"] == 5


class _CountingPasswords(Passwords):
    """The app's hasher, counting verifications against real and dummy hashes."""

    verifications: dict[str, int]

    @classmethod
    def wrap(cls, inner: Passwords) -> _CountingPasswords:
        wrapped = cls.__new__(cls)
        wrapped.__dict__.update(inner.__dict__)
        wrapped.verifications = {"known": 0, "unknown": 0}
        return wrapped

    async def verify(self, password_hash: str, password: str) -> bool:
        kind = "unknown" if password_hash == self._dummy_hash else "known"
        self.verifications[kind] += 1
        return await super().verify(password_hash, password)


async def test_token_form_logs_in(client: httpx.AsyncClient, accounts: Any) -> None:
    account = await accounts.register(client, log_in=False)
    response = await client.post(
        "/api/v1/auth/token",
        data={"grant_type": "password", "username": account.email, "password": account.password},
    )
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "bearer"
    me = await client.get(
        "/api/v1/users/me", headers=accounts.bearer(response.json()["access_token"])
    )
    assert me.status_code == 200

    wrong = await client.post(
        "/api/v1/auth/token", data={"username": account.email, "password": "nope nope nope"}
    )
    assert wrong.status_code == 401
    missing = await client.post("/api/v1/auth/token", data={"username": account.email})
    assert missing.status_code == 422
    as_json = await client.post(
        "/api/v1/auth/token", json={"username": account.email, "password": account.password}
    )
    assert as_json.status_code == 422


async def test_refresh_rotates_and_reuse_revokes_the_family(
    client: httpx.AsyncClient, accounts: Any
) -> None:
    account = await accounts.register(client)
    first = account.refresh_token

    rotated = await client.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()["refresh_token"]
    assert second != first
    me = await client.get(
        "/api/v1/users/me", headers=accounts.bearer(rotated.json()["access_token"])
    )
    assert me.status_code == 200

    # The spent token again: a thief or a replay. The family (this session) dies.
    reuse = await client.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert reuse.status_code == 401
    assert reuse.json()["type"].endswith("refresh-token-reused")
    after = await client.post("/api/v1/auth/refresh", json={"refresh_token": second})
    assert after.status_code == 401

    # Another session (another login) of the same user is a different family and lives on.
    other = await accounts.login(client, account.email, account.password)
    assert (
        await client.post("/api/v1/auth/refresh", json={"refresh_token": other["refresh_token"]})
    ).status_code == 200


async def test_refresh_with_garbage_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/auth/refresh", json={"refresh_token": "garbage"})
    assert response.status_code == 401


async def test_refresh_tokens_are_stored_hashed(
    client: httpx.AsyncClient, accounts: Any, users_db: AsyncEngine
) -> None:
    account = await accounts.register(client)
    async with users_db.connect() as conn:
        hashes = (
            (
                await conn.execute(
                    text("SELECT token_hash FROM refresh_tokens WHERE user_id = :u"),
                    {"u": uuid.UUID(account.user["id"])},
                )
            )
            .scalars()
            .all()
        )
    assert len(hashes) == 1
    assert account.refresh_token not in hashes[0]
    assert hashes[0] == hashlib.sha256(account.refresh_token.encode()).hexdigest()


async def test_logout_revokes_access_and_refresh_token(
    client: httpx.AsyncClient, accounts: Any, redis: Redis, infra: Any
) -> None:
    account = await accounts.register(client)
    assert (await client.get("/api/v1/users/me", headers=account.headers)).status_code == 200

    response = await client.post(
        "/api/v1/auth/logout",
        headers=account.headers,
        json={"refresh_token": account.refresh_token},
    )
    assert response.status_code == 204, response.text

    assert (await client.get("/api/v1/users/me", headers=account.headers)).status_code == 401
    refresh = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}
    )
    assert refresh.status_code == 401
    jti = jwt.decode(account.access_token, options={"verify_signature": False})["jti"]
    ttl = await redis.ttl(revoked_jti_key(infra.redis_prefix, jti))
    assert 0 < ttl <= 900  # kept exactly as long as the token could be used


async def test_logout_without_body_revokes_only_the_access_token(
    client: httpx.AsyncClient, accounts: Any
) -> None:
    account = await accounts.register(client)
    assert (await client.post("/api/v1/auth/logout", headers=account.headers)).status_code == 204
    assert (await client.get("/api/v1/users/me", headers=account.headers)).status_code == 401
    refresh = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}
    )
    assert refresh.status_code == 200


async def test_logout_needs_a_token(client: httpx.AsyncClient) -> None:
    assert (await client.post("/api/v1/auth/logout")).status_code == 401
