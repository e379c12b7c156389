"""The outbox relay and the event consumer against the real PostgreSQL and RabbitMQ.

Promises (issue 2, section 7, "outbox"): an event written in a rolled-back
transaction is never published; with the broker unreachable events wait and are
published once it is back; two relays never double-publish; a consumer that
fails mid-handler gets the event again and the effect happens once (and a
redelivered event has no second effect); a poison event ends in the dead-letter
queue and later events still flow; stop() lets an in-flight handler finish and ack.

Issue 12 ("no event lost on a fresh deploy"): an event published before its consumer
has ever started waits for it and arrives; an event type nobody is bound to stays in
the outbox, is counted, does not hold up other types, and goes out once someone binds
it; declaring the topology again changes nothing and loses nothing; a consumer whose
handlers disagree with the topology refuses to start.

Every test gets its own scratch schema (outbox, inbox, effects), its own exchange
and its own service name (so its own queues and metric labels), inside the test
session's database and RabbitMQ vhost.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import urllib.parse
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage, AbstractQueue
from prometheus_client import REGISTRY
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.app import EventsConfig, create_service_app
from flow_shared.config import BaseServiceSettings
from flow_shared.db import Database, create_engine
from flow_shared.events.connection import BrokerConnection, BrokerUnavailable
from flow_shared.events.consumer import (
    ATTEMPTS_HEADER,
    DEAD_LETTER_REASON_HEADER,
    EventConsumer,
    EventHandler,
    EventHandlers,
)
from flow_shared.events.envelope import EventEnvelope
from flow_shared.events.outbox import (
    add_event,
    define_inbox_table,
    define_outbox_table,
)
from flow_shared.events.relay import OutboxRelay, build_event_message
from flow_shared.events.topology import (
    FLEET_SUBSCRIPTIONS,
    EventTopology,
    Subscription,
    TopologyMismatch,
    declare_topology_at,
    events_exchange,
)
from flow_shared.testing.infra import declare_exchange_at
from flow_shared.testing.polling import eventually
from flow_shared.unit_of_work import unit_of_work

if TYPE_CHECKING:
    from conftest import ScratchEffects, ScratchSchema

    from flow_shared.testing.infra import TestInfra

PRODUCER = "events-test"
WAIT_SECONDS = 20.0


def publishing(event_type: str) -> dict[str, frozenset[str]]:
    """The publications table of this test's producer (the fleet's has no test types)."""
    return {PRODUCER: frozenset({event_type})}


# -- scratch database ------------------------------------------------------------------


@dataclass
class Scratch:
    schema: str
    database: Database
    outbox: Table
    inbox: Table
    effects: ScratchEffects

    async def add_events(self, count: int, event_type: str = "test.created") -> list[uuid.UUID]:
        async with unit_of_work(self.database) as uow:
            envelopes = [
                await add_event(
                    uow.session,
                    self.outbox,
                    event_type=event_type,
                    data={"n": n},
                    producer=PRODUCER,
                    publications=publishing(event_type),
                )
                for n in range(count)
            ]
        return [envelope.id for envelope in envelopes]

    async def unpublished_ids(self) -> set[uuid.UUID]:
        async with self.database.sessionmaker() as session:
            rows = await session.execute(
                select(self.outbox.c.event_id).where(self.outbox.c.published_at.is_(None))
            )
            return set(rows.scalars())

    async def effect_count(self, event_id: uuid.UUID) -> int:
        return await self.effects.count(self.database, event_id)

    async def effect_count_is(self, event_id: uuid.UUID, expected: int) -> bool:
        return await self.effect_count(event_id) == expected

    async def inbox_has(self, consumer: str, event_id: uuid.UUID) -> bool:
        async with self.database.sessionmaker() as session:
            found = await session.scalar(
                select(self.inbox.c.event_id).where(
                    self.inbox.c.consumer == consumer, self.inbox.c.event_id == event_id
                )
            )
            return found is not None

    async def apply_effect(self, session: AsyncSession, envelope: EventEnvelope) -> None:
        await self.effects.apply(session, envelope)


@pytest.fixture
async def scratch(scratch_schema: ScratchSchema, scratch_effects: ScratchEffects) -> Scratch:
    outbox = define_outbox_table(scratch_schema.metadata)
    inbox = define_inbox_table(scratch_schema.metadata)
    await scratch_schema.create_tables()
    engine = scratch_schema.engine("events-test", pool_size=4, max_overflow=4)
    return Scratch(scratch_schema.name, Database(engine), outbox, inbox, scratch_effects)


# -- broker helpers --------------------------------------------------------------------


@dataclass(frozen=True)
class Names:
    exchange: str
    service: str


@pytest.fixture
async def names(infra: TestInfra) -> Names:
    """A fresh exchange, declared as the deploy step would (consumers and relays only
    check that it exists), and a fresh service name."""
    suffix = uuid.uuid4().hex[:10]
    names = Names(exchange=f"flow.events.test.{suffix}", service=f"evtest-{suffix}")
    await declare_exchange_at(infra.amqp_url, names.exchange)
    return names


@pytest.fixture
async def channel(infra: TestInfra) -> AsyncIterator[AbstractChannel]:
    connection = await aio_pika.connect(infra.amqp_url)
    try:
        yield await connection.channel()
    finally:
        await connection.close()


@dataclass
class Tap:
    """A test queue bound to every routing key of an exchange, recording what arrives."""

    channel: AbstractChannel
    exchange: str
    messages: list[AbstractIncomingMessage] = field(default_factory=list)

    async def start(self) -> None:
        exchange = await self.channel.declare_exchange(
            self.exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await self.channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key="#")
        await queue.consume(self._record, no_ack=True)

    async def _record(self, message: AbstractIncomingMessage) -> None:
        self.messages.append(message)

    def ids(self) -> list[str]:
        return [m.message_id for m in self.messages if m.message_id is not None]

    async def everything_published_so_far(self) -> list[str]:
        """All ids that reached the queue before now, in order, without the marker.

        A confirmed publish is already in the queue, so once a marker published
        afterwards arrives, nothing published before it can still be on its way."""
        marker = f"marker-{uuid.uuid4().hex}"
        exchange = await self.channel.get_exchange(self.exchange)
        await exchange.publish(aio_pika.Message(b"{}", message_id=marker), routing_key="marker")
        await eventually(lambda: marker in self.ids())
        ids = self.ids()
        return [i for i in ids[: ids.index(marker)] if not i.startswith("marker-")]


@pytest.fixture
async def tap(channel: AbstractChannel, names: Names) -> Tap:
    tap = Tap(channel, names.exchange)
    await tap.start()
    return tap


class TcpProxy:
    """A loopback TCP proxy to RabbitMQ that the test can take down and bring back,
    so the relay loses the broker without stopping the shared RabbitMQ server."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                self.target_host, self.target_port
            )
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, upstream_writer))
        await asyncio.gather(
            self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer)
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()


