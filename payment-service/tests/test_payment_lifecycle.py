"""A payment's course follows its order's events (SPEC "Payments"): order.placed authorizes
a card or opens a pending payment; order.delivered captures or issues a net-30 invoice;
order.cancelled / rejected / expired void or refund. A redelivered event never charges
twice, and no card number is ever stored."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text

from payment_service.errors import PaymentNotOpened
from payment_service.provider import ProviderTimeout

if TYPE_CHECKING:
    from conftest import Payments


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_card_order_placed_is_authorized_with_one_payment_authorized_event(
    pay: Payments,
) -> None:
    order = pay.order(total="1250.50")

    payment = await pay.place(order)

    assert payment["status"] == "authorized"
    assert payment["method"] == "card"
    assert payment["amount"] == "1250.50"
    assert payment["currency"] == "NGN"
    assert payment["last4"] == "4242"
    assert payment["refunded_amount"] == "0.00"
    assert [e["type"] for e in payment["events"]] == ["opened", "authorized"]
    assert payment["events"][1]["amount"] == "1250.50"
    published = await pay.outbox_events("payment.authorized", order)
    assert len(published) == 1
    assert published[0]["producer"] == "payment-service"
    data = published[0]["data"]
    assert data == {
        "payment_id": payment["id"],
        "order_id": str(order.order_id),
        "hospital_org_id": str(order.hospital_org_id),
        "vendor_id": str(order.vendor_id),
        "method": "card",
        "status": "authorized",
        "amount": "1250.50",
        "currency": "NGN",
        "captured_amount": "0.00",
        "refunded_amount": "0.00",
        "at": data["at"],
    }


async def test_redelivered_order_placed_never_authorizes_twice(pay: Payments) -> None:
    order = pay.order()
    await pay.hand_over(order)
    first = order.event("placed")
    await pay.handle(first)

    # The same event again (a lost ack), and the same fact under another event id.
    await pay.handle(first)
    await pay.handle(order.event("placed"))

    assert await pay.count_payments(order) == 1
    assert await pay.sandbox_authorizations(order) == 1
    assert len(await pay.outbox_events("payment.authorized", order)) == 1
    assert (await pay.payment_of(order))["status"] == "authorized"


async def test_concurrent_deliveries_of_order_placed_open_one_payment(pay: Payments) -> None:
    order = pay.order()
    await pay.hand_over(order)

    await asyncio.gather(*(pay.handle(order.event("placed")) for _ in range(4)))

    assert await pay.count_payments(order) == 1
    assert await pay.sandbox_authorizations(order) == 1
    assert len(await pay.outbox_events("payment.authorized", order)) == 1


async def test_declined_card_fails_with_a_payment_failed_event_for_the_hospital(
    pay: Payments,
) -> None:
    order = pay.order(card_token="tok_declined")

    payment = await pay.place(order)

    assert payment["status"] == "failed"
    assert payment["failure_reason"] == "card declined"
    assert payment["last4"] is None
    [failed] = await pay.outbox_events("payment.failed", order)
    assert failed["data"]["hospital_org_id"] == str(order.hospital_org_id)
    assert failed["data"]["vendor_id"] == str(order.vendor_id)
    assert failed["data"]["reason"] == "card declined"
    assert failed["data"]["status"] == "failed"
    assert failed["data"]["amount"] == "100.00"
    assert await pay.outbox_events("payment.authorized", order) == []


async def test_card_order_without_a_token_fails_with_missing_card_token(pay: Payments) -> None:
    order = pay.order(card_token=None)

    payment = await pay.place(order)

    assert payment["status"] == "failed"
    [failed] = await pay.outbox_events("payment.failed", order)
    assert failed["data"]["reason"] == "missing card token"


async def test_a_card_number_sent_as_token_is_refused_and_stored_nowhere(
    pay: Payments,
) -> None:
    card_number = "4111111111111111"
    order = pay.order(card_token=card_number)

    refused = await pay.hand_over(order)
    assert refused.status_code == 422, refused.text
    assert card_number not in refused.text
    payment = await pay.place(order)

    # Nothing was held for the order, so its order.placed fails the payment.
    assert payment["status"] == "failed"
    assert payment["failure_reason"] == "missing card token"
    assert await pay.sandbox_authorizations(order) == 0
    async with pay.engine.connect() as conn:
        tables = (
            await conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'payments'")
            )
        ).scalars()
        found = {}
        for table in tables:
            found[table] = (
                await conn.execute(
                    text(f'SELECT count(*) FROM payments."{table}" t WHERE t::text LIKE :pan'),  # noqa: S608
                    {"pan": f"%{card_number}%"},
                )
            ).scalar_one()
    assert "payments" in found
    assert "outbox" in found
    assert set(found.values()) == {0}, found


async def test_provider_timeout_is_retried_and_authorizes_once(pay: Payments) -> None:
    order = pay.order(card_token="tok_timeout")
    await pay.hand_over(order)
    placed = order.event("placed")

    with pytest.raises(ProviderTimeout):
        await pay.handle(placed)
    # The consumer's transaction rolled back: no payment yet, the event will be retried.
    assert await pay.count_payments(order) == 0

    await pay.handle(placed)

    payment = await pay.payment_of(order)
    assert payment["status"] == "authorized"
    assert await pay.sandbox_authorizations(order) == 1
    assert len(await pay.outbox_events("payment.authorized", order)) == 1


@pytest.mark.parametrize("method", ["invoice", "cash_on_delivery"])
async def test_invoice_and_cash_orders_open_a_pending_payment(pay: Payments, method: str) -> None:
    order = pay.order(method=method)

    payment = await pay.place(order)

    assert payment["status"] == "pending"
    assert payment["method"] == method
    assert payment["last4"] is None
    assert await pay.outbox_events("payment.authorized", order) == []
    assert await pay.outbox_events("payment.failed", order) == []


async def test_delivered_invoice_order_gets_one_invoice_due_in_30_days(pay: Payments) -> None:
    order = pay.order(method="invoice", total="980.00")
    await pay.place(order)
    delivered = order.event("delivered")

    await pay.handle(delivered)
    await pay.handle(order.event("delivered"))  # redelivered under another id

    payment = await pay.payment_of(order)
    invoice = payment["invoice"]
    assert payment["status"] == "pending"
    assert [e["type"] for e in payment["events"]] == ["opened", "invoice_issued"]
    assert invoice["status"] == "open"
    assert invoice["amount"] == "980.00"
    assert invoice["currency"] == "NGN"
    assert invoice["number"].startswith("INV-")
    assert _at(invoice["due_at"]) - _at(invoice["issued_at"]) == timedelta(days=30)
    assert (
        await pay.scalar("SELECT count(*) FROM invoices WHERE order_id = :o", o=order.order_id) == 1
    )
    listed = await pay.http.get("/api/v1/payments/invoices", headers=pay.hospital(order))
    assert listed.status_code == 200
    assert [item["id"] for item in listed.json()["items"]] == [invoice["id"]]
    assert listed.json()["total"] == 1
    others = await pay.http.get("/api/v1/payments/invoices", headers=pay.stranger("hospital"))
    assert others.json()["items"] == []


async def test_delivered_card_order_is_captured_once(pay: Payments) -> None:
    order = pay.order(total="310.00")
    await pay.place(order)

    await pay.handle(order.event("delivered"))
    await pay.handle(order.event("delivered"))

    payment = await pay.payment_of(order)
    assert payment["status"] == "captured"
    assert payment["captured_amount"] == "310.00"
    [captured] = await pay.outbox_events("payment.captured", order)
    assert captured["data"]["amount"] == "310.00"
    assert captured["data"]["status"] == "captured"
    charge = await pay.sandbox_charge(await pay.provider_ref(order))
    assert charge["status"] == "captured"
    assert charge["captured_amount"] == Decimal("310.00")


async def test_cash_on_delivery_is_captured_when_delivered(pay: Payments) -> None:
    order = pay.order(method="cash_on_delivery", total="75.25")
    await pay.place(order)

    await pay.handle(order.event("delivered"))

    payment = await pay.payment_of(order)
    assert payment["status"] == "captured"
    assert payment["events"][-1]["detail"] == "cash collected on delivery"
    [captured] = await pay.outbox_events("payment.captured", order)
    assert captured["data"]["method"] == "cash_on_delivery"
    assert captured["data"]["amount"] == "75.25"


async def test_delivered_before_the_payment_was_opened_is_retried(pay: Payments) -> None:
    order = pay.order()

    with pytest.raises(PaymentNotOpened):
        await pay.handle(order.event("delivered"))

    assert await pay.count_payments(order) == 0


@pytest.mark.parametrize("ending", ["cancelled", "rejected", "expired"])
async def test_ended_order_voids_an_authorized_card_without_charging(
    pay: Payments, ending: str
) -> None:
    order = pay.order()
    await pay.place(order)

    await pay.handle(order.event(ending))
    await pay.handle(order.event(ending))

    payment = await pay.payment_of(order)
    assert payment["status"] == "voided"
    assert payment["events"][-1]["type"] == "voided"
    assert payment["events"][-1]["detail"].startswith(f"order {ending}")
    assert (await pay.sandbox_charge(await pay.provider_ref(order)))["status"] == "voided"
    assert await pay.outbox_events("payment.refunded", order) == []


async def test_cancelled_pending_payment_is_voided(pay: Payments) -> None:
    order = pay.order(method="invoice")
    await pay.place(order)

    await pay.handle(order.event("cancelled"))

    assert (await pay.payment_of(order))["status"] == "voided"


async def test_cancel_after_capture_refunds_everything_once(pay: Payments) -> None:
    order = pay.order(total="200.00")
    await pay.place(order)
    await pay.handle(order.event("delivered"))

    await pay.handle(order.event("cancelled", reason="wrong gas"))
    await pay.handle(order.event("cancelled", reason="wrong gas"))

    payment = await pay.payment_of(order)
    assert payment["status"] == "refunded"
    assert payment["refunded_amount"] == "200.00"
    [refunded] = await pay.outbox_events("payment.refunded", order)
    assert refunded["data"]["amount"] == "200.00"
    assert refunded["data"]["refunded_amount"] == "200.00"
    assert refunded["data"]["status"] == "refunded"
    assert refunded["data"]["reason"] == "order cancelled: wrong gas"
    charge = await pay.sandbox_charge(await pay.provider_ref(order))
    assert (charge["status"], charge["refunded_amount"]) == ("refunded", Decimal("200.00"))


async def test_order_ended_before_its_payment_opened_is_never_authorized_later(
    pay: Payments,
) -> None:
    order = pay.order()
    await pay.hand_over(order)

    await pay.handle(order.event("expired"))
    await pay.handle(order.event("placed"))  # late, e.g. after retries

    payment = await pay.payment_of(order)
    assert payment["status"] == "voided"
    assert await pay.sandbox_authorizations(order) == 0
    assert await pay.outbox_events("payment.authorized", order) == []


async def test_declined_payment_is_left_alone_when_the_order_fails(pay: Payments) -> None:
    order = pay.order(card_token="tok_declined")
    await pay.place(order)

    await pay.handle(order.event("failed"))

    payment = await pay.payment_of(order)
    assert payment["status"] == "failed"
    assert [e["type"] for e in payment["events"]] == ["opened", "failed"]


async def test_every_order_gets_at_most_one_payment_row(pay: Payments) -> None:
    order = pay.order(method="invoice")
    await pay.place(order)

    async with pay.engine.connect() as conn:
        with pytest.raises(Exception, match="uq_payments_order_id"):
            await conn.execute(
                text(
                    "INSERT INTO payments (id, order_id, hospital_org_id, vendor_id, method, "
                    "status, amount, currency, events, created_at, updated_at) VALUES "
                    "(:id, :o, :h, :v, 'invoice', 'pending', 1, 'NGN', '[]', now(), now())"
                ),
                {
                    "id": uuid.uuid4(),
                    "o": order.order_id,
                    "h": order.hospital_org_id,
                    "v": order.vendor_id,
                },
            )
