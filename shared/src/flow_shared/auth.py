"""Verifying who calls: user JWTs (RS256 via JWKS) and service keys for `/internal`.

The verifier never lets the token choose how it is checked: the algorithm is
pinned by configuration, the `kid` is looked up only in the cached JWKS, and
required claims are enforced. Revocation (logged-out `jti`, suspended
organisations) is shared through Redis so every service sees it.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import httpx
import jwt
import structlog
from fastapi import Depends, Request
from jwt.algorithms import get_default_algorithms
from redis.asyncio import Redis
from redis.exceptions import RedisError

from flow_shared.errors import Forbidden, ServiceUnavailable, Unauthorized

OrgKind = Literal["hospital", "vendor", "platform"]
Role = Literal["org_admin", "staff", "platform_admin"]

MAX_TOKEN_BYTES = 4096
SERVICE_KEY_HEADER = "X-Service-Key"
_KID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_REQUIRED_CLAIMS = ["exp", "iat", "sub", "jti", "aud", "iss", "org", "org_kind", "role"]

log = structlog.get_logger("flow.auth")


def revoked_jti_key(prefix: str, jti: str) -> str:
    return f"{prefix}auth:revoked-jti:{jti}"


def suspended_org_key(prefix: str, org_id: uuid.UUID | str) -> str:
    return f"{prefix}auth:suspended-org:{org_id}"


@dataclass(frozen=True, slots=True)
class Principal:
    """The verified caller of a request."""

    user_id: uuid.UUID
    org_id: uuid.UUID
    org_kind: OrgKind
    role: Role
    jti: str
    expires_at: datetime

    @property
    def is_platform_admin(self) -> bool:
        return self.role == "platform_admin" and self.org_kind == "platform"


JWKSFetcher = Callable[[], Awaitable[dict[str, Any]]]


def http_jwks_fetcher(url: str, timeout: float = 3.0) -> JWKSFetcher:
    async def fetch() -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.get(url)
            response.raise_for_status()
            body: dict[str, Any] = response.json()
            return body

    return fetch


class JWKSCache:
    """Public keys by `kid`.

    The set is refreshed when it is older than `cache_seconds`, and an unknown
    `kid` triggers one refetch at most once per cool-down: a key rotated in is
    found on its first use, while a flood of random `kid`s costs one fetch.
    """

    def __init__(
        self,
        fetch: JWKSFetcher,
        *,
        algorithms: Iterable[str],
        cache_seconds: float = 300.0,
        refetch_cooldown_seconds: float = 30.0,
    ) -> None:
        self._fetch = fetch
        self._algorithms = set(algorithms)
        self._cache_seconds = cache_seconds
        self._cooldown = refetch_cooldown_seconds
        self._keys: dict[str, Any] = {}
        self._fetched_at = float("-inf")
        self._unknown_kid_fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        self.fetch_count = 0

    async def get(self, kid: str) -> Any | None:
        if time.monotonic() - self._fetched_at > self._cache_seconds:
            async with self._lock:
                if time.monotonic() - self._fetched_at > self._cache_seconds:
                    await self._load()
                    return self._keys.get(kid)
        if kid in self._keys:
            return self._keys[kid]
        async with self._lock:
            now = time.monotonic()
            if kid not in self._keys and now - self._unknown_kid_fetched_at > self._cooldown:
                self._unknown_kid_fetched_at = now
                await self._load()
        return self._keys.get(kid)

    async def _load(self) -> None:
        self._fetched_at = time.monotonic()
        self.fetch_count += 1
        try:
            document = await self._fetch()
        except Exception as exc:  # keep serving the keys we have
            log.warning("jwks_fetch_failed", error=type(exc).__name__)
            return
        self._keys = self._parse(document)

    def _parse(self, document: dict[str, Any]) -> dict[str, Any]:
        algorithms = get_default_algorithms()
        keys: dict[str, Any] = {}
        for jwk in document.get("keys", []):
            kid, alg = jwk.get("kid"), jwk.get("alg")
            if not isinstance(kid, str) or not _KID.match(kid) or alg not in self._algorithms:
                continue
            try:
                keys[kid] = algorithms[alg].from_jwk(jwk)
            except Exception:  # a malformed key is skipped, the others still serve
                log.warning("jwks_bad_key", kid=kid)
        return keys


class TokenVerifier:
    def __init__(
        self,
        jwks: JWKSCache,
        *,
        issuer: str,
        audience: str,
        algorithms: list[str],
        redis: Redis | None,
        redis_prefix: str,
    ) -> None:
        self.jwks = jwks
        self.issuer = issuer
        self.audience = audience
        self.algorithms = algorithms
        self.redis = redis
        self.redis_prefix = redis_prefix

    async def verify(self, token: str) -> Principal:
        if len(token) > MAX_TOKEN_BYTES:
            raise Unauthorized("The token is too large.")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized("The token is malformed.") from exc
        kid = header.get("kid")
        if header.get("alg") not in self.algorithms or not isinstance(kid, str):
            raise Unauthorized("The token is not signed with an accepted algorithm.")
        if not _KID.match(kid):
            raise Unauthorized("The token's key id is not valid.")
        key = await self.jwks.get(kid)
        if key is None:
            raise Unauthorized("The token's signing key is unknown.")
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                options={"require": _REQUIRED_CLAIMS},
            )
            principal = Principal(
                user_id=uuid.UUID(claims["sub"]),
                org_id=uuid.UUID(claims["org"]),
                org_kind=claims["org_kind"],
                role=claims["role"],
                jti=str(claims["jti"]),
                expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
            )
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
            raise Unauthorized("The token is not valid.") from exc
        if principal.org_kind not in ("hospital", "vendor", "platform") or principal.role not in (
            "org_admin",
            "staff",
            "platform_admin",
        ):
            raise Unauthorized("The token is not valid.")
        await self._check_revocation(principal)
        return principal

    async def _check_revocation(self, principal: Principal) -> None:
        if self.redis is None:
            return
        try:
            revoked, suspended = await self.redis.mget(
                revoked_jti_key(self.redis_prefix, principal.jti),
                suspended_org_key(self.redis_prefix, principal.org_id),
            )
        except RedisError as exc:
            # Fail closed: without the revocation list we cannot tell a logged-out token.
            raise ServiceUnavailable("Token revocation cannot be checked right now.") from exc
        if revoked is not None:
            raise Unauthorized("The token has been revoked.")
        if suspended is not None:
            raise Unauthorized("The organisation is suspended.")


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def current_principal(request: Request) -> Principal:
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    token = bearer_token(request)
    if token is None:
        raise Unauthorized("A bearer token is required.")
    verifier: TokenVerifier = request.app.state.token_verifier
    principal = await verifier.verify(token)
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_org_kind(*kinds: OrgKind) -> Callable[..., Awaitable[Principal]]:
    async def dependency(principal: CurrentPrincipal) -> Principal:
        if principal.org_kind not in kinds:
            raise Forbidden(f"This action is for {' or '.join(kinds)} organisations.")
        return principal

    return dependency


def require_role(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    async def dependency(principal: CurrentPrincipal) -> Principal:
        if principal.role not in roles:
            raise Forbidden("Your role does not allow this action.")
        return principal

    return dependency


async def require_platform_admin(principal: CurrentPrincipal) -> Principal:
    # Both claims, not just the role: a platform role outside the platform org is refused.
    if not principal.is_platform_admin:
        raise Forbidden("This action is for platform admins.")
    return principal


PlatformAdmin = Annotated[Principal, Depends(require_platform_admin)]


def service_key_matches(presented: str, trusted: Iterable[str]) -> bool:
    presented_bytes = presented.encode()
    matched = False
    for key in trusted:
        # Compare against every key so timing does not tell which one (or whether any) matched.
        matched |= hmac.compare_digest(presented_bytes, key.encode())
    return matched


async def require_service_key(request: Request) -> None:
    presented = request.headers.get(SERVICE_KEY_HEADER)
    trusted = [k.get_secret_value() for k in request.app.state.settings.trusted_service_keys]
    if not presented or not trusted or not service_key_matches(presented, trusted):
        raise Unauthorized("A valid service key is required.", headers={})


ServiceCaller = Depends(require_service_key)
