"""Tables of the "admin" schema: the audit of admin actions, the event inbox and the
projection of every domain event that stats and audit read; shortage declarations, with
the outbox and idempotency keys of their creation."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Computed,
    DateTime,
    Double,
    Index,
    Numeric,
    String,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import UserDefinedType

from flow_shared.db import service_metadata
from flow_shared.events.outbox import define_inbox_table, define_outbox_table
from flow_shared.idempotency import define_idempotency_table

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


class GeographyPoint(UserDefinedType[Any]):
    """PostGIS geography(Point, 4326); only ever written by the database (generated column)."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "geography(Point,4326)"


# The centre is derived from lat/lon by PostgreSQL, so the two can never disagree.
SHORTAGE_CENTER_EXPRESSION = "(ST_SetSRID(ST_MakePoint(lon, lat), 4326))::geography"


class Shortage(Base):
    """A declared shortage: a circle (centre, radius) and the product categories short in it.

    Active while `ended_at` is null; ended by an admin or, once `ends_at` has passed, by the
    expiry job (one conditional UPDATE each, so it ends, and says so, once)."""

    __tablename__ = "shortages"
    __table_args__ = (
        CheckConstraint("lat BETWEEN -90 AND 90", name="lat_range"),
        CheckConstraint("lon BETWEEN -180 AND 180", name="lon_range"),
        CheckConstraint("radius_km > 0", name="radius_positive"),
        CheckConstraint("cardinality(categories) > 0", name="categories_not_empty"),
        CheckConstraint("ends_at IS NULL OR ends_at > starts_at", name="ends_after_start"),
        # "Covers this point": ST_DWithin on the centre's spatial index.
        Index("ix_shortages_center", "center", postgresql_using="gist"),
        Index("ix_shortages_starts_at", "starts_at"),
        # The expiry job looks only at active shortages that have an end.
        Index(
            "ix_shortages_active_ends_at",
            "ends_at",
            postgresql_where=text("ended_at IS NULL AND ends_at IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    lat: Mapped[float] = mapped_column(Double)
    lon: Mapped[float] = mapped_column(Double)
    radius_km: Mapped[float] = mapped_column(Double)
    center: Mapped[Any] = mapped_column(
        GeographyPoint(), Computed(SHORTAGE_CENTER_EXPRESSION, persisted=True), deferred=True
    )
    categories: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    note: Mapped[str] = mapped_column(Text)
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    declared_by: Mapped[uuid.UUID]
    # Null when the shortage ended by itself (its ends_at passed).
    ended_by: Mapped[uuid.UUID | None]
    # Who was told at declaration; shortage.ended goes to the same organisations.
    recipient_org_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(Uuid()))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SosFact(Base):
    """One row per SOS request: open until fulfilled, unfilled or cancelled (open_sos)."""

    __tablename__ = "sos_facts"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'fulfilled', 'unfilled', 'cancelled')", name="status"),
        Index("ix_sos_facts_status", "status"),
    )

    sos_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    hospital_org_id: Mapped[uuid.UUID]
    status: Mapped[str] = mapped_column(String(20))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# shortage.declared / shortage.ended, written in the transaction that changes the shortage.
outbox = define_outbox_table(Base.metadata)

# Idempotency-Key of POST /api/v1/admin/shortages.
idempotency_keys = define_idempotency_table(Base.metadata)
