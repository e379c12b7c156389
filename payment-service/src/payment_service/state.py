"""The payment state machine as data: which moves exist, from where, to what.

    pending -> authorized -> captured -> refunded
    pending -> failed | voided | captured   (captured: cash collected on delivery)
    authorized -> voided
    captured -> captured (a partial refund) | refunded (once everything is refunded)

A returned cylinder's deposit is given back as a refund of a captured payment
(`deposit_refunded`, a refund like any other) or as a credit on an issued invoice
(`deposit_invoice_credited`, the payment staying pending); both count in
`deposit_credited`, never beyond `deposit_amount`.

`apply` is the only code that changes a payment's status or its money columns: it checks
the move, updates `captured_amount` / `refunded_amount`, and appends to `events`. Anything
else is `IllegalPaymentTransition` (409). Outbox events are written by the caller, which
knows the event's reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from flow_shared.metrics import business_counter
from payment_service.errors import (
    DepositExceedsCreditable,
    IllegalPaymentTransition,
    RefundExceedsCaptured,
)
from payment_service.models import Payment, PaymentStatus


class PaymentEvent(StrEnum):
    OPENED = "opened"
    AUTHORIZED = "authorized"
    FAILED = "failed"
    CAPTURED = "captured"
    VOIDED = "voided"
    REFUNDED = "refunded"
    INVOICE_ISSUED = "invoice_issued"
    DEPOSIT_REFUNDED = "deposit_refunded"
    DEPOSIT_INVOICE_CREDITED = "deposit_invoice_credited"


@dataclass(frozen=True, slots=True)
class Move:
    sources: frozenset[PaymentStatus | None]
    # None: the status stays as it is (the event is recorded in the history only).
    target: PaymentStatus | None
    # Refunds: the target is reached only once everything captured has been refunded.
    only_when_settled: bool = False


MOVES: Mapping[PaymentEvent, Move] = {
    PaymentEvent.OPENED: Move(frozenset({None}), PaymentStatus.PENDING),
    PaymentEvent.AUTHORIZED: Move(frozenset({PaymentStatus.PENDING}), PaymentStatus.AUTHORIZED),
    PaymentEvent.FAILED: Move(frozenset({PaymentStatus.PENDING}), PaymentStatus.FAILED),
    PaymentEvent.CAPTURED: Move(
        frozenset({PaymentStatus.PENDING, PaymentStatus.AUTHORIZED}), PaymentStatus.CAPTURED
    ),
    PaymentEvent.VOIDED: Move(
        frozenset({PaymentStatus.PENDING, PaymentStatus.AUTHORIZED}), PaymentStatus.VOIDED
    ),
    PaymentEvent.REFUNDED: Move(
        frozenset({PaymentStatus.CAPTURED}), PaymentStatus.REFUNDED, only_when_settled=True
    ),
    PaymentEvent.INVOICE_ISSUED: Move(frozenset({PaymentStatus.PENDING}), None),
    PaymentEvent.DEPOSIT_REFUNDED: Move(
        frozenset({PaymentStatus.CAPTURED}), PaymentStatus.REFUNDED, only_when_settled=True
    ),
    PaymentEvent.DEPOSIT_INVOICE_CREDITED: Move(frozenset({PaymentStatus.PENDING}), None),
}

PAYMENT_EVENTS = business_counter(
    "flow_payment_events_total", "Payment state machine events applied, by type.", ("event",)
)


def current_status(payment: Payment) -> PaymentStatus | None:
    return PaymentStatus(payment.status) if payment.status is not None else None


def can_apply(payment: Payment, event: PaymentEvent) -> bool:
    return current_status(payment) in MOVES[event].sources


def refundable(payment: Payment) -> Decimal:
    return payment.captured_amount - payment.refunded_amount


def deposit_creditable(payment: Payment) -> Decimal:
    """What may still be given back of the payment's deposits: never more than they were,
    nor than is left to refund (card, cash) or to credit on its invoice."""
    left = payment.deposit_amount - payment.deposit_credited
    if payment.invoice is not None:
        return min(left, payment.invoice.amount - payment.invoice.credited_amount)
    return min(left, refundable(payment))


def rfc3339(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def apply(
    payment: Payment,
    event: PaymentEvent,
    *,
    at: datetime,
    detail: str,
    amount: Decimal | None = None,
    actor: str | None = None,
) -> None:
    """Apply `event` to `payment` (whose row the caller holds locked, or has just created).

    CAPTURED sets `captured_amount` to `amount`; REFUNDED adds `amount` to
    `refunded_amount`, never beyond what was captured; DEPOSIT_REFUNDED does the same and
    adds it to `deposit_credited`; DEPOSIT_INVOICE_CREDITED adds it to `deposit_credited`
    and to the invoice's `credited_amount`, never beyond what may still be credited.
    """
    move = MOVES[event]
    status = current_status(payment)
    if status not in move.sources:
        raise IllegalPaymentTransition(f"A payment that is {status} cannot be {event}.")
    if event is PaymentEvent.CAPTURED:
        assert amount is not None
        payment.captured_amount = amount
    elif event is PaymentEvent.REFUNDED:
        assert amount is not None
        if amount <= 0 or amount > refundable(payment):
            raise RefundExceedsCaptured(
                f"At most {refundable(payment)} {payment.currency} can still be refunded.",
                extra={"refundable": str(refundable(payment))},
            )
        payment.refunded_amount = payment.refunded_amount + amount
    elif event in (PaymentEvent.DEPOSIT_REFUNDED, PaymentEvent.DEPOSIT_INVOICE_CREDITED):
        assert amount is not None
        invoiced = event is PaymentEvent.DEPOSIT_INVOICE_CREDITED
        if invoiced != (payment.invoice is not None):
            raise IllegalPaymentTransition(f"A payment cannot be {event} this way.")
        if amount <= 0 or amount > deposit_creditable(payment):
            raise DepositExceedsCreditable(
                f"At most {deposit_creditable(payment)} {payment.currency} of the deposits "
                "can still be credited."
            )
        payment.deposit_credited = payment.deposit_credited + amount
        if payment.invoice is not None:
            payment.invoice.credited_amount = payment.invoice.credited_amount + amount
        else:
            payment.refunded_amount = payment.refunded_amount + amount
    if move.target is not None and (
        not move.only_when_settled or payment.refunded_amount == payment.captured_amount
    ):
        payment.status = move.target
    entry: dict[str, Any] = {
        "type": event.value,
        "status": payment.status,
        "at": rfc3339(at),
        "detail": detail,
    }
    if amount is not None:
        entry["amount"] = str(amount)
    if actor is not None:
        entry["actor"] = actor
    payment.events = [*(payment.events or []), entry]
    payment.updated_at = at
    PAYMENT_EVENTS.labels(event.value).inc()
