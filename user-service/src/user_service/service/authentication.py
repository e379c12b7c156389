"""Password login with the lockout counter (`user_service.lockout`), counted by outcome.

An unknown e-mail takes the same path as a wrong password (the same counter, the same
Argon2 cost, the same 401 and 423), so answers do not tell which accounts exist.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec

import structlog
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.clock import utcnow
from flow_shared.errors import DomainError
from flow_shared.metrics import business_counter
from user_service import lockout
from user_service.config import Settings
from user_service.errors import AccountLocked, InvalidCredentials, OrganizationSuspended
from user_service.keys import SigningKeys
from user_service.models import Organization, User
from user_service.passwords import Passwords
from user_service.service.tokens import Refused, TokenPair, issue_tokens

LOGINS = business_counter(
    "flow_user_logins_total",
    "Password logins by outcome (ok, invalid_credentials, locked, suspended).",
    ("outcome",),
)

log = structlog.get_logger("user_service")
P = ParamSpec("P")


_LOGIN_OUTCOMES: dict[type[DomainError], str] = {
    InvalidCredentials: "invalid_credentials",
    AccountLocked: "locked",
    OrganizationSuspended: "suspended",
}


def _counted(
    attempt: Callable[P, Awaitable[TokenPair | Refused]],
) -> Callable[P, Awaitable[TokenPair | Refused]]:
    """`attempt`, each outcome counted in LOGINS."""

    @functools.wraps(attempt)
    async def counted(*args: P.args, **kwargs: P.kwargs) -> TokenPair | Refused:
        outcome = await attempt(*args, **kwargs)
        if isinstance(outcome, Refused):
            LOGINS.labels(_LOGIN_OUTCOMES.get(type(outcome.error), "error")).inc()
        else:
            LOGINS.labels("ok").inc()
        return outcome

    return counted


@_counted
async def login(
    session: AsyncSession,
    *,
    redis: Redis,
    passwords: Passwords,
    keys: SigningKeys,
    settings: Settings,
    email: str,
    password: str,
    client_ip: str,
) -> TokenPair | Refused:
    now = utcnow()
    locked = await lockout.seconds_locked(redis, settings, email, client_ip)
    if locked:
        return Refused(AccountLocked(locked))
    row = (
        await session.execute(
            select(User, Organization)
            .join(Organization, Organization.id == User.org_id)
            .where(User.email == email.lower())
        )
    ).first()
    if row is None:
        await passwords.verify_dummy(password)
        return Refused(await _failed_login(redis, settings, email, client_ip))
    user, organization = row
    if not await passwords.verify(user.password_hash, password):
        return Refused(await _failed_login(redis, settings, email, client_ip))
    locked = await lockout.seconds_locked(redis, settings, email, client_ip)
    if locked:
        # A parallel failure locked the pair while this attempt was hashing.
        return Refused(AccountLocked(locked))
    await lockout.clear_failures(redis, settings, email, client_ip)
    if passwords.needs_rehash(user.password_hash):
        # Argon2 parameters were raised since this hash was made: upgrade it now.
        user.password_hash = await passwords.hash(password)
    if organization.suspended:
        return Refused(OrganizationSuspended())
    return await issue_tokens(session, keys, settings, user, organization, now=now)


async def _failed_login(
    redis: Redis, settings: Settings, email: str, client_ip: str
) -> DomainError:
    if await lockout.record_failure(redis, settings, email, client_ip):
        log.warning("login_locked", failures=settings.lockout_threshold)
    # The attempt that locks the pair is still only a wrong password; the next is 423.
    return InvalidCredentials()
