"""POST /api/v1/reviews: the hospital that received an order reviews it, once, after
delivery; the review is announced as `review.created` through the outbox."""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import Reviews


def _problem_code(body: dict[str, Any]) -> str:
    return str(body["type"]).rsplit("/", 1)[-1]


async def test_a_hospital_reviews_an_order_delivered_to_it(reviews: Reviews) -> None:
    hospital, vendor_id = reviews.hospital(), uuid.uuid4()
    order_id = await reviews.deliver(hospital, vendor_id)

    response = await reviews.post_review(hospital, order_id, 4, comment="  On time, full.  ")

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["order_id"] == str(order_id)
    assert body["vendor_id"] == str(vendor_id)
    assert body["hospital_org_id"] == str(hospital.org_id)
    assert body["rating"] == 4
    assert body["comment"] == "On time, full."
    assert body["hidden"] is False
    assert body["response"] is None
    assert response.headers["Location"] == f"/api/v1/reviews/{body['id']}"
    fetched = await reviews.http.get(
        f"/api/v1/reviews/{body['id']}", headers=reviews.hospital_headers(hospital)
    )
    assert fetched.status_code == 200
    assert fetched.json() == body


async def test_an_order_not_delivered_yet_cannot_be_reviewed_until_it_is(reviews: Reviews) -> None:
    hospital, vendor_id = reviews.hospital(), uuid.uuid4()
    order_id = await reviews.place(hospital, vendor_id)

    early = await reviews.post_review(hospital, order_id, 5)
    assert early.status_code == 409, early.text
    assert _problem_code(early.json()) == "order-not-delivered"
    assert early.json()["title"] == "Order not delivered yet"
    assert early.headers["content-type"].startswith("application/problem+json")

    await reviews.deliver(hospital, vendor_id, order_id)
    assert (await reviews.post_review(hospital, order_id, 5)).status_code == 201


async def test_an_undelivered_order_looks_unknown_to_other_hospitals(reviews: Reviews) -> None:
    owner, rival = reviews.hospital(), reviews.hospital()
    placed = await reviews.place(owner, uuid.uuid4())

    for order_id in (placed, uuid.uuid4()):  # someone else's order, and no order at all
        refused = await reviews.post_review(rival, order_id, 1)
        assert refused.status_code == 404, refused.text
        assert _problem_code(refused.json()) == "order-not-reviewable"
        assert refused.headers["content-type"].startswith("application/problem+json")


async def test_one_review_per_order(reviews: Reviews) -> None:
    hospital = reviews.hospital()
    order_id = await reviews.deliver(hospital, uuid.uuid4())
    assert (await reviews.post_review(hospital, order_id, 5)).status_code == 201

    # Another user of the same hospital, another rating: still the same order.
    colleague = reviews.colleague(hospital)
    again = await reviews.post_review(colleague, order_id, 1)

    assert again.status_code == 409, again.text
    assert _problem_code(again.json()) == "review-exists"
    assert len(await reviews.outbox_events("review.created", order_id=str(order_id))) == 1


async def test_concurrent_reviews_of_one_order_make_exactly_one(reviews: Reviews) -> None:
    hospital, vendor_id = reviews.hospital(), uuid.uuid4()
    order_id = await reviews.deliver(hospital, vendor_id)

    responses = await asyncio.gather(
        *(reviews.post_review(hospital, order_id, rating) for rating in (1, 2, 3, 4, 5))
    )

    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409, 409]
    summary = await reviews.summary(vendor_id)
    assert summary["count"] == 1


async def test_another_hospital_cannot_review_the_order(reviews: Reviews) -> None:
    receiver, other = reviews.hospital(), reviews.hospital()
    order_id = await reviews.deliver(receiver, uuid.uuid4())

    response = await reviews.post_review(other, order_id, 1)

    # The same answer as for an unknown order: nothing about the other org leaks.
    assert response.status_code == 404, response.text
    assert _problem_code(response.json()) == "order-not-reviewable"
    assert (await reviews.post_review(receiver, order_id, 5)).status_code == 201