async def broker_down_behind_proxy(infra: TestInfra) -> tuple[TcpProxy, str]:
    """A proxy to RabbitMQ that is down from the start (its port kept, so `open()` brings
    the broker "back"), and the AMQP URL through it."""
    broker = urllib.parse.urlsplit(infra.amqp_url)
    proxy = TcpProxy(broker.hostname or "127.0.0.1", broker.port or 5672)
    await proxy.open()
    await proxy.close()
    credentials = broker.netloc.rpartition("@")[0]
    return proxy, broker._replace(netloc=f"{credentials}@127.0.0.1:{proxy.port}").geturl()


def consumed(service: str, event_type: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "flow_events_consumed_total",
        {"service": service, "event_type": event_type, "outcome": outcome},
    )
    return value or 0.0


async def publish(channel: AbstractChannel, exchange: str, envelope: EventEnvelope) -> None:
    """Publish an envelope exactly as the relay does."""
    target = await channel.get_exchange(exchange)
    message = build_event_message(
        envelope.id, envelope.type, envelope.model_dump(mode="json"), PRODUCER
    )
    await target.publish(message, routing_key=envelope.type)


async def queue_depth(channel: AbstractChannel, name: str) -> int:
    queue: AbstractQueue = await channel.declare_queue(name, passive=True)
    return int(queue.declaration_result.message_count or 0)


def make_consumer(
    infra: TestInfra,
    scratch: Scratch,
    names: Names,
    handlers: dict[str, EventHandler],
    *,
    amqp_url: str | None = None,
    database: Database | None = None,
    **options: Any,
) -> EventConsumer:
    return EventConsumer(
        database=database or scratch.database,
        inbox=scratch.inbox,
        amqp_url=amqp_url or infra.amqp_url,
        exchange=names.exchange,
        service=names.service,
        handlers=handlers,
        **options,
    )


@contextlib.asynccontextmanager
async def running_consumer(
    infra: TestInfra,
    scratch: Scratch,
    names: Names,
    handlers: dict[str, EventHandler],
    **options: Any,
) -> AsyncIterator[EventConsumer]:
    consumer = make_consumer(infra, scratch, names, handlers, **options)
    await consumer.start()
    try:
        await eventually(lambda: consumer.is_connected, "the consumer to connect")
        yield consumer
    finally:
        await consumer.stop()


