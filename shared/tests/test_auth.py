"""JWT verification that the token cannot steer, revocation in Redis, role and org-kind
dependencies, service keys for /internal, and a JWKS cache that a kid flood cannot hammer."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter
from redis.asyncio import Redis

from flow_shared.auth import (
    JWKSCache,
    Principal,
    TokenVerifier,
    accepts_callers,
    check_internal_routes,
    revoked_jti_key,
    suspended_org_key,
    user_epoch_key,
)
from flow_shared.errors import ServiceUnavailable, Unauthorized
from flow_shared.testing.infra import caller_key
from flow_shared.testing.tokens import AUDIENCE, ISSUER, TokenIssuer

if TYPE_CHECKING:
    from conftest import ShowcaseClientFactory

    from flow_shared.testing.infra import TestInfra

ALGORITHMS = ["RS256"]
REQUIRED_CLAIMS = ["exp", "iat", "sub", "jti", "aud", "iss", "org", "org_kind", "role"]
TRUSTED_CALLER_KEY = caller_key("order-service")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_parts(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"


@pytest.fixture(scope="module")
def issuer() -> TokenIssuer:
    return TokenIssuer.create()


@pytest.fixture
async def revocation_redis(infra: TestInfra) -> AsyncIterator[Redis]:
    redis = Redis.from_url(infra.redis_url, decode_responses=True)
    yield redis
    await redis.aclose()


@dataclass
class Revocations:
    """Marks in Redis as user-service and admin-service write them, expiring after a minute."""

    redis: Redis
    prefix: str

    async def mark(self, key_of: Callable[[str, Any], str], subject: Any, value: Any = "1") -> None:
        await self.redis.set(key_of(self.prefix, subject), value, ex=60)


@pytest.fixture
def revocations(revocation_redis: Redis, infra: TestInfra) -> Revocations:
    return Revocations(revocation_redis, infra.redis_prefix)


@pytest.fixture
def jwks(issuer: TokenIssuer) -> JWKSCache:
    return JWKSCache(issuer.fetch_jwks, algorithms=ALGORITHMS, refetch_cooldown_seconds=30)


def make_verifier(jwks: JWKSCache, redis: Redis, infra: TestInfra, **options: Any) -> TokenVerifier:
    return TokenVerifier(
        jwks,
        issuer=ISSUER,
        audience=AUDIENCE,
        algorithms=ALGORITHMS,
        redis=redis,
        redis_prefix=infra.redis_prefix,
        **options,
    )


@pytest.fixture
def verifier(jwks: JWKSCache, revocation_redis: Redis, infra: TestInfra) -> TokenVerifier:
    return make_verifier(jwks, revocation_redis, infra)


async def assert_refused(verifier: TokenVerifier, token: str) -> Unauthorized:
    with pytest.raises(Unauthorized) as refused:
        await verifier.verify(token)
    assert refused.value.status == 401
    return refused.value


async def test_a_valid_token_gives_the_principal(
    verifier: TokenVerifier, issuer: TokenIssuer
) -> None:
    user_id, org_id = uuid.uuid4(), uuid.uuid4()

    principal = await verifier.verify(
        issuer.token(org_kind="vendor", role="staff", user_id=user_id, org_id=org_id)
    )

    assert isinstance(principal, Principal)
    assert (principal.user_id, principal.org_id) == (user_id, org_id)
    assert (principal.org_kind, principal.role) == ("vendor", "staff")
    assert not principal.is_platform_admin


async def test_alg_none_is_refused(verifier: TokenVerifier, issuer: TokenIssuer) -> None:
    header = {"alg": "none", "typ": "JWT", "kid": issuer.active_kid}
    token = unsigned_parts(header, issuer.claims(role="platform_admin")) + "."

    await assert_refused(verifier, token)


async def test_hs256_signed_with_the_public_key_is_refused(
    verifier: TokenVerifier, issuer: TokenIssuer
) -> None:
    public_pem = (
        issuer.keys[issuer.active_kid]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": issuer.active_kid}
    signing_input = unsigned_parts(header, issuer.claims(role="platform_admin"))
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()

    await assert_refused(verifier, f"{signing_input}.{b64url(signature)}")


async def test_a_token_from_an_unknown_key_is_refused(verifier: TokenVerifier) -> None:
    stranger = TokenIssuer.create()

    await assert_refused(verifier, stranger.token())


@pytest.mark.parametrize("kid", ["../../../etc/passwd", "keys/main", "a b", "k" * 65])
async def test_a_path_like_or_odd_kid_is_refused_without_fetching_keys(
    verifier: TokenVerifier, jwks: JWKSCache, issuer: TokenIssuer, kid: str
) -> None:
    key = issuer.keys[issuer.active_kid]
    token = jwt.encode(issuer.claims(), key, algorithm="RS256", headers={"kid": kid})

    await assert_refused(verifier, token)
    assert jwks.fetch_count == 0


async def test_an_expired_token_is_refused(verifier: TokenVerifier, issuer: TokenIssuer) -> None:
    await assert_refused(verifier, issuer.token(ttl=-1))


@pytest.mark.parametrize(("claim", "value"), [("aud", "other-platform"), ("iss", "evil-issuer")])
async def test_a_token_for_another_audience_or_issuer_is_refused(
    verifier: TokenVerifier, issuer: TokenIssuer, claim: str, value: str
) -> None:
    await assert_refused(verifier, issuer.token(**{claim: value}))


async def test_a_tampered_payload_is_refused(verifier: TokenVerifier, issuer: TokenIssuer) -> None:
    header, _payload, signature = issuer.token(role="staff").split(".")
    forged = b64url(json.dumps(issuer.claims(role="platform_admin")).encode())

    await assert_refused(verifier, f"{header}.{forged}.{signature}")


async def test_an_oversized_token_is_refused(verifier: TokenVerifier, issuer: TokenIssuer) -> None:
    # Correctly signed, but large enough to be an abuse of every service's CPU and memory.
    token = issuer.token(padding="x" * 5000)

    refused = await assert_refused(verifier, token)
    assert "large" in refused.detail


@pytest.mark.parametrize("claim", REQUIRED_CLAIMS)
async def test_a_token_missing_a_required_claim_is_refused(
    verifier: TokenVerifier, issuer: TokenIssuer, claim: str
) -> None:
    claims = issuer.claims()
    del claims[claim]

    await assert_refused(verifier, issuer.sign(claims))


@pytest.mark.parametrize(
    ("claim", "value"), [("org_kind", "martian"), ("role", "superuser"), ("sub", "not-a-uuid")]
)
async def test_a_token_with_an_invalid_claim_value_is_refused(
    verifier: TokenVerifier, issuer: TokenIssuer, claim: str, value: str
) -> None:
    await assert_refused(verifier, issuer.token(**{claim: value}))


async def test_a_revoked_jti_is_refused(
    verifier: TokenVerifier, issuer: TokenIssuer, revocations: Revocations
) -> None:
    claims = issuer.claims()
    token = issuer.sign(claims)
    await verifier.verify(token)

    await revocations.mark(revoked_jti_key, claims["jti"])

    refused = await assert_refused(verifier, token)
    assert "revoked" in refused.detail


async def test_a_suspended_organisations_token_is_refused(
    verifier: TokenVerifier, issuer: TokenIssuer, revocations: Revocations
) -> None:
    org_id = uuid.uuid4()
    token = issuer.token(org_id=org_id)
    await verifier.verify(token)

    await revocations.mark(suspended_org_key, org_id)

    refused = await assert_refused(verifier, token)
    assert "suspended" in refused.detail


async def test_tokens_issued_before_the_users_epoch_are_refused_and_later_ones_pass(
    verifier: TokenVerifier, issuer: TokenIssuer, revocations: Revocations
) -> None:
    user_id = uuid.uuid4()
    now = time.time()
    # Sub-second iat: a token signed a moment after the epoch (a new login) must pass.
    # No iat in the future: PyJWT compares the whole seconds of iat with the clock.
    epoch = now - 0.3
    older = issuer.token(user_id=user_id, iat=now - 0.5)
    newer = issuer.token(user_id=user_id, iat=now)
    someone_else = issuer.token(iat=now - 0.5)
    await verifier.verify(older)

    await revocations.mark(user_epoch_key, user_id, str(epoch))

    refused = await assert_refused(verifier, older)
    assert "revoked" in refused.detail
    assert (await verifier.verify(newer)).user_id == user_id
    await verifier.verify(someone_else)


async def test_a_remembered_token_is_refused_once_its_users_epoch_passes_it(
    verifier: TokenVerifier,
    issuer: TokenIssuer,
    revocations: Revocations,
    decode_calls: list[str],
) -> None:
    claims = issuer.claims()
    token = issuer.sign(claims)
    await verifier.verify(token)
    await verifier.verify(token)

    epoch = claims["iat"] + 0.001
    await revocations.mark(user_epoch_key, claims["sub"], epoch)

    await assert_refused(verifier, token)
    assert decode_calls == [token]  # refused from the cache, without a second full check


async def test_revocation_unknowable_without_redis_fails_closed(
    jwks: JWKSCache, issuer: TokenIssuer, infra: TestInfra
) -> None:
    redis = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    verifier = make_verifier(jwks, redis, infra)
    try:
        with pytest.raises(ServiceUnavailable):
            await verifier.verify(issuer.token())
    finally:
        await redis.aclose()


async def test_a_rotated_in_key_is_found_on_its_first_use_with_one_fetch() -> None:
    issuer = TokenIssuer.create()
    jwks = JWKSCache(issuer.fetch_jwks, algorithms=ALGORITHMS, refetch_cooldown_seconds=30)
    old_kid = issuer.active_kid
    assert await jwks.get(old_kid) is not None
    fetches = jwks.fetch_count

    new_kid = issuer.rotate()

    assert await jwks.get(new_kid) is not None
    assert jwks.fetch_count == fetches + 1
    # The old key stays published, so tokens it signed keep working until they expire.
    assert await jwks.get(old_kid) is not None
    assert jwks.fetch_count == fetches + 1


async def test_a_flood_of_random_kids_costs_at_most_one_fetch_per_cooldown(
    issuer: TokenIssuer, verifier: TokenVerifier, jwks: JWKSCache
) -> None:
    await verifier.verify(issuer.token())
    fetches = jwks.fetch_count
    key = issuer.keys[issuer.active_kid]
    flood = [
        jwt.encode(issuer.claims(), key, algorithm="RS256", headers={"kid": uuid.uuid4().hex})
        for _ in range(50)
    ]

    results = await asyncio.gather(*(verifier.verify(t) for t in flood), return_exceptions=True)

    assert all(isinstance(r, Unauthorized) for r in results)
    assert jwks.fetch_count <= fetches + 1


async def test_an_unknown_kid_is_looked_up_again_after_the_cooldown() -> None:
    issuer = TokenIssuer.create()
    jwks = JWKSCache(issuer.fetch_jwks, algorithms=ALGORITHMS, refetch_cooldown_seconds=0.05)
    await jwks.get(issuer.active_kid)
    assert await jwks.get("not-yet-published") is None
    fetches = jwks.fetch_count

    await asyncio.sleep(0.1)
    assert await jwks.get("still-not-published") is None

    assert jwks.fetch_count == fetches + 1


async def test_a_failing_jwks_endpoint_keeps_the_known_keys_in_service() -> None:
    issuer = TokenIssuer.create()
    calls = 0

    async def flaky_fetch() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise httpx.ConnectError("user-service is down")
        return issuer.jwks()

    # cache_seconds=0: every lookup tries to refresh, and every refresh after the first fails.
    jwks = JWKSCache(flaky_fetch, algorithms=ALGORITHMS, cache_seconds=0)
    assert await jwks.get(issuer.active_kid) is not None

    assert await jwks.get(issuer.active_kid) is not None
    assert calls == 2


async def test_jwks_entries_with_other_algorithms_or_odd_kids_are_ignored() -> None:
    issuer = TokenIssuer.create()
    [rsa_key] = issuer.jwks()["keys"]

    async def fetch() -> dict[str, Any]:
        return {
            "keys": [
                {"kty": "oct", "kid": "hmac", "alg": "HS256", "k": b64url(b"shared-secret")},
                {**rsa_key, "kid": "../escape"},
                {**rsa_key, "kid": "good"},
            ]
        }

    jwks = JWKSCache(fetch, algorithms=ALGORITHMS)

    assert await jwks.get("good") is not None
    assert await jwks.get("hmac") is None
    assert await jwks.get("../escape") is None


async def test_a_request_without_a_bearer_token_is_401(showcase: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer "}):
        response = await showcase.get("/whoami", headers=headers)

        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"


async def test_a_request_with_a_forged_token_is_401(
    showcase: httpx.AsyncClient, token_issuer: TokenIssuer
) -> None:
    header, _payload, signature = token_issuer.token().split(".")
    forged = b64url(json.dumps(token_issuer.claims(role="platform_admin")).encode())

    response = await showcase.get(
        "/admin-only", headers={"Authorization": f"Bearer {header}.{forged}.{signature}"}
    )

    assert response.status_code == 401


@pytest.mark.parametrize(
    ("path", "org_kind", "role", "status"),
    [
        ("/hospital-only", "vendor", "org_admin", 403),
        ("/hospital-only", "platform", "platform_admin", 403),
        ("/hospital-only", "hospital", "staff", 200),
        ("/admin-only", "hospital", "org_admin", 403),
        ("/admin-only", "vendor", "org_admin", 403),
        ("/admin-only", "platform", "platform_admin", 200),
    ],
)
async def test_org_kind_and_role_dependencies(
    showcase: httpx.AsyncClient,
    token_issuer: TokenIssuer,
    path: str,
    org_kind: str,
    role: str,
    status: int,
) -> None:
    response = await showcase.get(path, headers=token_issuer.headers(org_kind=org_kind, role=role))

    assert response.status_code == status
    if status == 403:
        assert response.headers["content-type"] == "application/problem+json"


async def test_one_requests_principal_never_serves_the_next_request(
    showcase: httpx.AsyncClient, token_issuer: TokenIssuer
) -> None:
    admin = token_issuer.headers(org_kind="platform", role="platform_admin")
    assert (await showcase.get("/admin-only", headers=admin)).status_code == 200

    anonymous = await showcase.get("/admin-only")

    assert anonymous.status_code == 401


@pytest.mark.parametrize("key", [None, "", "wrong-key", TRUSTED_CALLER_KEY + "x"])
async def test_internal_routes_need_a_trusted_service_key(
    showcase: httpx.AsyncClient, token_issuer: TokenIssuer, key: str | None
) -> None:
    # A user token is not a substitute for a service key.
    headers = token_issuer.headers(org_kind="platform", role="platform_admin")
    if key is not None:
        headers["X-Service-Key"] = key

    response = await showcase.get("/internal/ping", headers=headers)

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


async def test_internal_routes_accept_a_trusted_service_key(showcase: httpx.AsyncClient) -> None:
    response = await showcase.get("/internal/ping", headers={"X-Service-Key": TRUSTED_CALLER_KEY})

    assert response.status_code == 200


async def test_internal_routes_refuse_a_trusted_service_they_do_not_name(
    showcase: httpx.AsyncClient,
) -> None:
    # pricing-service's key is trusted by this service, but /internal/ping accepts only
    # order-service: a leaked key opens only the routes its own service needs.
    headers = {"X-Service-Key": caller_key("pricing-service")}

    response = await showcase.get("/internal/ping", headers=headers)

    assert response.status_code == 403
    assert response.json()["detail"] == "pricing-service may not call this route."


def test_a_service_with_an_internal_route_naming_no_caller_is_not_built() -> None:
    router = APIRouter(prefix="/internal")

    @router.get("/open")
    async def open_route() -> None:
        return None

    with pytest.raises(ValueError, match=r"must name the services it accepts.*/internal/open"):
        check_internal_routes([router])
    with pytest.raises(ValueError, match="at least one caller"):
        accepts_callers()


async def test_internal_routes_refuse_everyone_when_no_key_is_trusted(
    showcase_client_for: ShowcaseClientFactory,
) -> None:
    async with showcase_client_for(trusted_service_keys={}) as client:
        response = await client.get("/internal/ping", headers={"X-Service-Key": ""})

    assert response.status_code == 401


# --- The per-process cache of verified tokens -------------------------------------------------
# Each test counts jwt.decode (the signature and claims check): a hit must not call it, and the
# counts fail if the cache is removed or if it answers where a full check would not.


class Clock:
    """Wall-clock time unless a test pins it."""

    def __init__(self) -> None:
        self.pinned: float | None = None

    def __call__(self) -> float:
        return time.time() if self.pinned is None else self.pinned


@pytest.fixture
def decode_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real_decode = jwt.decode

    def counting_decode(token: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(token)
        return real_decode(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting_decode)
    return calls


async def test_a_token_seen_before_is_not_checked_again(
    verifier: TokenVerifier, issuer: TokenIssuer, decode_calls: list[str]
) -> None:
    token = issuer.token(org_kind="vendor", role="staff")

    first = await verifier.verify(token)
    again = [await verifier.verify(token) for _ in range(3)]

    assert again == [first] * 3
    assert decode_calls == [token]


async def test_a_refused_token_is_not_remembered(
    verifier: TokenVerifier, issuer: TokenIssuer, decode_calls: list[str]
) -> None:
    token = issuer.token(aud="other-platform")

    await assert_refused(verifier, token)
    await assert_refused(verifier, token)

    assert decode_calls == [token, token]


async def test_a_remembered_token_is_refused_from_its_exp_on(
    jwks: JWKSCache,
    revocation_redis: Redis,
    infra: TestInfra,
    issuer: TokenIssuer,
    decode_calls: list[str],
) -> None:
    clock = Clock()
    verifier = make_verifier(jwks, revocation_redis, infra, clock=clock)
    claims = issuer.claims(ttl=60)
    token = issuer.sign(claims)
    await verifier.verify(token)

    clock.pinned = claims["exp"] - 0.001
    await verifier.verify(token)  # PyJWT too accepts a token until the second of its exp
    clock.pinned = claims["exp"]
    await assert_refused(verifier, token)

    assert decode_calls == [token]
    # Refusing it dropped it: back at the real time it is checked in full again.
    clock.pinned = None
    await verifier.verify(token)
    assert decode_calls == [token, token]


async def test_a_remembered_token_is_refused_before_its_iat(
    jwks: JWKSCache,
    revocation_redis: Redis,
    infra: TestInfra,
    issuer: TokenIssuer,
    decode_calls: list[str],
) -> None:
    # A wall clock stepped back must not make a hit accept what PyJWT would call not yet valid.
    clock = Clock()
    verifier = make_verifier(jwks, revocation_redis, infra, clock=clock)
    claims = issuer.claims(nbf=int(time.time()))
    token = issuer.sign(claims)
    await verifier.verify(token)

    clock.pinned = max(claims["iat"], claims["nbf"]) - 1

    await assert_refused(verifier, token)
    assert decode_calls == [token]


@pytest.mark.parametrize("revocation", ["jti", "org"])
async def test_a_remembered_token_is_refused_once_revoked(
    verifier: TokenVerifier,
    issuer: TokenIssuer,
    revocations: Revocations,
    decode_calls: list[str],
    revocation: str,
) -> None:
    claims = issuer.claims()
    token = issuer.sign(claims)
    await verifier.verify(token)
    await verifier.verify(token)

    if revocation == "jti":
        await revocations.mark(revoked_jti_key, claims["jti"])
    else:
        await revocations.mark(suspended_org_key, claims["org"])

    refused = await assert_refused(verifier, token)
    assert ("revoked" if revocation == "jti" else "suspended") in refused.detail
    assert decode_calls == [token]


async def test_a_remembered_token_fails_once_its_key_leaves_the_jwks(
    revocation_redis: Redis, infra: TestInfra
) -> None:
    issuer = TokenIssuer.create()
    jwks = JWKSCache(issuer.fetch_jwks, algorithms=ALGORITHMS, cache_seconds=0.05)
    verifier = make_verifier(jwks, revocation_redis, infra)
    old_kid = issuer.active_kid
    token = issuer.token()
    await verifier.verify(token)

    issuer.rotate()
    del issuer.keys[old_kid]
    await asyncio.sleep(0.1)  # the JWKS cache refreshes

    refused = await assert_refused(verifier, token)
    assert "unknown" in refused.detail


async def test_a_remembered_token_is_checked_again_after_a_jwks_refresh(
    revocation_redis: Redis, infra: TestInfra, decode_calls: list[str]
) -> None:
    # A refresh builds new key objects; a hit counts only with the very key that verified it.
    issuer = TokenIssuer.create()
    jwks = JWKSCache(issuer.fetch_jwks, algorithms=ALGORITHMS, cache_seconds=0.05)
    verifier = make_verifier(jwks, revocation_redis, infra)
    token = issuer.token()
    await verifier.verify(token)
    await verifier.verify(token)
    assert decode_calls == [token]

    await asyncio.sleep(0.1)
    await verifier.verify(token)

    assert decode_calls == [token, token]


@pytest.mark.parametrize("part", ["header", "payload", "signature"])
async def test_a_token_one_byte_off_a_remembered_one_is_refused(
    verifier: TokenVerifier, issuer: TokenIssuer, decode_calls: list[str], part: str
) -> None:
    token = issuer.token()
    await verifier.verify(token)
    segments = token.split(".")
    index = ["header", "payload", "signature"].index(part)
    middle = len(segments[index]) // 2
    changed = "A" if segments[index][middle] != "A" else "B"
    segments[index] = segments[index][:middle] + changed + segments[index][middle + 1 :]

    await assert_refused(verifier, ".".join(segments))

    assert await verifier.verify(token)  # the real one is still a hit
    assert decode_calls.count(token) == 1


async def test_the_cache_keeps_only_the_most_recently_used_tokens(
    jwks: JWKSCache,
    revocation_redis: Redis,
    infra: TestInfra,
    issuer: TokenIssuer,
    decode_calls: list[str],
) -> None:
    verifier = make_verifier(jwks, revocation_redis, infra, cache_size=3)
    first, second, third, fourth = (issuer.token() for _ in range(4))
    for token in (first, second, third, first, fourth):  # using `first` again keeps it
        await verifier.verify(token)
    decode_calls.clear()

    for token in (first, third, fourth):
        await verifier.verify(token)
    assert decode_calls == []

    await verifier.verify(second)  # evicted: checked in full, and now it pushes out `first`
    await verifier.verify(first)
    assert decode_calls == [second, first]


async def test_a_flood_of_distinct_tokens_stays_within_the_bound(
    jwks: JWKSCache, revocation_redis: Redis, infra: TestInfra, issuer: TokenIssuer
) -> None:
    verifier = make_verifier(jwks, revocation_redis, infra, cache_size=10)

    for _ in range(50):
        await verifier.verify(issuer.token())

    assert len(verifier._verified) == 10


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not-a-jwt",
        "!!!!.e30.c2ln",
        "é.e30.c2ln",
        b64url(b"[1]") + ".e30.c2ln",
        b64url(b"[" * 3000) + ".e30.c2ln",  # deep enough to overflow the JSON parser
        b64url(b'{"alg":"RS256","kid":"main"}')[:-1] + "*.e30.c2ln",
    ],
)
async def test_a_malformed_header_is_refused_without_fetching_keys(
    verifier: TokenVerifier, jwks: JWKSCache, token: str
) -> None:
    refused = await assert_refused(verifier, token)

    assert "malformed" in refused.detail
    assert jwks.fetch_count == 0
