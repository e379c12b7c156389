"""Handing an event to a running service's consumer through the real broker, in its tests."""

from __future__ import annotations

import aio_pika

from flow_shared.events.envelope import EventEnvelope


async def publish_envelope(amqp_url: str, exchange_name: str, envelope: EventEnvelope) -> None:
    """Publish `envelope` on the topic exchange `exchange_name`, routed by its type, as
    another service's outbox relay would."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        await exchange.publish(
            aio_pika.Message(envelope.model_dump_json().encode(), message_id=str(envelope.id)),
            routing_key=envelope.type,
        )