def make_relay(
    infra: TestInfra, scratch: Scratch, names: Names, amqp_url: str | None = None, **options: Any
) -> OutboxRelay:
    return OutboxRelay(
        database=scratch.database,
        outbox=scratch.outbox,
        amqp_url=amqp_url or infra.amqp_url,
        exchange=names.exchange,
        service=names.service,
        **options,
    )


# -- relay -----------------------------------------------------------------------------


async def test_event_in_rolled_back_transaction_is_never_published(
    infra: TestInfra, scratch: Scratch, names: Names, tap: Tap
) -> None:
    async with scratch.database.sessionmaker() as session:
        transaction = await session.begin()
        rolled_back = await add_event(
            session,
            scratch.outbox,
            event_type="test.created",
            data={"n": 1},
            producer=PRODUCER,
            publications=publishing("test.created"),
        )
        await transaction.rollback()
    async with scratch.database.sessionmaker() as session, session.begin():
        committed = await add_event(
            session,
            scratch.outbox,
            event_type="test.created",
            data={"n": 2},
            producer=PRODUCER,
            publications=publishing("test.created"),
        )

    relay = make_relay(infra, scratch, names)
    try:
        assert await relay.refresh_pending_gauge() == 1
        assert await relay.publish_pending() == 1
        assert await relay.publish_pending() == 0
        assert await relay.refresh_pending_gauge() == 0
    finally:
        await relay.stop()

    assert await tap.everything_published_so_far() == [str(committed.id)]
    assert str(rolled_back.id) not in tap.ids()
    message = tap.messages[0]
    assert message.routing_key == "test.created"
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert message.content_type == "application/json"
    assert EventEnvelope.model_validate_json(message.body) == committed
    published = REGISTRY.get_sample_value(
        "flow_events_published_total", {"service": names.service, "event_type": "test.created"}
    )
    assert published == 1.0


async def test_events_wait_while_broker_is_unreachable_and_are_published_once_it_is_back(
    infra: TestInfra, scratch: Scratch, names: Names, tap: Tap
) -> None:
    proxy, amqp_url = await broker_down_behind_proxy(infra)
    relay = make_relay(
        infra,
        scratch,
        names,
        amqp_url=amqp_url,
        poll_interval=0.05,
        reconnect_initial_delay=0.05,
        reconnect_max_delay=0.3,
    )
    try:
        await relay.start()  # returns at once although the broker is unreachable
        assert not relay.is_connected
        with pytest.raises(BrokerUnavailable):
            await relay.check_connected()

        first = await scratch.add_events(3)
        with pytest.raises(BrokerUnavailable):
            await relay.publish_pending()
        assert await scratch.unpublished_ids() == set(first)
        assert tap.ids() == []

        await proxy.open()
        await eventually(lambda: set(map(str, first)) <= set(tap.ids()), "the first events")
        await eventually(lambda: relay.is_connected, "the relay to report connected")

        # The broker goes away while the relay is connected: it must notice and reconnect.
        await proxy.close()
        await eventually(lambda: not relay.is_connected, "the relay to notice the loss")
        second = await scratch.add_events(3)
        with pytest.raises(BrokerUnavailable):
            await relay.publish_pending()
        assert await scratch.unpublished_ids() == set(second)

        await proxy.open()
        await eventually(lambda: set(map(str, second)) <= set(tap.ids()), "the second events")
    finally:
        await relay.stop()
        await proxy.close()

    received = Counter(await tap.everything_published_so_far())
    assert received == Counter(str(i) for i in first + second)  # each exactly once
    assert await scratch.unpublished_ids() == set()


async def write_an_event_then_fail(scratch: Scratch) -> None:
    async with unit_of_work(scratch.database) as uow:
        await add_event(
            uow.session,
            scratch.outbox,
            event_type="test.created",
            data={},
            producer=PRODUCER,
            publications=publishing("test.created"),
        )
        raise RuntimeError("changed my mind")


