"""The vendor summary `{vendor_id, average, count, distribution}` stays exact under
concurrent reviews, and moderation (hide, unhide) moves reviews out of and back into
both the summary and the public list."""

from __future__ import annotations

import asyncio
import math
import uuid
from fractions import Fraction
from typing import TYPE_CHECKING

from hypothesis import given
from hypothesis import strategies as st

from review_service.queries import average_rating

if TYPE_CHECKING:
    from conftest import Reviews


async def test_a_vendor_without_reviews_has_an_empty_summary(reviews: Reviews) -> None:
    vendor_id = uuid.uuid4()

    assert await reviews.summary(vendor_id) == {
        "vendor_id": str(vendor_id),
        "average": None,
        "count": 0,
        "distribution": {"1": 0, "2": 0, "3": 0, "4": 0, "5": 0},
    }


async def test_30_concurrent_reviews_are_all_counted_exactly(reviews: Reviews) -> None:
    vendor_id = uuid.uuid4()
    # 30 hospitals, one delivered order each; a mix whose mean is not a round number.
    ratings = [5] * 11 + [4] * 8 + [3] * 5 + [2] * 4 + [1] * 2
    hospitals = [reviews.hospital() for _ in ratings]
    orders = [await reviews.deliver(hospital, vendor_id) for hospital in hospitals]

    responses = await asyncio.gather(
        *(
            reviews.post_review(hospital, order_id, rating)
            for hospital, order_id, rating in zip(hospitals, orders, ratings, strict=True)
        )
    )

    assert [r.status_code for r in responses] == [201] * 30
    summary = await reviews.summary(vendor_id)
    assert summary == reviews.expected_summary(vendor_id, ratings)
    assert summary["count"] == 30
    assert summary["average"] == "3.73"  # 112 / 30 = 3.7333...
    assert sum(int(star) * n for star, n in summary["distribution"].items()) == sum(ratings)
    assert (await reviews.listed(vendor_id))["total"] == 30
    assert len(await reviews.outbox_events("review.created", vendor_id=str(vendor_id))) == 30


async def test_the_average_rounds_half_up_to_two_places(reviews: Reviews) -> None:
    vendor_id = uuid.uuid4()
    ratings = [5, 5, 5, 5, 5, 4, 2, 2]  # 33 / 8 = 4.125 exactly
    for rating in ratings:
        await reviews.review(vendor_id, rating)

    summary = await reviews.summary(vendor_id)

    assert summary["average"] == "4.13"  # half up, not half even ("4.12")
    assert summary == reviews.expected_summary(vendor_id, ratings)


@given(count=st.integers(min_value=1, max_value=10**9), data=st.data())
def test_average_rating_is_the_exact_mean_rounded_half_up(count: int, data: st.DataObject) -> None:
    rating_sum = data.draw(st.integers(min_value=count, max_value=5 * count))

    average = average_rating(rating_sum, count)

    cents = math.floor(Fraction(rating_sum * 100, count) + Fraction(1, 2))
    assert average == f"{cents // 100}.{cents % 100:02d}"


async def test_hiding_a_review_removes_it_from_summary_and_list_but_not_for_admins(
    reviews: Reviews,
) -> None:
    vendor_id = uuid.uuid4()
    kept = await reviews.review(vendor_id, 5)
    abusive = await reviews.review(vendor_id, 1, comment="abuse")

    hidden = await reviews.hide(abusive["id"])

    assert hidden.status_code == 200, hidden.text
    assert hidden.json()["hidden"] is True
    assert await reviews.summary(vendor_id) == reviews.expected_summary(vendor_id, [5])
    public = await reviews.listed(vendor_id)
    assert [item["id"] for item in public["items"]] == [kept["id"]]
    assert public["total"] == 1
    vendor_view = await reviews.listed(vendor_id, headers=reviews.vendor_headers(vendor_id))
    assert [item["id"] for item in vendor_view["items"]] == [kept["id"]]
    gone = await reviews.http.get(
        f"/api/v1/reviews/{abusive['id']}", headers=reviews.any_user_headers()
    )
    assert gone.status_code == 404

    admin_view = await reviews.listed(vendor_id, headers=reviews.admin_headers())
    assert admin_view["total"] == 2
    flags = {item["id"]: item["hidden"] for item in admin_view["items"]}
    assert flags == {kept["id"]: False, abusive["id"]: True}
    seen = await reviews.http.get(
        f"/api/v1/reviews/{abusive['id']}", headers=reviews.admin_headers()
    )
    assert seen.status_code == 200
    assert seen.json()["hidden"] is True


