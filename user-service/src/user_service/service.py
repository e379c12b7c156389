"""Identity rules: registration, login with lockout, token rotation, profiles,
organisations and their members, verification, suspension and reinstatement of
hospitals and vendors. (The licence job: licences.py.)
(Invitations and member removal: members.py; the lockout counter: lockout.py;
ending sessions: sessions.py.)

Plain async functions taking the session; they flush, never commit. Refresh
returns a `Refused` when the answer is an error but the write (a revoked
family) must still be committed.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.auth import Principal, revoked_jti_key, suspended_org_key
from flow_shared.errors import DomainError, ServiceUnavailable
from flow_shared.metrics import business_counter
from flow_shared.pagination import PageParams, fetch_page
from user_service import events, lockout, sessions
from user_service.config import Settings
from user_service.errors import (
    AccountLocked,
    EmailTaken,
    InvalidCredentials,
    InvalidRefreshToken,
    LicenseExpired,
    OrganizationNotFound,
    OrganizationSuspended,
    RefreshTokenReused,
    UserNotFound,
    WrongCurrentPassword,
)
from user_service.keys import SigningKeys
from user_service.models import Organization, RefreshToken, User
from user_service.passwords import Passwords
from user_service.schemas import RegisterRequest

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
        oxygen_beds=org_spec.oxygen_beds,
        # Hospitals and vendors alike wait for a platform admin to check their licence.
        verified=False,
        suspended=False,
    )
    session.add(organization)
    await session.flush()
    user = await create_user(
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


async def create_user(
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
    client_ip: str,
) -> TokenPair | Refused:
    outcome = await _login(
        session,
        redis=redis,
        passwords=passwords,
        keys=keys,
        settings=settings,
        email=email,
        password=password,
        client_ip=client_ip,
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
    client_ip: str,
) -> TokenPair | Refused:
    """An unknown e-mail takes the same path as a wrong password (the same counter, the
    same Argon2 cost, the same 401 and 423), so answers do not tell which accounts exist."""
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


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, math.ceil((moment - now).total_seconds()))


async def _failed_login(
    redis: Redis, settings: Settings, email: str, client_ip: str
) -> DomainError:
    if await lockout.record_failure(redis, settings, email, client_ip):
        log.warning("login_locked", failures=settings.lockout_threshold)
    # The attempt that locks the pair is still only a wrong password; the next is 423.
    return InvalidCredentials()


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


# --- organisations (admin-service, through /internal) -----------------------------------------

# The kinds a platform admin verifies, suspends and reinstates (never the platform itself).
MANAGED_KINDS = ("hospital", "vendor")
LICENSE_EXPIRED = "license_expired"


async def list_organizations(
    session: AsyncSession,
    *,
    kind: str | None,
    verified: bool | None,
    suspended: bool | None,
    params: PageParams,
) -> tuple[Sequence[Organization], int]:
    """Hospitals and vendors (one kind if asked), oldest first."""
    conditions = [Organization.kind == kind] if kind else [Organization.kind.in_(MANAGED_KINDS)]
    if verified is not None:
        conditions.append(Organization.verified.is_(verified))
    if suspended is not None:
        conditions.append(Organization.suspended.is_(suspended))
    statement = (
        select(Organization).where(*conditions).order_by(Organization.created_at, Organization.id)
    )
    return await fetch_page(session, statement, params)


async def list_vendors(
    session: AsyncSession, *, verified: bool | None, params: PageParams
) -> tuple[Sequence[Organization], int]:
    return await list_organizations(
        session, kind="vendor", verified=verified, suspended=None, params=params
    )


async def _organization_for_update(
    session: AsyncSession, org_id: uuid.UUID, kind: str | None
) -> Organization:
    """The hospital or vendor (of `kind` when given), locked; anything else is 404."""
    kinds = (kind,) if kind else MANAGED_KINDS
    organization = await session.scalar(
        select(Organization)
        .where(Organization.id == org_id, Organization.kind.in_(kinds))
        .with_for_update()
    )
    if organization is None:
        what = f"{kind} organisation" if kind else "hospital or vendor organisation"
        raise OrganizationNotFound(f"No {what} with this id.")
    return organization


async def verify_organization(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    actor_id: uuid.UUID,
    license_expires_on: date | None,
    kind: str | None = None,
) -> Organization:
    """Verify, or renew the licence of, a hospital or vendor. Idempotent: the same answer
    again changes nothing and emits nothing. A new licence date is a renewal: the licence
    warnings start afresh (they are kept per date)."""
    organization = await _organization_for_update(session, org_id, kind)
    renewed = (
        license_expires_on is not None and license_expires_on != organization.license_expires_on
    )
    if organization.verified and not renewed:
        return organization
    if not organization.verified:
        organization.verified = True
        organization.verified_at = utcnow()
    if renewed:
        organization.license_expires_on = license_expires_on
    await session.flush()
    await events.organization_verified(session, organization, actor_id)
    log.info(
        "organization_verified",
        org_id=str(organization.id),
        actor_id=str(actor_id),
        license_expires_on=str(organization.license_expires_on),
    )
    return organization


async def suspend_organization(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    redis: Redis,
    settings: Settings,
    actor_id: uuid.UUID | None,
    reason: str | None,
    kind: str | None = None,
    now: datetime | None = None,
) -> Organization:
    """Suspended users cannot log in or refresh, and every service rejects their
    existing access tokens through the Redis mark. Idempotent. `actor_id` None: the
    licence job."""
    organization = await _organization_for_update(session, org_id, kind)
    return await suspend_locked_organization(
        session,
        organization,
        redis=redis,
        settings=settings,
        actor_id=actor_id,
        reason=reason,
        now=now,
    )


async def suspend_locked_organization(
    session: AsyncSession,
    organization: Organization,
    *,
    redis: Redis,
    settings: Settings,
    actor_id: uuid.UUID | None,
    reason: str | None,
    now: datetime | None = None,
) -> Organization:
    """Suspend a locked organisation (the admin's and the licence job's one path)."""
    # Marked before the commit: if the commit then fails, the org is blocked a little
    # early (and the admin retries) rather than left able to act.
    await mark_suspended(redis, settings, [organization.id])
    if not organization.suspended:
        now = now or utcnow()
        organization.suspended = True
        organization.suspended_at = now
        organization.suspension_reason = reason
        # The suspended-org mark refuses their tokens only while the org stays suspended;
        # the epoch makes sure a later reinstatement does not bring them back.
        member_ids = (
            await session.scalars(select(User.id).where(User.org_id == organization.id))
        ).all()
        await sessions.end_sessions(session, redis, settings, member_ids, now=utcnow())
        await session.flush()
        await events.organization_suspended(session, organization, actor_id, reason)
        log.info(
            "organization_suspended",
            org_id=str(organization.id),
            actor_id=str(actor_id),
            reason=reason,
        )
    return organization


async def reinstate_organization(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    redis: Redis,
    settings: Settings,
    actor_id: uuid.UUID,
    today: date | None = None,
) -> Organization:
    """Lift a suspension: the org's users may log in again (sessions ended by the
    suspension stay ended). Idempotent. An expired licence must be renewed first."""
    organization = await _organization_for_update(session, org_id, None)
    if not organization.suspended:
        return organization
    expires = organization.license_expires_on
    if expires is not None and expires < (today or utcnow().date()):
        raise LicenseExpired()
    organization.suspended = False
    organization.suspended_at = None
    organization.suspension_reason = None
    await session.flush()
    await events.organization_reinstated(session, organization, actor_id)
    # Cleared before the commit: should the commit fail, login still reads the database
    # (still suspended), and the next start-up restores the mark.
    await clear_suspended(redis, settings, organization.id)
    log.info("organization_reinstated", org_id=str(organization.id), actor_id=str(actor_id))
    return organization


async def clear_suspended(redis: Redis, settings: Settings, org_id: uuid.UUID) -> None:
    try:
        await redis.delete(suspended_org_key(settings.redis_key_prefix, org_id))
    except RedisError as exc:
        raise ServiceUnavailable("The reinstatement cannot be recorded right now.") from exc


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
