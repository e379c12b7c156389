"""The event bus's topology, described once and declared from that description.

The topic exchange `flow.events` and, for every consuming service `S`, the queues of
consumer.py: `S.events` bound to each event type `S` handles, `S.events.retry` and
`S.events.dlq`. Declared (idempotently) by `flowctl migrate` / `make up` before any
service starts, by every outbox relay when it connects (before its first publish), and by
each consumer for its own queues. So an event published before its consumer has ever
started waits in that consumer's queue instead of being dropped by the exchange.

`FLEET_SUBSCRIPTIONS` is the fleet's routing table: which event types each service
consumes. It lives here, in the one package every service image carries, because a relay
must know every consumer's queue, not only its own service's. It is not a second list to
keep in step by hand: `create_service_app` refuses to build a service whose handlers
differ from its entry, and tests/deploy/test_event_topology.py builds every service and
compares.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

EVENTS_EXCHANGE = "flow.events"
DECLARE_TIMEOUT_SECONDS = 10.0

_ORGANIZATION_CHANGES = frozenset({"organization.verified", "organization.suspended"})
_ORDER_ENDS = frozenset({"order.cancelled", "order.rejected", "order.expired", "order.failed"})

FLEET_SUBSCRIPTIONS: Mapping[str, frozenset[str]] = {
    # The verified-vendor projection behind "nearby".
    "inventory-service": _ORGANIZATION_CHANGES,
    "order-service": frozenset({"payment.failed"}),
    "payment-service": frozenset({"order.placed", "order.delivered"}) | _ORDER_ENDS,
    # Which orders a hospital may review.
    "review-service": frozenset({"order.placed", "order.delivered"}),
    # SPEC's "who hears what", and user.registered for the recipients' addresses.
    "notification-service": frozenset(
        {
            "user.registered",
            "organization.verified",
            "inventory.low_stock",
            "order.placed",
            "order.confirmed",
            "order.rejected",
            "order.dispatched",
            "order.delivered",
            "order.cancelled",
            "order.expired",
            "payment.failed",
        }
    ),
    # Stats and audit: every event of the platform.
    "admin-service": frozenset(
        {
            "user.registered",
            "inventory.stock_changed",
            "inventory.low_stock",
            "inventory.reservation_expired",
            "order.placed",
            "order.confirmed",
            "order.dispatched",
            "order.delivered",
            "payment.authorized",
            "payment.failed",
            "payment.captured",
            "payment.refunded",
            "review.created",
        }
    )
    | _ORGANIZATION_CHANGES
    | _ORDER_ENDS,
}


class TopologyMismatch(ValueError):
    """A consumer's handlers and its entry in the topology disagree."""


@dataclass(frozen=True)
class Subscription:
    """One consuming service: its three queues and the event types bound to the first."""

    service: str
    event_types: frozenset[str]

    @property
    def queue(self) -> str:
        return f"{self.service}.events"

    @property
    def retry_queue(self) -> str:
        return f"{self.service}.events.retry"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.service}.events.dlq"

    def check_handlers(self, handled: Iterable[str]) -> None:
        """Raise unless `handled` is exactly this subscription's event types: a handler
        without a binding never hears its event, a binding without a handler drops it."""
        handled = frozenset(handled)
        unbound = sorted(handled - self.event_types)
        unhandled = sorted(self.event_types - handled)
        if unbound or unhandled:
            raise TopologyMismatch(
                f"{self.service}'s event handlers differ from its subscription in "
                f"flow_shared.events.topology.FLEET_SUBSCRIPTIONS: handled but not subscribed "
                f"{unbound}, subscribed but not handled {unhandled}; change one to match"
            )


@dataclass(frozen=True)
class EventTopology:
    exchange: str
    subscriptions: tuple[Subscription, ...] = ()

    def subscription(self, service: str) -> Subscription:
        for subscription in self.subscriptions:
            if subscription.service == service:
                return subscription
        raise TopologyMismatch(
            f"{service} consumes events but has no entry in "
            "flow_shared.events.topology.FLEET_SUBSCRIPTIONS"
        )

    def subscribers(self, event_type: str) -> list[str]:
        return [s.service for s in self.subscriptions if event_type in s.event_types]


def fleet_topology(exchange: str = EVENTS_EXCHANGE) -> EventTopology:
    """The whole fleet's topology on `exchange` (settings.events_exchange)."""
    return EventTopology(
        exchange,
        tuple(
            Subscription(service, event_types)
            for service, event_types in sorted(FLEET_SUBSCRIPTIONS.items())
        ),
    )


async def declare_events_exchange(channel: AbstractChannel, name: str) -> AbstractExchange:
    return await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)


async def declare_subscription(
    channel: AbstractChannel, exchange: AbstractExchange, subscription: Subscription
) -> AbstractQueue:
    """A subscription's queues and bindings; returns its main queue. Whoever declares them
    (flowctl, a relay, the consumer) declares the same arguments, or the broker refuses."""
    await channel.declare_queue(subscription.dead_letter_queue, durable=True)
    # Expired retries are dead-lettered back to the main queue (see consumer.py).
    await channel.declare_queue(
        subscription.retry_queue,
        durable=True,
        arguments={
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": subscription.queue,
        },
    )
    # A message the broker itself rejects (never by us) still lands in the DLQ.
    queue = await channel.declare_queue(
        subscription.queue,
        durable=True,
        arguments={
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": subscription.dead_letter_queue,
        },
    )
    for event_type in sorted(subscription.event_types):
        await queue.bind(exchange, routing_key=event_type)
    return queue


async def declare_topology(channel: AbstractChannel, topology: EventTopology) -> AbstractExchange:
    """The exchange and every subscription's queues and bindings; safe to repeat."""
    exchange = await declare_events_exchange(channel, topology.exchange)
    for subscription in topology.subscriptions:
        await declare_subscription(channel, exchange, subscription)
    return exchange


async def declare_topology_at(amqp_url: str, topology: EventTopology) -> None:
    """Connect, declare the topology, disconnect: the deploy step (flowctl)."""
    connection = await aio_pika.connect(amqp_url, timeout=DECLARE_TIMEOUT_SECONDS)
    try:
        channel = await connection.channel()
        await declare_topology(channel, topology)
    finally:
        await connection.close()
