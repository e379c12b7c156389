"""Tables of review-service, all in the "reviews" schema: the placed- and delivered-orders
projections, reviews (with the vendor's response), per-vendor rating summaries, the outbox
and inbox."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    Text,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flow_shared.db import service_metadata
from flow_shared.events.outbox import define_inbox_table, define_outbox_table

SCHEMA = "reviews"
RATINGS = (1, 2, 3, 4, 5)
MAX_TEXT_LENGTH = 2000


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


class DeliveredOrder(Base):
    """Projection of order-service's `order.delivered` events: the orders that may be
    reviewed, and by whom. A delivered order never changes, so rows are only inserted."""

    __tablename__ = "delivered_orders"

    order_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    hospital_org_id: Mapped[uuid.UUID]
    vendor_id: Mapped[uuid.UUID]
    delivered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class PlacedOrder(Base):
    """Projection of order-service's `order.placed` events: which hospital owns an order
    that is not delivered yet, so its own hospital hears "not delivered yet" (409) where
    anyone else hears "unknown" (404). Like a delivered order, it is only inserted."""

    __tablename__ = "placed_orders"

    order_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    hospital_org_id: Mapped[uuid.UUID]
    vendor_id: Mapped[uuid.UUID]
    placed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class Review(Base):
    """One review per delivered order (the unique order_id holds it under concurrency).
    The vendor's single response lives on the row; it is set at most once."""

    __tablename__ = "reviews"
    __table_args__ = (
        CheckConstraint("rating BETWEEN 1 AND 5", name="rating"),
        CheckConstraint(f"char_length(comment) <= {MAX_TEXT_LENGTH}", name="comment_length"),
        CheckConstraint(
            f"char_length(response_body) <= {MAX_TEXT_LENGTH}", name="response_body_length"
        ),
        CheckConstraint(
            "(response_body IS NULL) = (responded_at IS NULL)", name="response_complete"
        ),
        CheckConstraint("hidden = (hidden_at IS NOT NULL)", name="hidden_complete"),
        # The public list: one vendor's reviews, newest first.
        Index("ix_reviews_vendor_id_created_at", "vendor_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("delivered_orders.order_id"), unique=True
    )
    vendor_id: Mapped[uuid.UUID]
    hospital_org_id: Mapped[uuid.UUID]
    author_id: Mapped[uuid.UUID]
    rating: Mapped[int] = mapped_column(SmallInteger)
    comment: Mapped[str | None] = mapped_column(Text)
    hidden: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    hidden_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    hidden_by: Mapped[uuid.UUID | None]
    response_body: Mapped[str | None] = mapped_column(Text)
    responded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    responded_by: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class VendorRatingSummary(Base):
    """The visible (not hidden) reviews of one vendor, kept as counters that every review,
    hide and unhide changes with one atomic UPDATE in its own transaction. The CHECKs make
    the counters agree with each other whatever the code does."""

    __tablename__ = "vendor_rating_summaries"
    __table_args__ = (
        CheckConstraint(
            "rating_1 >= 0 AND rating_2 >= 0 AND rating_3 >= 0 AND rating_4 >= 0 AND rating_5 >= 0",
            name="non_negative",
        ),
        CheckConstraint(
            "review_count = rating_1 + rating_2 + rating_3 + rating_4 + rating_5",
            name="count_matches_distribution",
        ),
        CheckConstraint(
            "rating_sum = rating_1 + 2 * rating_2 + 3 * rating_3 + 4 * rating_4 + 5 * rating_5",
            name="sum_matches_distribution",
        ),
    )

    vendor_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    review_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    rating_sum: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    rating_1: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    rating_2: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    rating_3: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    rating_4: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    rating_5: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


outbox = define_outbox_table(Base.metadata)
inbox = define_inbox_table(Base.metadata)
