"""Cylinder deposits (SPEC "Cylinder ledger": "a returned empty credits its deposit to the
hospital (refund or invoice credit; cylinder.returned)"): the hospital is charged the
order's total plus its deposits; each returned cylinder's deposit goes back once to the
payment it was charged on (a card refund at the provider, cash handed back, a credit on
the invoice), waits while that payment is not settled, is void when it never was paid,
and never exceeds the deposits charged, however often or concurrently it is delivered."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from payment_service.consumers import event_handlers
from payment_service.provider import OperationResult, PaymentProvider, ProviderTimeout

if TYPE_CHECKING:
    from conftest import Order, Payments


async def _delivered(pay: Payments, **fields: Any) -> tuple[Order, dict[str, Any]]:
    order = pay.order(**fields)
    await pay.place(order)
    await pay.handle(order.event("delivered"))
    return order, await pay.payment_of(order)


async def test_card_payment_charges_the_deposits_and_refunds_a_returned_cylinders_deposit(
    pay: Payments,
) -> None:
    order, payment = await _delivered(pay, total="100.00", deposit_total="25.00")
    assert (payment["amount"], payment["captured_amount"]) == ("125.00", "125.00")
    assert (payment["deposit_amount"], payment["deposit_credited"]) == ("25.00", "0.00")
    return_id = uuid.uuid4()

    await pay.handle(order.returned(deposit="12.50", serial="CYL-0001", return_id=return_id))

    response = await pay.http.get(f"/api/v1/payments/{payment['id']}", headers=pay.hospital(order))
    assert response.status_code == 200, response.text
    payment = response.json()
    assert payment["status"] == "captured"
    assert payment["refunded_amount"] == "12.50"
    assert payment["deposit_credited"] == "12.50"
    [credit] = payment["deposit_credits"]
    assert credit["return_id"] == str(return_id)
    assert (credit["serial"], credit["amount"], credit["currency"]) == ("CYL-0001", "12.50", "NGN")
    assert (credit["kind"], credit["status"]) == ("refund", "credited")
    assert credit["credited_at"] is not None
    history = payment["events"][-1]
    assert (history["type"], history["amount"]) == ("deposit_refunded", "12.50")
    assert "CYL-0001" in history["detail"]
    charge = await pay.sandbox_charge(await pay.provider_ref(order))
    # The card was authorized and captured for the total and the deposits together.
    assert (charge["authorized_amount"], charge["captured_amount"]) == (
        Decimal("125.00"),
        Decimal("125.00"),
    )
    assert charge["refunded_amount"] == Decimal("12.50")
    assert await pay.sandbox_refunds(f"deposit:{return_id}") == 1
    [published] = await pay.outbox_events("payment.deposit_credited", order)
    assert published["producer"] == "payment-service"
    assert published["data"] == {
        "payment_id": payment["id"],
        "order_id": str(order.order_id),
        "hospital_org_id": str(order.hospital_org_id),
        "vendor_id": str(order.vendor_id),
        "return_id": str(return_id),
        "serial": "CYL-0001",
        "amount": "12.50",
        "currency": "NGN",
        "kind": "refund",
        "at": published["data"]["at"],
    }
    # A deposit given back is not a refund of the order.
    assert await pay.outbox_events("payment.refunded", order) == []


async def test_returns_credit_the_invoice_never_above_its_amount(pay: Payments) -> None:
    order, payment = await _delivered(pay, method="invoice", total="980.00", deposit_total="50.00")
    assert payment["invoice"]["amount"] == "1030.00"

    await pay.handle(order.returned(deposit="25.00"))
    await pay.handle(order.returned(deposit="25.00"))

    payment = await pay.payment_of(order)
    assert payment["status"] == "pending"
    assert payment["refunded_amount"] == "0.00"
    assert payment["deposit_credited"] == "50.00"
    assert payment["invoice"]["credited_amount"] == "50.00"
    assert [(c["kind"], c["status"]) for c in payment["deposit_credits"]] == [
        ("invoice_credit", "credited"),
        ("invoice_credit", "credited"),
    ]
    assert [e["type"] for e in payment["events"]][-2:] == ["deposit_invoice_credited"] * 2
    listed = await pay.http.get("/api/v1/payments/invoices", headers=pay.hospital(order))
    assert listed.json()["items"][0]["credited_amount"] == "50.00"
    published = await pay.outbox_events("payment.deposit_credited", order)
    assert [p["data"]["kind"] for p in published] == ["invoice_credit", "invoice_credit"]
    async with pay.engine.connect() as conn:
        with pytest.raises(IntegrityError, match="ck_invoices_credited_within_amount"):
            await conn.execute(
                text("UPDATE invoices SET credited_amount = amount + 0.01 WHERE order_id = :o"),
                {"o": order.order_id},
            )


async def test_cash_on_delivery_deposit_is_a_recorded_refund_without_the_provider(
    pay: Payments,
) -> None:
    order, _ = await _delivered(
        pay, method="cash_on_delivery", total="75.25", deposit_total="10.00"
    )
    return_id = uuid.uuid4()

    await pay.handle(order.returned(deposit="10.00", return_id=return_id))

    payment = await pay.payment_of(order)
    assert payment["captured_amount"] == "85.25"
    assert payment["refunded_amount"] == "10.00"
    assert payment["status"] == "captured"
    assert [(c["kind"], c["status"]) for c in payment["deposit_credits"]] == [
        ("refund", "credited")
    ]
    assert payment["events"][-1]["detail"].endswith("refunded in cash")
    assert await pay.sandbox_refunds(f"deposit:{return_id}") == 0
    assert len(await pay.outbox_events("payment.deposit_credited", order)) == 1


async def test_a_return_before_delivery_waits_and_is_credited_when_delivered(
    pay: Payments,
) -> None:
    order = pay.order(total="200.00", deposit_total="30.00")
    await pay.place(order)

    await pay.handle(order.returned(deposit="15.00"))

    [credit] = await pay.deposit_credits(order)
    assert credit["status"] == "pending"
    assert credit["credited_at"] is None
    assert (await pay.payment_of(order))["refunded_amount"] == "0.00"
    assert await pay.outbox_events("payment.deposit_credited", order) == []

    await pay.handle(order.event("delivered"))

    payment = await pay.payment_of(order)
    assert (payment["captured_amount"], payment["refunded_amount"]) == ("230.00", "15.00")
    assert [e["type"] for e in payment["events"]] == [
        "opened",
        "authorized",
        "captured",
        "deposit_refunded",
    ]
    [credit] = payment["deposit_credits"]
    assert (credit["status"], credit["kind"]) == ("credited", "refund")
    assert len(await pay.outbox_events("payment.deposit_credited", order)) == 1
    charge = await pay.sandbox_charge(await pay.provider_ref(order))
    assert charge["refunded_amount"] == Decimal("15.00")


async def test_a_return_before_the_payment_was_opened_is_kept_for_it(pay: Payments) -> None:
    order = pay.order(method="invoice", total="400.00", deposit_total="20.00")

    await pay.handle(order.returned(deposit="20.00"))

    [credit] = await pay.deposit_credits(order)
    assert (credit["status"], credit["payment_id"]) == ("pending", None)

    payment = await pay.place(order)
    assert [c["status"] for c in payment["deposit_credits"]] == ["pending"]
    await pay.handle(order.event("delivered"))

    payment = await pay.payment_of(order)
    assert payment["invoice"]["credited_amount"] == "20.00"
    [credit] = payment["deposit_credits"]
    assert (credit["status"], credit["kind"]) == ("credited", "invoice_credit")
    assert len(await pay.outbox_events("payment.deposit_credited", order)) == 1


async def test_a_declined_payment_never_took_the_deposit_so_its_return_is_void(
    pay: Payments,
) -> None:
    order = pay.order(card_token="tok_declined", deposit_total="12.50")
    assert (await pay.place(order))["status"] == "failed"

    await pay.handle(order.returned(deposit="12.50"))

    payment = await pay.payment_of(order)
    assert [c["status"] for c in payment["deposit_credits"]] == ["void"]
    assert payment["deposit_credited"] == "0.00"
    assert await pay.outbox_events("payment.deposit_credited", order) == []


async def test_a_waiting_return_is_void_when_the_order_is_cancelled(pay: Payments) -> None:
    order = pay.order(deposit_total="12.50")
    await pay.place(order)
    await pay.handle(order.returned(deposit="12.50"))

    await pay.handle(order.event("cancelled"))

    payment = await pay.payment_of(order)
    assert payment["status"] == "voided"
    assert [c["status"] for c in payment["deposit_credits"]] == ["void"]
    assert await pay.outbox_events("payment.deposit_credited", order) == []


async def test_a_deposit_in_another_currency_or_of_another_hospital_is_never_credited(
    pay: Payments,
) -> None:
    order, _ = await _delivered(pay, deposit_total="25.00")

    await pay.handle(order.returned(deposit="12.50", currency="USD"))
    await pay.handle(order.returned(deposit="12.50", hospital_org_id=uuid.uuid4()))

    payment = await pay.payment_of(order)
    assert [c["status"] for c in payment["deposit_credits"]] == ["void", "void"]
    assert (payment["refunded_amount"], payment["deposit_credited"]) == ("0.00", "0.00")


async def test_a_return_without_a_deposit_credits_nothing(pay: Payments) -> None:
    order, _ = await _delivered(pay)

    await pay.handle(order.returned(deposit="0.00"))

    assert await pay.deposit_credits(order) == []
    assert (await pay.payment_of(order))["refunded_amount"] == "0.00"


async def test_a_redelivered_return_credits_once(pay: Payments) -> None:
    order, _ = await _delivered(pay, deposit_total="25.00")
    return_id = uuid.uuid4()
    returned = order.returned(deposit="12.50", return_id=return_id)

    await pay.handle(returned)
    await pay.handle(returned)  # a lost ack
    await pay.handle(order.returned(deposit="12.50", return_id=return_id))  # another event id

    payment = await pay.payment_of(order)
    assert [c["status"] for c in payment["deposit_credits"]] == ["credited"]
    assert (payment["refunded_amount"], payment["deposit_credited"]) == ("12.50", "12.50")
    assert await pay.sandbox_refunds(f"deposit:{return_id}") == 1
    assert len(await pay.outbox_events("payment.deposit_credited", order)) == 1


async def test_concurrent_deliveries_of_one_return_credit_once(pay: Payments) -> None:
    order, _ = await _delivered(pay, deposit_total="25.00")
    return_id = uuid.uuid4()

    await asyncio.gather(
        *(pay.handle(order.returned(deposit="12.50", return_id=return_id)) for _ in range(4))
    )

    payment = await pay.payment_of(order)
    assert [c["status"] for c in payment["deposit_credits"]] == ["credited"]
    assert (payment["refunded_amount"], payment["deposit_credited"]) == ("12.50", "12.50")
    assert await pay.sandbox_refunds(f"deposit:{return_id}") == 1
    assert len(await pay.outbox_events("payment.deposit_credited", order)) == 1


async def test_a_return_racing_the_payments_opening_is_credited_once_delivered(
    pay: Payments,
) -> None:
    order = pay.order(method="cash_on_delivery", total="50.00", deposit_total="12.50")

    # The return and order.placed at the same instant: whichever goes first, the credit
    # is kept for the payment and applied when the order is delivered.
    await asyncio.gather(pay.handle(order.returned(deposit="12.50")), pay.place(order))
    await pay.handle(order.event("delivered"))

    payment = await pay.payment_of(order)
    assert [c["status"] for c in payment["deposit_credits"]] == ["credited"]
    assert payment["refunded_amount"] == "12.50"


async def test_credits_never_exceed_the_deposits_charged(pay: Payments) -> None:
    order, _ = await _delivered(pay, total="100.00", deposit_total="20.00")

    await pay.handle(order.returned(deposit="12.50"))
    await pay.handle(order.returned(deposit="12.50"))  # only 7.50 is left of the deposits
    await pay.handle(order.returned(deposit="12.50"))  # nothing is

    payment = await pay.payment_of(order)
    assert [(c["amount"], c["status"]) for c in payment["deposit_credits"]] == [
        ("12.50", "credited"),
        ("7.50", "credited"),
        ("12.50", "void"),
    ]
    assert (payment["deposit_credited"], payment["refunded_amount"]) == ("20.00", "20.00")
    published = await pay.outbox_events("payment.deposit_credited", order)
    assert [p["data"]["amount"] for p in published] == ["12.50", "7.50"]
    charge = await pay.sandbox_charge(await pay.provider_ref(order))
    assert charge["refunded_amount"] == Decimal("20.00")
    async with pay.engine.connect() as conn:
        with pytest.raises(IntegrityError, match="ck_payments_deposit_credited_within_deposit"):
            await conn.execute(
                text("UPDATE payments SET deposit_credited = 20.01 WHERE order_id = :o"),
                {"o": order.order_id},
            )


async def test_concurrent_returns_of_one_order_never_exceed_its_deposits(pay: Payments) -> None:
    order, _ = await _delivered(pay, total="100.00", deposit_total="25.00")

    await asyncio.gather(*(pay.handle(order.returned(deposit="12.50")) for _ in range(3)))

    payment = await pay.payment_of(order)
    assert sorted(c["status"] for c in payment["deposit_credits"]) == [
        "credited",
        "credited",
        "void",
    ]
    assert (payment["deposit_credited"], payment["refunded_amount"]) == ("25.00", "25.00")
    assert len(await pay.outbox_events("payment.deposit_credited", order)) == 2


async def test_nothing_is_credited_beyond_what_is_left_to_refund(pay: Payments) -> None:
    order, payment = await _delivered(pay, total="100.00", deposit_total="25.00")
    everything = await pay.refund(payment["id"], pay.vendor(order), reason="all of it")
    assert everything.status_code == 200, everything.text

    await pay.handle(order.returned(deposit="12.50"))

    payment = await pay.payment_of(order)
    assert payment["status"] == "refunded"
    assert [c["status"] for c in payment["deposit_credits"]] == ["void"]
    assert payment["deposit_credited"] == "0.00"


class _LostRefundAnswer:
    """The provider refunds, but the answer is lost (the first time only)."""

    def __init__(self, provider: PaymentProvider) -> None:
        self._provider = provider
        self.lost = 0

    @property
    def name(self) -> str:
        return self._provider.name

    async def authorize(
        self, *, token: str, amount: Decimal, currency: str, idempotency_key: str
    ) -> Any:
        return await self._provider.authorize(
            token=token, amount=amount, currency=currency, idempotency_key=idempotency_key
        )

    async def capture(
        self, *, provider_ref: str, amount: Decimal, idempotency_key: str
    ) -> OperationResult:
        return await self._provider.capture(
            provider_ref=provider_ref, amount=amount, idempotency_key=idempotency_key
        )

    async def void(self, *, provider_ref: str, idempotency_key: str) -> OperationResult:
        return await self._provider.void(provider_ref=provider_ref, idempotency_key=idempotency_key)

    async def refund(
        self, *, provider_ref: str, amount: Decimal, idempotency_key: str
    ) -> OperationResult:
        result = await self._provider.refund(
            provider_ref=provider_ref, amount=amount, idempotency_key=idempotency_key
        )
        if self.lost == 0:
            self.lost += 1
            raise ProviderTimeout("the refund's answer was lost")
        return result


async def test_a_lost_refund_answer_is_retried_and_refunds_the_deposit_once(
    pay: Payments,
) -> None:
    order, _ = await _delivered(pay, deposit_total="12.50")
    return_id = uuid.uuid4()
    returned = order.returned(deposit="12.50", return_id=return_id)
    flaky = _LostRefundAnswer(pay.app.state.provider)

    # The service's own handler, with the provider losing its first refund answer.
    handler = event_handlers(flaky, invoice_due_days=30)["cylinder.returned"]

    async def handle_with_flaky_provider() -> None:
        async with pay.sessions() as session, session.begin():
            await handler(session, returned)

    with pytest.raises(ProviderTimeout):
        await handle_with_flaky_provider()
    # Rolled back on our side: the consumer retries the event.
    assert await pay.deposit_credits(order) == []

    await pay.handle(returned)

    payment = await pay.payment_of(order)
    assert [c["status"] for c in payment["deposit_credits"]] == ["credited"]
    assert payment["refunded_amount"] == "12.50"
    assert await pay.sandbox_refunds(f"deposit:{return_id}") == 1
    charge = await pay.sandbox_charge(await pay.provider_ref(order))
    assert charge["refunded_amount"] == Decimal("12.50")


async def test_an_order_event_without_deposits_charges_its_total(pay: Payments) -> None:
    order = pay.order(total="310.00")  # an event written before deposits existed

    payment = await pay.place(order)

    assert (payment["amount"], payment["deposit_amount"]) == ("310.00", "0.00")
    assert payment["deposit_credits"] == []
