"""Reading reviews and summaries. Hidden reviews exist only for platform admins."""

from __future__ import annotations

import uuid
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.auth import Principal
from flow_shared.pagination import Page, PageParams, fetch_page
from review_service.errors import ReviewNotFound
from review_service.models import RATINGS, Review, VendorRatingSummary
from review_service.schemas import ReviewOut, VendorSummaryOut
from review_service.service import sees_order_of

CENT = Decimal("0.01")


def visible_reviews(principal: Principal) -> Select[Any]:
    statement = select(Review)
    if principal.is_platform_admin:
        return statement
    return statement.where(Review.hidden.is_(False))


async def list_reviews(
    session: AsyncSession, principal: Principal, *, vendor_id: uuid.UUID | None, params: PageParams
) -> Page[ReviewOut]:
    statement = visible_reviews(principal)
    if vendor_id is not None:
        statement = statement.where(Review.vendor_id == vendor_id)
    rows, total = await fetch_page(
        session, statement.order_by(Review.created_at.desc(), Review.id.desc()), params
    )
    items = [ReviewOut.of(review, show_order=sees_order_of(principal, review)) for review in rows]
    return Page[ReviewOut].of(items, params, total)


async def get_review(session: AsyncSession, principal: Principal, review_id: uuid.UUID) -> Review:
    review: Review | None = await session.scalar(
        visible_reviews(principal).where(Review.id == review_id)
    )
    if review is None:
        raise ReviewNotFound("No review with this id.")
    return review


def average_rating(rating_sum: int, count: int) -> str | None:
    """sum / count with two places, half up ("4.125" -> "4.13"); None without reviews.
    The division is exact wherever rounding could depend on it: a quotient that ends in
    exactly half a cent terminates within Decimal's 28 digits."""
    if count == 0:
        return None
    return str((Decimal(rating_sum) / Decimal(count)).quantize(CENT, rounding=ROUND_HALF_UP))


async def vendor_summary(session: AsyncSession, vendor_id: uuid.UUID) -> VendorSummaryOut:
    """Read from the counters (one row), never by aggregating reviews: O(1) and exactly
    what the committed reviews, hides and unhides add up to."""
    row = await session.get(VendorRatingSummary, vendor_id)
    if row is None:
        return VendorSummaryOut(
            vendor_id=vendor_id,
            average=None,
            count=0,
            distribution={str(rating): 0 for rating in RATINGS},
        )
    return VendorSummaryOut(
        vendor_id=vendor_id,
        average=average_rating(row.rating_sum, row.review_count),
        count=row.review_count,
        distribution={str(rating): getattr(row, f"rating_{rating}") for rating in RATINGS},
    )