async def test_a_commit_wakes_its_process_relay_instead_of_waiting_for_the_poll(
    infra: TestInfra, scratch: Scratch, names: Names, tap: Tap
) -> None:
    relay = make_relay(infra, scratch, names, poll_interval=60.0)
    forget = scratch.database.wake_relays_on_commit(scratch.outbox, relay.nudge)
    try:
        await relay.start()
        await eventually(lambda: relay.is_connected, "the relay to connect")
        await asyncio.sleep(0.5)  # its first pass found nothing; the next poll is a minute away

        with pytest.raises(RuntimeError, match="changed my mind"):
            await write_an_event_then_fail(scratch)
        [committed] = await scratch.add_events(1)

        await eventually(lambda: str(committed) in tap.ids(), "the event", seconds=5.0)
    finally:
        forget()
        await relay.stop()
    assert await tap.everything_published_so_far() == [str(committed)]


async def test_two_relays_on_one_outbox_never_double_publish(
    infra: TestInfra, scratch: Scratch, names: Names, tap: Tap
) -> None:
    event_ids = await scratch.add_events(200)
    relays = [
        make_relay(infra, scratch, names, batch_size=10, poll_interval=0.01) for _ in range(2)
    ]
    try:
        await asyncio.gather(*(relay.start() for relay in relays))
        await eventually(
            lambda: len(set(tap.ids())) >= len(event_ids), "all events to be published"
        )
    finally:
        await asyncio.gather(*(relay.stop() for relay in relays))

    received = Counter(await tap.everything_published_so_far())
    assert set(received) == {str(i) for i in event_ids}
    assert max(received.values()) == 1
    assert await scratch.unpublished_ids() == set()


# -- consumer --------------------------------------------------------------------------


async def test_handler_failing_mid_way_gets_the_event_again_and_the_effect_happens_once(
    infra: TestInfra, scratch: Scratch, names: Names, channel: AbstractChannel
) -> None:
    calls: Counter[uuid.UUID] = Counter()

    async def apply_then_crash_once(session: AsyncSession, envelope: EventEnvelope) -> None:
        await scratch.apply_effect(session, envelope)
        calls[envelope.id] += 1
        if calls[envelope.id] == 1:
            raise RuntimeError("crashed after writing the effect")

    handlers: dict[str, EventHandler] = {"test.flaky": apply_then_crash_once}
    async with running_consumer(infra, scratch, names, handlers, max_retries=3, retry_delay_ms=100):
        envelope = EventEnvelope(type="test.flaky", producer=PRODUCER, data={"k": "v"})
        await publish(channel, names.exchange, envelope)
        await eventually(
            lambda: consumed(names.service, "test.flaky", "handled") == 1, "the retry to succeed"
        )
        assert calls[envelope.id] == 2
        assert await scratch.effect_count(envelope.id) == 1
        assert await scratch.inbox_has(names.service, envelope.id)

        # The same event delivered again (a relay re-publish) has no second effect.
        await publish(channel, names.exchange, envelope)
        await eventually(
            lambda: consumed(names.service, "test.flaky", "duplicate") == 1,
            "the duplicate to be seen",
        )
        assert calls[envelope.id] == 2
        assert await scratch.effect_count(envelope.id) == 1


async def test_poison_event_ends_in_dead_letter_queue_and_later_events_still_flow(
    infra: TestInfra, scratch: Scratch, names: Names, channel: AbstractChannel
) -> None:
    poison_calls = 0

    async def always_fail(session: AsyncSession, envelope: EventEnvelope) -> None:
        nonlocal poison_calls
        poison_calls += 1
        raise ValueError("this event can never be handled")

    handlers: dict[str, EventHandler] = {
        "test.poison": always_fail,
        "test.applied": scratch.apply_effect,
    }
    async with running_consumer(
        infra, scratch, names, handlers, max_retries=2, retry_delay_ms=100
    ) as consumer:
        poison = EventEnvelope(type="test.poison", producer=PRODUCER, data={})
        await publish(channel, names.exchange, poison)
        # Not even an envelope: straight to the DLQ, no handler runs.
        exchange = await channel.get_exchange(names.exchange)
        await exchange.publish(
            aio_pika.Message(b"{not json", message_id="garbage"), routing_key="test.applied"
        )
        later = [
            EventEnvelope(type="test.applied", producer=PRODUCER, data={"n": n}) for n in range(5)
        ]
        for envelope in later:
            await publish(channel, names.exchange, envelope)

        async def settled() -> bool:
            counts = [await scratch.effect_count(e.id) for e in later]
            return counts == [1] * len(later) and await consumer.refresh_dlq_depth() == 2

        await eventually(settled, "later events handled and two messages dead-lettered")
        assert poison_calls == 3  # the first attempt and max_retries=2 retries
        dlq_gauge = REGISTRY.get_sample_value("flow_events_dlq_depth", {"service": names.service})
        assert dlq_gauge == 2.0

        # After the poison event is parked, events still flow.
        after = EventEnvelope(type="test.applied", producer=PRODUCER, data={"n": 99})
        await publish(channel, names.exchange, after)
        await eventually(
            lambda: scratch.effect_count_is(after.id, 1), "an event after the dead-lettering"
        )

    dlq = await channel.declare_queue(f"{names.service}.events.dlq", passive=True)
    parked: dict[str | None, AbstractIncomingMessage] = {}
    for _ in range(2):
        message = await dlq.get(no_ack=True, fail=True)
        assert message is not None
        parked[message.message_id] = message
    assert set(parked) == {str(poison.id), "garbage"}
    assert parked[str(poison.id)].headers[ATTEMPTS_HEADER] == 3
    assert parked[str(poison.id)].headers[DEAD_LETTER_REASON_HEADER] == "max_retries"
    assert EventEnvelope.model_validate_json(parked[str(poison.id)].body) == poison
    assert parked["garbage"].headers[DEAD_LETTER_REASON_HEADER] == "poison"
    assert parked["garbage"].body == b"{not json"


