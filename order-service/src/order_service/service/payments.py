"""What order-service does when a payment fails: the order fails and its stock goes back.

Handled from `payment.failed` inside the consumer's transaction (with its inbox
row), so a redelivered event changes nothing; an order that already left the
flow (cancelled, delivered...) is left as it is.
"""

from __future__ import annotations

import uuid

import structlog
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.clock import utcnow
from flow_shared.events.envelope import EventEnvelope
from order_service.models import Order, OrderStatus
from order_service.state import TRANSITIONS, apply_transition, current_status

MAX_REASON_LENGTH = 500

log = structlog.get_logger("order_service.payments")


class PaymentFailed(BaseModel):
    model_config = ConfigDict(extra="ignore")

    order_id: uuid.UUID
    reason: str | None = None


async def on_payment_failed(session: AsyncSession, envelope: EventEnvelope) -> None:
    event = PaymentFailed.model_validate(envelope.data)
    order = await session.scalar(select(Order).where(Order.id == event.order_id).with_for_update())
    if order is None:
        log.warning("payment_failed_for_unknown_order", order_id=str(event.order_id))
        return
    if order.sos_id is not None:
        # Payment never blocks an emergency (SPEC, SOS): the order goes on; the failure is
        # payment-service's to follow up (and it is in the audit trail as payment.failed).
        log.warning(
            "payment_failed_on_sos_order_kept",
            order_id=str(order.id),
            sos_id=str(order.sos_id),
            reason=event.reason,
        )
        return
    if OrderStatus.FAILED not in TRANSITIONS.get(current_status(order), frozenset()):
        log.info("payment_failed_ignored", order_id=str(order.id), status=order.status)
        return
    reason = f"payment failed: {event.reason or 'declined'}"[:MAX_REASON_LENGTH]
    await apply_transition(
        session, order, OrderStatus.FAILED, actor_id=None, at=utcnow(), reason=reason
    )
    # No request waits to release the hold after this commit: the order sweeper's
    # next run does it (release_attempted_at unset = due now).
    order.release_attempted_at = None
