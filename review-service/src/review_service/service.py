"""The rules of reviews, as plain async functions taking the request's session.

Nothing here commits: the review, the summary counters and the outbox row commit
together in the caller's transaction. Every rule that must hold under concurrency is a
single statement the database arbitrates: one review per order (unique order_id, ON
CONFLICT), the summary counters (one atomic UPDATE per change), one response per review
and one effect per hide (conditional UPDATE ... RETURNING).
"""

from __future__ import annotations

import uuid

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.auth import Principal
from review_service import events
from review_service.errors import (
    OrderNotDeliveredYet,
    OrderNotReviewable,
    ReviewAlreadyAnswered,
    ReviewExists,
    ReviewNotFound,
)
from review_service.models import (
    RATINGS,
    DeliveredOrder,
    PlacedOrder,
    Review,
    VendorRatingSummary,
)
from review_service.schemas import ResponseCreate, ReviewCreate


def sees_order_of(viewer: Principal, review: Review) -> bool:
    """Which order a review is about, and which hospital wrote it, is for the order's two
    organisations and platform admins only."""
    return viewer.is_platform_admin or viewer.org_id in (review.hospital_org_id, review.vendor_id)


async def create_review(
    session: AsyncSession, hospital: Principal, request: ReviewCreate
) -> Review:
    """Only the hospital an order was delivered to may review it, and only once."""
    delivered = await session.scalar(
        select(DeliveredOrder).where(
            DeliveredOrder.order_id == request.order_id,
            DeliveredOrder.hospital_org_id == hospital.org_id,
        )
    )
    if delivered is None:
        raise await _why_not_reviewable(session, hospital, request.order_id)
    review: Review | None = await session.scalar(
        pg_insert(Review)
        .values(
            id=uuid.uuid4(),
            order_id=delivered.order_id,
            vendor_id=delivered.vendor_id,
            hospital_org_id=delivered.hospital_org_id,
            author_id=hospital.user_id,
            rating=request.rating,
            comment=request.comment or None,
        )
        .on_conflict_do_nothing(index_elements=[Review.order_id])
        .returning(Review)
    )
    if review is None:
        raise ReviewExists("This order has already been reviewed.")
    await events.review_created(session, review)
    # Last, so the vendor's hot summary row stays locked for as short a time as possible.
    await _count_in(session, review.vendor_id, review.rating)
    return review


async def _why_not_reviewable(
    session: AsyncSession, hospital: Principal, order_id: uuid.UUID
) -> OrderNotDeliveredYet | OrderNotReviewable:
    """Its own hospital learns that the order is not delivered yet (409); to anyone
    else an order of another organisation looks unknown (404)."""
    owned = await session.scalar(
        select(PlacedOrder.order_id).where(
            PlacedOrder.order_id == order_id, PlacedOrder.hospital_org_id == hospital.org_id
        )
    )
    if owned is not None:
        return OrderNotDeliveredYet("This order has not been delivered yet; review it once it is.")
    return OrderNotReviewable(
        "Only an order delivered to your organisation can be reviewed; "
        "this one is unknown or not yours."
    )


async def respond_to_review(
    session: AsyncSession, vendor: Principal, review_id: uuid.UUID, request: ResponseCreate
) -> Review:
    """The reviewed vendor answers once; a second answer is refused (409), never replaces
    the first, so what hospitals have read stays what the vendor said."""
    answered: Review | None = await session.scalar(
        update(Review)
        .where(
            Review.id == review_id,
            Review.vendor_id == vendor.org_id,
            Review.hidden.is_(False),
            Review.response_body.is_(None),
        )
        .values(response_body=request.body, responded_at=func.now(), responded_by=vendor.user_id)
        .returning(Review)
    )
    if answered is not None:
        return answered
    exists = await session.scalar(
        select(Review.id).where(
            Review.id == review_id, Review.vendor_id == vendor.org_id, Review.hidden.is_(False)
        )
    )
    if exists is None:
        raise ReviewNotFound("No review with this id is visible to you.")
    raise ReviewAlreadyAnswered("This review already has your response.")


async def hide_review(session: AsyncSession, admin: Principal, review_id: uuid.UUID) -> Review:
    """Moderation: the review leaves the public list and the vendor's summary. Hiding a
    hidden review changes nothing (only the UPDATE that flips the flag adjusts counters)."""
    hidden: Review | None = await session.scalar(
        update(Review)
        .where(Review.id == review_id, Review.hidden.is_(False))
        .values(hidden=True, hidden_at=func.now(), hidden_by=admin.user_id)
        .returning(Review)
    )
    if hidden is not None:
        await _count_out(session, hidden.vendor_id, hidden.rating)
        return hidden
    return await _existing(session, review_id)


async def unhide_review(session: AsyncSession, review_id: uuid.UUID) -> Review:
    """Undo a hide: the review is listed and counted again. Idempotent like hiding."""
    shown: Review | None = await session.scalar(
        update(Review)
        .where(Review.id == review_id, Review.hidden.is_(True))
        .values(hidden=False, hidden_at=None, hidden_by=None)
        .returning(Review)
    )
    if shown is not None:
        await _count_in(session, shown.vendor_id, shown.rating)
        return shown
    return await _existing(session, review_id)


async def _existing(session: AsyncSession, review_id: uuid.UUID) -> Review:
    review = await session.get(Review, review_id)
    if review is None:
        raise ReviewNotFound("No review with this id.")
    return review


# --- the per-vendor summary counters ----------------------------------------------------


def _rating_column(rating: int) -> str:
    if rating not in RATINGS:
        raise ValueError(f"rating out of range: {rating}")
    return f"rating_{rating}"


async def _count_in(session: AsyncSession, vendor_id: uuid.UUID, rating: int) -> None:
    """Add one visible review. The first one creates the row; concurrent writers queue on
    the row lock and each adds to what the previous one committed."""
    column = _rating_column(rating)
    table = VendorRatingSummary.__table__.c
    statement = pg_insert(VendorRatingSummary).values(
        {"vendor_id": vendor_id, "review_count": 1, "rating_sum": rating, column: 1}
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[VendorRatingSummary.vendor_id],
            set_={
                "review_count": table.review_count + 1,
                "rating_sum": table.rating_sum + rating,
                column: table[column] + 1,
                "updated_at": func.now(),
            },
        )
    )


async def _count_out(session: AsyncSession, vendor_id: uuid.UUID, rating: int) -> None:
    """Take one visible review away; its row exists since the review was counted in."""
    column = _rating_column(rating)
    table = VendorRatingSummary.__table__.c
    result = await session.execute(
        update(VendorRatingSummary)
        .where(VendorRatingSummary.vendor_id == vendor_id)
        .values(
            {
                "review_count": table.review_count - 1,
                "rating_sum": table.rating_sum - rating,
                column: table[column] - 1,
                "updated_at": func.now(),
            }
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise RuntimeError(f"no rating summary for vendor {vendor_id}")