async def test_later_events_flow_while_a_failing_event_is_being_retried(
    infra: TestInfra, scratch: Scratch, names: Names, channel: AbstractChannel
) -> None:
    release = asyncio.Event()
    stuck_failures = 0

    async def fail_until_released(session: AsyncSession, envelope: EventEnvelope) -> None:
        nonlocal stuck_failures
        if not release.is_set():
            stuck_failures += 1
            raise RuntimeError("downstream not ready yet")
        await scratch.apply_effect(session, envelope)

    handlers: dict[str, EventHandler] = {
        "test.stuck": fail_until_released,
        "test.applied": scratch.apply_effect,
    }
    # So many retries that the stuck event cannot reach the DLQ during the test.
    async with running_consumer(
        infra, scratch, names, handlers, max_retries=10_000, retry_delay_ms=100
    ):
        stuck = EventEnvelope(type="test.stuck", producer=PRODUCER, data={})
        await publish(channel, names.exchange, stuck)
        await eventually(lambda: stuck_failures >= 2, "the stuck event to be retried")

        later = [
            EventEnvelope(type="test.applied", producer=PRODUCER, data={"n": n}) for n in range(5)
        ]
        for envelope in later:
            await publish(channel, names.exchange, envelope)

        async def later_handled() -> bool:
            return [await scratch.effect_count(e.id) for e in later] == [1] * len(later)

        await eventually(later_handled, "later events to be handled")
        assert await scratch.effect_count(stuck.id) == 0  # still being retried

        release.set()
        await eventually(lambda: scratch.effect_count_is(stuck.id, 1), "the stuck event")


async def test_database_outage_does_not_use_up_an_events_retries(
    infra: TestInfra, scratch: Scratch, names: Names, channel: AbstractChannel
) -> None:
    # The consumer reaches PostgreSQL through a proxy the test takes down and brings back.
    proxy = TcpProxy(infra.pg_host, infra.pg_port)
    await proxy.open()
    engine = create_engine(
        f"postgresql+asyncpg://postgres@127.0.0.1:{proxy.port}/{infra.database}",
        schema=scratch.schema,
        application_name="events-test-outage",
        pool_size=2,
        max_overflow=0,
    )
    await proxy.close()
    consumer = make_consumer(
        infra,
        scratch,
        names,
        {"test.applied": scratch.apply_effect},
        database=Database(engine),
        max_retries=1,
        retry_delay_ms=50,
    )

    def failures() -> float:
        value = REGISTRY.get_sample_value(
            "flow_event_handler_failures_total",
            {"service": names.service, "event_type": "test.applied"},
        )
        return value or 0.0

    await consumer.start()
    try:
        await eventually(lambda: consumer.is_connected, "the consumer to connect")
        envelope = EventEnvelope(type="test.applied", producer=PRODUCER, data={})
        await publish(channel, names.exchange, envelope)
        await eventually(lambda: failures() >= 4, "attempts during the outage")  # > 1 + 1
        assert await consumer.refresh_dlq_depth() == 0

        await proxy.open()
        await eventually(lambda: scratch.effect_count_is(envelope.id, 1), "the event handled")
        assert await consumer.refresh_dlq_depth() == 0
    finally:
        await consumer.stop()
        await engine.dispose()
        await proxy.close()


