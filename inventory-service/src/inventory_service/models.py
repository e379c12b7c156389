"""Tables of the "inventory" schema: products, depots, stock, its movements,
reservations, the verified-vendor projection, hospital sites' oxygen supply and the
orders bound for them, the cylinder ledger, and the outbox and inbox."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from geoalchemy2 import Geography
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    Date,
    DateTime,
    FetchedValue,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flow_shared.db import service_metadata
from flow_shared.events.outbox import define_inbox_table, define_outbox_table

SCHEMA = "inventory"


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


class ProductCategory(StrEnum):
    OXYGEN_CYLINDER = "oxygen_cylinder"
    LIQUID_OXYGEN = "liquid_oxygen"
    CONCENTRATOR = "concentrator"
    REFILL = "refill"
    ACCESSORY = "accessory"


class MovementKind(StrEnum):
    SET = "set"
    ADJUST = "adjust"
    RESERVE = "reserve"
    RELEASE = "release"
    COMMIT = "commit"
    EXPIRE = "expire"


class ReservationStatus(StrEnum):
    HELD = "held"
    COMMITTED = "committed"
    RELEASED = "released"
    EXPIRED = "expired"


def _in(values: type[StrEnum]) -> str:
    return ", ".join(f"'{v.value}'" for v in values)


class Vendor(Base):
    """Projection of user-service's vendor organisations, built from
    organization.verified / .suspended / .reinstated events. `verified` only ever goes
    from false to true upstream; `suspended` follows the latest suspension or
    reinstatement, whose time `suspended_at` keeps, so any delivery order converges."""

    __tablename__ = "vendors"

    vendor_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    verified: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    suspended: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    suspended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint(f"category IN ({_in(ProductCategory)})", name="category"),
        CheckConstraint("gas_liters IS NULL OR gas_liters > 0", name="gas_liters"),
        # What stores oxygen says how much (NOT VALID in its migration: products created
        # before it may lack it until an admin sets it).
        CheckConstraint(
            "gas_liters IS NOT NULL"
            " OR category NOT IN ('oxygen_cylinder', 'liquid_oxygen', 'refill')",
            name="gas_liters_known",
        ),
        Index("ix_products_category", "category"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(32))
    unit: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text, server_default="")
    # Litres of gaseous oxygen one unit delivers; None for what stores none (the runway).
    gas_liters: Mapped[Decimal | None] = mapped_column(Numeric(12, 1))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Depot(Base):
    __tablename__ = "depots"
    __table_args__ = (
        CheckConstraint("lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180", name="coordinates"),
        CheckConstraint("service_radius_km > 0", name="service_radius_km"),
        Index("ix_depots_vendor_id", "vendor_id"),
        # The spatial index ST_DWithin uses for the nearby search.
        Index("ix_depots_location", "location", postgresql_using="gist"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # The vendor's organisation id; the depot exists before the vendor is verified.
    vendor_id: Mapped[uuid.UUID]
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(String(500))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    # Derived from lat/lon by the database, so the two can never disagree.
    location: Mapped[Any] = mapped_column(
        Geography(geometry_type="POINT", srid=4326, spatial_index=False),
        Computed("(ST_SetSRID(ST_MakePoint(lon, lat), 4326))::geography", persisted=True),
        deferred=True,
    )
    service_radius_km: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Stock(Base):
    """One product at one depot. `available = on_hand - reserved` is never negative:
    the CHECK holds it whatever the code does."""

    __tablename__ = "stock"
    __table_args__ = (
        CheckConstraint(
            "reserved >= 0 AND reserved <= on_hand AND on_hand >= 0", name="quantities"
        ),
        CheckConstraint("low_stock_threshold >= 0", name="low_stock_threshold"),
        Index("ix_stock_product_id", "product_id"),
        # A product's stock near a point in one index scan (catalog/nearby); btree_gist.
        Index("ix_stock_product_id_location", "product_id", "location", postgresql_using="gist"),
    )

    depot_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("depots.id", ondelete="CASCADE"), primary_key=True
    )
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("products.id"), primary_key=True)
    on_hand: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    reserved: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    low_stock_threshold: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # Set when available drops below the threshold (one alert per crossing), cleared above.
    low_stock_alerted: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # When the vendor last reported this row (set or adjust): what goes stale. Holds and
    # deliveries move updated_at, but they count nothing on the shelf.
    reported_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # Copies of the depot's vendor and location, so the nearby search needs no depot per
    # candidate row. A trigger (migration 20261124_0003) always sets both from the depot,
    # whatever a writer sends: FetchedValue keeps the ORM from sending anything.
    vendor_id: Mapped[uuid.UUID] = mapped_column(server_default=FetchedValue())
    location: Mapped[Any] = mapped_column(
        Geography(geometry_type="POINT", srid=4326, spatial_index=False),
        server_default=FetchedValue(),
        deferred=True,
    )


class StockMovement(Base):
    """Every change of a stock row. `delta` is the change of on_hand for set, adjust and
    commit, and of reserved for reserve (+), release and expire (-)."""

    __tablename__ = "stock_movements"
    __table_args__ = (
        CheckConstraint(f"kind IN ({_in(MovementKind)})", name="kind"),
        Index("ix_stock_movements_depot_id_product_id_id", "depot_id", "product_id", "id"),
        Index("ix_stock_movements_reference", "reference"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    depot_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("depots.id", ondelete="CASCADE"))
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("products.id"))
    kind: Mapped[str] = mapped_column(String(16))
    delta: Mapped[int] = mapped_column(Integer)
    on_hand_after: Mapped[int] = mapped_column(Integer)
    reserved_after: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(String(500))
    # The reservation id for reserve/release/commit/expire.
    reference: Mapped[str | None] = mapped_column(String(100))
    # A user id, or the calling service / the sweeper for reservation movements.
    actor: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Reservation(Base):
    __tablename__ = "reservations"
    __table_args__ = (
        CheckConstraint(f"status IN ({_in(ReservationStatus)})", name="status"),
        # The sweeper's scan: only live holds, soonest expiry first.
        Index(
            "ix_reservations_held_expires_at",
            "expires_at",
            postgresql_where=text("status = 'held'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # One reservation per order, whatever the concurrency: the idempotency key.
    order_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    depot_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("depots.id"))
    vendor_id: Mapped[uuid.UUID]
    status: Mapped[str] = mapped_column(String(16), server_default=ReservationStatus.HELD.value)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ReservationItem(Base):
    """Quantities per product of a reservation (lines of one product summed)."""

    __tablename__ = "reservation_items"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity"),)

    reservation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("reservations.id", ondelete="CASCADE"), primary_key=True
    )
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("products.id"), primary_key=True)
    quantity: Mapped[int] = mapped_column(Integer)


class RunwayLevel(StrEnum):
    OK = "ok"
    LOW = "low"
    CRITICAL = "critical"


class SupplyOrderStatus(StrEnum):
    """The order statuses the supply projection tells apart (order-service's names)."""

    PLACED = "placed"
    CONFIRMED = "confirmed"
    DISPATCHED = "dispatched"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    FAILED = "failed"


class SiteSupply(Base):
    """A hospital site's oxygen: `gas_liters` on site at `as_of`, used at
    `consumption_lpm`. A report sets it; a delivery moves it on (service/runway.py).

    `runs_out_at` and `next_check_at` follow from the state alone (the drain is linear),
    so they are stored when the state changes: the admin list sorts on the first and the
    alert job scans the second, each with an index, never computing per site per read.
    `level` is the level last evaluated: alerts fire when a new one is more severe."""

    __tablename__ = "site_supply"
    __table_args__ = (
        CheckConstraint("gas_liters >= 0 AND consumption_lpm >= 0", name="amounts"),
        CheckConstraint("critical_hours >= 0 AND critical_hours < alert_hours", name="thresholds"),
        CheckConstraint(f"level IN ({_in(RunwayLevel)})", name="level"),
        CheckConstraint(
            "(auto_reorder_product_id IS NULL) = (auto_reorder_quantity IS NULL)"
            " AND (auto_reorder_product_id IS NULL) = (auto_reorder_priority IS NULL)"
            " AND (auto_reorder_quantity IS NULL OR auto_reorder_quantity > 0)",
            name="auto_reorder",
        ),
        # Soonest to run out first, for admins and for one hospital's sites: a btree's
        # ascending order puts NULLs (a site that uses nothing) last, as the lists do.
        Index("ix_site_supply_runs_out_at", "runs_out_at", "site_id"),
        Index(
            "ix_site_supply_hospital_runs_out_at",
            "hospital_org_id",
            "runs_out_at",
            "site_id",
        ),
        # The alert job's scan: only sites whose level will change with time.
        Index(
            "ix_site_supply_next_check_at",
            "next_check_at",
            postgresql_where=text("next_check_at IS NOT NULL"),
        ),
    )

    site_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    hospital_org_id: Mapped[uuid.UUID]
    # location-service's name of the site when last reported, for alerts and lists.
    site_name: Mapped[str | None] = mapped_column(String(200))
    # Exact: a delivery adds to what has drained, and the drain has any precision.
    gas_liters: Mapped[Decimal] = mapped_column(Numeric)
    consumption_lpm: Mapped[Decimal] = mapped_column(Numeric)
    as_of: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The last report as it was given (`stock`, and `patients` when the rate came from
    # them), who gave it and when: what the officer reported, kept apart from the state.
    stock: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    patients: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    reported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reported_by: Mapped[uuid.UUID]
    alert_hours: Mapped[Decimal] = mapped_column(Numeric(8, 2))
    critical_hours: Mapped[Decimal] = mapped_column(Numeric(8, 2))
    level: Mapped[str] = mapped_column(String(16), server_default=RunwayLevel.OK.value)
    runs_out_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_check_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    auto_reorder_product_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("products.id"))
    auto_reorder_quantity: Mapped[int | None] = mapped_column(Integer)
    auto_reorder_priority: Mapped[str | None] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SiteSupplyCount(Base):
    """How many rows site_supply has (one row), kept by a trigger on it (migration
    20261207_0007): the admins' runway list reads its total here instead of counting."""

    __tablename__ = "site_supply_count"
    __table_args__ = (
        CheckConstraint("single", name="single"),
        CheckConstraint("sites >= 0", name="sites"),
    )

    single: Mapped[bool] = mapped_column(Boolean, primary_key=True, server_default=text("true"))
    sites: Mapped[int] = mapped_column(BigInteger)


class SupplyOrder(Base):
    """Projection of order-service's orders bound for a hospital site (order.* events
    with a `site_id`): the open ones are the site's inbound; a delivered one adds its gas
    to the site once (`delivered_at`). Events may arrive in any order: a status only
    moves forward (service/supply.py, `STATUS_RANK`)."""

    __tablename__ = "supply_orders"
    __table_args__ = (
        CheckConstraint(f"status IN ({_in(SupplyOrderStatus)})", name="status"),
        Index(
            "ix_supply_orders_open_site_id",
            "site_id",
            postgresql_where=text("status IN ('placed', 'confirmed', 'dispatched')"),
        ),
    )

    order_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    site_id: Mapped[uuid.UUID]
    hospital_org_id: Mapped[uuid.UUID]
    status: Mapped[str] = mapped_column(String(16))
    # When the order is expected at the site; None until the vendor confirms with an ETA.
    eta: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # [{product_id, quantity}], as the order's events list them.
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    # When the delivery was added to the site's gas (None: not delivered, or the site had
    # no report to add it to, in which case its next report counts it).
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AutoReorderKind(StrEnum):
    ORDER = "order"  # the configured order, on a low runway
    SOS = "sos"  # an SOS for the same product and quantity, on a critical one


class AutoReorderStatus(StrEnum):
    PENDING = "pending"  # decided, not yet accepted by order-service
    OPEN = "open"  # its order or SOS exists and has not ended
    CLOSED = "closed"  # its order was delivered or ended, or its SOS ended unfilled
    REFUSED = "refused"  # order-service said no (a cap, a shortage pause, no supplier)


class AutoReorder(Base):
    """An order or SOS Flow places for a site on its own (SPEC, oxygen runway).

    Written in the transaction that raises the alert, and sent to order-service after it
    with this row's id as the Idempotency-Key: a crash between the two, a lost answer or
    a restart sends the same key again, which order-service answers with the first
    result. The partial unique index holds "never a second while one is open", per kind,
    whatever the concurrency."""

    __tablename__ = "auto_reorders"
    __table_args__ = (
        CheckConstraint(f"kind IN ({_in(AutoReorderKind)})", name="kind"),
        CheckConstraint(f"status IN ({_in(AutoReorderStatus)})", name="status"),
        CheckConstraint("quantity > 0", name="quantity"),
        Index(
            "uq_auto_reorders_open_site_id_kind",
            "site_id",
            "kind",
            unique=True,
            postgresql_where=text("status IN ('pending', 'open')"),
        ),
        # The sender's scan: requests still to send, when they are next due.
        Index(
            "ix_auto_reorders_pending_next_attempt_at",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_auto_reorders_order_id", "order_id"),
        Index("ix_auto_reorders_sos_id", "sos_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    site_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("site_supply.site_id", ondelete="CASCADE")
    )
    hospital_org_id: Mapped[uuid.UUID]
    kind: Mapped[str] = mapped_column(String(16))
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("products.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    priority: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), server_default=AutoReorderStatus.PENDING.value)
    order_id: Mapped[uuid.UUID | None]
    sos_id: Mapped[uuid.UUID | None]
    # Why order-service refused it, or the last transient failure while pending.
    reason: Mapped[str | None] = mapped_column(String(500))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


outbox = define_outbox_table(Base.metadata)
inbox = define_inbox_table(Base.metadata)


class CylinderStatus(StrEnum):
    FULL = "full"
    EMPTY = "empty"
    IN_TRANSIT = "in_transit"
    AT_HOSPITAL = "at_hospital"
    QUARANTINED = "quarantined"
    RETIRED = "retired"


class Cylinder(Base):
    """One serial-tracked oxygen cylinder of a vendor (SPEC, cylinder ledger).

    `depot_id` is the depot it belongs to and returns to; `holder_org_id` the hospital
    holding it (only at_hospital); `order_id` the order it is in transit on or was
    delivered with. The CHECKs hold the status and its place together whatever the code
    does; every change writes one `CylinderMove` in the same transaction."""

    __tablename__ = "cylinders"
    __table_args__ = (
        UniqueConstraint("vendor_id", "serial"),
        CheckConstraint(f"status IN ({_in(CylinderStatus)})", name="status"),
        CheckConstraint("(status = 'at_hospital') = (holder_org_id IS NOT NULL)", name="holder"),
        CheckConstraint("(status = 'at_hospital') = (held_since IS NOT NULL)", name="held_since"),
        CheckConstraint("status <> 'in_transit' OR order_id IS NOT NULL", name="in_transit"),
        CheckConstraint("deposit >= 0", name="deposit"),
        Index("ix_cylinders_vendor_id_status", "vendor_id", "status"),
        Index("ix_cylinders_holder_org_id_held_since", "holder_org_id", "held_since"),
        Index("ix_cylinders_vendor_id_hydrotest_due", "vendor_id", "hydrotest_due"),
        Index("ix_cylinders_order_id", "order_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    vendor_id: Mapped[uuid.UUID]
    serial: Mapped[str] = mapped_column(String(40))
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("products.id"))
    status: Mapped[str] = mapped_column(String(16))
    depot_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("depots.id"))
    holder_org_id: Mapped[uuid.UUID | None]
    order_id: Mapped[uuid.UUID | None]
    held_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deposit: Mapped[Decimal] = mapped_column(Numeric(14, 2), server_default=text("0"))
    deposit_currency: Mapped[str | None] = mapped_column(String(3))
    hydrotest_due: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CylinderMove(Base):
    """Every change of a cylinder, append-only: who, when, from where to where. The
    first move of a cylinder (its registration) has no `from`."""

    __tablename__ = "cylinder_moves"
    __table_args__ = (
        Index("ix_cylinder_moves_cylinder_id_id", "cylinder_id", "id"),
        Index("ix_cylinder_moves_order_id", "order_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    cylinder_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cylinders.id"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The user who made it; None for the system (an order that ended).
    actor_id: Mapped[uuid.UUID | None]
    actor_org_id: Mapped[uuid.UUID | None]
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    # "depot:<uuid>", "order:<uuid>" or "hospital:<uuid>".
    from_place: Mapped[str | None] = mapped_column(String(60))
    to_place: Mapped[str] = mapped_column(String(60))
    order_id: Mapped[uuid.UUID | None]
    reason: Mapped[str] = mapped_column(String(500))
