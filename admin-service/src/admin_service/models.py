"""Tables of the "admin" schema: the audit of admin actions, the event inbox and the
projection of every domain event that stats and audit read."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, Index, Numeric, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flow_shared.db import service_metadata
from flow_shared.events.outbox import define_inbox_table

SCHEMA = "admin"


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


class AdminActionKind(StrEnum):
    VERIFY = "verify"
    SUSPEND = "suspend"
    REINSTATE = "reinstate"


class AdminAction(Base):
    """What a platform admin did to an organisation, written in the request's transaction."""

    __tablename__ = "admin_actions"
    __table_args__ = (
        CheckConstraint("action IN ('verify', 'suspend', 'reinstate')", name="action"),
        Index("ix_admin_actions_org_id_created_at", "org_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    actor_id: Mapped[uuid.UUID]
    action: Mapped[str] = mapped_column(String(20))
    org_id: Mapped[uuid.UUID]
    reason: Mapped[str | None] = mapped_column(Text)
    # Ties the audit row to the request's log lines and to the events user-service emits.
    correlation_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# Handled event ids of the projection consumer: a redelivered event is a no-op.
inbox = define_inbox_table(Base.metadata)


class AuditEvent(Base):
    """Every domain event admin-service has seen, as it arrived (the audit log)."""

    __tablename__ = "events"
    __table_args__ = (
        # The audit lists newest first, across all types or within one.
        Index("ix_events_occurred_at", "occurred_at"),
        Index("ix_events_type_occurred_at", "type", "occurred_at"),
    )

    event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    producer: Mapped[str] = mapped_column(String(100))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    correlation_id: Mapped[str | None] = mapped_column(String(128))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class OrderFact(Base):
    """One row per order: where it stands and when it reached each milestone."""

    __tablename__ = "order_facts"
    __table_args__ = (
        Index("ix_order_facts_status", "status"),
        Index("ix_order_facts_placed_at", "placed_at"),
    )

    order_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    hospital_org_id: Mapped[uuid.UUID]
    vendor_id: Mapped[uuid.UUID]
    status: Mapped[str] = mapped_column(String(20))
    priority: Mapped[str] = mapped_column(String(20))
    total: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3))
    placed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the order entered its current status (the `at` of that event).
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OrgFact(Base):
    """One row per organisation: its kind and whether it may act on the platform."""

    __tablename__ = "org_facts"
    __table_args__ = (Index("ix_org_facts_kind", "kind"),)

    org_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200))
    verified: Mapped[bool]
    suspended: Mapped[bool]
    # When the latest suspension or reinstatement happened: the one that decides
    # `suspended`, whatever order the events arrive in.
    suspension_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
