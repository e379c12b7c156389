"""Organisation membership: listing members, invitations by e-mailed one-time token,
their acceptance, and removing members.

An invitation's answer never depends on whether the address has an account: the
same row, the same e-mail call, the same body. Only the invitee, who holds the
token, learns that their address already has an account (accounts belong to one
organisation, and accepting never moves one). Plain functions; they flush, never
commit.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

import structlog
from redis.asyncio import Redis
from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.auth import Principal
from flow_shared.clock import utcnow
from flow_shared.pagination import PageParams, fetch_page
from user_service import events, sessions
from user_service.clients import InvitationEmail, NotificationClient
from user_service.config import Settings
from user_service.errors import (
    AccountExists,
    InvalidInvitation,
    InvitationNotFound,
    LastOrgAdmin,
    MemberNotFound,
    NotOrgAdmin,
)
from user_service.models import Invitation, Organization, User
from user_service.passwords import Passwords
from user_service.service.organizations import get_organization
from user_service.service.registration import create_user

InvitationStatus = Literal["pending", "accepted", "revoked", "expired"]

log = structlog.get_logger("user_service.members")


def hash_invitation_token(token: str) -> str:
    # 256 random bits: a fast hash cannot be reversed, and lookups stay one index probe.
    return hashlib.sha256(token.encode()).hexdigest()


def invitation_status(invitation: Invitation, now: datetime) -> InvitationStatus:
    if invitation.accepted_at is not None:
        return "accepted"
    if invitation.revoked_at is not None:
        return "revoked"
    if invitation.expires_at <= now:
        return "expired"
    return "pending"


def _pending(now: datetime) -> tuple[ColumnElement[bool], ...]:
    return (
        Invitation.accepted_at.is_(None),
        Invitation.revoked_at.is_(None),
        Invitation.expires_at > now,
    )


async def _managed_organization(
    session: AsyncSession, principal: Principal, org_id: uuid.UUID
) -> Organization:
    organization = await get_organization(session, principal, org_id)
    if principal.org_id != org_id or principal.role != "org_admin":
        # A platform admin sees the organisation but does not manage its people.
        raise NotOrgAdmin()
    return organization


# --- members ------------------------------------------------------------------------------


async def list_members(
    session: AsyncSession, principal: Principal, org_id: uuid.UUID, params: PageParams
) -> tuple[Sequence[User], int]:
    await get_organization(session, principal, org_id)
    statement = select(User).where(User.org_id == org_id).order_by(User.created_at, User.id)
    return await fetch_page(session, statement, params)


# --- invitations ------------------------------------------------------------------------


async def invite_member(
    session: AsyncSession,
    *,
    mailer: NotificationClient,
    settings: Settings,
    principal: Principal,
    org_id: uuid.UUID,
    email: str,
    full_name: str,
    role: str,
) -> Invitation:
    """Invite an address; an earlier pending invitation of it to this org is replaced.
    The e-mail goes out before the transaction commits: if it cannot be sent, no
    invitation is left that nobody received."""
    organization = await _managed_organization(session, principal, org_id)
    now = utcnow()
    email = email.lower()
    await session.execute(
        update(Invitation)
        .where(Invitation.org_id == org_id, Invitation.email == email, *_pending(now))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    token = secrets.token_urlsafe(32)
    invitation = Invitation(
        org_id=org_id,
        email=email,
        full_name=full_name,
        role=role,
        token_hash=hash_invitation_token(token),
        invited_by=principal.user_id,
        expires_at=now + timedelta(seconds=settings.invitation_ttl_seconds),
    )
    session.add(invitation)
    await session.flush()
    has_account = await session.scalar(select(User.id).where(User.email == email)) is not None
    await mailer.send_invitation(
        InvitationEmail(
            email=email,
            full_name=full_name,
            organization_name=organization.name,
            role=role,
            token=token,
            expires_at=invitation.expires_at,
            has_account=has_account,
        )
    )
    log.info("member_invited", org_id=str(org_id), invitation_id=str(invitation.id))
    return invitation


async def list_pending_invitations(
    session: AsyncSession, principal: Principal, org_id: uuid.UUID, params: PageParams
) -> tuple[Sequence[Invitation], int]:
    await _managed_organization(session, principal, org_id)
    statement = (
        select(Invitation)
        .where(Invitation.org_id == org_id, *_pending(utcnow()))
        .order_by(Invitation.created_at, Invitation.id)
    )
    return await fetch_page(session, statement, params)


async def revoke_invitation(
    session: AsyncSession, principal: Principal, org_id: uuid.UUID, invitation_id: uuid.UUID
) -> None:
    """Its token stops working. An invitation that is not pending (or not this org's) is 404."""
    await _managed_organization(session, principal, org_id)
    revoked = await session.scalar(
        update(Invitation)
        .where(Invitation.id == invitation_id, Invitation.org_id == org_id, *_pending(utcnow()))
        .values(revoked_at=utcnow())
        .returning(Invitation.id)
        .execution_options(synchronize_session=False)
    )
    if revoked is None:
        raise InvitationNotFound()


async def accept_invitation(
    session: AsyncSession,
    passwords: Passwords,
    *,
    token: str,
    password: str,
    full_name: str | None,
) -> tuple[User, Organization]:
    """The invitee becomes a member with their own password. An unknown, spent, revoked or
    expired token is one answer. An address that already has an account is refused
    (409) and the invitation stays pending: the account is never moved or merged."""
    now = utcnow()
    invitation = await session.scalar(
        select(Invitation)
        .where(Invitation.token_hash == hash_invitation_token(token))
        # Two acceptances of one token serialise here; the second sees it spent.
        .with_for_update()
    )
    if invitation is None or invitation_status(invitation, now) != "pending":
        raise InvalidInvitation()
    if await session.scalar(select(User.id).where(User.email == invitation.email)) is not None:
        raise AccountExists()
    organization = await session.get_one(Organization, invitation.org_id)
    user = await create_user(
        session,
        passwords,
        email=invitation.email,
        password=password,
        full_name=full_name or invitation.full_name,
        org_id=organization.id,
        role=invitation.role,
    )
    invitation.accepted_at = now
    await session.flush()
    await events.user_registered(session, user, organization, added_by=invitation.invited_by)
    log.info("invitation_accepted", org_id=str(organization.id), user_id=str(user.id))
    return user, organization


# --- removing members -------------------------------------------------------------------


async def remove_member(
    session: AsyncSession,
    *,
    redis: Redis,
    settings: Settings,
    principal: Principal,
    org_id: uuid.UUID,
    user_id: uuid.UUID,
) -> None:
    """The account is deleted and every session of it ends at once (refresh tokens, and
    access tokens through the token epoch). The last org_admin cannot be removed, by
    anyone, themselves included: the organisation would have nobody to manage it."""
    await _managed_organization(session, principal, org_id)
    # Lock the organisation's admins: two admins removing each other at the same moment
    # serialise here, and the second sees that only one is left.
    admins = (
        await session.scalars(
            select(User.id)
            .where(User.org_id == org_id, User.role == "org_admin")
            .order_by(User.id)
            .with_for_update()
        )
    ).all()
    member = await session.scalar(select(User).where(User.id == user_id, User.org_id == org_id))
    if member is None:
        raise MemberNotFound()
    if member.role == "org_admin" and len(admins) <= 1:
        raise LastOrgAdmin()
    await sessions.end_sessions(session, redis, settings, [member.id])
    await session.delete(member)
    await session.flush()
    log.info("member_removed", org_id=str(org_id), user_id=str(user_id), by=str(principal.user_id))
