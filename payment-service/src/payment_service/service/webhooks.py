"""Provider webhooks: verified by signature, handled once each.

Signature (header `Flow-Signature: t=<unix seconds>,v1=<hex>`): HMAC-SHA256 with
PAYMENT_WEBHOOK_SECRET over `f"{t}.{raw body}"`. Several `v1` values may be given (a
provider rotating its secret); one must match. `t` must be within
WEBHOOK_TOLERANCE_SECONDS of our clock, so a captured request cannot be replayed later.
Missing, malformed, stale or wrong: 401, and nothing is read or recorded.

Each event id is recorded (UNIQUE (provider, event_id)) in the transaction of its effect:
a replayed webhook finds it and has no second effect. What the sandbox's events do is
documented on `schemas.SandboxWebhook`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.clock import utcnow
from flow_shared.errors import UnprocessableEntity
from flow_shared.metrics import business_counter
from payment_service import events
from payment_service.errors import InvalidWebhookSignature
from payment_service.models import Payment, PaymentStatus, WebhookEvent
from payment_service.schemas import SandboxWebhook
from payment_service.state import PaymentEvent, apply

# Not `X-Flow-...`: the gateway drops every client-sent `X-Flow-*` header (internal ones).
SIGNATURE_HEADER = "Flow-Signature"
SANDBOX = "sandbox"
Outcome = Literal["processed", "ignored", "duplicate"]

WEBHOOKS = business_counter(
    "flow_payment_webhooks_total",
    "Provider webhooks received, by outcome.",
    ("provider", "outcome"),
)


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: bytes, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify_signature(
    header: str | None, body: bytes, *, secret: bytes, tolerance_seconds: int, now: float
) -> None:
    if not header:
        raise InvalidWebhookSignature(f"The {SIGNATURE_HEADER} header is missing.")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value.strip())
    if timestamp is None or not candidates:
        raise InvalidWebhookSignature(f"The {SIGNATURE_HEADER} header is malformed.")
    if abs(now - timestamp) > tolerance_seconds:
        raise InvalidWebhookSignature("The signature's timestamp is outside the tolerance.")
    expected = signature(secret, timestamp, body).encode()
    matched = False
    for candidate in candidates:
        # Every candidate is compared, in constant time.
        matched |= hmac.compare_digest(expected, candidate.encode())
    if not matched:
        raise InvalidWebhookSignature("The signature does not match.")


async def handle_sandbox_webhook(session: AsyncSession, event: SandboxWebhook) -> Outcome:
    at = utcnow()
    recorded = await session.scalar(
        pg_insert(WebhookEvent)
        .values(
            provider=SANDBOX,
            event_id=event.id,
            event_type=event.type,
            outcome="ignored",
            received_at=at,
        )
        .on_conflict_do_nothing()
        .returning(WebhookEvent.event_id)
    )
    if recorded is None:
        WEBHOOKS.labels(SANDBOX, "duplicate").inc()
        return "duplicate"
    outcome: Outcome = "ignored"
    apply_event = _SANDBOX_EFFECTS.get(event.type)
    if apply_event is not None:
        payment: Payment | None = await session.scalar(
            select(Payment)
            .where(Payment.provider == SANDBOX, Payment.provider_ref == event.charge_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if payment is not None and await apply_event(session, payment, event, at):
            outcome = "processed"
            await session.execute(
                update(WebhookEvent)
                .where(WebhookEvent.provider == SANDBOX, WebhookEvent.event_id == event.id)
                .values(outcome=outcome)
            )
    WEBHOOKS.labels(SANDBOX, outcome).inc()
    return outcome


async def _charge_captured(
    session: AsyncSession, payment: Payment, event: SandboxWebhook, at: datetime
) -> bool:
    if payment.status != PaymentStatus.AUTHORIZED:
        return False
    amount = event.amount if event.amount is not None else payment.amount
    if amount > payment.amount:
        raise UnprocessableEntity("The captured amount exceeds the authorization.")
    apply(payment, PaymentEvent.CAPTURED, at=at, amount=amount, detail="captured at the sandbox")
    await events.publish_payment_event(
        session, events.PAYMENT_CAPTURED, payment, amount=amount, at=at
    )
    return True


async def _charge_refunded(
    session: AsyncSession, payment: Payment, event: SandboxWebhook, at: datetime
) -> bool:
    if event.amount_refunded is None:
        raise UnprocessableEntity("charge.refunded needs amount_refunded.")
    if payment.status != PaymentStatus.CAPTURED:
        return False
    if event.amount_refunded > payment.captured_amount:
        raise UnprocessableEntity("amount_refunded exceeds what was captured.")
    # Cumulative at the provider: only what we have not recorded yet is new.
    delta = event.amount_refunded - payment.refunded_amount
    if delta <= 0:
        return False
    reason = "refunded at the sandbox"
    apply(payment, PaymentEvent.REFUNDED, at=at, amount=delta, detail=reason)
    await events.publish_payment_event(
        session, events.PAYMENT_REFUNDED, payment, amount=delta, at=at, reason=reason
    )
    return True


async def _charge_expired(
    session: AsyncSession, payment: Payment, event: SandboxWebhook, at: datetime
) -> bool:
    if payment.status != PaymentStatus.AUTHORIZED:
        return False
    apply(payment, PaymentEvent.VOIDED, at=at, detail="authorization expired at the sandbox")
    return True


Effect = Callable[[AsyncSession, Payment, SandboxWebhook, datetime], Awaitable[bool]]
_SANDBOX_EFFECTS: dict[str, Effect] = {
    "charge.captured": _charge_captured,
    "charge.refunded": _charge_refunded,
    "charge.expired": _charge_expired,
}
