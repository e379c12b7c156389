"""The event consumer: a durable queue per service, an inbox, bounded retries, a DLQ.

Topology (declared on every connect, idempotently, from the same description as
flowctl and the relays declare: topology.py), for service `S`:

- `S.events`: durable queue bound to the events exchange with one routing key per
  handled event type. Messages are acked manually, only after the handler's
  transaction has committed (or after the message was safely moved elsewhere).
- `S.events.retry`: durable queue without consumers. A failed message is
  republished here with a per-message expiration of `retry_delay_ms`; when it
  expires the broker dead-letters it back to `S.events` (through `S.events.moves`,
  key `requeue`). Other events keep
  flowing meanwhile. Every message gets the same delay, so expiry order is
  arrival order (per-message TTL only expires messages at the head of a queue).
- `S.events.dlq`: durable queue for poison messages (not a valid envelope) and
  for events whose handler still failed after the first attempt and `max_retries`
  retries. A failure because the database is unreachable does not count as an
  attempt: during an outage good events wait in the retry loop, not in the DLQ.
  `replay_dead_letters` puts them back into `S.events` once the cause is fixed.
- `S.events.moves`: direct exchange every move above goes through (`retry`, `dlq`,
  `requeue`), never the default exchange, which the service's broker user may not
  write to (access.py: it could reach every queue through it).

The consumer creates none of the events exchange: it checks that the deploy step
declared it (a passive declare), so its broker user needs no configure right there.

Handling one event happens in one database transaction: the inbox row
(consumer, event_id) is inserted with ON CONFLICT DO NOTHING, and only if it is
new does the handler run, in the same transaction. A redelivered event finds
its inbox row and has no second effect; a handler that fails rolls back its
effects together with the inbox row, so the retry starts clean.

The connection (opened in the background, watched, reopened with backoff after a loss)
is connection.py's BrokerConnection, the relay's too. A service declares what it
consumes once, as an `EventHandlers` registry (its `event_handlers()`), which
flow_shared.app hands to this consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator, Mapping

import aio_pika
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    ConsumerTag,
    HeadersType,
)
from pydantic import ValidationError
from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.correlation import set_correlation_id
from flow_shared.db import Database
from flow_shared.events.connection import (
    CONNECT_TIMEOUT_SECONDS,
    PUBLISH_TIMEOUT_SECONDS,
    BrokerConnection,
    BrokerUnavailable,
)
from flow_shared.events.envelope import EventEnvelope
from flow_shared.events.topology import (
    DEAD_LETTER_KEY,
    REQUEUE_KEY,
    RETRY_KEY,
    EventTopology,
    Subscription,
    declare_subscription,
    events_exchange,
)
from flow_shared.metrics import business_counter, business_gauge
from flow_shared.unit_of_work import unit_of_work

EventHandler = Callable[[AsyncSession, EventEnvelope], Awaitable[None]]


class EventHandlers(Mapping[str, EventHandler]):
    """What one service consumes: each event type it handles, with its one handler.

    The one registry: a service builds it once (its `event_handlers()`) and hands it to
    create_service_app in EventsConfig, which checks it against FLEET_SUBSCRIPTIONS and
    gives it to the consumer. Parts that both handle a type are refused: a second
    handler would silently replace the first."""

    def __init__(self, *parts: Mapping[str, EventHandler]) -> None:
        handlers: dict[str, EventHandler] = {}
        for part in parts:
            for event_type, handler in part.items():
                if event_type in handlers:
                    raise ValueError(f"two handlers for event type {event_type!r}")
                handlers[event_type] = handler
        self._handlers = handlers

    def __getitem__(self, event_type: str) -> EventHandler:
        return self._handlers[event_type]

    def __iter__(self) -> Iterator[str]:
        return iter(self._handlers)

    def __len__(self) -> int:
        return len(self._handlers)


log = structlog.get_logger("flow.events.consumer")

ATTEMPTS_HEADER = "x-flow-attempts"
ERROR_HEADER = "x-flow-error"
DEAD_LETTER_REASON_HEADER = "x-flow-dead-letter-reason"
# Broker bookkeeping from the retry queue's dead-lettering; not carried forward.
_BROKER_DEATH_HEADERS = ("x-death", "x-first-death-", "x-last-death-")
MAX_ERROR_HEADER_LENGTH = 500
INVALID_EVENT_TYPE = "<invalid>"

EVENTS_CONSUMED = business_counter(
    "flow_events_consumed_total",
    "Events taken off the service's queue, by outcome "
    "(handled, duplicate, ignored, retried, dead_lettered).",
    ("service", "event_type", "outcome"),
)
EVENT_HANDLER_FAILURES = business_counter(
    "flow_event_handler_failures_total",
    "Event handler runs that raised (the event is retried, then dead-lettered).",
    ("service", "event_type"),
)
DLQ_DEPTH = business_gauge(
    "flow_events_dlq_depth",
    "Messages waiting in the service's dead-letter queue.",
    ("service",),
)


class EventConsumer:
    def __init__(
        self,
        *,
        database: Database,
        inbox: Table,
        amqp_url: str,
        exchange: str,
        service: str,
        handlers: Mapping[str, EventHandler],
        max_retries: int = 5,
        retry_delay_ms: int = 1000,
        prefetch: int = 16,
        reconnect_initial_delay: float = 0.5,
        reconnect_max_delay: float = 10.0,
        dlq_refresh_interval: float = 15.0,
        stop_timeout: float = 30.0,
        topology: EventTopology | None = None,
    ) -> None:
        """`topology`: where `service`'s queues and bindings are described (the fleet's in
        a service); by default a topology of this consumer alone, bound to its handlers.
        Raises TopologyMismatch when the handlers and the subscription disagree."""
        if topology is None:
            topology = EventTopology(exchange, (Subscription(service, frozenset(handlers)),))
        if topology.exchange != exchange:
            raise ValueError(f"topology is of exchange {topology.exchange!r}, not {exchange!r}")
        self.subscription = topology.subscription(service)
        self.subscription.check_handlers(handlers)
        self.database = database
        self.inbox = inbox
        self.amqp_url = amqp_url
        self.exchange_name = exchange
        self.service = service
        self.handlers = dict(handlers)
        self.max_retries = max_retries
        self.retry_delay_ms = retry_delay_ms
        self.prefetch = prefetch
        self.dlq_refresh_interval = dlq_refresh_interval
        self.stop_timeout = stop_timeout
        self.queue_name = self.subscription.queue
        self.retry_queue_name = self.subscription.retry_queue
        self.dlq_name = self.subscription.dead_letter_queue
        self._broker = BrokerConnection(
            amqp_url,
            reconnect_initial_delay=reconnect_initial_delay,
            reconnect_max_delay=reconnect_max_delay,
        )
        self._inspect_channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._consumer_tag: ConsumerTag | None = None
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._dlq_depth = DLQ_DEPTH.labels(service)

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Start consuming in the background; never waits for the broker."""
        if self._task is not None:
            return
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name=f"event-consumer-{self.service}")

    async def stop(self) -> None:
        """Stop taking messages, let in-flight handlers finish and ack, then close."""
        self._stopping.set()
        await self._cancel_consuming()
        if self._in_flight:
            _done, pending = await asyncio.wait(set(self._in_flight), timeout=self.stop_timeout)
            for handler_task in pending:
                # Unacked, so the broker redelivers it; the inbox guards against doubles.
                handler_task.cancel()
            if pending:
                log.warning("consumer_stop_timeout", abandoned=len(pending))
                await asyncio.wait(pending)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._disconnect()

    @property
    def is_connected(self) -> bool:
        return self._broker.is_open and self._consumer_tag is not None

    async def check_connected(self) -> None:
        if not self.is_connected:
            raise BrokerUnavailable(f"consumer of {self.queue_name} is not connected")

    async def refresh_dlq_depth(self) -> int:
        """Read the dead-letter queue's depth from the broker and publish it as a gauge."""
        channel = self._inspect_channel
        if channel is None or channel.is_closed:
            raise BrokerUnavailable("consumer is not connected to the broker")
        queue = await channel.declare_queue(self.dlq_name, passive=True)
        depth = int(queue.declaration_result.message_count or 0)
        self._dlq_depth.set(depth)
        return depth

    # -- connection ----------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping.is_set():
            consuming = await self._broker.connect_retrying(
                self._declare_and_consume,
                stopping=self._stopping,
                failure_event="consumer_broker_unavailable",
                logger=log,
                queue=self.queue_name,
            )
            if consuming is None:
                return  # stopped before the broker came back
            log.info("consumer_started", queue=self.queue_name, events=sorted(self.handlers))
            await self._watch_connection()
            if not self._stopping.is_set():
                log.warning("consumer_connection_lost", queue=self.queue_name)
                await self._disconnect()

    async def _watch_connection(self) -> None:
        """Refresh the DLQ gauge now and then until the connection is lost or we stop."""
        while not self._stopping.is_set() and not self._broker.lost.is_set():
            try:
                await self.refresh_dlq_depth()
            except Exception as exc:
                log.warning("dlq_depth_refresh_failed", error=repr(exc))
            waiters = [
                asyncio.create_task(self._broker.lost.wait()),
                asyncio.create_task(self._stopping.wait()),
            ]
            try:
                await asyncio.wait(
                    waiters,
                    timeout=self.dlq_refresh_interval,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                for waiter in waiters:
                    waiter.cancel()

    async def _declare_and_consume(self, channel: AbstractChannel) -> ConsumerTag:
        """The declare step of each connection: our queues, then consuming from the main one."""
        await channel.set_qos(prefetch_count=self.prefetch)
        exchange = await events_exchange(channel, self.exchange_name)
        queue = await declare_subscription(channel, exchange, self.subscription)
        inspect_channel = await self._broker.open_channel()
        consumer_tag = await queue.consume(self._on_message)
        self._inspect_channel, self._queue = inspect_channel, queue
        self._consumer_tag = consumer_tag
        return consumer_tag

    async def _cancel_consuming(self) -> None:
        queue, tag = self._queue, self._consumer_tag
        self._consumer_tag = None
        if queue is None or tag is None or queue.channel.is_closed:
            return
        try:
            await queue.cancel(tag, timeout=CONNECT_TIMEOUT_SECONDS)
        except Exception as exc:
            log.warning("consumer_cancel_failed", error=repr(exc))

    async def _disconnect(self) -> None:
        self._inspect_channel = None
        self._queue = None
        self._consumer_tag = None
        await self._broker.close()

    # -- handling ------------------------------------------------------------------

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        if self._stopping.is_set():
            # Delivered between our cancel and the broker's cancel-ok: give it back.
            with contextlib.suppress(Exception):
                await message.nack(requeue=True)
            return
        channel = self._broker.channel
        if channel is None:
            return
        # Our own task, so closing the channel on stop never cancels a handler mid-way.
        task = asyncio.create_task(self._process(message, channel))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _process(self, message: AbstractIncomingMessage, channel: AbstractChannel) -> None:
        """One delivery: decode it, run its handler once (inbox) in a transaction, then ack
        it, or move it to the retry queue or the DLQ."""
        envelope = await self._decode(message, channel)
        if envelope is None:
            return
        set_correlation_id(envelope.correlation_id)
        handler = self.handlers.get(envelope.type)
        if handler is None:
            await self._ignore(message, envelope)
            return
        try:
            handled = await self._handle(handler, envelope)
        except Exception as exc:
            await self._retry_or_dead_letter(message, channel, envelope, exc)
            return
        await self._ack_handled(message, envelope, handled=handled)

    async def _decode(
        self, message: AbstractIncomingMessage, channel: AbstractChannel
    ) -> EventEnvelope | None:
        """The message's envelope; None when it is not a valid one (moved to the DLQ)."""
        try:
            return EventEnvelope.model_validate_json(message.body)
        except ValidationError as exc:
            log.warning("event_poison", message_id=message.message_id, error=str(exc)[:200])
            await self._move(
                message,
                channel,
                DEAD_LETTER_KEY,
                attempts=_attempts(message),
                error=f"invalid envelope: {exc}",
                reason="poison",
                event_type=INVALID_EVENT_TYPE,
            )
            return None

    async def _ignore(self, message: AbstractIncomingMessage, envelope: EventEnvelope) -> None:
        # Only a stale binding from an older deployment routes such an event here
        # (bindings are added, never removed, by whoever declares the topology).
        log.warning("event_without_handler", event_id=str(envelope.id), event_type=envelope.type)
        EVENTS_CONSUMED.labels(self.service, envelope.type, "ignored").inc()
        await _settle(message.ack())

    async def _ack_handled(
        self, message: AbstractIncomingMessage, envelope: EventEnvelope, *, handled: bool
    ) -> None:
        outcome = "handled" if handled else "duplicate"
        EVENTS_CONSUMED.labels(self.service, envelope.type, outcome).inc()
        log.info(
            "event_handled" if handled else "event_duplicate",
            event_id=str(envelope.id),
            event_type=envelope.type,
        )
        # If this ack is lost the event comes back, and the inbox row makes it a no-op.
        await _settle(message.ack())

    async def _retry_or_dead_letter(
        self,
        message: AbstractIncomingMessage,
        channel: AbstractChannel,
        envelope: EventEnvelope,
        exc: Exception,
    ) -> None:
        """The handler failed: to the retry queue while attempts remain, else to the DLQ."""
        EVENT_HANDLER_FAILURES.labels(self.service, envelope.type).inc()
        outage = is_infrastructure_outage(exc)
        # An unreachable database is not the event's fault: it must not use up the
        # event's attempts and push a good event into the DLQ during an outage.
        failures = _attempts(message) + (0 if outage else 1)
        log.warning(
            "event_handler_failed",
            event_id=str(envelope.id),
            event_type=envelope.type,
            failures=failures,
            outage=outage,
            error=repr(exc),
            exc_info=not outage,
        )
        if failures <= self.max_retries:
            await self._move(
                message,
                channel,
                RETRY_KEY,
                attempts=failures,
                error=repr(exc),
                reason=None,
                event_type=envelope.type,
                expiration_ms=self.retry_delay_ms,
            )
            return
        log.error(
            "event_dead_lettered",
            event_id=str(envelope.id),
            event_type=envelope.type,
            failures=failures,
        )
        await self._move(
            message,
            channel,
            DEAD_LETTER_KEY,
            attempts=failures,
            error=repr(exc),
            reason="max_retries",
            event_type=envelope.type,
        )

    async def _handle(self, handler: EventHandler, envelope: EventEnvelope) -> bool:
        """Run the handler once per event, in the unit of work of its inbox row (a handler
        reaches it with `current_unit_of_work(session)`). False when the inbox says it
        already ran."""
        async with unit_of_work(self.database) as uow:
            if not await self._record_in_inbox(uow.session, envelope):
                return False
            await handler(uow.session, envelope)
        return True

    async def _record_in_inbox(self, session: AsyncSession, envelope: EventEnvelope) -> bool:
        """Insert the inbox row (consumer, event_id); False when it was already there."""
        inserted = (
            await session.execute(
                pg_insert(self.inbox)
                .values(consumer=self.service, event_id=envelope.id, event_type=envelope.type)
                .on_conflict_do_nothing()
                .returning(self.inbox.c.event_id)
            )
        ).scalar_one_or_none()
        return inserted is not None

    async def _move(
        self,
        message: AbstractIncomingMessage,
        channel: AbstractChannel,
        move: str,
        *,
        attempts: int,
        error: str,
        reason: str | None,
        event_type: str,
        expiration_ms: int | None = None,
    ) -> None:
        """Republish to the retry queue or the DLQ (`move`: RETRY_KEY or DEAD_LETTER_KEY on
        the moves exchange), and ack the original only once the broker has confirmed the
        copy; on any failure the original goes back to its queue."""
        headers: HeadersType = {
            key: value
            for key, value in (message.headers or {}).items()
            if not key.startswith(_BROKER_DEATH_HEADERS)
        }
        headers[ATTEMPTS_HEADER] = attempts
        headers[ERROR_HEADER] = error[:MAX_ERROR_HEADER_LENGTH]
        if reason is not None:
            headers[DEAD_LETTER_REASON_HEADER] = reason
        copy = _copy(message, headers, expiration_ms)
        try:
            # Declared with the queues on connect; no round trip here.
            moves = await channel.get_exchange(self.subscription.moves_exchange, ensure=False)
            await moves.publish(
                copy, routing_key=move, mandatory=True, timeout=PUBLISH_TIMEOUT_SECONDS
            )
        except Exception as exc:
            log.warning("event_requeue_failed", move=move, error=repr(exc))
            await _settle(message.nack(requeue=True))
            return
        outcome = "retried" if reason is None else "dead_lettered"
        EVENTS_CONSUMED.labels(self.service, event_type, outcome).inc()
        await _settle(message.ack())


async def replay_dead_letters(
    amqp_url: str, subscription: Subscription, *, limit: int | None = None
) -> int:
    """Move the dead letters of `subscription` back into its main queue, for a fresh set of
    attempts (once the cause is fixed); returns how many. Each goes through the moves
    exchange (key `requeue`) and is removed from the DLQ only once the broker confirmed
    its copy. Works with the service's own broker user (access.py)."""
    connection = await aio_pika.connect(amqp_url, timeout=CONNECT_TIMEOUT_SECONDS)
    moved = 0
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        dead_letters = await channel.declare_queue(subscription.dead_letter_queue, passive=True)
        moves = await channel.get_exchange(subscription.moves_exchange, ensure=False)
        while limit is None or moved < limit:
            message = await dead_letters.get(no_ack=False, fail=False)
            if message is None:
                break
            headers: HeadersType = {
                key: value
                for key, value in (message.headers or {}).items()
                if not key.startswith(_BROKER_DEATH_HEADERS)
                and key not in (ATTEMPTS_HEADER, DEAD_LETTER_REASON_HEADER)
            }
            try:
                await moves.publish(
                    _copy(message, headers, None),
                    routing_key=REQUEUE_KEY,
                    mandatory=True,
                    timeout=PUBLISH_TIMEOUT_SECONDS,
                )
            except Exception:
                await _settle(message.nack(requeue=True))
                raise
            await message.ack()
            moved += 1
    finally:
        await connection.close()
    log.info("dead_letters_replayed", queue=subscription.dead_letter_queue, count=moved)
    return moved


def _copy(
    message: AbstractIncomingMessage, headers: HeadersType, expiration_ms: int | None
) -> aio_pika.Message:
    return aio_pika.Message(
        message.body,
        headers=headers,
        content_type=message.content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        type=message.type,
        app_id=message.app_id,
        expiration=expiration_ms / 1000 if expiration_ms is not None else None,
    )


def is_infrastructure_outage(exc: BaseException) -> bool:
    """The database (or the network to it) is away, as opposed to the handler failing."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(
        exc, OSError | TimeoutError | OperationalError | InterfaceError | PoolTimeoutError
    )


def _attempts(message: AbstractIncomingMessage) -> int:
    value = (message.headers or {}).get(ATTEMPTS_HEADER)
    return value if isinstance(value, int) and value >= 0 else 0


async def _settle(operation: Awaitable[None]) -> None:
    """Ack/nack on a channel that may be gone: the broker then redelivers by itself."""
    try:
        await operation
    except Exception as exc:
        log.warning("event_settle_failed", error=repr(exc))
