"""Tables of notification-service, all in the "notifications" schema: notifications,
the member projection (e-mail recipients), preferences, webhook signing secrets,
deliveries, and the inbox."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flow_shared.db import service_metadata
from flow_shared.events.outbox import define_inbox_table

SCHEMA = "notifications"


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


class DeliveryChannel(StrEnum):
    EMAIL = "email"
    WEBHOOK = "webhook"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


def _in(values: type[StrEnum]) -> str:
    return ", ".join(f"'{v.value}'" for v in values)


class Notification(Base):
    """One event heard by one organisation (or by one role or one user in it: audience.py).

    One event may notify several organisations (an SOS ring, a shortage area), but each
    of them once: (event_id, org_id, user_id) is unique, NULL user_id included.
    """

    __tablename__ = "notifications"
    __table_args__ = (
        Index(
            "uq_notifications_event_recipient",
            "event_id",
            "org_id",
            "user_id",
            unique=True,
            postgresql_nulls_not_distinct=True,
        ),
        # The list (newest first) and the stream's replay (after a given seq) of one org.
        Index("ix_notifications_org_id_seq", "org_id", "seq"),
        Index(
            "ix_notifications_org_id_unread",
            "org_id",
            "seq",
            postgresql_where=text("read_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # Insertion order, for listing and for replaying what a stream missed.
    seq: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True)
    org_id: Mapped[uuid.UUID]
    type: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
    event_id: Mapped[uuid.UUID]
    # Only the org's members with this role see it (NULL: everyone in the org).
    audience_role: Mapped[str | None] = mapped_column(String(20))
    # Only this user sees it (NULL: not addressed to one user).
    user_id: Mapped[uuid.UUID | None]
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    @property
    def read(self) -> bool:
        return self.read_at is not None


class Member(Base):
    """Projection of user-service's users (from user.registered): who gets an org's e-mail."""

    __tablename__ = "members"
    __table_args__ = (Index("ix_members_org_id", "org_id"),)

    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    org_id: Mapped[uuid.UUID]
    email: Mapped[str] = mapped_column(String(320))
    full_name: Mapped[str] = mapped_column(String(200))
    # org_admin | staff | platform_admin; NULL for members projected before roles were.
    role: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Preference(Base):
    """How an organisation wants to hear (no row: e-mail on, no webhook)."""

    __tablename__ = "preferences"

    org_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    email: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    webhook_url: Mapped[str | None] = mapped_column(String(2048))
    updated_by: Mapped[uuid.UUID | None]
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class WebhookSigningSecret(Base):
    """A secret an organisation's webhooks are signed with, encrypted (webhook_secrets.py).

    The current one has no `retires_at` (at most one per organisation, by the partial
    unique index); one replaced by a rotation keeps signing until its `retires_at`.
    """

    __tablename__ = "webhook_signing_secrets"
    __table_args__ = (
        Index(
            "uq_webhook_signing_secrets_current",
            "org_id",
            unique=True,
            postgresql_where=text("retires_at IS NULL"),
        ),
        Index("ix_webhook_signing_secrets_org_id", "org_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    org_id: Mapped[uuid.UUID]
    # nonce + AES-GCM ciphertext and tag; the org id is its associated data.
    encrypted_secret: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    retires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Delivery(Base):
    """One notification to send out over one channel to one target (an address or a URL).

    pending → sent | failed. The worker claims due rows with SKIP LOCKED, so several
    processes share the work, and a claim is a lease: a process that dies mid-send
    leaves the row due again once `next_attempt_at` passes.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        CheckConstraint(f"channel IN ({_in(DeliveryChannel)})", name="channel"),
        CheckConstraint(f"status IN ({_in(DeliveryStatus)})", name="status"),
        CheckConstraint("attempts >= 0", name="attempts"),
        Index(
            "ix_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_deliveries_notification_id", "notification_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    notification_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("notifications.id", ondelete="CASCADE")
    )
    org_id: Mapped[uuid.UUID]
    channel: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(2048))
    status: Mapped[str] = mapped_column(String(16), server_default=DeliveryStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


inbox = define_inbox_table(Base.metadata)