@pytest.mark.parametrize("who", ["vendor", "admin"])
async def test_vendors_and_platform_admins_cannot_write_reviews(reviews: Reviews, who: str) -> None:
    hospital, vendor_id = reviews.hospital(), uuid.uuid4()
    order_id = await reviews.deliver(hospital, vendor_id)
    headers = reviews.vendor_headers(vendor_id) if who == "vendor" else reviews.admin_headers()

    response = await reviews.post_review(hospital, order_id, 5, headers=headers)

    assert response.status_code == 403, response.text
    assert (await reviews.summary(vendor_id))["count"] == 0


async def test_reviews_need_a_valid_token(reviews: Reviews) -> None:
    hospital = reviews.hospital()
    order_id = await reviews.deliver(hospital, uuid.uuid4())

    response = await reviews.post_review(hospital, order_id, 5, headers={})

    assert response.status_code == 401
    listed = await reviews.http.get("/api/v1/reviews")
    assert listed.status_code == 401


@pytest.mark.parametrize("rating", [0, 6, -1, 4.5, "4", True, None])
async def test_a_rating_outside_whole_one_to_five_is_422(reviews: Reviews, rating: Any) -> None:
    hospital = reviews.hospital()
    order_id = await reviews.deliver(hospital, uuid.uuid4())

    response = await reviews.post_review(hospital, order_id, rating)

    assert response.status_code == 422, response.text
    assert ["body", "rating"] in [error["loc"][:2] for error in response.json()["errors"]]


async def test_extra_fields_are_422(reviews: Reviews) -> None:
    hospital = reviews.hospital()
    order_id = await reviews.deliver(hospital, uuid.uuid4())

    # A client may not choose whose review it is, nor pre-set moderation.
    response = await reviews.post_review(hospital, order_id, 5, vendor_id=str(uuid.uuid4()))
    hidden = await reviews.post_review(hospital, order_id, 5, hidden=True)

    assert response.status_code == 422, response.text
    assert hidden.status_code == 422, hidden.text
    assert (await reviews.post_review(hospital, order_id, 5)).status_code == 201


async def test_a_comment_over_2000_characters_is_422(reviews: Reviews) -> None:
    hospital = reviews.hospital()
    order_id = await reviews.deliver(hospital, uuid.uuid4())

    too_long = await reviews.post_review(hospital, order_id, 3, comment="x" * 2001)
    longest = await reviews.post_review(hospital, order_id, 3, comment="x" * 2000)

    assert too_long.status_code == 422
    assert longest.status_code == 201
    assert len(longest.json()["comment"]) == 2000


async def test_review_created_is_written_to_the_outbox_with_the_requests_correlation_id(
    reviews: Reviews,
) -> None:
    hospital, vendor_id = reviews.hospital(), uuid.uuid4()
    order_id = await reviews.deliver(hospital, vendor_id)
    request_id = f"review-{uuid.uuid4().hex}"

    response = await reviews.post_review(
        hospital,
        order_id,
        2,
        headers={**reviews.hospital_headers(hospital), "X-Request-ID": request_id},
    )

    assert response.status_code == 201, response.text
    review_id = response.json()["id"]
    assert response.headers["X-Request-ID"] == request_id
    events = await reviews.outbox_events("review.created", review_id=review_id)
    assert len(events) == 1
    event = events[0]
    assert event["type"] == "review.created"
    assert event["producer"] == "review-service"
    assert event["correlation_id"] == request_id
    assert event["data"] == {
        "review_id": review_id,
        "order_id": str(order_id),
        "vendor_id": str(vendor_id),
        "hospital_org_id": str(hospital.org_id),
        "rating": 2,
    }


async def test_a_refused_review_leaves_no_event(reviews: Reviews) -> None:
    hospital, order_id = reviews.hospital(), uuid.uuid4()

    response = await reviews.post_review(hospital, order_id, 5)

    assert response.status_code == 404
    assert await reviews.outbox_events("review.created", order_id=str(order_id)) == []
