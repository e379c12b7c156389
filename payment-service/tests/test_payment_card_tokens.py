"""A card order's token reaches payment-service only over order-service's authenticated
internal call (finding 13), is held until the order's order.placed takes it, and is never
read from an event; tokens whose order never came are pruned after their retention."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import async_sessionmaker

from flow_shared.testing.infra import caller_key
from payment_service.service.card_tokens import prune_card_tokens

if TYPE_CHECKING:
    from conftest import Payments


async def _held(pay: Payments, order_id: object) -> int:
    return int(
        await pay.scalar("SELECT count(*) FROM pending_card_tokens WHERE held_for = :o", o=order_id)
    )


async def test_the_handed_over_token_authorizes_the_card_and_is_then_gone(pay: Payments) -> None:
    order = pay.order(total="80.00")

    handed = await pay.hand_over(order)
    assert handed.status_code == 204, handed.text
    assert await _held(pay, order.order_id) == 1
    payment = await pay.place(order)

    assert payment["status"] == "authorized"
    assert await pay.sandbox_authorizations(order) == 1
    # Taken by order.placed: kept on the payment only, as a provider token.
    assert await _held(pay, order.order_id) == 0
    assert "card_token" not in order.event("placed").data


async def test_a_token_inside_an_order_placed_event_is_never_used(pay: Payments) -> None:
    """Whoever publishes order.placed cannot pass a token: only the internal call can."""
    order = pay.order()
    forged = order.event("placed")
    forged.data["card_token"] = "tok_visa"

    await pay.handle(forged)

    payment = await pay.payment_of(order)
    assert payment["status"] == "failed"
    assert payment["failure_reason"] == "missing card token"
    assert await pay.sandbox_authorizations(order) == 0


async def test_handing_over_needs_a_trusted_service_key(pay: Payments) -> None:
    order = pay.order()

    for headers in ({}, {"X-Service-Key": "not-a-trusted-key"}):
        refused = await pay.hand_over(order, headers=headers)
        assert refused.status_code in (401, 403), refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
    assert await _held(pay, order.order_id) == 0


async def test_handing_over_again_is_idempotent_and_another_token_is_409(pay: Payments) -> None:
    order = pay.order()
    assert (await pay.hand_over(order)).status_code == 204
    # A retry after a timeout: the same token again.
    assert (await pay.hand_over(order)).status_code == 204

    other = await pay.http.put(
        f"/internal/orders/{order.order_id}/card-token",
        json={"card_token": "tok_declined"},
        headers={"X-Service-Key": caller_key("order-service")},
    )

    assert other.status_code == 409, other.text
    assert other.json()["type"].endswith("/card-token-conflict")
    assert await _held(pay, order.order_id) == 1
    assert (await pay.place(order))["status"] == "authorized"  # the first one, tok_visa


async def test_a_declined_card_fails_the_payment_once_however_often_placed_arrives(
    pay: Payments,
) -> None:
    order = pay.order(card_token="tok_declined")

    await pay.place(order)
    await pay.handle(order.event("placed"))

    assert (await pay.payment_of(order))["status"] == "failed"
    assert len(await pay.outbox_events("payment.failed", order)) == 1
    assert await pay.sandbox_authorizations(order) == 0


async def test_a_card_paid_sos_orders_token_is_the_one_handed_over_for_its_sos(
    pay: Payments,
) -> None:
    """The SOS order's id is chosen when a vendor accepts; the token came when it opened."""
    order = pay.order(sos_id=uuid.uuid4())
    assert (await pay.hand_over(order)).status_code == 204
    assert await _held(pay, order.sos_id) == 1

    payment = await pay.place(order)

    assert payment["status"] == "authorized"
    assert await pay.sandbox_authorizations(order) == 1
    assert await _held(pay, order.sos_id) == 0
    # A redelivery finds no token and no second payment.
    await pay.handle(order.event("placed"))
    assert await pay.count_payments(order) == 1
    assert await pay.sandbox_authorizations(order) == 1


async def test_a_declined_sos_card_fails_its_payment_only(pay: Payments) -> None:
    """payment.failed follows; order-service never cancels an SOS order for it."""
    order = pay.order(sos_id=uuid.uuid4(), card_token="tok_declined")

    payment = await pay.place(order)

    assert payment["status"] == "failed"
    assert len(await pay.outbox_events("payment.failed", order)) == 1


async def test_an_ended_order_discards_its_token(pay: Payments) -> None:
    order = pay.order()
    await pay.hand_over(order)

    await pay.handle(order.event("cancelled"))

    assert await _held(pay, order.order_id) == 0


async def test_unclaimed_tokens_are_pruned_after_their_retention_only(pay: Payments) -> None:
    """A placement that failed after handing its token over never sends order.placed."""
    order = pay.order()
    await pay.hand_over(order)
    received_at = await pay.scalar(
        "SELECT received_at FROM pending_card_tokens WHERE held_for = :o", o=order.order_id
    )
    retention = timedelta(hours=1)
    sessions = async_sessionmaker(pay.engine, expire_on_commit=False)

    async def prune_at(now: datetime) -> None:
        async with sessions() as session, session.begin():
            await prune_card_tokens(session, now=now, retention=retention, batch_size=100)

    await prune_at(received_at + retention - timedelta(seconds=1))
    assert await _held(pay, order.order_id) == 1

    await prune_at(received_at + retention + timedelta(seconds=1))
    assert await _held(pay, order.order_id) == 0
