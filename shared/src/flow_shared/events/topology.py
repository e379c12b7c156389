"""The event bus's topology, described once and declared from that description.

The topic exchange `flow.events` and, for every consuming service `S`, the queues of
consumer.py: `S.events` bound to each event type `S` handles, `S.events.retry` and
`S.events.dlq`, and its moves exchange `S.events.moves`. Declared (idempotently) by the
deploy step before any service starts (`flowctl provision` / `make up`, compose's
broker-init, the Kubernetes broker Job: flow_shared.events.access), by a relay only when
EVENTS_DECLARE_FLEET_TOPOLOGY is on, and by each consumer for its own queues. So an
event published before its consumer has ever started waits in that consumer's queue
instead of being dropped by the exchange.

`FLEET_SUBSCRIPTIONS` is the fleet's routing table: which event types each service
consumes. It lives here, in the one package every service image carries, because a relay
must know every consumer's queue, not only its own service's. It is not a second list to
keep in step by hand: `create_service_app` refuses to build a service whose handlers
differ from its entry, and tests/deploy/test_event_topology.py builds every service and
compares.

`FLEET_PUBLICATIONS` is the other half: which event types each service publishes.
`add_event` refuses an event its producer has no entry for, and the broker refuses it
too: each service's RabbitMQ user may publish only these routing keys (access.py).

Retries and dead letters never go through the default exchange (a user allowed to write
there could put messages into any queue): each consumer `S` has a direct exchange
`S.events.moves` with its three queues bound by `retry`, `dlq` and `requeue`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

EVENTS_EXCHANGE = "flow.events"
DECLARE_TIMEOUT_SECONDS = 10.0
# Routing keys of a consumer's moves exchange (`S.events.moves`, direct).
RETRY_KEY = "retry"
DEAD_LETTER_KEY = "dlq"
REQUEUE_KEY = "requeue"

_ORGANIZATION_CHANGES = frozenset(
    {"organization.verified", "organization.suspended", "organization.reinstated"}
)
_ORDER_ENDS = frozenset({"order.cancelled", "order.rejected", "order.expired", "order.failed"})

FLEET_SUBSCRIPTIONS: Mapping[str, frozenset[str]] = {
    # The verified-vendor projection behind "nearby"; the orders bound for hospital sites
    # (their inbound, the gas a delivery adds to a site's runway, auto-reorders' ends).
    "inventory-service": _ORGANIZATION_CHANGES
    | frozenset({"order.placed", "order.confirmed", "order.dispatched", "order.delivered"})
    | _ORDER_ENDS
    # An SOS that ends without an order closes the auto-reorder that opened it.
    | frozenset({"sos.unfilled", "sos.cancelled"}),
    # payment.failed ends orders; which hospitals are verified sets their allocation caps;
    # the projection of active shortages pauses routine orders, tightens caps and holds.
    "order-service": frozenset({"payment.failed"})
    | _ORGANIZATION_CHANGES
    | frozenset({"shortage.declared", "shortage.ended"})
    # Hospitals' reported consumption: the ALLOCATION_DAYS floor of their caps.
    | frozenset({"supply.reported"}),
    # cylinder.returned: an empty back at its depot credits the deposit it was charged.
    "payment-service": frozenset({"order.placed", "order.delivered", "cylinder.returned"})
    | _ORDER_ENDS,
    # Which orders a hospital may review.
    "review-service": frozenset({"order.placed", "order.delivered"}),
    # SPEC's "who hears what", and user.registered for the recipients' addresses.
    "notification-service": frozenset(
        {
            "user.registered",
            "organization.verified",
            "organization.license_expiring",
            "inventory.low_stock",
            "order.placed",
            "order.confirmed",
            "order.rejected",
            "order.dispatched",
            "order.delivered",
            "order.cancelled",
            "order.expired",
            "payment.failed",
            # Shortage readiness ("Who hears what (added)"); sos.opened and sos.cancelled
            # notify nobody (ring 1's sos.request and sos.closed do).
            "sos.request",
            "sos.escalated",
            "sos.fulfilled",
            "sos.closed",
            "sos.unfilled",
            "shortage.declared",
            "shortage.ended",
            "supply.runway_low",
            "supply.runway_critical",
        }
    ),
    # Stats and audit: every event of the platform.
    "admin-service": frozenset(
        {
            "user.registered",
            "organization.license_expiring",
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
            # open_sos in the stats; the others for the audit. admin-service's own
            # shortage.* events are audited as it writes them (admin_service.shortages).
            "sos.opened",
            "sos.request",
            "sos.escalated",
            "sos.fulfilled",
            "sos.closed",
            "sos.unfilled",
            "sos.cancelled",
            # Oxygen runway crossings (inventory_service), for the audit.
            "supply.runway_low",
            "supply.runway_critical",
            # The cylinder ledger: returns and the deposits they credit, for the audit.
            "cylinder.returned",
            "payment.deposit_credited",
        }
    )
    | _ORGANIZATION_CHANGES
    | _ORDER_ENDS,
}


# Which event types each service writes to its outbox (and so publishes). A new event
# type is one more string in its producer's entry; a new publishing service, one entry.
FLEET_PUBLICATIONS: Mapping[str, frozenset[str]] = {
    "user-service": frozenset({"user.registered", "organization.license_expiring"})
    | _ORGANIZATION_CHANGES,
    "inventory-service": frozenset(
        {
            "inventory.stock_changed",
            "inventory.low_stock",
            "inventory.reservation_expired",
            # Oxygen runway: a hospital reported a site's supply (order-service's cap
            # floor), and a site crossed its alert or critical hours.
            "supply.reported",
            "supply.runway_low",
            "supply.runway_critical",
            # The cylinder ledger: an empty came back from a hospital (its deposit to credit).
            "cylinder.returned",
        }
    ),
    # order.<status> for every status an order can reach (order_service.events).
    "order-service": frozenset(
        {"order.placed", "order.confirmed", "order.dispatched", "order.delivered"}
    )
    | _ORDER_ENDS
    # SOS broadcast (order_service.events' SOS_* types).
    | frozenset(
        {
            "sos.opened",
            "sos.request",
            "sos.escalated",
            "sos.fulfilled",
            "sos.closed",
            "sos.unfilled",
            "sos.cancelled",
        }
    ),
    "payment-service": frozenset(
        {
            "payment.authorized",
            "payment.failed",
            "payment.captured",
            "payment.refunded",
            "payment.deposit_credited",
        }
    ),
    "review-service": frozenset({"review.created"}),
    # Shortage declarations (admin_service.shortages).
    "admin-service": frozenset({"shortage.declared", "shortage.ended"}),
}


class TopologyMismatch(ValueError):
    """A consumer's handlers and its entry in the topology disagree."""


