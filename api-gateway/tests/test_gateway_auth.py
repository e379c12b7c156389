"""JWT verification at the edge: every attack is 401 and never reaches a service; public
routes need no token; key rotation works on first use; a kid flood costs one JWKS fetch."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from flow_shared.auth import revoked_jti_key

if TYPE_CHECKING:
    from conftest import Gateway

    from flow_shared.testing.tokens import TokenIssuer

    OpenGateway = Callable[..., AbstractAsyncContextManager[Gateway]]

ME = "/api/v1/users/me"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_parts(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())


def alg_none(issuer: TokenIssuer) -> str:
    return unsigned_parts({"alg": "none", "typ": "JWT", "kid": issuer.active_kid}, issuer.claims())


def hs256_with_public_key(issuer: TokenIssuer) -> str:
    # The classic confusion attack: HMAC keyed with the RSA public key everyone can fetch.
    public_pem = (
        issuer.keys[issuer.active_kid]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    signing_input = unsigned_parts(
        {"alg": "HS256", "typ": "JWT", "kid": issuer.active_kid}, issuer.claims()
    )
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(signature)


def unknown_kid(issuer: TokenIssuer) -> str:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(issuer.claims(), stranger, algorithm="RS256", headers={"kid": "attacker-key"})


def path_like_kid(issuer: TokenIssuer) -> str:
    return jwt.encode(
        issuer.claims(),
        issuer.keys[issuer.active_kid],
        algorithm="RS256",
        headers={"kid": "../../etc/passwd"},
    )


def expired(issuer: TokenIssuer) -> str:
    return issuer.token(ttl=-60)


def wrong_audience(issuer: TokenIssuer) -> str:
    return issuer.sign(issuer.claims(aud="some-other-api"))


def wrong_issuer(issuer: TokenIssuer) -> str:
    return issuer.sign(issuer.claims(iss="evil-issuer"))


def tampered_payload(issuer: TokenIssuer) -> str:
    header, _payload, signature = issuer.token(role="staff").split(".")
    promoted = issuer.claims(org_kind="platform", role="platform_admin")
    return header + "." + b64url(json.dumps(promoted).encode()) + "." + signature


def oversized(issuer: TokenIssuer) -> str:
    # Validly signed, but over the 4 KiB cap: refused before any parsing work.
    return issuer.sign(issuer.claims(padding="x" * 4200))


ATTACKS: dict[str, Callable[[TokenIssuer], str]] = {
    "alg-none": alg_none,
    "hs256-with-public-key": hs256_with_public_key,
    "unknown-kid": unknown_kid,
    "path-like-kid": path_like_kid,
    "expired": expired,
    "wrong-aud": wrong_audience,
    "wrong-iss": wrong_issuer,
    "tampered-payload": tampered_payload,
    "oversized": oversized,
}


@pytest.mark.parametrize("attack", list(ATTACKS), ids=list(ATTACKS))
async def test_jwt_attacks_are_401_and_never_proxied(
    open_gateway: OpenGateway, stub_factory: Any, token_issuer: TokenIssuer, attack: str
) -> None:
    users = await stub_factory("user-service")
    token = ATTACKS[attack](token_issuer)
    async with open_gateway(user_service_url=users.url) as gw:
        attacked = await gw.client.get(ME, headers={"Authorization": f"Bearer {token}"})
        # Control: the same route with an honest token passes, so the 401 is the attack's.
        honest = await gw.client.get(ME, headers=token_issuer.headers())

    assert attacked.status_code == 401
    assert attacked.headers["content-type"] == "application/problem+json"
    assert attacked.headers["www-authenticate"] == "Bearer"
    assert honest.status_code == 200
    assert len(users.requests) == 1


async def test_revoked_jti_is_401(
    open_gateway: OpenGateway, stub_factory: Any, token_issuer: TokenIssuer
) -> None:
    users = await stub_factory("user-service")
    claims = token_issuer.claims()
    token = token_issuer.sign(claims)
    async with open_gateway(user_service_url=users.url) as gw:
        before = await gw.client.get(ME, headers={"Authorization": f"Bearer {token}"})
        await gw.app.state.redis.set(
            revoked_jti_key(gw.settings.redis_key_prefix, claims["jti"]), "1", ex=120
        )
        after = await gw.client.get(ME, headers={"Authorization": f"Bearer {token}"})

    assert before.status_code == 200
    assert after.status_code == 401
    assert len(users.requests) == 1


@pytest.mark.parametrize(
    "authorization", [None, "", "Bearer", "Basic dXNlcjpwYXNz", "Bearer not-a-jwt"]
)
async def test_missing_or_malformed_credentials_are_401(
    open_gateway: OpenGateway, stub_factory: Any, authorization: str | None
) -> None:
    users = await stub_factory("user-service")
    headers = {} if authorization is None else {"Authorization": authorization}
    async with open_gateway(user_service_url=users.url) as gw:
        response = await gw.client.get(ME, headers=headers)
        logout = await gw.client.post("/api/v1/auth/logout", headers=headers)

    assert response.status_code == 401
    # logout is under /auth but not public: it needs the token it revokes.
    assert logout.status_code == 401
    assert users.requests == []


async def test_public_routes_pass_without_a_token(
    open_gateway: OpenGateway, stub_factory: Any
) -> None:
    users = await stub_factory("user-service")
    async with open_gateway(user_service_url=users.url) as gw:
        answers = [
            (await gw.client.post("/api/v1/auth/register", json={"email": "a@b.c"})).status_code,
            (await gw.client.post("/api/v1/auth/login", json={"email": "a@b.c"})).status_code,
            (await gw.client.post("/api/v1/auth/token", data={"username": "a"})).status_code,
            (await gw.client.post("/api/v1/auth/refresh", json={"refresh_token": "r"})).status_code,
            (await gw.client.get("/api/v1/auth/jwks")).status_code,
        ]
        # Public means "this method on this path": GET on login is not public.
        not_public = await gw.client.get("/api/v1/auth/login")

    assert answers == [200] * 5
    assert [(r.method, r.path) for r in users.requests] == [
        ("POST", "/api/v1/auth/register"),
        ("POST", "/api/v1/auth/login"),
        ("POST", "/api/v1/auth/token"),
        ("POST", "/api/v1/auth/refresh"),
        ("GET", "/api/v1/auth/jwks"),
    ]
    assert not_public.status_code == 401


async def test_rotated_key_is_accepted_on_first_use_and_old_tokens_stay_valid(
    open_gateway: OpenGateway, stub_factory: Any, token_issuer: TokenIssuer
) -> None:
    users = await stub_factory("user-service")
    old_token = token_issuer.headers()
    async with open_gateway(user_service_url=users.url) as gw:
        first = await gw.client.get(ME, headers=old_token)
        new_kid = token_issuer.rotate()
        new_token = token_issuer.headers()
        with_new_key = await gw.client.get(ME, headers=new_token)
        with_old_key = await gw.client.get(ME, headers=old_token)

    assert first.status_code == 200
    assert jwt.get_unverified_header(new_token["Authorization"][7:])["kid"] == new_kid
    assert with_new_key.status_code == 200
    assert with_old_key.status_code == 200


async def test_a_flood_of_random_kids_costs_at_most_one_jwks_fetch(
    open_gateway: OpenGateway, stub_factory: Any, token_issuer: TokenIssuer
) -> None:
    users = await stub_factory("user-service")
    signing_key = token_issuer.keys[token_issuer.active_kid]
    forged = [
        jwt.encode(
            token_issuer.claims(),
            signing_key,
            algorithm="RS256",
            headers={"kid": "kid-" + uuid.uuid4().hex},
        )
        for _ in range(50)
    ]
    # The invalid-token budget is lifted: this is about what the JWKS endpoint sees.
    async with open_gateway(user_service_url=users.url, rate_limits={"invalid-token": None}) as gw:
        warm = await gw.client.get(ME, headers=token_issuer.headers())
        fetches_before = token_issuer.jwks_fetches
        answers = await asyncio.gather(
            *(gw.client.get(ME, headers={"Authorization": f"Bearer {t}"}) for t in forged)
        )
        fetches_after = token_issuer.jwks_fetches

    assert warm.status_code == 200
    assert [a.status_code for a in answers] == [401] * 50
    assert fetches_after - fetches_before <= 1
    assert len(users.requests) == 1
