"""Reading payments (SPEC: "GET /api/v1/payments?order_id= , GET /api/v1/payments/{id} —
the two orgs, admin"): the order's hospital and vendor and platform admins see it, anyone
else gets 404 (never a hint that it exists); money is a decimal string."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import Payments


async def test_the_orders_two_orgs_and_admins_see_the_payment(pay: Payments) -> None:
    order = pay.order(total="1250.00")
    payment = await pay.place(order)

    for headers in (pay.hospital(order), pay.vendor(order, role="staff"), pay.admin()):
        by_id = await pay.http.get(f"/api/v1/payments/{payment['id']}", headers=headers)
        listed = await pay.http.get(
            "/api/v1/payments", params={"order_id": str(order.order_id)}, headers=headers
        )
        assert by_id.status_code == 200
        assert by_id.json() == payment
        assert listed.json()["items"] == [payment]
        assert listed.json()["total"] == 1

    body = payment
    assert {"id", "order_id", "method", "status", "amount", "currency", "events"} <= set(body)
    assert body["amount"] == "1250.00"
    assert isinstance(body["events"][0]["at"], str)


async def test_other_organisations_get_404_and_an_empty_list(pay: Payments) -> None:
    order = pay.order()
    payment = await pay.place(order)

    for headers in (pay.stranger("hospital"), pay.stranger("vendor")):
        by_id = await pay.http.get(f"/api/v1/payments/{payment['id']}", headers=headers)
        listed = await pay.http.get(
            "/api/v1/payments", params={"order_id": str(order.order_id)}, headers=headers
        )
        assert by_id.status_code == 404
        assert by_id.headers["content-type"].startswith("application/problem+json")
        assert listed.status_code == 200
        assert listed.json()["items"] == []
        assert listed.json()["total"] == 0
    unknown = await pay.http.get(f"/api/v1/payments/{uuid.uuid4()}", headers=pay.admin())
    assert unknown.status_code == 404


async def test_a_hospital_lists_only_its_own_payments_paged(pay: Payments) -> None:
    first = pay.order(method="invoice")
    hospital = first.hospital_org_id
    orders = [first] + [pay.order(method="invoice", hospital_org_id=hospital) for _ in range(2)]
    for order in orders:
        await pay.place(order)
    await pay.place(pay.order(method="invoice"))  # another hospital's

    page = await pay.http.get(
        "/api/v1/payments", params={"page_size": 2}, headers=pay.hospital(first)
    )
    second = await pay.http.get(
        "/api/v1/payments", params={"page_size": 2, "page": 2}, headers=pay.hospital(first)
    )

    assert page.json()["total"] == 3
    seen = {item["order_id"] for item in page.json()["items"] + second.json()["items"]}
    assert seen == {str(order.order_id) for order in orders}


async def test_payments_need_a_token(pay: Payments) -> None:
    assert (await pay.http.get("/api/v1/payments")).status_code == 401
    assert (await pay.http.get("/api/v1/payments/invoices")).status_code == 401