class UndeclaredPublication(TopologyMismatch):
    """A service wrote an event type its entry in FLEET_PUBLICATIONS does not list."""


def check_publication(
    producer: str, event_type: str, publications: Mapping[str, frozenset[str]] | None = None
) -> None:
    """Raise unless `producer` may publish `event_type` (`publications`: FLEET_PUBLICATIONS
    by default). Its broker user could not publish it either (access.py)."""
    table = FLEET_PUBLICATIONS if publications is None else publications
    if event_type in table.get(producer, frozenset()):
        return
    if producer in table:
        fix = f"add {event_type!r} to FLEET_PUBLICATIONS[{producer!r}]"
    else:
        fix = f"add the entry {producer!r}: frozenset({{{event_type!r}}}) to FLEET_PUBLICATIONS"
    raise UndeclaredPublication(
        f"{producer} writes event type {event_type!r}, which is not among its publications "
        f"in flow_shared.events.topology: {fix} (its broker user may publish only the types "
        "listed there; run the broker provisioning again after the change)"
    )


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

    @property
    def moves_exchange(self) -> str:
        """The direct exchange retries, dead letters and replays go through."""
        return f"{self.service}.events.moves"

    @property
    def queues(self) -> tuple[str, str, str]:
        return (self.queue, self.retry_queue, self.dead_letter_queue)

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
    """Create the events exchange (needs configure on it: the deploy step's admin only)."""
    return await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)


async def events_exchange(channel: AbstractChannel, name: str) -> AbstractExchange:
    """The events exchange, checked to exist (a passive declare: no permission needed).
    Services use this; the exchange is the deploy step's (declare_topology_at)."""
    return await channel.get_exchange(name, ensure=True)


async def declare_subscription(
    channel: AbstractChannel, exchange: AbstractExchange, subscription: Subscription
) -> AbstractQueue:
    """A subscription's moves exchange, queues and bindings; returns its main queue. Whoever
    declares them (flowctl, a relay, the consumer) declares the same arguments, or the
    broker refuses. What the consumer's own user needs for this is access.py's."""
    moves = await channel.declare_exchange(
        subscription.moves_exchange, aio_pika.ExchangeType.DIRECT, durable=True
    )
    dead_letters = await channel.declare_queue(subscription.dead_letter_queue, durable=True)
    # Expired retries are dead-lettered back to the main queue (see consumer.py).
    retries = await channel.declare_queue(
        subscription.retry_queue,
        durable=True,
        arguments={
            "x-dead-letter-exchange": subscription.moves_exchange,
            "x-dead-letter-routing-key": REQUEUE_KEY,
        },
    )
    # A message the broker itself rejects (never by us) still lands in the DLQ.
    queue = await channel.declare_queue(
        subscription.queue,
        durable=True,
        arguments={
            "x-dead-letter-exchange": subscription.moves_exchange,
            "x-dead-letter-routing-key": DEAD_LETTER_KEY,
        },
    )
    await dead_letters.bind(moves, routing_key=DEAD_LETTER_KEY)
    await retries.bind(moves, routing_key=RETRY_KEY)
    await queue.bind(moves, routing_key=REQUEUE_KEY)
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
