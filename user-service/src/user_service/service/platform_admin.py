"""The platform organisation and its admins, created at start-up (from
BOOTSTRAP_ADMIN_EMAIL) or by `python -m user_service.bootstrap`."""

from __future__ import annotations

import uuid

import structlog
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.clock import utcnow
from user_service import events
from user_service.models import Organization, User
from user_service.passwords import Passwords

PLATFORM_ORG_NAME = "Flow Platform"

log = structlog.get_logger("user_service")


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
