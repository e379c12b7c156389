"""The current user: reading and renaming their account, changing their password."""

from __future__ import annotations

from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.auth import Principal
from user_service import lockout, sessions
from user_service.config import Settings
from user_service.errors import AccountLocked, UserNotFound, WrongCurrentPassword
from user_service.models import Organization, User
from user_service.passwords import Passwords


async def get_me(session: AsyncSession, principal: Principal) -> tuple[User, Organization]:
    row = (
        await session.execute(
            select(User, Organization)
            .join(Organization, Organization.id == User.org_id)
            .where(User.id == principal.user_id)
        )
    ).first()
    if row is None:
        raise UserNotFound("The account of this token no longer exists.")
    user, organization = row
    return user, organization


async def update_me(
    session: AsyncSession, principal: Principal, *, full_name: str
) -> tuple[User, Organization]:
    user, organization = await get_me(session, principal)
    user.full_name = full_name
    await session.flush()
    await session.refresh(user)
    return user, organization


async def change_password(
    session: AsyncSession,
    *,
    redis: Redis,
    passwords: Passwords,
    settings: Settings,
    principal: Principal,
    current_password: str,
    new_password: str,
    client_ip: str,
) -> None:
    """Every session ends, this one included: refresh tokens are revoked and every access
    token issued so far stops working in every service (the token epoch). A wrong current
    password counts towards the lockout like a failed login, so a stolen access token
    cannot be used to guess the password without limit."""
    user, _ = await get_me(session, principal)
    locked = await lockout.seconds_locked(redis, settings, user.email, client_ip)
    if locked:
        raise AccountLocked(locked)
    if not await passwords.verify(user.password_hash, current_password):
        await lockout.record_failure(redis, settings, user.email, client_ip)
        raise WrongCurrentPassword()
    await lockout.clear_failures(redis, settings, user.email, client_ip)
    user.password_hash = await passwords.hash(new_password)
    await session.flush()
    # After the slow hash: a token signed while it ran is older than the epoch too.
    await sessions.end_sessions(session, redis, settings, [user.id])
