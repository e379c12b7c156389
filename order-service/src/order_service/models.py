"""Tables of the "orders" schema: orders, their lines, allocation counters and caps, the
hospitals and shortages projections, the outbox, inbox and idempotency keys."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from flow_shared.db import service_metadata
from flow_shared.events.outbox import define_inbox_table, define_outbox_table
from flow_shared.idempotency import define_idempotency_table

SCHEMA = "orders"


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


class OrderStatus(StrEnum):
    PLACED = "placed"
    CONFIRMED = "confirmed"
    DISPATCHED = "dispatched"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    FAILED = "failed"


class ReservationStatus(StrEnum):
    """Where the order's hold at inventory-service stands, as far as this service knows."""

    HELD = "held"
    # The order left the flow; the hold must be released (retried until inventory answers).
    RELEASE_PENDING = "release_pending"
    RELEASED = "released"
    COMMITTED = "committed"


PRIORITIES = ("routine", "urgent", "emergency")
PAYMENT_METHODS = ("invoice", "card", "cash_on_delivery")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


# Money: two decimals for amounts; unit prices keep the scale pricing-service gave them.
Amount = Numeric(14, 2)


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint(_in("status", tuple(OrderStatus)), name="status"),
        CheckConstraint(_in("reservation_status", tuple(ReservationStatus)), name="reservation"),
        CheckConstraint(_in("priority", PRIORITIES), name="priority"),
        CheckConstraint(_in("payment_method", PAYMENT_METHODS), name="payment_method"),
        # A total is exactly the sum of its parts, whatever pricing-service sent.
        CheckConstraint("total = subtotal + delivery_fee + surcharge + tax", name="total_sum"),
        CheckConstraint(
            "subtotal >= 0 AND delivery_fee >= 0 AND surcharge >= 0 AND tax >= 0",
            name="amounts_non_negative",
        ),
        CheckConstraint("deposit_total >= 0", name="deposit_non_negative"),
        Index("ix_orders_hospital_org_id_created_at", "hospital_org_id", "created_at"),
        Index("ix_orders_vendor_id_created_at", "vendor_id", "created_at"),
        Index("ix_orders_created_at", "created_at"),
        # The expiry sweeper scans only unconfirmed orders by deadline.
        Index(
            "ix_orders_placed_expires_at",
            "expires_at",
            postgresql_where=text("status = 'placed'"),
        ),
        Index(
            "ix_orders_release_pending",
            "release_attempted_at",
            postgresql_where=text("reservation_status = 'release_pending'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    hospital_org_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    # None: Flow itself placed it for the hospital (auto-reorder).
    placed_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    vendor_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    depot_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    site_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    delivery_lat: Mapped[float] = mapped_column(Double)
    delivery_lon: Mapped[float] = mapped_column(Double)
    delivery_address: Mapped[str | None] = mapped_column(Text)
    priority: Mapped[str] = mapped_column(String(20))
    payment_method: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    # [{status, at, actor}], appended by state.apply_transition only.
    status_history: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)

    reservation_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True)
    reservation_status: Mapped[str] = mapped_column(String(20))
    release_attempted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    quote_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    currency: Mapped[str] = mapped_column(String(3))
    subtotal: Mapped[Decimal] = mapped_column(Amount)
    delivery_fee: Mapped[Decimal] = mapped_column(Amount)
    surcharge: Mapped[Decimal] = mapped_column(Amount)
    tax: Mapped[Decimal] = mapped_column(Amount)
    total: Mapped[Decimal] = mapped_column(Amount)
    # Refundable cylinder deposits, charged next to `total` (amount due = total + this).
    deposit_total: Mapped[Decimal] = mapped_column(Amount, server_default=text("0"))
    # Its cylinders were named by serial at dispatch: delivery moves them at inventory too.
    cylinders_tracked: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    distance_km: Mapped[float | None] = mapped_column(Double)

    notes: Mapped[str | None] = mapped_column(Text)
    eta_minutes: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)
    # The SOS request this order fulfils (service/sos.py); its payment never fails it.
    sos_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), unique=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Set in Python, not by the server: answers are built before the commit.
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    items: Mapped[list[OrderItem]] = relationship(
        lazy="selectin", order_by="OrderItem.line_no", cascade="all, delete-orphan"
    )


class OrderItem(Base):
    """One line, at the price of the quote the order was placed on (never re-priced)."""

    __tablename__ = "order_items"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price >= 0 AND line_total >= 0", name="prices_non_negative"),
        CheckConstraint("deposit_per_unit >= 0", name="deposit_non_negative"),
    )

    order_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True
    )
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal] = mapped_column(Numeric)
    line_total: Mapped[Decimal] = mapped_column(Amount)
    # Refundable, per unit, from the quote; never part of line_total.
    deposit_per_unit: Mapped[Decimal] = mapped_column(Amount, server_default=text("0"))


