"""Tables of the "pricing" schema: current prices, their history, and quotes.

A quote copies the prices it used into its own lines, so a later price change
never alters an existing quote (nor an order made from it).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from flow_shared.db import service_metadata

SCHEMA = "pricing"

# Money: two decimals, wide enough for bulk liquid-oxygen orders.
Money = Numeric(14, 2)
Percent = Numeric(5, 2)


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


class Price(Base):
    """A vendor's current price for one product (one row per vendor and product)."""

    __tablename__ = "prices"
    __table_args__ = (
        UniqueConstraint("vendor_id", "product_id"),
        CheckConstraint("unit_price >= 0", name="unit_price_non_negative"),
        CheckConstraint("delivery_fee_per_km >= 0", name="delivery_fee_per_km_non_negative"),
        CheckConstraint("min_delivery_fee >= 0", name="min_delivery_fee_non_negative"),
        CheckConstraint(
            "emergency_surcharge_pct >= 0 AND emergency_surcharge_pct <= 100",
            name="emergency_surcharge_pct_range",
        ),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_iso"),
        CheckConstraint("deposit_per_cylinder >= 0", name="deposit_per_cylinder_non_negative"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    vendor_id: Mapped[uuid.UUID]
    product_id: Mapped[uuid.UUID]
    unit_price: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    delivery_fee_per_km: Mapped[Decimal] = mapped_column(Money)
    min_delivery_fee: Mapped[Decimal] = mapped_column(Money)
    emergency_surcharge_pct: Mapped[Decimal] = mapped_column(Percent)
    # Refundable deposit per serial-tracked cylinder (0 for every other product).
    deposit_per_cylinder: Mapped[Decimal] = mapped_column(Money, server_default=text("0"))
    # Bumped on every change; history rows carry the version they describe.
    version: Mapped[int] = mapped_column(Integer, default=1)
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_by: Mapped[uuid.UUID]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PriceHistory(Base):
    """Every version a price ever had, with the period it was valid."""

    __tablename__ = "price_history"
    __table_args__ = (
        Index(
            "ix_price_history_vendor_product_valid_from", "vendor_id", "product_id", "valid_from"
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    price_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("prices.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    vendor_id: Mapped[uuid.UUID]
    product_id: Mapped[uuid.UUID]
    unit_price: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    delivery_fee_per_km: Mapped[Decimal] = mapped_column(Money)
    min_delivery_fee: Mapped[Decimal] = mapped_column(Money)
    emergency_surcharge_pct: Mapped[Decimal] = mapped_column(Percent)
    deposit_per_cylinder: Mapped[Decimal] = mapped_column(Money, server_default=text("0"))
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # NULL while this version is the current one.
    valid_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    changed_by: Mapped[uuid.UUID]


class Quote(Base):
    """A priced offer, immutable once written; valid until `expires_at`."""

    __tablename__ = "quotes"
    __table_args__ = (
        CheckConstraint("priority IN ('routine', 'urgent', 'emergency')", name="priority"),
        CheckConstraint(
            "total = subtotal + delivery_fee + surcharge + tax", name="total_is_sum_of_parts"
        ),
        CheckConstraint("deposit_total >= 0", name="deposit_total_non_negative"),
        Index("ix_quotes_vendor_id_created_at", "vendor_id", "created_at"),
        Index("ix_quotes_expires_at", "expires_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    vendor_id: Mapped[uuid.UUID]
    depot_id: Mapped[uuid.UUID]
    priority: Mapped[str] = mapped_column(String(16))
    delivery_lat: Mapped[float]
    delivery_lon: Mapped[float]
    distance_km: Mapped[Decimal] = mapped_column(Numeric(10, 1))
    subtotal: Mapped[Decimal] = mapped_column(Money)
    delivery_fee: Mapped[Decimal] = mapped_column(Money)
    surcharge: Mapped[Decimal] = mapped_column(Money)
    tax_rate: Mapped[Decimal] = mapped_column(Numeric(6, 4))
    tax: Mapped[Decimal] = mapped_column(Money)
    total: Mapped[Decimal] = mapped_column(Money)
    # sum of quantity * deposit_per_unit: refundable, charged next to `total`, never part of it.
    deposit_total: Mapped[Decimal] = mapped_column(Money, server_default=text("0"))
    currency: Mapped[str] = mapped_column(String(3))
    # "api" (a user) or "internal" (a service); "compare" on rows written before compare
    # stopped storing quotes (pruned like any other).
    source: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[uuid.UUID | None]
    requested_by_org: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    items: Mapped[list[QuoteItem]] = relationship(
        back_populates="quote",
        order_by="QuoteItem.line_no",
        lazy="selectin",
        cascade="all, delete-orphan",
    )


class QuoteItem(Base):
    """One priced line of a quote: the unit price is copied, not referenced."""

    __tablename__ = "quote_items"
    __table_args__ = (
        UniqueConstraint("quote_id", "line_no"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("deposit_per_unit >= 0", name="deposit_per_unit_non_negative"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    quote_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("quotes.id", ondelete="CASCADE"))
    line_no: Mapped[int] = mapped_column(Integer)
    product_id: Mapped[uuid.UUID]
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal] = mapped_column(Money)
    line_total: Mapped[Decimal] = mapped_column(Money)
    # The price's deposit_per_cylinder, copied like unit_price.
    deposit_per_unit: Mapped[Decimal] = mapped_column(Money, server_default=text("0"))
    # Which price version was used, for audit.
    price_history_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("price_history.id", ondelete="SET NULL")
    )

    quote: Mapped[Quote] = relationship(back_populates="items")
