"""Ending a user's sessions everywhere at once.

Refresh tokens are revoked in the database. Access tokens cannot be recalled, so
each user has a token epoch: the moment of their last revocation, kept in the
users table (the truth) and in Redis under `user_epoch_key`, where every
service's TokenVerifier reads it on every request and refuses tokens issued
before it. The Redis key only has to outlive the access tokens it refuses.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.auth import user_epoch_key
from flow_shared.clock import utcnow
from flow_shared.errors import ServiceUnavailable
from user_service.config import Settings
from user_service.models import RefreshToken, User

# Clock skew between replicas and services: the epoch outlives the tokens a little.
EPOCH_MARGIN_SECONDS = 60


def token_time(moment: datetime) -> float:
    """Seconds since the epoch to the millisecond, rounded down: the `iat` of tokens and
    the value of epochs, so a token signed just after a revocation is not mistaken for
    one signed before it (whole seconds would have to refuse one or the other)."""
    return math.floor(moment.timestamp() * 1000) / 1000


async def revoke_refresh_families(
    session: AsyncSession, which: ColumnElement[bool], now: datetime
) -> None:
    await session.execute(
        update(RefreshToken)
        .where(which, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )


async def end_sessions(
    session: AsyncSession,
    redis: Redis,
    settings: Settings,
    user_ids: Sequence[uuid.UUID],
    *,
    now: datetime | None = None,
) -> datetime:
    """Every refresh token and every access token issued so far to these users stops
    working. Called inside the caller's transaction, before it commits: should the commit
    fail, the users merely have to log in again. Returns the epoch."""
    epoch = now or utcnow()
    if not user_ids:
        return epoch
    await session.execute(
        update(User)
        .where(User.id.in_(user_ids))
        .values(tokens_valid_after=epoch, updated_at=User.updated_at)
        .execution_options(synchronize_session=False)
    )
    await revoke_refresh_families(session, RefreshToken.user_id.in_(user_ids), epoch)
    await mark_epochs(redis, settings, dict.fromkeys(user_ids, epoch))
    return epoch


async def mark_epochs(
    redis: Redis, settings: Settings, epochs: Mapping[uuid.UUID, datetime]
) -> None:
    """Publish epochs to Redis, each kept until the last token it refuses has expired."""
    if not epochs:
        return
    now = utcnow()
    lifetime = timedelta(seconds=settings.access_token_ttl_seconds + EPOCH_MARGIN_SECONDS)
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for user_id, epoch in epochs.items():
                remaining = math.ceil((epoch + lifetime - now).total_seconds())
                if remaining > 0:
                    pipe.set(
                        user_epoch_key(settings.redis_key_prefix, user_id),
                        repr(token_time(epoch)),
                        ex=remaining,
                    )
            await pipe.execute()
    except RedisError as exc:
        # Without the mark the old tokens would still work: refuse the whole change.
        raise ServiceUnavailable("Sessions cannot be revoked right now; try again.") from exc


async def restore_epoch_marks(session: AsyncSession, redis: Redis, settings: Settings) -> int:
    """The database is the truth; Redis may have lost its epochs (restart without
    persistence). Only epochs younger than an access token's life still matter."""
    horizon = utcnow() - timedelta(seconds=settings.access_token_ttl_seconds + EPOCH_MARGIN_SECONDS)
    rows = (
        await session.execute(
            select(User.id, User.tokens_valid_after).where(User.tokens_valid_after > horizon)
        )
    ).all()
    await mark_epochs(
        redis, settings, {user_id: epoch for user_id, epoch in rows if epoch is not None}
    )
    return len(rows)
