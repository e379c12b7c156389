"""Cylinder deposits: what a returned empty gives back of the deposit its order was charged.

A payment's amount is its order's total plus its cylinder deposits (`deposit_amount`).
Each `cylinder.returned` with a deposit becomes one `deposit_credits` row (UNIQUE
return_id: a redelivered event, or two deliveries handled at once, never credit twice),
credited to the payment of the order the cylinder was charged on:

- a captured card payment: a provider refund of the deposit (idempotency key
  `deposit:<return_id>`, so a retry after a lost answer refunds once), kind `refund`;
- captured cash on delivery: a recorded refund (the driver hands the cash back), `refund`;
- an issued invoice: a credit on it (`credited_amount`), kind `invoice_credit`.

A payment not settled yet (the return overtook order.delivered), or not opened at all
(events out of order), keeps the credit `pending` until its order's events settle it
(`settle_pending`, called by the lifecycle under the payment's lock). A voided or failed
payment never took the deposit: the credit is `void`, as is one in another currency or
for another organisation. Never more than `deposit_amount` in all (the payments CHECK
keeps the truth), nor more than is left to refund or to credit on the invoice: a credit
is cut to what is left, and void when nothing is.

The caller holds the payment's row lock (`lifecycle.payment_for_update`, after its
order's lock), so the credits of one payment are applied one after the other.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import structlog
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.metrics import business_counter
from payment_service import events
from payment_service.errors import ProviderRefusedOperation
from payment_service.models import (
    DepositCredit,
    DepositCreditKind,
    DepositCreditStatus,
    InvoiceStatus,
    Payment,
    PaymentMethod,
    PaymentStatus,
)
from payment_service.provider import PaymentProvider
from payment_service.state import PaymentEvent, apply, deposit_creditable

log = structlog.get_logger("payment_service.deposits")

DEPOSIT_CREDITS = business_counter(
    "flow_payment_deposit_credits_total",
    "Returned cylinders' deposit credits, by outcome (credited, void).",
    ("outcome",),
)


@dataclass(frozen=True, slots=True)
class CylinderReturn:
    """What a cylinder.returned tells payments."""

    return_id: uuid.UUID
    serial: str
    vendor_id: uuid.UUID
    hospital_org_id: uuid.UUID
    # The order the cylinder was delivered and its deposit charged on (None: none was).
    deposit_order_id: uuid.UUID | None
    deposit: Decimal
    currency: str | None


async def record_return(
    session: AsyncSession, returned: CylinderReturn, payment: Payment | None, *, at: datetime
) -> DepositCredit | None:
    """The return's credit, `pending`; None when its return_id was recorded before."""
    assert returned.deposit_order_id is not None
    credit_id = await session.scalar(
        pg_insert(DepositCredit)
        .values(
            id=uuid.uuid4(),
            return_id=returned.return_id,
            payment_id=payment.id if payment is not None else None,
            order_id=returned.deposit_order_id,
            hospital_org_id=returned.hospital_org_id,
            vendor_id=returned.vendor_id,
            serial=returned.serial,
            amount=returned.deposit,
            currency=returned.currency,
            status=DepositCreditStatus.PENDING,
            created_at=at,
        )
        .on_conflict_do_nothing(index_elements=[DepositCredit.return_id])
        .returning(DepositCredit.id)
    )
    if credit_id is None:
        return None
    return await session.get(DepositCredit, credit_id)


async def settle_pending(
    session: AsyncSession, provider: PaymentProvider, payment: Payment, *, at: datetime
) -> None:
    """Apply (or void) the order's pending credits as far as its payment now allows."""
    pending = await session.scalars(
        select(DepositCredit)
        .where(
            DepositCredit.order_id == payment.order_id,
            DepositCredit.status == DepositCreditStatus.PENDING,
        )
        .order_by(DepositCredit.created_at, DepositCredit.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    for credit in pending.all():
        await settle(session, provider, payment, credit, at=at)


async def settle(
    session: AsyncSession,
    provider: PaymentProvider,
    payment: Payment,
    credit: DepositCredit,
    *,
    at: datetime,
) -> None:
    """Credit `credit` to `payment` (locked by the caller), void it, or leave it pending."""
    credit.payment_id = payment.id
    refusal = _refusal(payment, credit)
    if refusal is not None:
        _void(credit, refusal)
        return
    if not _settled(payment):
        return
    amount = min(credit.amount, deposit_creditable(payment))
    if amount <= 0:
        _void(credit, "nothing is left of the payment's deposits to credit")
        return
    if payment.invoice is not None:
        kind = DepositCreditKind.INVOICE_CREDIT
        event = PaymentEvent.DEPOSIT_INVOICE_CREDITED
        detail = f"deposit of cylinder {credit.serial} credited on invoice {payment.invoice.number}"
    else:
        kind = DepositCreditKind.REFUND
        event = PaymentEvent.DEPOSIT_REFUNDED
        if payment.method == PaymentMethod.CARD:
            assert payment.provider_ref is not None
            result = await provider.refund(
                provider_ref=payment.provider_ref,
                amount=amount,
                idempotency_key=f"deposit:{credit.return_id}",
            )
            if not result.succeeded:
                raise ProviderRefusedOperation(f"deposit refund refused: {result.failure_reason}")
            detail = f"deposit of cylinder {credit.serial} refunded by {provider.name}"
        else:
            detail = f"deposit of cylinder {credit.serial} refunded in cash"
    apply(payment, event, at=at, amount=amount, detail=detail)
    credit.amount = amount
    credit.kind = kind
    credit.status = DepositCreditStatus.CREDITED
    credit.credited_at = at
    await events.publish_deposit_credited(session, payment, credit, at=at)
    DEPOSIT_CREDITS.labels("credited").inc()


def _refusal(payment: Payment, credit: DepositCredit) -> str | None:
    """Why nothing of this credit can ever go to this payment, if so."""
    if payment.status in (PaymentStatus.VOIDED, PaymentStatus.FAILED):
        return f"the payment is {payment.status}: its deposit was never paid"
    if payment.invoice is not None and payment.invoice.status == InvoiceStatus.VOID:
        return "the payment's invoice is void"
    if (credit.hospital_org_id, credit.vendor_id) != (payment.hospital_org_id, payment.vendor_id):
        return "the return's hospital or vendor is not the payment's"
    if credit.currency != payment.currency:
        return f"the deposit is in {credit.currency}, the payment in {payment.currency}"
    return None


def _settled(payment: Payment) -> bool:
    """Whether the payment holds the deposit: captured, or invoiced."""
    if payment.method == PaymentMethod.INVOICE:
        return payment.invoice is not None
    return payment.status in (PaymentStatus.CAPTURED, PaymentStatus.REFUNDED)


def _void(credit: DepositCredit, reason: str) -> None:
    credit.status = DepositCreditStatus.VOID
    DEPOSIT_CREDITS.labels("void").inc()
    log.warning(
        "deposit_credit_void",
        return_id=str(credit.return_id),
        order_id=str(credit.order_id),
        reason=reason,
    )
