"""POST /api/v1/reviews/{id}/response: the reviewed vendor answers a review, once."""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from conftest import Reviews


async def _respond(
    reviews: Reviews, review_id: str, headers: dict[str, str], **body: Any
) -> httpx.Response:
    return await reviews.http.post(
        f"/api/v1/reviews/{review_id}/response",
        json=body or {"body": "Thank you for the feedback."},
        headers=headers,
    )


async def test_the_reviewed_vendor_answers_and_everyone_sees_it(reviews: Reviews) -> None:
    vendor_id = uuid.uuid4()
    review = await reviews.review(vendor_id, 2, comment="Late by an hour")

    response = await _respond(
        reviews, review["id"], reviews.vendor_headers(vendor_id), body="  Sorry, a flat tyre.  "
    )

    assert response.status_code == 201, response.text
    answered = response.json()
    assert answered["id"] == review["id"]
    assert answered["response"]["body"] == "Sorry, a flat tyre."
    assert answered["response"]["responded_at"]
    listed = await reviews.listed(vendor_id)
    assert listed["items"][0]["response"] == answered["response"]


async def test_a_second_response_is_409_and_the_first_stays(reviews: Reviews) -> None:
    vendor_id = uuid.uuid4()
    review = await reviews.review(vendor_id, 3)
    headers = reviews.vendor_headers(vendor_id)

    results = await asyncio.gather(
        *(_respond(reviews, review["id"], headers, body=f"answer {n}") for n in range(4))
    )

    assert sorted(r.status_code for r in results) == [201, 409, 409, 409]
    winner = next(r for r in results if r.status_code == 201).json()["response"]
    refused = next(r for r in results if r.status_code == 409).json()
    assert refused["type"].endswith("/review-already-answered")
    stored = await reviews.http.get(
        f"/api/v1/reviews/{review['id']}", headers=reviews.any_user_headers()
    )
    assert stored.json()["response"] == winner


async def test_another_vendor_gets_404(reviews: Reviews) -> None:
    review = await reviews.review(uuid.uuid4(), 1)

    response = await _respond(reviews, review["id"], reviews.vendor_headers(uuid.uuid4()))

    assert response.status_code == 404, response.text
    assert response.json()["type"].endswith("/review-not-found")


@pytest.mark.parametrize("who", ["hospital", "admin"])
async def test_only_vendors_answer_reviews(reviews: Reviews, who: str) -> None:
    hospital, vendor_id = reviews.hospital(), uuid.uuid4()
    order_id = await reviews.deliver(hospital, vendor_id)
    created = await reviews.post_review(hospital, order_id, 4)
    review_id = created.json()["id"]
    headers = reviews.hospital_headers(hospital) if who == "hospital" else reviews.admin_headers()

    response = await _respond(reviews, review_id, headers)

    assert response.status_code == 403, response.text
    # The vendor can still answer: the refused attempt left nothing behind.
    answered = await _respond(reviews, review_id, reviews.vendor_headers(vendor_id))
    assert answered.status_code == 201


async def test_a_hidden_review_cannot_be_answered(reviews: Reviews) -> None:
    vendor_id = uuid.uuid4()
    review = await reviews.review(vendor_id, 1)
    await reviews.hide(review["id"])

    response = await _respond(reviews, review["id"], reviews.vendor_headers(vendor_id))

    assert response.status_code == 404


@pytest.mark.parametrize(
    "body",
    [{"body": ""}, {"body": "   "}, {"body": "x" * 2001}, {"body": "ok", "review_id": "x"}, {}],
)
async def test_an_invalid_response_body_is_422(reviews: Reviews, body: dict[str, Any]) -> None:
    vendor_id = uuid.uuid4()
    review = await reviews.review(vendor_id, 4)

    response = await reviews.http.post(
        f"/api/v1/reviews/{review['id']}/response",
        json=body,
        headers=reviews.vendor_headers(vendor_id),
    )

    assert response.status_code == 422, response.text
