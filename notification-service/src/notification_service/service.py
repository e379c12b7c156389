"""The rules of notification-service: plain async functions taking the session.

They only flush: the caller (the request's DbSession, or the event consumer) owns the
transaction and commits it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.auth import Principal
from flow_shared.clock import utcnow
from flow_shared.pagination import PageParams, fetch_page
from notification_service.audience import PLATFORM_ADMIN_ROLE, Audience, Reader
from notification_service.config import Settings
from notification_service.delivery.guard import WebhookRefused, check_literal_host
from notification_service.errors import (
    NotificationNotFound,
    WebhookNotAllowed,
    WebhooksUnavailable,
)
from notification_service.models import (
    Delivery,
    DeliveryChannel,
    Member,
    Notification,
    Preference,
)
from notification_service.schemas import (
    PreferencesIn,
    PreferencesOut,
    PreferencesSaved,
    WebhookSecretRotated,
)
from notification_service.webhook_secrets import (
    WebhookSecretCipher,
    create_first_secret,
    rotate_secret,
)

# --- recording what was heard -----------------------------------------------------------


async def record_notification(
    session: AsyncSession,
    settings: Settings,
    *,
    event_id: uuid.UUID,
    audience: Audience,
    event_type: str,
    title: str,
    body: str,
    data: dict[str, Any],
) -> Notification | None:
    """Store the notification of one event for one audience (an organisation, or one
    role or one user in it) and queue its e-mail and webhook deliveries.
    None when this event already notified that audience."""
    notification_id = uuid.uuid4()
    inserted = (
        await session.execute(
            pg_insert(Notification)
            .values(
                id=notification_id,
                org_id=audience.org_id,
                audience_role=audience.role,
                user_id=audience.user_id,
                type=event_type,
                # One line: titles become e-mail subjects.
                title=" ".join(title.split())[:200],
                body=body,
                data=data,
                event_id=event_id,
            )
            # The unique (event_id, org_id, user_id) is the last word on "one notification
            # per event and recipient": a redelivery inserts nothing and queues nothing.
            .on_conflict_do_nothing(
                index_elements=[Notification.event_id, Notification.org_id, Notification.user_id]
            )
            .returning(Notification.id)
        )
    ).scalar_one_or_none()
    if inserted is None:
        return None
    notification = (
        await session.scalars(select(Notification).where(Notification.id == notification_id))
    ).one()
    await queue_deliveries(session, settings, notification)
    return notification


def _email_recipients(notification: Notification) -> list[ColumnElement[bool]]:
    """Which members of the org get a notification's e-mail: all of them, or the user it
    names, or those with its role. A member projected before roles were (NULL role)
    counts as having the role only if it is the org's first member: the one who
    registered it (always its org_admin) or, for the platform, the bootstrap admin. Later
    members with no known role may be staff, who must not get an admins-only warning."""
    where: list[ColumnElement[bool]] = [Member.org_id == notification.org_id]
    if notification.user_id is not None:
        where.append(Member.user_id == notification.user_id)
    if notification.audience_role is not None:
        first_member = (
            select(Member.user_id)
            .where(Member.org_id == notification.org_id)
            .order_by(Member.created_at, Member.user_id)
            .limit(1)
            .scalar_subquery()
        )
        where.append(
            or_(
                Member.role == notification.audience_role,
                and_(Member.role.is_(None), Member.user_id == first_member),
            )
        )
    return where


async def queue_deliveries(
    session: AsyncSession, settings: Settings, notification: Notification
) -> None:
    """One delivery per recipient member's e-mail address (when the org wants e-mail and
    SMTP is configured) and, for a notification to the whole org, one for the org's
    webhook (when it has one). A webhook is the organisation's feed, readable by whoever
    it forwards to: a notification for one role or one user never goes there."""
    preference = await session.get(Preference, notification.org_id)
    prefs = PreferencesOut.of(preference)
    rows: list[dict[str, Any]] = []
    if prefs.email and settings.email_enabled:
        addresses = await session.scalars(
            select(Member.email)
            .where(*_email_recipients(notification))
            .distinct()
            .order_by(Member.email)
        )
        rows.extend(
            {"channel": DeliveryChannel.EMAIL.value, "target": address} for address in addresses
        )
    whole_org = notification.audience_role is None and notification.user_id is None
    if whole_org and prefs.webhook_url and settings.webhooks_enabled:
        rows.append({"channel": DeliveryChannel.WEBHOOK.value, "target": prefs.webhook_url})
    if rows:
        await session.execute(
            pg_insert(Delivery),
            [
                {
                    "id": uuid.uuid4(),
                    "notification_id": notification.id,
                    "org_id": notification.org_id,
                    **row,
                }
                for row in rows
            ],
        )


async def platform_admin_orgs(session: AsyncSession) -> list[uuid.UUID]:
    """The organisation(s) of the platform admins, from the member projection
    (user.registered with role platform_admin: the bootstrap admin's included)."""
    rows = await session.scalars(
        select(Member.org_id).where(Member.role == PLATFORM_ADMIN_ROLE).distinct()
    )
    return sorted(rows.all())


async def upsert_member(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    org_id: uuid.UUID,
    email: str,
    full_name: str,
    role: str | None = None,
) -> None:
    row = pg_insert(Member).values(
        user_id=user_id, org_id=org_id, email=email, full_name=full_name, role=role
    )
    await session.execute(
        row.on_conflict_do_update(
            index_elements=[Member.user_id],
            set_={
                "org_id": row.excluded.org_id,
                "email": row.excluded.email,
                "full_name": row.excluded.full_name,
                "role": func.coalesce(row.excluded.role, Member.role),
            },
        )
    )


# --- the in-app list ---------------------------------------------------------------------


def _readable_by(reader: Reader) -> list[ColumnElement[bool]]:
    """SQL of Reader.reads: the reader's org's notifications for everyone, for the
    reader's role, or for the reader."""
    return [
        Notification.org_id == reader.org_id,
        or_(Notification.audience_role.is_(None), Notification.audience_role == reader.role),
        or_(Notification.user_id.is_(None), Notification.user_id == reader.user_id),
    ]


def _of_reader(reader: Reader) -> Select[Notification]:
    return select(Notification).where(*_readable_by(reader))


async def list_notifications(
    session: AsyncSession, reader: Reader, *, unread: bool | None, params: PageParams
) -> tuple[Sequence[Notification], int]:
    """Newest first. unread=True: only unread ones; False: only read ones; None: all."""
    statement = _of_reader(reader)
    if unread is True:
        statement = statement.where(Notification.read_at.is_(None))
    elif unread is False:
        statement = statement.where(Notification.read_at.is_not(None))
    return await fetch_page(session, statement.order_by(Notification.seq.desc()), params)


async def mark_read(
    session: AsyncSession, reader: Reader, notification_id: uuid.UUID
) -> Notification:
    """Idempotent; a notification the reader may not read (another organisation's, or
    one for another role or user) is not found (404, not 403)."""
    notification = (
        await session.scalars(
            _of_reader(reader).where(Notification.id == notification_id).with_for_update()
        )
    ).one_or_none()
    if notification is None:
        raise NotificationNotFound("No such notification.")
    if notification.read_at is None:
        notification.read_at = utcnow()
        await session.flush()
    return notification


async def mark_all_read(session: AsyncSession, reader: Reader) -> int:
    result = await session.execute(
        update(Notification)
        .where(*_readable_by(reader), Notification.read_at.is_(None))
        .values(read_at=func.now())
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


# --- what a stream missed ----------------------------------------------------------------


async def seq_of(session: AsyncSession, reader: Reader, notification_id: uuid.UUID) -> int | None:
    seq: int | None = await session.scalar(
        select(Notification.seq).where(*_readable_by(reader), Notification.id == notification_id)
    )
    return seq


async def latest_seq(session: AsyncSession, reader: Reader) -> int:
    seq = await session.scalar(select(func.max(Notification.seq)).where(*_readable_by(reader)))
    return int(seq or 0)


async def notifications_after(
    session: AsyncSession, reader: Reader, after_seq: int, *, limit: int
) -> Sequence[Notification]:
    """The reader's notifications stored after `after_seq`, oldest first."""
    rows = await session.scalars(
        _of_reader(reader)
        .where(Notification.seq > after_seq)
        .order_by(Notification.seq)
        .limit(limit)
    )
    return rows.all()


# --- preferences -------------------------------------------------------------------------


async def get_preferences(session: AsyncSession, org_id: uuid.UUID) -> PreferencesOut:
    return PreferencesOut.of(await session.get(Preference, org_id))


async def update_preferences(
    session: AsyncSession,
    settings: Settings,
    cipher: WebhookSecretCipher | None,
    principal: Principal,
    body: PreferencesIn,
) -> PreferencesSaved:
    """Replace the org's preferences. Its first webhook URL also creates its signing
    secret, returned this once (`webhook_secret`); a later URL keeps the secret."""
    if body.webhook_url is not None:
        if cipher is None:
            raise WebhooksUnavailable("This server has no webhook secrets key configured.")
        try:
            # Only a literal address can be judged now; host names are checked at delivery.
            check_literal_host(body.webhook_url, allow_private=settings.allow_private_webhooks)
        except WebhookRefused as exc:
            raise WebhookNotAllowed(str(exc)) from None
    row = pg_insert(Preference).values(
        org_id=principal.org_id,
        email=body.email,
        webhook_url=body.webhook_url,
        updated_by=principal.user_id,
    )
    await session.execute(
        row.on_conflict_do_update(
            index_elements=[Preference.org_id],
            set_={
                "email": row.excluded.email,
                "webhook_url": row.excluded.webhook_url,
                "updated_by": row.excluded.updated_by,
                "updated_at": func.now(),
            },
        )
    )
    saved = PreferencesSaved(email=body.email, webhook_url=body.webhook_url)
    if body.webhook_url is not None and cipher is not None:
        # After the upsert, so a concurrent first PUT cannot leave an org without a secret.
        created = await create_first_secret(session, cipher, principal.org_id)
        if created is not None:
            saved.webhook_secret = created
    return saved


async def rotate_webhook_secret(
    session: AsyncSession,
    settings: Settings,
    cipher: WebhookSecretCipher | None,
    principal: Principal,
) -> WebhookSecretRotated:
    """A new signing secret for the org (its first, if it had none); the replaced one
    keeps signing for WEBHOOK_SECRET_GRACE_SECONDS."""
    if cipher is None:
        raise WebhooksUnavailable("This server has no webhook secrets key configured.")
    rotated = await rotate_secret(
        session,
        cipher,
        principal.org_id,
        grace=timedelta(seconds=settings.webhook_secret_grace_seconds),
    )
    return WebhookSecretRotated(
        webhook_secret=rotated.secret, previous_secret_valid_until=rotated.previous_valid_until
    )