async def test_hiding_is_idempotent_even_when_concurrent(reviews: Reviews) -> None:
    vendor_id = uuid.uuid4()
    await reviews.review(vendor_id, 4)
    target = await reviews.review(vendor_id, 2)

    first = await asyncio.gather(*(reviews.hide(target["id"]) for _ in range(5)))
    again = await reviews.hide(target["id"])

    assert [r.status_code for r in [*first, again]] == [200] * 6
    # Subtracted once, however many hides arrived.
    assert await reviews.summary(vendor_id) == reviews.expected_summary(vendor_id, [4])


async def test_unhiding_adds_the_review_back(reviews: Reviews) -> None:
    vendor_id = uuid.uuid4()
    await reviews.review(vendor_id, 5)
    target = await reviews.review(vendor_id, 3)
    await reviews.hide(target["id"])

    shown = await reviews.http.post(
        f"/api/v1/reviews/{target['id']}/unhide", headers=reviews.admin_headers()
    )
    again = await reviews.http.post(
        f"/api/v1/reviews/{target['id']}/unhide", headers=reviews.admin_headers()
    )

    assert shown.status_code == again.status_code == 200
    assert shown.json()["hidden"] is False
    assert await reviews.summary(vendor_id) == reviews.expected_summary(vendor_id, [5, 3])
    assert (await reviews.listed(vendor_id))["total"] == 2


async def test_only_platform_admins_moderate(reviews: Reviews) -> None:
    vendor_id = uuid.uuid4()
    target = await reviews.review(vendor_id, 1)
    hospital_admin = reviews.tokens.headers(org_kind="hospital", role="org_admin")
    # The platform_admin role outside the platform org is not a platform admin.
    fake_admin = reviews.tokens.headers(org_kind="vendor", role="platform_admin")

    for headers in (reviews.vendor_headers(vendor_id), hospital_admin, fake_admin):
        for action in ("hide", "unhide"):
            response = await reviews.http.post(
                f"/api/v1/reviews/{target['id']}/{action}", headers=headers
            )
            assert response.status_code == 403, (action, response.text)

    assert (await reviews.summary(vendor_id))["count"] == 1


async def test_hiding_an_unknown_review_is_404(reviews: Reviews) -> None:
    response = await reviews.hide(str(uuid.uuid4()))

    assert response.status_code == 404
    assert response.json()["type"].endswith("/review-not-found")


async def test_the_list_is_paged_newest_first_and_filtered_by_vendor(reviews: Reviews) -> None:
    vendor_id, other_vendor = uuid.uuid4(), uuid.uuid4()
    made = [await reviews.review(vendor_id, rating) for rating in (1, 2, 3)]
    await reviews.review(other_vendor, 5)

    first = await reviews.http.get(
        "/api/v1/reviews",
        params={"vendor_id": str(vendor_id), "page": 1, "page_size": 2},
        headers=reviews.any_user_headers(),
    )
    second = await reviews.http.get(
        "/api/v1/reviews",
        params={"vendor_id": str(vendor_id), "page": 2, "page_size": 2},
        headers=reviews.any_user_headers(),
    )
    too_big = await reviews.http.get(
        "/api/v1/reviews", params={"page_size": 101}, headers=reviews.any_user_headers()
    )

    assert first.status_code == second.status_code == 200
    assert first.json()["total"] == second.json()["total"] == 3
    assert (first.json()["page"], first.json()["page_size"]) == (1, 2)
    ids = [item["id"] for item in first.json()["items"] + second.json()["items"]]
    assert ids == [review["id"] for review in reversed(made)]
    assert too_big.status_code == 422
