"""Request and response bodies of the public review API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from flow_shared.validation import NoNul
from review_service.models import MAX_TEXT_LENGTH, Review

# Whole stars only: 4.5, "4" and true are refused, not coerced.
Rating = Annotated[int, Field(strict=True, ge=1, le=5)]
ReviewText = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=MAX_TEXT_LENGTH), NoNul()
]


class ReviewCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_id: uuid.UUID
    rating: Rating
    comment: ReviewText | None = None


class ResponseCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TEXT_LENGTH),
        NoNul(),
    ]


class VendorResponseOut(BaseModel):
    body: str
    responded_at: datetime


class ReviewOut(BaseModel):
    id: uuid.UUID
    # Null to anyone but the order's two organisations and platform admins: the order and
    # its buyer are not for rival vendors to read.
    order_id: uuid.UUID | None
    vendor_id: uuid.UUID
    hospital_org_id: uuid.UUID | None
    rating: int
    comment: str | None
    # Only platform admins ever see a hidden review, so only they see `true` here.
    hidden: bool
    created_at: datetime
    response: VendorResponseOut | None

    @classmethod
    def of(cls, review: Review, *, show_order: bool) -> ReviewOut:
        response = None
        if review.response_body is not None and review.responded_at is not None:
            response = VendorResponseOut(
                body=review.response_body, responded_at=review.responded_at
            )
        return cls(
            id=review.id,
            order_id=review.order_id if show_order else None,
            vendor_id=review.vendor_id,
            hospital_org_id=review.hospital_org_id if show_order else None,
            rating=review.rating,
            comment=review.comment,
            hidden=review.hidden,
            created_at=review.created_at,
            response=response,
        )


class VendorSummaryOut(BaseModel):
    vendor_id: uuid.UUID
    # Decimal string with two places ("4.13"), rounded half up; null without reviews.
    average: str | None
    count: int
    # "1".."5" -> number of visible reviews with that rating.
    distribution: dict[str, int]
