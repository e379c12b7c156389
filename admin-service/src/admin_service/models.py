"""Tables of the "admin" schema: the audit of admin actions and the event inbox."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, DateTime, Index, String, Text, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flow_shared.db import service_metadata
from flow_shared.events.outbox import define_inbox_table

SCHEMA = "admin"


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


class AdminActionKind(StrEnum):
    VERIFY = "verify"
    SUSPEND = "suspend"


class AdminAction(Base):
    """What a platform admin did to an organisation, written in the request's transaction."""

    __tablename__ = "admin_actions"
    __table_args__ = (
        CheckConstraint("action IN ('verify', 'suspend')", name="action"),
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


# Handled event ids of the (later) stats/audit projection consumer.
inbox = define_inbox_table(Base.metadata)