class AbandonedHold(Base):
    """A hold at inventory-service that a failed placement could not give back right away.

    There is no order with this `order_id`. `reservation_id` is unknown when the
    reservation's answer was lost; `reserve_request` then finds the hold again
    (reservations are idempotent on order_id). The order sweeper releases these.
    """

    __tablename__ = "abandoned_holds"
    __table_args__ = (Index("ix_abandoned_holds_attempted_at", "attempted_at"),)

    order_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    reservation_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    # {depot_id, items: [{product_id, quantity}], ttl_seconds}, as sent to inventory-service.
    reserve_request: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # After this the hold has expired at inventory-service by itself.
    hold_expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attempted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AllocationUsage(Base):
    """Open units of one hospital for one product: the counter its caps are held against.

    Taken by one conditional UPDATE (`open_units + n <= cap`) in the transaction that
    creates the order, given back in the transaction that moves the order to delivered or
    to an end state (state.apply_transition). SOS requests are to count in this same row.
    """

    __tablename__ = "allocation_usage"
    __table_args__ = (CheckConstraint("open_units >= 0", name="open_units_non_negative"),)

    hospital_org_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    product_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    open_units: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AllocationCap(Base):
    """A platform admin's cap for one hospital and product, instead of the default."""

    __tablename__ = "allocation_caps"
    __table_args__ = (CheckConstraint("units >= 0", name="units_non_negative"),)

    hospital_org_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    product_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    units: Mapped[int] = mapped_column(Integer)
    updated_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SiteConsumption(Base):
    """Projection of inventory-service's supply.reported: each hospital site's reported
    oxygen use, as units of each oxygen product a day (`daily_units`, product id ->
    units). The newest report of a site (by `as_of`) wins, whatever the delivery order.
    A verified hospital's cap is at least ALLOCATION_DAYS of its sites' sum."""

    __tablename__ = "site_consumption"
    __table_args__ = (Index("ix_site_consumption_hospital_org_id", "hospital_org_id"),)

    site_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    hospital_org_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    daily_units: Mapped[dict[str, float]] = mapped_column(JSONB)
    as_of: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class HospitalStanding(Base):
    """Projection of user-service's hospital organisations (organization.verified,
    .suspended, .reinstated): whether the verified or the unverified default cap applies.

    `verified` only turns on. `suspended` follows the newest suspension or reinstatement
    by its event's time (`suspended_as_of`), so redelivered or reordered events converge.
    """

    __tablename__ = "hospitals"

    org_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    verified: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    suspended: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    suspended_as_of: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ShortageProjection(Base):
    """Projection of admin-service's shortage.declared / shortage.ended: where (a circle)
    and for which product categories routine orders pause, caps tighten and holds shorten.

    Active while `ended_at` is null and `ends_at` (if any) is in the future. An ended event
    that arrives before its declaration leaves the row ended whatever comes next.
    """

    __tablename__ = "shortages"
    __table_args__ = (
        CheckConstraint("radius_km > 0", name="radius_positive"),
        Index("ix_shortages_active", "ended_at", postgresql_where=text("ended_at IS NULL")),
    )

    shortage_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    lat: Mapped[float] = mapped_column(Double)
    lon: Mapped[float] = mapped_column(Double)
    radius_km: Mapped[float] = mapped_column(Double)
    categories: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    starts_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SosStatus(StrEnum):
    OPEN = "open"
    FULFILLED = "fulfilled"
    CANCELLED = "cancelled"
    UNFILLED = "unfilled"


class SosRequest(Base):
    """An SOS broadcast (service/sos.py): rings of offers to the nearest vendors with stock.

    `current_ring` and `ring_expires_at` belong to the open ring; every change of ring or
    status is one conditional UPDATE on this row (WHERE status = 'open' AND current_ring =
    n), so the first acceptance wins and a ring escalates once, in any process.
    """

    __tablename__ = "sos_requests"
    __table_args__ = (
        CheckConstraint(_in("status", tuple(SosStatus)), name="status"),
        CheckConstraint(_in("payment_method", PAYMENT_METHODS), name="payment_method"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        Index("ix_sos_requests_hospital_org_id_created_at", "hospital_org_id", "created_at"),
        # The SOS sweeper scans only open requests by their ring's deadline.
        Index(
            "ix_sos_requests_open_ring_expires_at",
            "ring_expires_at",
            postgresql_where=text("status = 'open'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    hospital_org_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    # None: Flow itself opened it for the hospital (auto-reorder).
    created_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    product_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    quantity: Mapped[int] = mapped_column(Integer)
    site_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    delivery_lat: Mapped[float] = mapped_column(Double)
    delivery_lon: Mapped[float] = mapped_column(Double)
    delivery_address: Mapped[str | None] = mapped_column(Text)
    max_distance_km: Mapped[float] = mapped_column(Double)
    ring_size: Mapped[int] = mapped_column(Integer)
    ring_timeout_seconds: Mapped[int] = mapped_column(Integer)
    payment_method: Mapped[str] = mapped_column(String(20))
    notes: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    current_ring: Mapped[int] = mapped_column(Integer)
    ring_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    order_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    closed_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    rings: Mapped[list[SosRing]] = relationship(
        lazy="selectin", order_by="SosRing.number", cascade="all, delete-orphan"
    )
    offers: Mapped[list[SosOffer]] = relationship(
        lazy="selectin",
        order_by=lambda: [SosOffer.ring_number, SosOffer.position],
        cascade="all, delete-orphan",
    )


class SosRing(Base):
    __tablename__ = "sos_rings"

    sos_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("sos_requests.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Why it closed: accepted, declined, timed_out, cancelled.
    closed_reason: Mapped[str | None] = mapped_column(String(20))


class SosOffer(Base):
    """One vendor's offer in one ring (a vendor is offered an SOS once, at its best depot)."""

    __tablename__ = "sos_offers"
    __table_args__ = (
        CheckConstraint("answer IS NULL OR answer IN ('declined', 'accepted')", name="answer"),
        Index("ix_sos_offers_vendor_id", "vendor_id"),
    )

    sos_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("sos_requests.id", ondelete="CASCADE"), primary_key=True
    )
    vendor_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    ring_number: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer)
    depot_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    distance_km: Mapped[float] = mapped_column(Double)
    eta_min: Mapped[int | None] = mapped_column(Integer)
    answer: Mapped[str | None] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    answered_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))


outbox = define_outbox_table(Base.metadata)
inbox = define_inbox_table(Base.metadata)
idempotency_keys = define_idempotency_table(Base.metadata)