async def test_stop_lets_an_in_flight_handler_finish_and_ack(
    infra: TestInfra, scratch: Scratch, names: Names, channel: AbstractChannel
) -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    calls: Counter[uuid.UUID] = Counter()

    async def slow(session: AsyncSession, envelope: EventEnvelope) -> None:
        calls[envelope.id] += 1
        started.set()
        await release.wait()
        await scratch.apply_effect(session, envelope)

    handlers: dict[str, EventHandler] = {"test.slow": slow}
    envelope = EventEnvelope(type="test.slow", producer=PRODUCER, data={})
    consumer = make_consumer(infra, scratch, names, handlers)
    await consumer.start()
    try:
        await eventually(lambda: consumer.is_connected, "the consumer to connect")
        await publish(channel, names.exchange, envelope)
        await asyncio.wait_for(started.wait(), WAIT_SECONDS)
        stopping = asyncio.create_task(consumer.stop())
        await asyncio.sleep(0.2)
        assert not stopping.done()  # stop() waits for the handler in hand
        release.set()
        await asyncio.wait_for(stopping, WAIT_SECONDS)
    finally:
        release.set()
        await consumer.stop()

    assert await scratch.effect_count(envelope.id) == 1
    assert await queue_depth(channel, f"{names.service}.events") == 0

    # A new consumer of the same queue sees no redelivery of the completed event:
    # with prefetch 1 it would reach the handler before the marker published after it.
    async with running_consumer(infra, scratch, names, handlers, prefetch=1):
        marker = EventEnvelope(type="test.slow", producer=PRODUCER, data={"marker": True})
        await publish(channel, names.exchange, marker)
        await eventually(lambda: scratch.effect_count_is(marker.id, 1), "the marker event")
    assert calls == Counter({envelope.id: 1, marker.id: 1})
    assert consumed(names.service, "test.slow", "duplicate") == 0


async def test_a_consumer_waits_for_the_broker_and_reconnects_after_losing_it(
    infra: TestInfra, scratch: Scratch, names: Names, channel: AbstractChannel
) -> None:
    proxy, amqp_url = await broker_down_behind_proxy(infra)
    consumer = make_consumer(
        infra,
        scratch,
        names,
        {"test.applied": scratch.apply_effect},
        amqp_url=amqp_url,
        reconnect_initial_delay=0.05,
        reconnect_max_delay=0.3,
    )
    try:
        await consumer.start()  # returns at once although the broker is unreachable
        assert not consumer.is_connected
        with pytest.raises(BrokerUnavailable):
            await consumer.check_connected()

        await proxy.open()
        await eventually(lambda: consumer.is_connected, "the consumer to connect")
        first = EventEnvelope(type="test.applied", producer=PRODUCER, data={})
        await publish(channel, names.exchange, first)
        await eventually(lambda: scratch.effect_count_is(first.id, 1), "the first event")

        # The broker goes away while the consumer is connected: it notices and reconnects.
        await proxy.close()
        await eventually(lambda: not consumer.is_connected, "the consumer to notice the loss")
        second = EventEnvelope(type="test.applied", producer=PRODUCER, data={})
        await publish(channel, names.exchange, second)  # waits in its durable queue
        await proxy.open()
        await eventually(lambda: scratch.effect_count_is(second.id, 1), "the second event")
        assert consumer.is_connected
    finally:
        await consumer.stop()
        await proxy.close()
    assert await scratch.effect_count(first.id) == 1


async def test_a_broker_connection_that_cannot_open_or_declare_is_left_closed(
    infra: TestInfra, names: Names
) -> None:
    _proxy, amqp_url = await broker_down_behind_proxy(infra)
    down = BrokerConnection(amqp_url)
    with pytest.raises(BrokerUnavailable, match="cannot connect"):
        await down.connect(events_exchange_named(names.exchange))
    assert not down.is_open

    up = BrokerConnection(infra.amqp_url)
    with pytest.raises(BrokerUnavailable, match="cannot open the channel or declare"):
        await up.connect(events_exchange_named(f"{names.exchange}.missing"))
    assert not up.is_open
    assert up.channel is None

    exchange = await up.connect(events_exchange_named(names.exchange))
    try:
        assert exchange.name == names.exchange
        assert up.is_open
        assert not up.lost.is_set()
    finally:
        await up.close()
    assert not up.is_open
    await eventually(lambda: up.lost.is_set(), "the close to be seen")


def events_exchange_named(name: str) -> Callable[[AbstractChannel], Awaitable[AbstractExchange]]:
    async def declare(channel: AbstractChannel) -> AbstractExchange:
        return await events_exchange(channel, name)

    return declare


