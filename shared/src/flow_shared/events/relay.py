"""The outbox relay: publishes committed outbox rows to the topic exchange.

Each pass claims the oldest unpublished rows with `FOR UPDATE SKIP LOCKED`
(so several relays on one outbox never take the same row), publishes each with
publisher confirms, and marks it published in the same transaction. A row is
only marked once the broker has confirmed it, so a crash or a lost broker means
a later pass publishes it again: delivery is at least once, and consumers
de-duplicate with their inbox.

Before its first publish on a connection the relay checks that the events exchange
exists (a passive declare: the service's broker user needs no configure right). Only
with a topology to declare (EVENTS_DECLARE_FLEET_TOPOLOGY, for a broker user allowed to)
does it declare every consumer's queue itself; otherwise the deploy step has (flowctl,
topology.py), so every consumer's queue exists even if that consumer has never run.
Publishes are mandatory: an event no queue is bound to comes back from the broker,
stays in the outbox (counted in `flow_events_unroutable_total`, which alerts), and its
type is tried again every `unroutable_retry_seconds`, while other types keep flowing.

The broker may be away for any length of time: start-up never waits for it,
and the background loop reconnects with exponential backoff (the connection is
connection.py's BrokerConnection, the consumer's too).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import aio_pika
import structlog
from aio_pika.abc import AbstractChannel, AbstractExchange, HeadersType
from aio_pika.exceptions import PublishError
from sqlalchemy import Row, Select, Table, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.db import Database
from flow_shared.events.connection import (
    PUBLISH_TIMEOUT_SECONDS,
    BrokerConnection,
    BrokerUnavailable,
    wait_for_event,
)
from flow_shared.events.topology import EventTopology, declare_topology, events_exchange
from flow_shared.json_codec import dumps
from flow_shared.metrics import business_counter, business_gauge
from flow_shared.unit_of_work import unit_of_work

log = structlog.get_logger("flow.events.relay")

CORRELATION_HEADER = "x-correlation-id"
# Counting pending rows is cheap (partial index) but needs no more than this pace.
PENDING_GAUGE_INTERVAL_SECONDS = 5.0
MAX_ERROR_LENGTH = 1000

OUTBOX_PENDING = business_gauge(
    "flow_outbox_pending_events",
    "Outbox rows committed but not yet published to the broker.",
    ("service",),
)
EVENTS_PUBLISHED = business_counter(
    "flow_events_published_total",
    "Events published to the broker and confirmed by it.",
    ("service", "event_type"),
)
OUTBOX_OLDEST_PENDING_AGE = business_gauge(
    "flow_outbox_oldest_pending_age_seconds",
    "Age of the oldest unpublished outbox row (0 when none): how far publication lags.",
    ("service",),
)
RELAY_PUBLISH_FAILURES = business_counter(
    "flow_outbox_publish_failures_total",
    "Outbox rows whose publication failed (they are retried on a later pass).",
    ("service",),
)
EVENTS_UNROUTABLE = business_counter(
    "flow_events_unroutable_total",
    "Publishes the broker returned because no queue is bound to the event type; the "
    "event stays in the outbox and is tried again.",
    ("service", "event_type"),
)


def build_event_message(
    event_id: uuid.UUID, event_type: str, payload: dict[str, Any], producer: str
) -> aio_pika.Message:
    correlation_id = payload.get("correlation_id")
    headers: HeadersType = {"x-producer": producer}
    if isinstance(correlation_id, str):
        headers[CORRELATION_HEADER] = correlation_id
    return aio_pika.Message(
        dumps(payload),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=str(event_id),
        correlation_id=correlation_id if isinstance(correlation_id, str) else None,
        type=event_type,
        app_id=producer,
        headers=headers,
    )


class OutboxRelay:
    def __init__(
        self,
        *,
        database: Database,
        outbox: Table,
        amqp_url: str,
        exchange: str,
        service: str,
        poll_interval: float = 0.2,
        batch_size: int = 100,
        reconnect_initial_delay: float = 0.5,
        reconnect_max_delay: float = 10.0,
        stop_timeout: float = 30.0,
        topology: EventTopology | None = None,
        unroutable_retry_seconds: float = 30.0,
    ) -> None:
        """`topology`: what to declare on connect (needs configure rights on all of it); by
        default nothing: the exchange is only checked to exist."""
        if topology is not None and topology.exchange != exchange:
            raise ValueError(f"topology is of exchange {topology.exchange!r}, not {exchange!r}")
        self.database = database
        self.outbox = outbox
        self.amqp_url = amqp_url
        self.exchange_name = exchange
        self.topology = topology
        self.unroutable_retry_seconds = unroutable_retry_seconds
        # Event types the broker returned as unroutable -> when to try them again.
        self._unroutable_until: dict[str, float] = {}
        self.service = service
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self.stop_timeout = stop_timeout
        self._broker = BrokerConnection(
            amqp_url,
            reconnect_initial_delay=reconnect_initial_delay,
            reconnect_max_delay=reconnect_max_delay,
        )
        self._exchange: AbstractExchange | None = None
        self._connect_lock = asyncio.Lock()
        # Serialises passes within one relay; other relays are kept apart by SKIP LOCKED.
        self._pass_lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        # Set by nudge() when this process commits events: the next pass starts at once.
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_pass = False
        self._pending_refreshed_at = 0.0
        self._pending_gauge = OUTBOX_PENDING.labels(service)
        self._oldest_age_gauge = OUTBOX_OLDEST_PENDING_AGE.labels(service)
        self._failures = RELAY_PUBLISH_FAILURES.labels(service)

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Start the background loop and return at once, whether or not the broker is up."""
        if self._task is not None:
            return
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self.service}")

    def nudge(self) -> None:
        """Rows were just committed: publish them now rather than at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        """Finish the batch in hand, then close the channel and the connection."""
        self._stopping.set()
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            if not self._in_pass:
                # Sleeping or connecting: nothing is in hand, so cancelling loses nothing.
                task.cancel()
            try:
                await asyncio.wait_for(task, self.stop_timeout)
            except asyncio.CancelledError:
                pass
            except TimeoutError:
                log.warning("relay_stop_timeout", service=self.service)
            except Exception:
                log.exception("relay_stopped_with_error", service=self.service)
        await self._disconnect()

    @property
    def is_connected(self) -> bool:
        return self._broker.is_open and self._exchange is not None

    async def check_connected(self) -> None:
        if not self.is_connected:
            raise BrokerUnavailable("outbox relay is not connected to the broker")

    # -- publishing ----------------------------------------------------------------

    async def publish_pending(self) -> int:
        """One pass: publish up to `batch_size` unpublished rows, oldest first.

        Raises BrokerUnavailable when the broker cannot be reached; rows then stay
        unpublished for a later pass. Returns how many rows were published.
        """
        exchange = await self._ensure_connected()
        async with self._pass_lock:
            self._in_pass = True
            try:
                return await self._publish_batch(exchange)
            finally:
                self._in_pass = False

    def held_unroutable_types(self) -> set[str]:
        """Event types waiting in the outbox because no queue was bound to them."""
        now = time.monotonic()
        self._unroutable_until = {
            event_type: until for event_type, until in self._unroutable_until.items() if until > now
        }
        return set(self._unroutable_until)

    async def _publish_batch(self, exchange: AbstractExchange) -> int:
        published: list[int] = []
        held = self.held_unroutable_types()
        async with unit_of_work(self.database) as uow:
            session = uow.session
            rows = (await session.execute(self._pending_rows(held))).all()
            for row in rows:
                if row.event_type in held:
                    continue  # returned earlier in this batch
                message = build_event_message(
                    row.event_id, row.event_type, row.payload, self.service
                )
                try:
                    await exchange.publish(
                        message,
                        routing_key=row.event_type,
                        mandatory=True,
                        timeout=PUBLISH_TIMEOUT_SECONDS,
                    )
                except PublishError as exc:
                    # Returned: no queue is bound to this type. Nobody receives the type,
                    # so holding it back reorders nothing for anyone: later rows go on.
                    held.add(row.event_type)
                    await self._hold_unroutable(session, row, exc)
                    continue
                except Exception as exc:
                    await self._record_publish_failure(session, row, exc)
                    # Keep order: later rows wait for this one. A broken channel is rebuilt.
                    if not self.is_connected:
                        await self._disconnect()
                    break
                published.append(row.seq)
                EVENTS_PUBLISHED.labels(self.service, row.event_type).inc()
            if published:
                await session.execute(
                    update(self.outbox)
                    .where(self.outbox.c.seq.in_(published))
                    .values(published_at=func.now(), attempts=self.outbox.c.attempts + 1)
                )
        if published:
            log.debug("outbox_published", count=len(published))
        return len(published)

    def _pending_rows(self, held: set[str]) -> Select[tuple[int, uuid.UUID, str, Any]]:
        """The oldest unpublished rows no other relay holds, but for the held-back types."""
        outbox = self.outbox
        query = (
            select(outbox.c.seq, outbox.c.event_id, outbox.c.event_type, outbox.c.payload)
            .where(outbox.c.published_at.is_(None))
            .order_by(outbox.c.seq)
            .limit(self.batch_size)
            .with_for_update(skip_locked=True)
        )
        if held:
            query = query.where(outbox.c.event_type.not_in(held))
        return query

    async def _hold_unroutable(self, session: AsyncSession, row: Row[Any], exc: Exception) -> None:
        """Hold `row`'s type back for `unroutable_retry_seconds`; the row stays unpublished."""
        self._unroutable_until[row.event_type] = time.monotonic() + self.unroutable_retry_seconds
        EVENTS_UNROUTABLE.labels(self.service, row.event_type).inc()
        log.error(
            "outbox_event_unroutable",
            event_id=str(row.event_id),
            event_type=row.event_type,
            retry_in=self.unroutable_retry_seconds,
            error=str(exc),
        )
        await self._count_attempt(
            session, row.seq, f"unroutable: no queue is bound to {row.event_type}"
        )

    async def _record_publish_failure(
        self, session: AsyncSession, row: Row[Any], exc: Exception
    ) -> None:
        self._failures.inc()
        log.warning(
            "outbox_publish_failed",
            event_id=str(row.event_id),
            event_type=row.event_type,
            error=repr(exc),
        )
        await self._count_attempt(session, row.seq, repr(exc)[:MAX_ERROR_LENGTH])

    async def _count_attempt(self, session: AsyncSession, seq: int, error: str) -> None:
        await session.execute(
            update(self.outbox)
            .where(self.outbox.c.seq == seq)
            .values(attempts=self.outbox.c.attempts + 1, last_error=error)
        )

    async def refresh_pending_gauge(self) -> int:
        """Set the pending-rows and oldest-pending-age gauges; returns the pending count."""
        oldest_age = func.extract("epoch", func.now() - func.min(self.outbox.c.created_at))
        async with unit_of_work(self.database) as uow:
            pending, age_seconds = (
                await uow.session.execute(
                    select(func.count(), func.coalesce(oldest_age, 0))
                    .select_from(self.outbox)
                    .where(self.outbox.c.published_at.is_(None))
                )
            ).one()
        self._pending_gauge.set(pending)
        # The database's clock on both sides: no skew between hosts in the figure.
        self._oldest_age_gauge.set(max(0.0, float(age_seconds)))
        self._pending_refreshed_at = time.monotonic()
        return int(pending)

    # -- connection ----------------------------------------------------------------

    async def _ensure_connected(self) -> AbstractExchange:
        """The exchange on an open connection, connecting first if there is none (raises
        BrokerUnavailable when the broker cannot be reached)."""
        async with self._connect_lock:
            if self.is_connected and self._exchange is not None:
                return self._exchange
            self._exchange = None
            exchange = await self._broker.connect(self._declare)
            self._exchange = exchange
            log.info("relay_connected", exchange=self.exchange_name)
            return exchange

    async def _declare(self, channel: AbstractChannel) -> AbstractExchange:
        # Every consumer's queue before the first publish: an event published
        # before its consumer ever started then waits for it (no partial routing).
        if self.topology is not None:
            return await declare_topology(channel, self.topology)
        return await events_exchange(channel, self.exchange_name)

    async def _disconnect(self) -> None:
        self._exchange = None
        await self._broker.close()

    # -- background loop -----------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                published = await self.publish_pending()
            except BrokerUnavailable as exc:
                delay = self._broker.backoff.next_delay()
                log.warning("relay_broker_unavailable", error=str(exc), retry_in=round(delay, 2))
                await self._refresh_pending_gauge_quietly()
                await wait_for_event(self._stopping, delay)
                continue
            except Exception:
                # A database error: the rows are still there; try again after a pause.
                delay = self._broker.backoff.next_delay()
                log.exception("relay_pass_failed", retry_in=round(delay, 2))
                await wait_for_event(self._stopping, delay)
                continue
            self._broker.backoff.reset()
            # Also while draining full batches: a backlog is exactly when the lag gauges matter.
            await self._refresh_pending_gauge_quietly()
            if published < self.batch_size:
                await wait_for_event(self._wake, self.poll_interval)
            # A nudge during the pass leaves the event set: the wait above returned at once.
            self._wake.clear()

    async def _refresh_pending_gauge_quietly(self) -> None:
        if time.monotonic() - self._pending_refreshed_at < PENDING_GAUGE_INTERVAL_SECONDS:
            return
        try:
            await self.refresh_pending_gauge()
        except Exception as exc:
            log.warning("outbox_pending_count_failed", error=repr(exc))
