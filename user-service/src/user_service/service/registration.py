"""Registration: a new organisation with its first user, and creating a user (which
invitations reuse)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from user_service import events
from user_service.errors import EmailTaken
from user_service.models import Organization, User
from user_service.passwords import Passwords
from user_service.schemas import RegisterRequest


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
    # A friendly early answer; the unique constraint in create_user is the real guard.
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