def test_a_services_registry_holds_one_handler_per_event_type(scratch: Scratch) -> None:
    async def other(session: AsyncSession, envelope: EventEnvelope) -> None:
        return None

    handlers = EventHandlers({"test.one": scratch.apply_effect}, {"test.two": other})
    assert dict(handlers) == {"test.one": scratch.apply_effect, "test.two": other}
    assert len(handlers) == 2
    assert len(EventHandlers()) == 0
    # A second handler for a type would silently replace the first: refused.
    with pytest.raises(ValueError, match=r"two handlers for event type 'test\.one'"):
        EventHandlers({"test.one": scratch.apply_effect}, {"test.one": other})


# -- topology: no event lost on a fresh deploy ------------------------------------------


def topology_of(names: Names, *subscriptions: tuple[str, set[str]]) -> EventTopology:
    """A topology on the test's exchange; service suffixes keep the queues the test's own."""
    return EventTopology(
        names.exchange,
        tuple(
            Subscription(f"{names.service}{suffix}", frozenset(types))
            for suffix, types in subscriptions
        ),
    )


def unroutable(service: str, event_type: str) -> float:
    value = REGISTRY.get_sample_value(
        "flow_events_unroutable_total", {"service": service, "event_type": event_type}
    )
    return value or 0.0


