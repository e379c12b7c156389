"""The real path through RabbitMQ (SPEC "Events"): an order.placed published to
`flow.events` is consumed from payment-service's durable queue once, however often it is
delivered, and its payment.authorized leaves through the outbox relay to the exchange; a
provider timeout is retried by the consumer and still authorizes once; a cylinder.returned
delivered twice credits its deposit once and payment.deposit_credited is relayed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractQueue
from fastapi import FastAPI
from prometheus_client import REGISTRY

from flow_shared.events.envelope import EventEnvelope
from flow_shared.events.relay import build_event_message
from flow_shared.testing.infra import TestInfra
from flow_shared.testing.polling import eventually

if TYPE_CHECKING:
    from conftest import Payments

WAIT_SECONDS = 30.0


def _consumed(outcome: str, event_type: str = "order.placed") -> float:
    value = REGISTRY.get_sample_value(
        "flow_events_consumed_total",
        {"service": "payment-service", "event_type": event_type, "outcome": outcome},
    )
    return value or 0.0


@pytest.fixture
async def channel(infra: TestInfra, app: FastAPI) -> AsyncIterator[AbstractChannel]:
    async def consumer_connected() -> bool:
        return bool(app.state.consumer.is_connected)

    # Until the consumer has bound its queue, a published event would reach nobody.
    await eventually(consumer_connected, "payment-service's consumer connected")
    connection = await aio_pika.connect(infra.amqp_url)
    async with connection:
        yield await connection.channel(publisher_confirms=True)


async def _publish(
    channel: AbstractChannel,
    app: FastAPI,
    envelope: EventEnvelope,
    producer: str = "order-service",
) -> None:
    """Publish exactly as the producer's outbox relay does."""
    exchange = await channel.declare_exchange(
        app.state.settings.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    message = build_event_message(
        envelope.id, envelope.type, envelope.model_dump(mode="json"), producer
    )
    await exchange.publish(message, routing_key=envelope.type)


async def _tap(channel: AbstractChannel, app: FastAPI, routing_key: str) -> AbstractQueue:
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(app.state.settings.events_exchange, routing_key=routing_key)
    return queue


async def _next_for_order(queue: AbstractQueue, order_id: str) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while asyncio.get_running_loop().time() < deadline:
        message = await queue.get(fail=False)
        if message is None:
            await asyncio.sleep(0.1)
            continue
        await message.ack()
        envelope: dict[str, Any] = json.loads(message.body)
        if envelope["data"]["order_id"] == order_id:
            return envelope
    raise AssertionError(f"no event for order {order_id} arrived")


async def test_order_placed_from_the_broker_is_consumed_once_and_authorized_is_relayed(
    pay: Payments, app: FastAPI, channel: AbstractChannel
) -> None:
    order = pay.order(total="420.00")
    assert (await pay.hand_over(order)).status_code == 204
    placed = order.event("placed")
    tap = await _tap(channel, app, "payment.authorized")
    duplicates_before = _consumed("duplicate")

    await _publish(channel, app, placed)
    await _publish(channel, app, placed)  # delivered twice, as at-least-once allows

    async def handled_twice() -> bool:
        return _consumed("duplicate") > duplicates_before

    await eventually(handled_twice, "the second delivery was taken off the queue")
    assert await pay.count_payments(order) == 1
    assert (await pay.payment_of(order))["status"] == "authorized"
    assert await pay.sandbox_authorizations(order) == 1
    assert len(await pay.outbox_events("payment.authorized", order)) == 1
    assert (
        await pay.scalar(
            "SELECT count(*) FROM inbox WHERE consumer = 'payment-service' AND event_id = :e",
            e=placed.id,
        )
        == 1
    )
    relayed = await _next_for_order(tap, str(order.order_id))
    assert relayed["type"] == "payment.authorized"
    assert relayed["producer"] == "payment-service"
    assert relayed["data"]["amount"] == "420.00"
    assert relayed["data"]["hospital_org_id"] == str(order.hospital_org_id)


async def test_a_provider_timeout_is_retried_by_the_consumer_and_authorizes_once(
    pay: Payments, app: FastAPI, channel: AbstractChannel
) -> None:
    order = pay.order(card_token="tok_timeout")
    await pay.hand_over(order)
    retried_before = _consumed("retried")

    await _publish(channel, app, order.event("placed"))

    async def authorized() -> bool:
        rows = await pay.count_payments(order)
        return rows == 1 and (await pay.payment_of(order))["status"] == "authorized"

    await eventually(authorized, "the timed-out authorization was retried")
    assert _consumed("retried") > retried_before
    assert await pay.sandbox_authorizations(order) == 1
    assert len(await pay.outbox_events("payment.authorized", order)) == 1


async def test_a_return_from_the_broker_is_credited_once_and_relayed(
    pay: Payments, app: FastAPI, channel: AbstractChannel
) -> None:
    order = pay.order(deposit_total="12.50")
    await pay.place(order)
    await pay.handle(order.event("delivered"))
    returned = order.returned(deposit="12.50")
    tap = await _tap(channel, app, "payment.deposit_credited")
    duplicates_before = _consumed("duplicate", "cylinder.returned")

    for _ in range(2):  # delivered twice, as at-least-once allows
        await _publish(channel, app, returned, "inventory-service")

    async def handled_twice() -> bool:
        return _consumed("duplicate", "cylinder.returned") > duplicates_before

    relayed = await _next_for_order(tap, str(order.order_id))
    await eventually(handled_twice, "the second delivery was taken off the queue")
    assert relayed["type"] == "payment.deposit_credited"
    payment = await pay.payment_of(order)
    assert [c["status"] for c in payment["deposit_credits"]] == ["credited"]
    assert payment["refunded_amount"] == "12.50"
    assert len(await pay.outbox_events("payment.deposit_credited", order)) == 1
