"""Refunds (SPEC: "POST /api/v1/payments/{id}/refund — vendor of the order, admin;
never more than was captured"): partial and full refunds, refused over-refunds, concurrent
refunds that cannot together exceed the capture, who may refund, Idempotency-Key."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payment_service.errors import RefundExceedsCaptured
from payment_service.models import Payment, PaymentStatus
from payment_service.state import PaymentEvent, apply

if TYPE_CHECKING:
    from conftest import Order, Payments


async def _captured(pay: Payments, total: str = "100.00", **fields: Any) -> tuple[Order, str]:
    order = pay.order(total=total, **fields)
    await pay.place(order)
    await pay.handle(order.event("delivered"))
    payment = await pay.payment_of(order)
    assert payment["status"] == "captured"
    return order, payment["id"]


async def test_partial_refunds_keep_captured_until_everything_is_refunded(
    pay: Payments,
) -> None:
    order, payment_id = await _captured(pay)

    first = await pay.refund(payment_id, pay.vendor(order), amount="30.00", reason="one short")
    rest = await pay.refund(payment_id, pay.vendor(order), reason="all returned")

    assert first.status_code == 200, first.text
    assert first.json()["status"] == "captured"
    assert first.json()["refunded_amount"] == "30.00"
    assert rest.status_code == 200, rest.text
    assert rest.json()["status"] == "refunded"
    assert rest.json()["refunded_amount"] == "100.00"
    refunds = [e for e in rest.json()["events"] if e["type"] == "refunded"]
    assert [(e["amount"], e["detail"]) for e in refunds] == [
        ("30.00", "one short"),
        ("70.00", "all returned"),
    ]
    published = await pay.outbox_events("payment.refunded", order)
    assert [(p["data"]["amount"], p["data"]["status"]) for p in published] == [
        ("30.00", "captured"),
        ("70.00", "refunded"),
    ]
    assert published[0]["data"]["reason"] == "one short"
    charge = await pay.sandbox_charge(await pay.provider_ref(order))
    assert charge["refunded_amount"] == Decimal("100.00")


async def test_refund_beyond_what_was_captured_is_409_and_changes_nothing(
    pay: Payments,
) -> None:
    order, payment_id = await _captured(pay)
    await pay.refund(payment_id, pay.vendor(order), amount="60.00")

    response = await pay.refund(payment_id, pay.vendor(order), amount="40.01")

    assert response.status_code == 409
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["refundable"] == "40.00"
    payment = await pay.payment_of(order)
    assert payment["refunded_amount"] == "60.00"
    assert len(await pay.outbox_events("payment.refunded", order)) == 1


async def test_a_payment_that_was_not_captured_has_nothing_to_refund(pay: Payments) -> None:
    order = pay.order()
    payment = await pay.place(order)

    response = await pay.refund(payment["id"], pay.vendor(order), amount="1.00")

    assert response.status_code == 409
    assert (await pay.payment_of(order))["status"] == "authorized"


async def test_invalid_refund_amounts_are_422(pay: Payments) -> None:
    order, payment_id = await _captured(pay)

    answers = [
        (await pay.refund(payment_id, pay.vendor(order), amount=amount)).status_code
        for amount in ("0", "-5.00", "1.005", "abc")
    ]
    no_reason = await pay.http.post(
        f"/api/v1/payments/{payment_id}/refund", json={}, headers=pay.vendor(order)
    )

    assert answers == [422] * 4
    assert no_reason.status_code == 422
    assert (await pay.payment_of(order))["refunded_amount"] == "0.00"


async def test_twenty_concurrent_refunds_never_exceed_the_capture(pay: Payments) -> None:
    order, payment_id = await _captured(pay, total="100.00")
    headers = pay.vendor(order)

    responses = await asyncio.gather(
        *(pay.refund(payment_id, headers, amount="10.00", reason=f"r{i}") for i in range(20))
    )

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 10 + [409] * 10
    payment = await pay.payment_of(order)
    assert payment["refunded_amount"] == "100.00"
    assert payment["status"] == "refunded"
    assert len(await pay.outbox_events("payment.refunded", order)) == 10
    charge = await pay.sandbox_charge(await pay.provider_ref(order))
    assert charge["refunded_amount"] == Decimal("100.00")


async def test_only_the_orders_vendor_or_an_admin_may_refund(pay: Payments) -> None:
    order, payment_id = await _captured(pay)

    by_hospital = await pay.refund(payment_id, pay.hospital(order, role="org_admin"))
    by_other_vendor = await pay.refund(payment_id, pay.stranger("vendor"))
    by_other_hospital = await pay.refund(payment_id, pay.stranger("hospital"))
    by_admin = await pay.refund(payment_id, pay.admin(), amount="5.00")
    by_vendor_staff = await pay.refund(payment_id, pay.vendor(order, role="staff"), amount="5.00")

    assert by_hospital.status_code == 403
    # Not theirs: indistinguishable from a payment that does not exist.
    assert by_other_vendor.status_code == 404
    assert by_other_hospital.status_code == 404
    assert by_admin.status_code == 200
    assert by_vendor_staff.status_code == 200
    assert (await pay.payment_of(order))["refunded_amount"] == "10.00"


async def test_idempotency_key_replays_the_first_refund(pay: Payments) -> None:
    order, payment_id = await _captured(pay)
    headers = pay.vendor(order)

    first = await pay.refund(payment_id, headers, amount="25.00", idempotency_key="refund-1")
    again = await pay.refund(payment_id, headers, amount="25.00", idempotency_key="refund-1")
    other_body = await pay.refund(payment_id, headers, amount="26.00", idempotency_key="refund-1")

    assert first.status_code == 200
    assert again.status_code == 200
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json() == first.json()
    assert other_body.status_code == 422
    assert (await pay.payment_of(order))["refunded_amount"] == "25.00"
    assert len(await pay.outbox_events("payment.refunded", order)) == 1


async def test_cash_payment_refund_is_recorded_without_the_provider(pay: Payments) -> None:
    order, payment_id = await _captured(pay, total="40.00", method="cash_on_delivery")

    response = await pay.refund(payment_id, pay.admin(), amount="40.00", reason="cash returned")

    assert response.status_code == 200
    assert response.json()["status"] == "refunded"
    [refunded] = await pay.outbox_events("payment.refunded", order)
    assert refunded["data"]["reason"] == "cash returned"
    assert refunded["data"]["method"] == "cash_on_delivery"


def _payment(captured: Decimal) -> Payment:
    return Payment(
        amount=captured,
        currency="NGN",
        status=PaymentStatus.CAPTURED,
        captured_amount=captured,
        refunded_amount=Decimal("0.00"),
        events=[],
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    captured=st.decimals(min_value="0.01", max_value="10000", places=2),
    refunds=st.lists(st.decimals(min_value="0.01", max_value="5000", places=2), max_size=12),
)
def test_refunds_never_exceed_the_capture_and_settle_exactly(
    captured: Decimal, refunds: list[Decimal]
) -> None:
    payment = _payment(captured)
    accepted = Decimal("0.00")
    now = datetime.now(UTC)
    for amount in refunds:
        if payment.status != PaymentStatus.CAPTURED:
            break
        try:
            apply(payment, PaymentEvent.REFUNDED, at=now, amount=amount, detail="x")
        except RefundExceedsCaptured:
            assert accepted + amount > captured
            continue
        accepted += amount

    assert payment.refunded_amount == accepted <= captured
    assert (payment.status == PaymentStatus.REFUNDED) == (accepted == captured)