async def publish_mandatory(infra: TestInfra, exchange: str, envelope: EventEnvelope) -> None:
    """Publish as the relay does, mandatory with confirms: raises if nobody is bound."""
    connection = await aio_pika.connect(infra.amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        target = await channel.get_exchange(exchange)
        message = build_event_message(
            envelope.id, envelope.type, envelope.model_dump(mode="json"), PRODUCER
        )
        await target.publish(message, routing_key=envelope.type, mandatory=True)
    finally:
        await connection.close()


async def test_an_event_published_before_its_consumer_ever_started_waits_for_it(
    infra: TestInfra, scratch: Scratch, names: Names, channel: AbstractChannel
) -> None:
    topology = topology_of(names, ("", {"test.early"}))
    [early] = await scratch.add_events(1, event_type="test.early")

    # A fresh deploy: the consumer's queue has never been declared by its consumer.
    relay = make_relay(infra, scratch, names, topology=topology)
    try:
        assert await relay.publish_pending() == 1
    finally:
        await relay.stop()
    assert await scratch.unpublished_ids() == set()
    assert await queue_depth(channel, f"{names.service}.events") == 1
    assert unroutable(names.service, "test.early") == 0

    # The consumer starts later, declares the very same queue, and gets the event.
    handlers: dict[str, EventHandler] = {"test.early": scratch.apply_effect}
    async with running_consumer(infra, scratch, names, handlers, topology=topology):
        await eventually(lambda: scratch.effect_count_is(early, 1), "the early event handled")
    assert await scratch.inbox_has(names.service, early)


async def test_an_event_type_nobody_is_bound_to_stays_in_the_outbox_and_is_counted(
    infra: TestInfra, scratch: Scratch, names: Names, channel: AbstractChannel
) -> None:
    topology = topology_of(names, ("", {"test.bound"}))
    # The unroutable event is the oldest row: it must not hold the others back.
    [orphan] = await scratch.add_events(1, event_type="test.orphan")
    bound = await scratch.add_events(2, event_type="test.bound")

    relay = make_relay(infra, scratch, names, topology=topology, unroutable_retry_seconds=0.5)
    try:
        assert await relay.publish_pending() == 2
        assert await scratch.unpublished_ids() == {orphan}
        assert await queue_depth(channel, f"{names.service}.events") == 2
        assert unroutable(names.service, "test.orphan") == 1
        async with scratch.database.sessionmaker() as session:
            attempts, last_error = (
                await session.execute(
                    select(scratch.outbox.c.attempts, scratch.outbox.c.last_error).where(
                        scratch.outbox.c.event_id == orphan
                    )
                )
            ).one()
        assert attempts == 1
        assert last_error == "unroutable: no queue is bound to test.orphan"
        assert relay.held_unroutable_types() == {"test.orphan"}

        # Held back for a while: the next passes do not hammer the broker with it...
        assert await relay.publish_pending() == 0
        assert unroutable(names.service, "test.orphan") == 1
        # ...and it is tried again later, returned again while still nobody listens.
        await eventually(lambda: not relay.held_unroutable_types(), "the hold to lapse")
        assert await relay.publish_pending() == 0
        assert unroutable(names.service, "test.orphan") == 2
        assert await scratch.unpublished_ids() == {orphan}

        # A consumer of the type appears (a new service deployed): the event goes out.
        late_queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await late_queue.bind(names.exchange, routing_key="test.orphan")
        await eventually(lambda: not relay.held_unroutable_types(), "the hold to lapse")
        assert await relay.publish_pending() == 1
    finally:
        await relay.stop()
    assert await scratch.unpublished_ids() == set()
    message = await late_queue.get(no_ack=True, fail=True)
    assert message is not None
    assert message.message_id == str(orphan)
    assert unroutable(names.service, "test.orphan") == 2
    assert set(bound).isdisjoint(await scratch.unpublished_ids())


async def test_declaring_the_topology_again_changes_nothing_and_loses_nothing(
    infra: TestInfra, scratch: Scratch, names: Names, channel: AbstractChannel
) -> None:
    topology = topology_of(names, ("-a", {"test.one", "test.both"}), ("-b", {"test.both"}))
    await declare_topology_at(infra.amqp_url, topology)
    await declare_topology_at(infra.amqp_url, topology)

    one = EventEnvelope(type="test.one", producer=PRODUCER, data={})
    both = EventEnvelope(type="test.both", producer=PRODUCER, data={})
    await publish_mandatory(infra, names.exchange, one)
    await publish_mandatory(infra, names.exchange, both)
    # Declared again, by the deploy step and by a relay, with events waiting: none is lost
    # and no binding is doubled.
    await declare_topology_at(infra.amqp_url, topology)
    relay = make_relay(infra, scratch, names, topology=topology)
    try:
        assert await relay.publish_pending() == 0
    finally:
        await relay.stop()

    assert await queue_depth(channel, f"{names.service}-a.events") == 2
    assert await queue_depth(channel, f"{names.service}-b.events") == 1
    for suffix in ("-a", "-b"):
        assert await queue_depth(channel, f"{names.service}{suffix}.events.retry") == 0
        assert await queue_depth(channel, f"{names.service}{suffix}.events.dlq") == 0

    # The consumer declares its queues with the same arguments: no conflict, both arrive.
    handlers: dict[str, EventHandler] = {
        "test.one": scratch.apply_effect,
        "test.both": scratch.apply_effect,
    }
    consumer_names = Names(exchange=names.exchange, service=f"{names.service}-a")
    async with running_consumer(infra, scratch, consumer_names, handlers, topology=topology):
        for envelope in (one, both):
            await eventually(lambda e=envelope: scratch.effect_count_is(e.id, 1), "both events")
    assert await queue_depth(channel, f"{names.service}-b.events") == 1


async def test_a_consumer_whose_handlers_differ_from_its_subscription_refuses_to_start(
    infra: TestInfra, scratch: Scratch, names: Names
) -> None:
    topology = topology_of(names, ("", {"test.one", "test.two"}))

    def consumer(handlers: dict[str, EventHandler], service: str) -> EventConsumer:
        service_names = Names(exchange=names.exchange, service=service)
        return make_consumer(infra, scratch, service_names, handlers, topology=topology)

    with pytest.raises(TopologyMismatch, match=r"subscribed but not handled \['test.two'\]"):
        consumer({"test.one": scratch.apply_effect}, names.service)
    with pytest.raises(TopologyMismatch, match=r"handled but not subscribed \['test.three'\]"):
        consumer(
            {
                "test.one": scratch.apply_effect,
                "test.two": scratch.apply_effect,
                "test.three": scratch.apply_effect,
            },
            names.service,
        )
    with pytest.raises(TopologyMismatch, match="has no entry"):
        consumer({"test.one": scratch.apply_effect}, f"{names.service}-unknown")


def test_a_service_whose_handlers_differ_from_the_fleet_table_is_not_built(
    scratch: Scratch,
) -> None:
    settings = BaseServiceSettings(
        _env_file=None,
        service_name="order-service",
        environment="test",
    )
    # A build with another handler set than order-service's entry must fail before it
    # could start a consumer whose queue nobody else declares that way.
    subscribed = FLEET_SUBSCRIPTIONS["order-service"]
    wrong = EventsConfig(
        inbox=scratch.inbox, handlers=EventHandlers({"order.placed": scratch.apply_effect})
    )
    with pytest.raises(
        TopologyMismatch,
        match=re.escape(
            f"handled but not subscribed ['order.placed'], "
            f"subscribed but not handled {sorted(subscribed)}"
        ),
    ):
        create_service_app(settings, title="mismatched", events=wrong)

    right = EventsConfig(
        inbox=scratch.inbox, handlers=EventHandlers(dict.fromkeys(subscribed, scratch.apply_effect))
    )
    assert create_service_app(settings, title="matching", events=right).state.events is right
