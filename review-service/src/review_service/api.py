"""Public review API: parse, authorize, call the service, shape the answer."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from fastapi.security import OAuth2PasswordBearer

from flow_shared.auth import CurrentPrincipal, PlatformAdmin, Principal
from flow_shared.pagination import Page, Pagination
from flow_shared.unit_of_work import DbSession
from review_service import queries, service
from review_service.deps import HospitalUser, VendorUser
from review_service.models import Review
from review_service.schemas import ResponseCreate, ReviewCreate, ReviewOut, VendorSummaryOut

# Only for the docs' Authorize button; CurrentPrincipal does the verifying.
_docs_oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)

router = APIRouter(prefix="/api/v1/reviews", tags=["reviews"], dependencies=[Depends(_docs_oauth2)])

_NOT_FOUND: dict[int | str, dict[str, str]] = {
    404: {"description": "Unknown review (or hidden, to anyone but a platform admin)"}
}


def _shown_to(viewer: Principal, review: Review) -> ReviewOut:
    return ReviewOut.of(review, show_order=service.sees_order_of(viewer, review))


@router.post(
    "",
    status_code=201,
    responses={
        403: {"description": "Not a hospital user"},
        404: {"description": "`order-not-reviewable`: unknown, or not yours"},
        409: {
            "description": "`order-not-delivered`: your order, not delivered yet; "
            "`review-exists`: this order has already been reviewed"
        },
    },
)
async def create_review(
    body: ReviewCreate, hospital: HospitalUser, session: DbSession, response: Response
) -> ReviewOut:
    review = await service.create_review(session, hospital, body)
    response.headers["Location"] = f"/api/v1/reviews/{review.id}"
    return _shown_to(hospital, review)


@router.get("")
async def list_reviews(
    principal: CurrentPrincipal,
    session: DbSession,
    pagination: Pagination,
    vendor_id: Annotated[uuid.UUID | None, Query()] = None,
) -> Page[ReviewOut]:
    """Newest first. Hidden reviews are left out, except for platform admins."""
    return await queries.list_reviews(session, principal, vendor_id=vendor_id, params=pagination)


@router.get("/vendors/{vendor_id}/summary")
async def vendor_summary(
    vendor_id: uuid.UUID, _principal: CurrentPrincipal, session: DbSession
) -> VendorSummaryOut:
    """Visible reviews only: `average` (two places, half up; null without reviews),
    `count` and `distribution` by rating."""
    return await queries.vendor_summary(session, vendor_id)


@router.get("/{review_id}", responses=_NOT_FOUND)
async def get_review(
    review_id: uuid.UUID, principal: CurrentPrincipal, session: DbSession
) -> ReviewOut:
    return _shown_to(principal, await queries.get_review(session, principal, review_id))


@router.post(
    "/{review_id}/response",
    status_code=201,
    responses={
        403: {"description": "Not a vendor user"},
        404: {"description": "Unknown review, hidden, or about another vendor"},
        409: {"description": "`review-already-answered`: one response per review"},
    },
)
async def respond_to_review(
    review_id: uuid.UUID, body: ResponseCreate, vendor: VendorUser, session: DbSession
) -> ReviewOut:
    return _shown_to(vendor, await service.respond_to_review(session, vendor, review_id, body))


@router.post("/{review_id}/hide", responses=_NOT_FOUND)
async def hide_review(review_id: uuid.UUID, admin: PlatformAdmin, session: DbSession) -> ReviewOut:
    """Platform admins only. Idempotent: hiding a hidden review changes nothing."""
    return _shown_to(admin, await service.hide_review(session, admin, review_id))


@router.post("/{review_id}/unhide", responses=_NOT_FOUND)
async def unhide_review(
    review_id: uuid.UUID, admin: PlatformAdmin, session: DbSession
) -> ReviewOut:
    """Platform admins only: the review is listed and counted again. Idempotent."""
    return _shown_to(admin, await service.unhide_review(session, review_id))
