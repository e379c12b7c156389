"""A payment's course, driven by its order's events.

- order.placed: the order's payment is opened (one per order: UNIQUE order_id). A card
  is authorized at the provider with the token order-service handed over before placing
  the order (`card_tokens`; approved: `payment.authorized`; declined or no usable token:
  `payment.failed`); invoice and cash on delivery stay pending.
- order.delivered: a card is captured; an invoice is issued, due in INVOICE_DUE_DAYS; cash
  on delivery is captured, as the driver collected the cash on delivery
  (`payment.captured` for both captures).
- order.cancelled / rejected / expired / failed: a pending or authorized payment is voided,
  a captured one refunded in full (`payment.refunded`); one that is already voided,
  refunded or failed is left alone. An order that ends before its payment was opened
  gets a voided payment, so that a late order.placed can never authorize it.
- cylinder.returned: the deposit the cylinder was charged on its order is credited back
  (`service.deposits`), now or once that order's events settle its payment.

A payment's amount is its order's total plus its cylinder deposits (`deposit_total`).

Every step is guarded by the payment's status under a row lock, so an event whose effect
already happened is a no-op. The row lock is taken after the order's own lock (an advisory
transaction lock), which a return also takes when the order has no payment yet: a return
and the payment's opening are never handled past each other. A provider timeout
propagates: the consumer rolls back and retries the event, and the provider's idempotency
key (derived from the order) makes the repeated call return the first answer.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import structlog
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from payment_service import events
from payment_service.errors import PaymentNotOpened, ProviderRefusedOperation
from payment_service.models import (
    DepositCredit,
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentMethod,
    PaymentStatus,
    invoice_number_seq,
)
from payment_service.provider import PaymentProvider, ProviderError
from payment_service.service import card_tokens, deposits
from payment_service.state import PaymentEvent, apply, can_apply, refundable

log = structlog.get_logger("payment_service.lifecycle")

# A failure reason (not a secret).
MISSING_TOKEN = "missing card token"  # noqa: S105
# The class of payment-service's order locks (two-key advisory locks never meet the
# sandbox's one-key ones).
ORDER_LOCK_CLASS = 0x7061


@dataclass(frozen=True, slots=True)
class OrderFacts:
    """What an order event tells payments (every order.* event carries all of it)."""

    order_id: uuid.UUID
    hospital_org_id: uuid.UUID
    vendor_id: uuid.UUID
    method: PaymentMethod
    amount: Decimal
    currency: str
    order_status: str
    reason: str | None = None
    # Of `amount`, the order's cylinder deposits.
    deposit_amount: Decimal = Decimal("0.00")
    # The SOS request an SOS order fulfils: its card token was handed over for the SOS.
    sos_id: uuid.UUID | None = None


async def payment_for_update(session: AsyncSession, order_id: uuid.UUID) -> Payment | None:
    """The order's payment under its row lock, taken after the order's lock (held until
    the transaction ends, and taken even when there is no payment yet)."""
    await session.execute(
        select(func.pg_advisory_xact_lock(ORDER_LOCK_CLASS, func.hashtext(str(order_id))))
    )
    payment: Payment | None = await session.scalar(
        select(Payment)
        .where(Payment.order_id == order_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return payment


async def _insert_payment(session: AsyncSession, payment: Payment) -> bool:
    """Insert a new payment; False when the order already has one (a concurrent handler of
    another delivery of the same event won: its row is the order's payment)."""
    try:
        async with session.begin_nested():
            session.add(payment)
            await session.flush()
    except IntegrityError:
        # Only the order's existing payment explains the conflict; anything else is a bug.
        if await payment_for_update(session, payment.order_id) is None:
            raise
        return False
    return True


def _new_payment(order: OrderFacts, *, at: datetime) -> Payment:
    payment = Payment(
        id=uuid.uuid4(),
        order_id=order.order_id,
        hospital_org_id=order.hospital_org_id,
        vendor_id=order.vendor_id,
        method=order.method.value,
        amount=order.amount,
        currency=order.currency,
        captured_amount=Decimal("0.00"),
        refunded_amount=Decimal("0.00"),
        deposit_amount=order.deposit_amount,
        deposit_credited=Decimal("0.00"),
        events=[],
        invoice=None,
        created_at=at,
        updated_at=at,
    )
    apply(
        payment,
        PaymentEvent.OPENED,
        at=at,
        amount=order.amount,
        detail=f"{order.method.value} payment opened for the order",
    )
    return payment


async def on_order_placed(
    session: AsyncSession, provider: PaymentProvider, order: OrderFacts, *, at: datetime
) -> Payment | None:
    """Open the order's payment and authorize a card. None when it was opened before."""
    # Taken first, whatever follows: a redelivery finds neither a token nor a new payment.
    token = await card_tokens.take_card_token(session, order.order_id, sos_id=order.sos_id)
    if await payment_for_update(session, order.order_id) is not None:
        return None
    payment = _new_payment(order, at=at)
    if not await _insert_payment(session, payment):
        return None
    if order.method is PaymentMethod.CARD:
        await _authorize_card(session, provider, payment, token, at=at)
    # Returns that came first: now they know their payment (void if it failed).
    await deposits.settle_pending(session, provider, payment, at=at)
    return payment


async def _authorize_card(
    session: AsyncSession,
    provider: PaymentProvider,
    payment: Payment,
    token: str | None,
    *,
    at: datetime,
) -> None:
    if token is None:
        # None handed over (the internal call refuses anything but a token's shape), or
        # pruned before a very late order.placed.
        await _fail(session, payment, MISSING_TOKEN, at=at)
        return
    payment.provider = provider.name
    payment.provider_token = token
    result = await provider.authorize(
        token=token,
        amount=payment.amount,
        currency=payment.currency,
        idempotency_key=f"authorize:{payment.order_id}",
    )
    if not result.approved:
        await _fail(session, payment, result.failure_reason or "declined", at=at)
        return
    if result.provider_ref is None:
        raise ProviderError(f"{provider.name} approved an authorization without a reference")
    payment.provider_ref = result.provider_ref
    payment.last4 = result.last4
    apply(
        payment,
        PaymentEvent.AUTHORIZED,
        at=at,
        amount=payment.amount,
        detail=f"card ending {result.last4} authorized by {provider.name}",
    )
    await events.publish_payment_event(
        session, events.PAYMENT_AUTHORIZED, payment, amount=payment.amount, at=at
    )


async def _fail(session: AsyncSession, payment: Payment, reason: str, *, at: datetime) -> None:
    payment.failure_reason = reason
    apply(payment, PaymentEvent.FAILED, at=at, detail=reason)
    await events.publish_payment_event(
        session, events.PAYMENT_FAILED, payment, amount=payment.amount, at=at, reason=reason
    )


async def on_order_delivered(
    session: AsyncSession,
    provider: PaymentProvider,
    order: OrderFacts,
    *,
    at: datetime,
    invoice_due_days: int,
) -> Payment:
    """Capture a card or cash on delivery; issue an invoice. Then credit the deposits of
    cylinders returned before the payment was settled."""
    payment = await payment_for_update(session, order.order_id)
    if payment is None:
        raise PaymentNotOpened(f"order {order.order_id} has no payment yet")
    await _settle_on_delivery(session, provider, payment, at=at, invoice_due_days=invoice_due_days)
    # Also when it was settled before (a card captured by the provider's webhook).
    await deposits.settle_pending(session, provider, payment, at=at)
    return payment


async def _settle_on_delivery(
    session: AsyncSession,
    provider: PaymentProvider,
    payment: Payment,
    *,
    at: datetime,
    invoice_due_days: int,
) -> None:
    method = PaymentMethod(payment.method)
    if method is PaymentMethod.INVOICE:
        if payment.invoice is None and can_apply(payment, PaymentEvent.INVOICE_ISSUED):
            await _issue_invoice(session, payment, at=at, due_days=invoice_due_days)
        return
    if method is PaymentMethod.CARD:
        if payment.status != PaymentStatus.AUTHORIZED:
            return
        assert payment.provider_ref is not None
        result = await provider.capture(
            provider_ref=payment.provider_ref,
            amount=payment.amount,
            idempotency_key=f"capture:{payment.order_id}",
        )
        if not result.succeeded:
            raise ProviderRefusedOperation(f"capture refused: {result.failure_reason}")
        detail = f"captured by {provider.name} on delivery"
    else:
        if payment.status != PaymentStatus.PENDING:
            return
        detail = "cash collected on delivery"
    apply(payment, PaymentEvent.CAPTURED, at=at, amount=payment.amount, detail=detail)
    await events.publish_payment_event(
        session, events.PAYMENT_CAPTURED, payment, amount=payment.amount, at=at
    )


async def _issue_invoice(
    session: AsyncSession, payment: Payment, *, at: datetime, due_days: int
) -> None:
    sequence_number = await session.scalar(select(invoice_number_seq.next_value()))
    invoice = Invoice(
        id=uuid.uuid4(),
        number=f"INV-{at:%Y}-{sequence_number:06d}",
        payment_id=payment.id,
        order_id=payment.order_id,
        hospital_org_id=payment.hospital_org_id,
        vendor_id=payment.vendor_id,
        amount=payment.amount,
        credited_amount=Decimal("0.00"),
        currency=payment.currency,
        issued_at=at,
        due_at=at + timedelta(days=due_days),
        status=InvoiceStatus.OPEN,
    )
    session.add(invoice)
    payment.invoice = invoice
    apply(
        payment,
        PaymentEvent.INVOICE_ISSUED,
        at=at,
        amount=payment.amount,
        detail=f"invoice {invoice.number} issued, due in {due_days} days",
    )


async def on_order_ended(
    session: AsyncSession, provider: PaymentProvider, order: OrderFacts, *, at: datetime
) -> Payment:
    """Void what was not taken, refund what was (the order was cancelled, rejected, ...)."""
    why = f"order {order.order_status}" + (f": {order.reason}" if order.reason else "")
    # An ended order is never authorized: a token still held for it is of no use.
    await card_tokens.take_card_token(session, order.order_id, sos_id=order.sos_id)
    payment = await payment_for_update(session, order.order_id)
    if payment is None:
        tombstone = _new_payment(order, at=at)
        apply(tombstone, PaymentEvent.VOIDED, at=at, detail=f"{why} before payment was opened")
        if await _insert_payment(session, tombstone):
            await deposits.settle_pending(session, provider, tombstone, at=at)
            return tombstone
        # Opened meanwhile by a concurrent order.placed: end that one instead.
        payment = await payment_for_update(session, order.order_id)
        assert payment is not None
    status = PaymentStatus(payment.status)
    if status in (PaymentStatus.PENDING, PaymentStatus.AUTHORIZED):
        if status is PaymentStatus.AUTHORIZED and payment.provider_ref is not None:
            result = await provider.void(
                provider_ref=payment.provider_ref, idempotency_key=f"void:{payment.order_id}"
            )
            if not result.succeeded:
                raise ProviderRefusedOperation(f"void refused: {result.failure_reason}")
        if payment.invoice is not None:
            payment.invoice.status = InvoiceStatus.VOID
        apply(payment, PaymentEvent.VOIDED, at=at, detail=why)
    elif status is PaymentStatus.CAPTURED and refundable(payment) > 0:
        amount = refundable(payment)
        if payment.provider_ref is not None:
            result = await provider.refund(
                provider_ref=payment.provider_ref,
                amount=amount,
                idempotency_key=f"refund:{payment.order_id}:order-{order.order_status}",
            )
            if not result.succeeded:
                raise ProviderRefusedOperation(f"refund refused: {result.failure_reason}")
        apply(payment, PaymentEvent.REFUNDED, at=at, amount=amount, detail=why)
        await events.publish_payment_event(
            session, events.PAYMENT_REFUNDED, payment, amount=amount, at=at, reason=why
        )
    else:
        log.info("order_end_without_payment_effect", order_id=str(order.order_id), status=status)
    # A voided payment never took the deposits: returns waiting for it are void.
    await deposits.settle_pending(session, provider, payment, at=at)
    return payment


async def on_cylinder_returned(
    session: AsyncSession,
    provider: PaymentProvider,
    returned: deposits.CylinderReturn,
    *,
    at: datetime,
) -> DepositCredit | None:
    """Credit the deposit of a returned cylinder to its order's payment, once per return.
    None when there is nothing to credit or the return was recorded before."""
    if returned.deposit <= 0 or returned.deposit_order_id is None:
        return None
    # The order's lock first, even without a payment: its opening waits for this return.
    payment = await payment_for_update(session, returned.deposit_order_id)
    credit = await deposits.record_return(session, returned, payment, at=at)
    if credit is not None and payment is not None:
        await deposits.settle(session, provider, payment, credit, at=at)
    return credit
