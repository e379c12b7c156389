"""Refunds asked for through the API, by the order's vendor or a platform admin.

Never more than was captured, even under concurrent requests: the payment's row is locked
(`SELECT ... FOR UPDATE`) before the refundable amount is read, so concurrent refunds of
one payment run one after the other and each sees what the previous one refunded; the
CHECK `refunded_amount <= captured_amount` keeps the truth should anything slip past.
`Idempotency-Key` replays the first answer (scoped per organisation).
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.auth import Principal
from flow_shared.clock import utcnow
from flow_shared.errors import Forbidden
from flow_shared.idempotency import IdempotentAnswer, answer_once
from flow_shared.metrics import business_counter
from payment_service import events, queries
from payment_service.errors import (
    NothingToRefund,
    ProviderUnavailable,
    RefundExceedsCaptured,
    RefundRefused,
)
from payment_service.models import Payment, PaymentStatus, idempotency_keys
from payment_service.provider import PaymentProvider, ProviderError
from payment_service.schemas import PaymentOut, RefundRequest
from payment_service.state import PaymentEvent, apply, refundable

REFUNDS = business_counter(
    "flow_payment_refunds_total", "Refunds asked for through the API, by outcome.", ("outcome",)
)


async def refund(
    session: AsyncSession,
    provider: PaymentProvider,
    principal: Principal,
    payment_id: uuid.UUID,
    request: RefundRequest,
    *,
    idempotency_key: str | None,
) -> IdempotentAnswer:
    async def produce() -> dict[str, Any]:
        payment = await _refund(session, provider, principal, payment_id, request, idempotency_key)
        return PaymentOut.of(payment).model_dump(mode="json")

    return await answer_once(
        session,
        idempotency_keys,
        scope=f"payments.refund:{principal.org_id}",
        key=idempotency_key,
        request_body={"payment_id": str(payment_id), **request.model_dump(mode="json")},
        status_code=200,
        produce=produce,
    )


async def _refund(
    session: AsyncSession,
    provider: PaymentProvider,
    principal: Principal,
    payment_id: uuid.UUID,
    request: RefundRequest,
    idempotency_key: str | None,
) -> Payment:
    payment = await queries.get_payment(session, principal, payment_id, for_update=True)
    is_vendor = principal.org_kind == "vendor" and payment.vendor_id == principal.org_id
    if not (is_vendor or principal.is_platform_admin):
        raise Forbidden("Only the order's vendor or a platform admin can refund a payment.")
    remaining = refundable(payment)
    if payment.status != PaymentStatus.CAPTURED or remaining <= 0:
        REFUNDS.labels("refused").inc()
        raise NothingToRefund(f"A {payment.status} payment has nothing to refund.")
    amount = request.amount if request.amount is not None else remaining
    if amount > remaining:
        REFUNDS.labels("refused").inc()
        raise RefundExceedsCaptured(
            f"At most {remaining} {payment.currency} can still be refunded.",
            extra={"refundable": str(remaining)},
        )
    if payment.provider_ref is not None:
        try:
            result = await provider.refund(
                provider_ref=payment.provider_ref,
                amount=amount,
                idempotency_key=_provider_key(payment, idempotency_key),
            )
        except ProviderError as exc:
            raise ProviderUnavailable("The payment provider did not answer; try again.") from exc
        if not result.succeeded:
            REFUNDS.labels("refused").inc()
            raise RefundRefused(f"The provider refused the refund: {result.failure_reason}.")
    at = utcnow()
    apply(
        payment,
        PaymentEvent.REFUNDED,
        at=at,
        amount=amount,
        detail=request.reason,
        actor=str(principal.user_id),
    )
    await events.publish_payment_event(
        session, events.PAYMENT_REFUNDED, payment, amount=amount, at=at, reason=request.reason
    )
    REFUNDS.labels("refunded").inc()
    return payment


def _provider_key(payment: Payment, idempotency_key: str | None) -> str:
    """The provider's key for this refund: the client's retry with the same Idempotency-Key
    (after an answer was lost) must not refund twice at the provider either."""
    if idempotency_key is None:
        return f"refund:{payment.id}:{uuid.uuid4()}"
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    return f"refund:{payment.id}:{digest}"
