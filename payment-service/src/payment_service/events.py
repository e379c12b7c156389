"""Events payment-service publishes (through its outbox, in the caller's transaction).

`data` is a contract with consumers: add fields, never rename or remove them. Every
payment event has the same shape; money is a decimal string:

    {payment_id, order_id, hospital_org_id, vendor_id, method, status, amount, currency,
     captured_amount, refunded_amount, at, reason?}

- `payment.authorized`: a card was authorized; `amount` is the amount authorized.
- `payment.failed`: the payment cannot happen; `reason` says why ("card declined",
  "missing card token", ...). `amount` is the order's amount.
- `payment.captured`: money was taken (card captured on delivery, a provider webhook,
  or cash collected on delivery); `amount` is the amount captured.
- `payment.refunded`: money was given back; `amount` is this refund, `refunded_amount`
  the total so far, `reason` why. `status` is `refunded` once everything captured has been
  refunded and stays `captured` after a partial refund.

`payment.deposit_credited` has its own shape: a returned cylinder's deposit given back,

    {payment_id, order_id, hospital_org_id, vendor_id, return_id, serial, amount,
     currency, kind: "refund" | "invoice_credit", at}

(`order_id` is the order the deposit was charged on, `return_id` inventory-service's
cylinder.returned). A deposit refund is this event only, never also `payment.refunded`.

Voiding and invoices are recorded in the payment's `events` history, without an event.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.events.outbox import add_event
from payment_service.models import DepositCredit, Payment, outbox
from payment_service.state import rfc3339

PRODUCER = "payment-service"
PAYMENT_AUTHORIZED = "payment.authorized"
PAYMENT_FAILED = "payment.failed"
PAYMENT_CAPTURED = "payment.captured"
PAYMENT_REFUNDED = "payment.refunded"
PAYMENT_DEPOSIT_CREDITED = "payment.deposit_credited"


def payment_event_data(
    payment: Payment, *, amount: Decimal, at: datetime, reason: str | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "payment_id": str(payment.id),
        "order_id": str(payment.order_id),
        "hospital_org_id": str(payment.hospital_org_id),
        "vendor_id": str(payment.vendor_id),
        "method": payment.method,
        "status": payment.status,
        "amount": str(amount),
        "currency": payment.currency,
        "captured_amount": str(payment.captured_amount),
        "refunded_amount": str(payment.refunded_amount),
        "at": rfc3339(at),
    }
    if reason is not None:
        data["reason"] = reason
    return data


async def publish_payment_event(
    session: AsyncSession,
    event_type: str,
    payment: Payment,
    *,
    amount: Decimal,
    at: datetime,
    reason: str | None = None,
) -> None:
    await add_event(
        session,
        outbox,
        event_type=event_type,
        producer=PRODUCER,
        data=payment_event_data(payment, amount=amount, at=at, reason=reason),
    )


def deposit_credited_data(
    payment: Payment, credit: DepositCredit, *, at: datetime
) -> dict[str, Any]:
    return {
        "payment_id": str(payment.id),
        "order_id": str(payment.order_id),
        "hospital_org_id": str(payment.hospital_org_id),
        "vendor_id": str(payment.vendor_id),
        "return_id": str(credit.return_id),
        "serial": credit.serial,
        "amount": str(credit.amount),
        "currency": payment.currency,
        "kind": credit.kind,
        "at": rfc3339(at),
    }


async def publish_deposit_credited(
    session: AsyncSession, payment: Payment, credit: DepositCredit, *, at: datetime
) -> None:
    await add_event(
        session,
        outbox,
        event_type=PAYMENT_DEPOSIT_CREDITED,
        producer=PRODUCER,
        data=deposit_credited_data(payment, credit, at=at),
    )
