"""Which order a review is about, and which hospital wrote it, is shown only to the
order's two organisations and platform admins (finding 7); everyone else reads the
review with `order_id` and `hospital_org_id` null."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conftest import Reviews


async def _as_listed_and_fetched(
    reviews: Reviews, vendor_id: uuid.UUID, review_id: str, headers: dict[str, str]
) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = (await reviews.listed(vendor_id, headers))["items"]
    assert [item["id"] for item in listed] == [review_id]
    fetched = await reviews.http.get(f"/api/v1/reviews/{review_id}", headers=headers)
    assert fetched.status_code == 200, fetched.text
    return [listed[0], fetched.json()]


async def test_rival_vendors_and_other_hospitals_do_not_see_the_order_or_its_buyer(
    reviews: Reviews,
) -> None:
    vendor_id = uuid.uuid4()
    review = await reviews.review(vendor_id, 4, comment="Fast.")
    strangers = {
        "rival vendor": reviews.vendor_headers(uuid.uuid4()),
        "other hospital": reviews.any_user_headers(),
    }

    for who, headers in strangers.items():
        for shown in await _as_listed_and_fetched(reviews, vendor_id, review["id"], headers):
            assert shown["order_id"] is None, who
            assert shown["hospital_org_id"] is None, who
            # The review itself stays public.
            assert (shown["vendor_id"], shown["rating"], shown["comment"]) == (
                str(vendor_id),
                4,
                "Fast.",
            )


async def test_the_orders_two_organisations_and_admins_see_the_order_and_its_buyer(
    reviews: Reviews,
) -> None:
    hospital, vendor_id = reviews.hospital(), uuid.uuid4()
    order_id = await reviews.deliver(hospital, vendor_id)
    created = await reviews.post_review(hospital, order_id, 5)
    assert created.status_code == 201, created.text
    review_id = created.json()["id"]
    insiders = {
        "the hospital": reviews.hospital_headers(reviews.colleague(hospital)),
        "the reviewed vendor": reviews.vendor_headers(vendor_id),
        "a platform admin": reviews.admin_headers(),
    }

    for who, headers in insiders.items():
        for shown in await _as_listed_and_fetched(reviews, vendor_id, review_id, headers):
            assert shown["order_id"] == str(order_id), who
            assert shown["hospital_org_id"] == str(hospital.org_id), who
