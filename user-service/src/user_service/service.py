"""Identity rules: registration, login with lockout, token rotation, profiles,
organisations and their members, vendor verification and suspension.

Plain async functions taking the session; they flush, never commit. Login,
refresh and a password change return a `Refused` when the answer is an error
but the write (failure counter, revoked family) must still be committed.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import ColumnElement, case, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.auth import Principal, revoked_jti_key, suspended_org_key
from flow_shared.errors import DomainError, ServiceUnavailable
from flow_shared.metrics import business_counter
from flow_shared.pagination import PageParams, fetch_page
from user_service import events
from user_service.config import Settings
from user_service.errors import (
    AccountLocked,
    EmailTaken,
    InvalidCredentials,
    InvalidRefreshToken,
    NotOrgAdmin,
    OrganizationNotFound,
    OrganizationSuspended,
    RefreshTokenReused,
    UserNotFound,
    WrongCurrentPassword,
)
from user_service.keys import SigningKeys
from user_service.models import Organization, RefreshToken, User
from user_service.passwords import Passwords
from user_service.schemas import AddMemberRequest, RegisterRequest

PLATFORM_ORG_NAME = "Flow Platform"

LOGINS = business_counter(
    "flow_user_logins_total",
    "Password logins by outcome (ok, invalid_credentials, locked, suspended).",
    ("outcome",),
)
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


def utcnow() -> datetime:
    return datetime.now(UTC)


def hash_refresh_token(token: str) -> str:
    # A random 256-bit token needs no slow hash: SHA-256 cannot be brute-forced back.
    return hashlib.sha256(token.encode()).hexdigest()


# --- registration ------------------------------------------------------------------------


async def register(
    session: AsyncSession, passwords: Passwords, request: RegisterRequest
) -> tuple[User, Organization]:
    """A new organisation and its first user, who becomes its org_admin."""
    await _ensure_email_free(session, request.email)
    org_spec = request.organization
    organization = Organization(
        name=org_spec.name,
        kind=org_spec.kind,
        license_number=org_spec.license_number,
        phone=org_spec.phone,
        # Vendors wait for a platform admin; hospitals have no verification step.
        verified=org_spec.kind != "vendor",
        verified_at=utcnow() if org_spec.kind != "vendor" else None,
        suspended=False,
    )
    session.add(organization)
    await session.flush()
    user = await _create_user(
        session,
        passwords,
        email=request.email,
        password=request.password,
        full_name=request.full_name,
        org_id=organization.id,
        role="org_admin",
    )
    await events.user_registered(session, user, organization)
    return user, organization


async def _ensure_email_free(session: AsyncSession, email: str) -> None:
    # A friendly early answer; the unique constraint in _create_user is the real guard.
    taken = await session.scalar(select(User.id).where(User.email == email))
    if taken is not None:
        raise EmailTaken("An account with this e-mail already exists.")


async def _create_user(
    session: AsyncSession,
    passwords: Passwords,
    *,
    email: str,
    password: str,
    full_name: str,
    org_id: uuid.UUID,
    role: str,
) -> User:
    user = User(
        email=email.lower(),
        password_hash=await passwords.hash(password),
        full_name=full_name,
        org_id=org_id,
        role=role,
        failed_logins=0,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:
        # Two registrations with one e-mail at the same moment: the constraint decides.
        if "uq_users_email" in str(exc.orig):
            raise EmailTaken("An account with this e-mail already exists.") from exc
        raise
    await session.refresh(user)
    return user


# --- login and tokens ------------------------------------------------------------------


async def login(
    session: AsyncSession,
    *,
    redis: Redis,
    passwords: Passwords,
    keys: SigningKeys,
    settings: Settings,
    email: str,
    password: str,
) -> TokenPair | Refused:
    outcome = await _login(
        session,
        redis=redis,
        passwords=passwords,
        keys=keys,
        settings=settings,
        email=email,
        password=password,
    )
    if isinstance(outcome, Refused):
        LOGINS.labels(_LOGIN_OUTCOMES.get(type(outcome.error), "error")).inc()
    else:
        LOGINS.labels("ok").inc()
    return outcome


_LOGIN_OUTCOMES: dict[type[DomainError], str] = {
    InvalidCredentials: "invalid_credentials",
    AccountLocked: "locked",
    OrganizationSuspended: "suspended",
}


async def _login(
    session: AsyncSession,
    *,
    redis: Redis,
    passwords: Passwords,
    keys: SigningKeys,
    settings: Settings,
    email: str,
    password: str,
) -> TokenPair | Refused:
    now = utcnow()
    row = (
        await session.execute(
            select(User, Organization)
            .join(Organization, Organization.id == User.org_id)
            .where(User.email == email.lower())
        )
    ).first()
    if row is None:
        return await _refuse_unknown_email(redis, passwords, settings, email, password)
    user, organization = row

    if user.locked_until is not None and user.locked_until > now:
        return Refused(AccountLocked(_seconds_until(user.locked_until, now)))
    if not await passwords.verify(user.password_hash, password):
        return Refused(await _record_failed_password(session, user, settings, now))
    if not await _clear_failures(session, user, now):
        # Another attempt locked the account while this one was hashing.
        return Refused(AccountLocked(settings.lockout_seconds))
    if passwords.needs_rehash(user.password_hash):
        # Argon2 parameters were raised since this hash was made: upgrade it now.
        user.password_hash = await passwords.hash(password)
    if organization.suspended:
        return Refused(OrganizationSuspended())
    return await issue_tokens(session, keys, settings, user, organization, now=now)


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, math.ceil((moment - now).total_seconds()))


async def _record_failed_password(
    session: AsyncSession, user: User, settings: Settings, now: datetime
) -> DomainError:
    """Count a failure atomically; the one that reaches the threshold locks the account."""
    reaches = User.failed_logins + 1 >= settings.lockout_threshold
    locked_until = now + timedelta(seconds=settings.lockout_seconds)
    result = await session.execute(
        update(User)
        .where(User.id == user.id)
        .values(
            failed_logins=case((reaches, 0), else_=User.failed_logins + 1),
            locked_until=case((reaches, locked_until), else_=User.locked_until),
            updated_at=User.updated_at,  # a failed login is not a profile change
        )
        .returning(User.failed_logins, User.locked_until)
        .execution_options(synchronize_session=False)
    )
    failures, new_lock = result.one()
    log.info("login_failed", user_id=str(user.id), failures_in_a_row=failures)
    if new_lock is not None and new_lock > now and failures == 0:
        log.warning("account_locked", user_id=str(user.id), until=new_lock.isoformat())
    # The attempt that locks the account is still only a wrong password; the next is 423.
    return InvalidCredentials()


async def _clear_failures(session: AsyncSession, user: User, now: datetime) -> bool:
    """Reset the counter after a right password, unless a parallel failure locked it."""
    result = await session.execute(
        update(User)
        .where(User.id == user.id)
        .where((User.locked_until.is_(None)) | (User.locked_until <= now))
        .values(failed_logins=0, locked_until=None, updated_at=User.updated_at)
        .returning(User.id)
        .execution_options(synchronize_session=False)
    )
    return result.first() is not None


def _unknown_email_key(settings: Settings, email: str) -> str:
    digest = hashlib.sha256(email.lower().encode()).hexdigest()
    return f"{settings.redis_key_prefix}user:unknown-login-failures:{digest}"


async def _refuse_unknown_email(
    redis: Redis, passwords: Passwords, settings: Settings, email: str, password: str
) -> Refused:
    """Answer exactly as for an existing account: the same hashing cost, the same 401,
    and after `lockout_threshold` tries the same 423 (counted in Redis, as there is no row)."""
    key = _unknown_email_key(settings, email)
    try:
        failures = int(await redis.get(key) or 0)
        if failures >= settings.lockout_threshold:
            return Refused(AccountLocked(int(await redis.ttl(key))))
    except RedisError:
        log.warning("unknown_email_counter_unavailable")
        failures = 0
    await passwords.verify_dummy(password)
    try:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, settings.lockout_seconds)
            await pipe.execute()
    except RedisError:
        # Only the mimicry of a lockout is lost; no account is at stake.
        log.warning("unknown_email_counter_unavailable")
    return Refused(InvalidCredentials())


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
    issued_at = int(now.timestamp())
    access_token = keys.sign(
        {
            "sub": str(user.id),
            "org": str(organization.id),
            "org_kind": organization.kind,
            "role": user.role,
            "jti": uuid.uuid4().hex,
            "iat": issued_at,
            "exp": issued_at + settings.access_token_ttl_seconds,
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
        await _revoke_families(session, RefreshToken.family_id == current.family_id, now)
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


async def _revoke_families(
    session: AsyncSession, which: ColumnElement[bool], now: datetime
) -> None:
    await session.execute(
        update(RefreshToken)
        .where(which, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )


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
            await _revoke_families(session, RefreshToken.family_id == family_id, now)
    ttl = _seconds_until(principal.expires_at, now)
    try:
        await redis.set(revoked_jti_key(settings.redis_key_prefix, principal.jti), "1", ex=ttl)
    except RedisError as exc:
        raise ServiceUnavailable("Logout cannot be recorded right now; try again.") from exc


# --- the current user -------------------------------------------------------------------


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
    passwords: Passwords,
    settings: Settings,
    principal: Principal,
    current_password: str,
    new_password: str,
) -> Refused | None:
    """A wrong current password counts towards the lockout like a failed login, so a
    stolen access token cannot be used to guess the password without limit."""
    now = utcnow()
    user, _ = await get_me(session, principal)
    if user.locked_until is not None and user.locked_until > now:
        return Refused(AccountLocked(_seconds_until(user.locked_until, now)))
    if not await passwords.verify(user.password_hash, current_password):
        await _record_failed_password(session, user, settings, now)
        return Refused(WrongCurrentPassword())
    user.password_hash = await passwords.hash(new_password)
    user.failed_logins = 0
    # Every other session ends: their refresh tokens stop working.
    await _revoke_families(session, RefreshToken.user_id == user.id, now)
    await session.flush()
    return None


# --- organisations and members ------------------------------------------------------------


async def get_organization(
    session: AsyncSession, principal: Principal, org_id: uuid.UUID
) -> Organization:
    """Members and platform admins see an organisation; to anyone else it does not exist."""
    if principal.org_id != org_id and not principal.is_platform_admin:
        raise OrganizationNotFound()
    organization = await session.get(Organization, org_id)
    if organization is None:
        raise OrganizationNotFound()
    return organization


async def list_members(
    session: AsyncSession, principal: Principal, org_id: uuid.UUID, params: PageParams
) -> tuple[Sequence[User], int]:
    await get_organization(session, principal, org_id)
    statement = select(User).where(User.org_id == org_id).order_by(User.created_at, User.id)
    return await fetch_page(session, statement, params)


async def add_member(
    session: AsyncSession,
    passwords: Passwords,
    principal: Principal,
    org_id: uuid.UUID,
    request: AddMemberRequest,
) -> User:
    organization = await get_organization(session, principal, org_id)
    if principal.org_id != org_id or principal.role != "org_admin":
        # A platform admin sees the organisation but does not manage its people.
        raise NotOrgAdmin()
    await _ensure_email_free(session, request.email)
    user = await _create_user(
        session,
        passwords,
        email=request.email,
        password=request.password,
        full_name=request.full_name,
        org_id=organization.id,
        role=request.role,
    )
    await events.user_registered(session, user, organization, added_by=principal.user_id)
    return user


# --- vendors (admin-service, through /internal) -----------------------------------------------


async def list_vendors(
    session: AsyncSession, *, verified: bool | None, params: PageParams
) -> tuple[Sequence[Organization], int]:
    conditions = [Organization.kind == "vendor"]
    if verified is not None:
        conditions.append(Organization.verified.is_(verified))
    statement = (
        select(Organization).where(*conditions).order_by(Organization.created_at, Organization.id)
    )
    return await fetch_page(session, statement, params)


async def _vendor_for_update(session: AsyncSession, org_id: uuid.UUID) -> Organization:
    vendor = await session.scalar(
        select(Organization)
        .where(Organization.id == org_id, Organization.kind == "vendor")
        .with_for_update()
    )
    if vendor is None:
        raise OrganizationNotFound("No vendor organisation with this id.")
    return vendor


async def verify_vendor(
    session: AsyncSession, org_id: uuid.UUID, *, actor_id: uuid.UUID
) -> Organization:
    """Idempotent: verifying a verified vendor changes nothing and emits nothing."""
    vendor = await _vendor_for_update(session, org_id)
    if not vendor.verified:
        vendor.verified = True
        vendor.verified_at = utcnow()
        await session.flush()
        await events.organization_verified(session, vendor, actor_id)
        log.info("organization_verified", org_id=str(vendor.id), actor_id=str(actor_id))
    return vendor


async def suspend_vendor(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    redis: Redis,
    settings: Settings,
    actor_id: uuid.UUID,
    reason: str | None,
) -> Organization:
    """Suspended users cannot log in or refresh, and every service rejects their
    existing access tokens through the Redis mark. Idempotent."""
    vendor = await _vendor_for_update(session, org_id)
    # Marked before the commit: if the commit then fails, the org is blocked a little
    # early (and the admin retries) rather than left able to act.
    await mark_suspended(redis, settings, [vendor.id])
    if not vendor.suspended:
        now = utcnow()
        vendor.suspended = True
        vendor.suspended_at = now
        vendor.suspension_reason = reason
        await _revoke_families(
            session, RefreshToken.user_id.in_(select(User.id).where(User.org_id == vendor.id)), now
        )
        await session.flush()
        await events.organization_suspended(session, vendor, actor_id, reason)
        log.info("organization_suspended", org_id=str(vendor.id), actor_id=str(actor_id))
    return vendor


async def mark_suspended(redis: Redis, settings: Settings, org_ids: Sequence[uuid.UUID]) -> None:
    if not org_ids:
        return
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for org_id in org_ids:
                pipe.set(suspended_org_key(settings.redis_key_prefix, org_id), "1")
            await pipe.execute()
    except RedisError as exc:
        raise ServiceUnavailable("The suspension cannot be recorded right now.") from exc


async def restore_suspension_marks(session: AsyncSession, redis: Redis, settings: Settings) -> int:
    """The database is the truth; Redis may have lost its marks (restart without persistence)."""
    org_ids = (await session.scalars(select(Organization.id).where(Organization.suspended))).all()
    await mark_suspended(redis, settings, org_ids)
    return len(org_ids)


# --- bootstrap -------------------------------------------------------------------------------


async def ensure_platform_admin(
    session: AsyncSession, passwords: Passwords, *, email: str, password: str, full_name: str
) -> User | None:
    """Create the platform organisation and this platform admin unless the e-mail exists.

    Safe when several processes start at once: unique constraints decide, and the
    losers' inserts do nothing. Returns the new user, or None when nothing was created.
    """
    email = email.strip().lower()
    existing = await session.scalar(select(User).where(User.email == email))
    if existing is not None:
        if existing.role != "platform_admin":
            log.warning("bootstrap_email_taken_by_non_admin", user_id=str(existing.id))
        return None
    organization = await _platform_organization(session)
    password_hash = await passwords.hash(password)
    user_id = await session.scalar(
        insert(User)
        .values(
            id=uuid.uuid4(),
            email=email,
            password_hash=password_hash,
            full_name=full_name,
            org_id=organization.id,
            role="platform_admin",
            failed_logins=0,
        )
        .on_conflict_do_nothing(index_elements=[User.email])
        .returning(User.id)
    )
    if user_id is None:
        return None
    user = await session.get_one(User, user_id)
    await events.user_registered(session, user, organization)
    log.info("bootstrap_admin_created", user_id=str(user.id))
    return user


async def _platform_organization(session: AsyncSession) -> Organization:
    await session.execute(
        insert(Organization)
        .values(
            id=uuid.uuid4(),
            name=PLATFORM_ORG_NAME,
            kind="platform",
            verified=True,
            verified_at=utcnow(),
            suspended=False,
        )
        .on_conflict_do_nothing(
            index_elements=[Organization.kind], index_where=Organization.kind == "platform"
        )
    )
    # Ours or the one a concurrent start committed first: there is only ever one.
    return (
        await session.scalars(select(Organization).where(Organization.kind == "platform"))
    ).one()
