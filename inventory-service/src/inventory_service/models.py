"""Tables of the "inventory" schema: products, depots, stock, its movements,
reservations, the verified-vendor projection, and the outbox and inbox."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from geoalchemy2 import Geography
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    DateTime,
    FetchedValue,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    func,
    text,
)
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


outbox = define_outbox_table(Base.metadata)
inbox = define_inbox_table(Base.metadata)
