"""Tokens: issuing a signed access token with a refresh token, rotating the refresh
token (a spent one presented again revokes its whole family), and logout.

A refresh token is a random 256-bit string kept only as its SHA-256; each login starts a
family, and every rotation adds to it, so one reuse can end exactly that login session.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.auth import Principal, revoked_jti_key
from flow_shared.clock import utcnow
from flow_shared.errors import DomainError, ServiceUnavailable
from flow_shared.metrics import business_counter
from user_service import sessions
from user_service.config import Settings
from user_service.errors import InvalidRefreshToken, OrganizationSuspended, RefreshTokenReused
from user_service.keys import SigningKeys
from user_service.models import Organization, RefreshToken, User

REFRESH_REUSE = business_counter(
    "flow_user_refresh_token_reuse_total",
    "Spent refresh tokens presented again (each revokes a session: a possible theft).",
)

log = structlog.get_logger("user_service")


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    refresh_token_id: uuid.UUID


@dataclass(frozen=True)
class Refused:
    """An error answer whose transaction must commit anyway."""

    error: DomainError


def hash_refresh_token(token: str) -> str:
    # A random 256-bit token needs no slow hash: SHA-256 cannot be brute-forced back.
    return hashlib.sha256(token.encode()).hexdigest()


async def issue_tokens(
    session: AsyncSession,
    keys: SigningKeys,
    settings: Settings,
    user: User,
    organization: Organization,
    *,
    now: datetime,
    family_id: uuid.UUID | None = None,
) -> TokenPair:
    """A signed access token and a new refresh token (a new family unless rotating)."""
    # Milliseconds kept (a NumericDate may be fractional), so the token epoch can tell a
    # token signed just after a revocation from one signed just before it.
    issued_at = sessions.token_time(now)
    access_token = keys.sign(
        {
            "sub": str(user.id),
            "org": str(organization.id),
            "org_kind": organization.kind,
            "role": user.role,
            "jti": uuid.uuid4().hex,
            "iat": issued_at,
            "exp": int(issued_at) + settings.access_token_ttl_seconds,
            "iss": settings.jwt_issuer,
            "aud": settings.jwt_audience,
        }
    )
    refresh_token = secrets.token_urlsafe(32)
    refresh_token_id = uuid.uuid4()
    session.add(
        RefreshToken(
            id=refresh_token_id,
            family_id=family_id or uuid.uuid4(),
            user_id=user.id,
            token_hash=hash_refresh_token(refresh_token),
            expires_at=now + timedelta(seconds=settings.refresh_token_ttl_seconds),
        )
    )
    await session.flush()
    return TokenPair(
        access_token=access_token,
        refresh_token=refresh_token,
        expires_in=settings.access_token_ttl_seconds,
        refresh_token_id=refresh_token_id,
    )


async def refresh(
    session: AsyncSession, *, keys: SigningKeys, settings: Settings, refresh_token: str
) -> TokenPair | Refused:
    """Rotate: the presented token is spent and replaced. Presenting a spent token again
    means it leaked (or was stolen): the whole family (that login session) is revoked."""
    now = utcnow()
    current = await session.scalar(
        select(RefreshToken)
        .where(RefreshToken.token_hash == hash_refresh_token(refresh_token))
        # Two refreshes with one token serialise here; the second sees it spent.
        .with_for_update()
    )
    if current is None or current.revoked_at is not None:
        raise InvalidRefreshToken("The refresh token is not valid; log in again.")
    if current.used_at is not None:
        await sessions.revoke_refresh_families(
            session, RefreshToken.family_id == current.family_id, now
        )
        REFRESH_REUSE.inc()
        log.warning(
            "refresh_token_reuse", user_id=str(current.user_id), family_id=str(current.family_id)
        )
        return Refused(RefreshTokenReused())
    if current.expires_at <= now:
        raise InvalidRefreshToken("The refresh token has expired; log in again.")
    row = (
        await session.execute(
            select(User, Organization)
            .join(Organization, Organization.id == User.org_id)
            .where(User.id == current.user_id)
        )
    ).first()
    if row is None:
        raise InvalidRefreshToken("The refresh token is not valid; log in again.")
    user, organization = row
    if organization.suspended:
        raise OrganizationSuspended()
    pair = await issue_tokens(
        session, keys, settings, user, organization, now=now, family_id=current.family_id
    )
    current.used_at = now
    current.replaced_by = pair.refresh_token_id
    await session.flush()
    return pair


async def logout(
    session: AsyncSession,
    *,
    redis: Redis,
    settings: Settings,
    principal: Principal,
    refresh_token: str | None,
) -> None:
    """Revoke the access token's jti (shared through Redis) and the refresh token's family."""
    now = utcnow()
    if refresh_token is not None:
        family_id = await session.scalar(
            select(RefreshToken.family_id).where(
                RefreshToken.token_hash == hash_refresh_token(refresh_token),
                # Nobody can log another user out with a token they happen to hold.
                RefreshToken.user_id == principal.user_id,
            )
        )
        if family_id is not None:
            await sessions.revoke_refresh_families(
                session, RefreshToken.family_id == family_id, now
            )
    ttl = _seconds_until(principal.expires_at, now)
    try:
        await redis.set(revoked_jti_key(settings.redis_key_prefix, principal.jti), "1", ex=ttl)
    except RedisError as exc:
        raise ServiceUnavailable("Logout cannot be recorded right now; try again.") from exc


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, math.ceil((moment - now).total_seconds()))
