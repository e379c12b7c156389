"""Each service's own broker user, against the real RabbitMQ (issue 12, finding 9).

Promises: provisioning (through the management API) is idempotent; a service's user may
publish exactly its own event types to `flow.events`, never into another service's
queue through the default exchange, and may read only its own queues; under exactly
those rights a consumer connects, handles, retries through its moves exchange,
dead-letters after its retries, and its dead letters can be replayed. And the rights
themselves, as regexes, are exactly what the topology's tables say.

Each test module run provisions a vhost of its own. The users are the fleet's real ones
(users are global in RabbitMQ), with .env.example's passwords, so a fleet running side
by side (which provisions the same users with the same passwords) is not disturbed.
"""

from __future__ import annotations

import asyncio
import os
import re
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import aio_pika
import aiormq.exceptions
import httpx
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.db import Database
from flow_shared.events.access import (
    BrokerAccount,
    BrokerPermissions,
    accounts_from,
    broker_permissions,
    broker_services,
    provision_broker,
    service_amqp_url,
)
from flow_shared.events.consumer import EventConsumer, replay_dead_letters
from flow_shared.events.envelope import EventEnvelope
from flow_shared.events.outbox import define_inbox_table
from flow_shared.events.relay import build_event_message
from flow_shared.events.topology import EVENTS_EXCHANGE, FLEET_PUBLICATIONS, fleet_topology
from flow_shared.testing.envfiles import parse_env
from flow_shared.testing.infra import delete_vhost
from flow_shared.testing.polling import eventually

if TYPE_CHECKING:
    from conftest import ScratchEffects, ScratchSchema


ROOT = Path(__file__).resolve().parents[2]
MANAGEMENT_URL = os.environ.get("FLOW_TEST_RABBITMQ_MANAGEMENT_URL", "http://127.0.0.1:15672")
ADMIN_AMQP_BASE = os.environ.get("FLOW_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


@dataclass(frozen=True)
class Broker:
    vhost: str
    admin_url: str
    admin_user: str
    admin_password: str
    accounts: dict[str, BrokerAccount]

    def url(self, service: str) -> str:
        return service_amqp_url(self.admin_url, self.accounts[service])

    async def provision(self) -> None:
        await provision_broker(
            MANAGEMENT_URL,
            self.admin_user,
            self.admin_password,
            self.vhost,
            list(self.accounts.values()),
            amqp_url=self.admin_url,
        )


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    vhost = f"flow-access-{uuid.uuid4().hex[:8]}"
    parsed = urllib.parse.urlsplit(ADMIN_AMQP_BASE)
    broker = Broker(
        vhost=vhost,
        admin_url=ADMIN_AMQP_BASE.rstrip("/") + "/" + urllib.parse.quote(vhost, safe=""),
        admin_user=urllib.parse.unquote(parsed.username or "guest"),
        admin_password=urllib.parse.unquote(parsed.password or "guest"),
        accounts={a.service: a for a in accounts_from(parse_env(ROOT / ".env.example"))},
    )
    try:
        # The vhost does not exist yet: provisioning creates it.
        asyncio.run(broker.provision())
        yield broker
    finally:
        delete_vhost(vhost)


# -- the rights, as regexes ---------------------------------------------------------------


# Tables of their own: the fleet's grow while these regexes stay exact.
PUBLICATIONS = {
    "order-service": frozenset({"order.placed", "order.cancelled"}),
    "user-service": frozenset({"user.registered", "organization.verified"}),
}
SUBSCRIPTIONS = {"order-service": frozenset({"payment.failed"})}


def test_a_consumer_that_publishes_may_touch_only_its_own_queues_and_event_types() -> None:
    own = (
        r"order\-service\.events|order\-service\.events\.retry|order\-service\.events\.dlq"
        r"|order\-service\.events\.moves"
    )
    assert broker_permissions(
        "order-service", publications=PUBLICATIONS, subscriptions=SUBSCRIPTIONS
    ) == BrokerPermissions(
        configure=f"^({own})$",
        write=rf"^(flow\.events|{own})$",
        read=rf"^(flow\.events|{own})$",
        topic_exchange="flow.events",
        topic_write=r"^(order\.cancelled|order\.placed)$",
        topic_read=r"^(payment\.failed)$",
    )


def test_a_pure_publisher_may_only_publish_its_event_types() -> None:
    assert broker_permissions(
        "user-service", publications=PUBLICATIONS, subscriptions=SUBSCRIPTIONS
    ) == BrokerPermissions(
        configure="^$",
        write=r"^(flow\.events)$",
        read="^$",
        topic_exchange="flow.events",
        topic_write=r"^(organization\.verified|user\.registered)$",
        topic_read="^$",
    )


def test_a_service_on_no_side_of_the_bus_may_do_nothing() -> None:
    nothing = broker_permissions("pricing-service", publications={}, subscriptions={})
    assert {nothing.configure, nothing.write, nothing.read} == {"^$"}
    assert (nothing.topic_write, nothing.topic_read) == ("^$", "^$")


def test_the_fleets_rights_follow_its_tables() -> None:
    rights = broker_permissions("order-service")
    topic_write = re.compile(rights.topic_write)
    assert all(topic_write.fullmatch(t) for t in FLEET_PUBLICATIONS["order-service"])
    assert not topic_write.fullmatch("payment.captured")
    assert not re.fullmatch(rights.write, "amq.default")
    assert not re.fullmatch(rights.write, "")  # the default exchange's name in AMQP


def test_every_service_that_publishes_or_consumes_gets_an_account() -> None:
    topology = fleet_topology()
    users = set(broker_services())
    assert set(FLEET_PUBLICATIONS) | {s.service for s in topology.subscriptions} == users
    # .env.example carries a password for each (accounts_from raises otherwise).
    assert {a.service for a in accounts_from(parse_env(ROOT / ".env.example"))} == users


# -- provisioning --------------------------------------------------------------------------


async def test_provisioning_is_idempotent_and_grants_exactly_the_computed_rights(
    broker: Broker,
) -> None:
    await broker.provision()  # the fixture ran it once already: every deploy runs it again

    async with httpx.AsyncClient(
        base_url=MANAGEMENT_URL, auth=(broker.admin_user, broker.admin_password)
    ) as client:
        vhost = urllib.parse.quote(broker.vhost, safe="")
        for service, account in broker.accounts.items():
            rights = broker_permissions(service)
            user = (await client.get(f"/api/users/{account.user}")).json()
            assert user["tags"] in ([], ""), service
            granted = (await client.get(f"/api/permissions/{vhost}/{account.user}")).json()
            assert (granted["configure"], granted["write"], granted["read"]) == (
                rights.configure,
                rights.write,
                rights.read,
            )
            topic = (await client.get(f"/api/topic-permissions/{vhost}/{account.user}")).json()
            assert [(t["exchange"], t["write"], t["read"]) for t in topic] == [
                (EVENTS_EXCHANGE, rights.topic_write, rights.topic_read)
            ]

    # And the topology the admin declared is there, once.
    connection = await aio_pika.connect(broker.admin_url)
    try:
        channel = await connection.channel()
        await channel.get_exchange(EVENTS_EXCHANGE, ensure=True)
        for subscription in fleet_topology().subscriptions:
            await channel.get_exchange(subscription.moves_exchange, ensure=True)
            for queue in subscription.queues:
                await channel.declare_queue(queue, passive=True)
    finally:
        await connection.close()


# -- what order-service's user may and may not do ------------------------------------------


@pytest.fixture
async def as_order_service(broker: Broker) -> AsyncIterator[AbstractRobustConnection]:
    connection = await aio_pika.connect_robust(broker.url("order-service"))
    try:
        yield connection
    finally:
        await connection.close()


def event_message(event_type: str) -> aio_pika.Message:
    envelope = EventEnvelope(type=event_type, producer="order-service", data={})
    return build_event_message(
        envelope.id, event_type, envelope.model_dump(mode="json"), "order-service"
    )


async def confirming_channel(connection: AbstractRobustConnection) -> AbstractChannel:
    return await connection.channel(publisher_confirms=True, on_return_raises=True)


async def test_a_service_publishes_its_own_event_types(
    as_order_service: AbstractRobustConnection,
) -> None:
    channel = await confirming_channel(as_order_service)
    exchange = await channel.get_exchange(EVENTS_EXCHANGE, ensure=True)

    confirmation = await exchange.publish(
        event_message("order.placed"), routing_key="order.placed", mandatory=True
    )

    assert isinstance(confirmation, aiormq.abc.ConfirmationFrameType)
    assert confirmation.name == "Basic.Ack"


async def test_a_service_may_not_publish_another_services_event_type(
    as_order_service: AbstractRobustConnection,
) -> None:
    channel = await confirming_channel(as_order_service)
    exchange = await channel.get_exchange(EVENTS_EXCHANGE, ensure=True)

    with pytest.raises(aiormq.exceptions.ChannelAccessRefused, match=r"payment\.captured"):
        await exchange.publish(
            event_message("payment.captured"), routing_key="payment.captured", mandatory=True
        )


async def test_a_service_may_not_write_into_another_services_queue_directly(
    as_order_service: AbstractRobustConnection,
) -> None:
    channel = await confirming_channel(as_order_service)

    with pytest.raises(aiormq.exceptions.ChannelAccessRefused, match=r"amq\.default"):
        await channel.default_exchange.publish(
            event_message("order.placed"), routing_key="payment-service.events"
        )


async def test_a_service_may_not_read_another_services_queue(
    as_order_service: AbstractRobustConnection,
) -> None:
    channel = await as_order_service.channel()
    queue = await channel.declare_queue("payment-service.events", passive=True)

    async def steal(message: AbstractIncomingMessage) -> None:
        raise AssertionError("order-service read payment-service's event")

    with pytest.raises(aiormq.exceptions.ChannelAccessRefused, match=r"payment-service\.events"):
        await queue.consume(steal)


async def test_a_service_may_not_bind_its_queue_to_event_types_it_does_not_consume(
    as_order_service: AbstractRobustConnection,
) -> None:
    channel = await as_order_service.channel()
    exchange = await channel.get_exchange(EVENTS_EXCHANGE, ensure=True)
    queue = await channel.declare_queue("order-service.events", passive=True)

    with pytest.raises(aiormq.exceptions.ChannelAccessRefused, match=r"order\.placed"):
        await queue.bind(exchange, routing_key="order.placed")


async def test_a_service_reads_its_own_queue(
    broker: Broker, as_order_service: AbstractRobustConnection
) -> None:
    admin = await aio_pika.connect(broker.admin_url)
    try:
        admin_channel = await admin.channel(publisher_confirms=True)
        exchange = await admin_channel.get_exchange(EVENTS_EXCHANGE, ensure=True)
        marker = event_message("payment.failed")
        await exchange.publish(marker, routing_key="payment.failed", mandatory=True)
    finally:
        await admin.close()

    channel = await as_order_service.channel()
    queue = await channel.declare_queue("order-service.events", passive=True)
    received = await queue.get(no_ack=True, fail=True, timeout=10)
    assert received is not None
    assert received.message_id == marker.message_id


# -- a consumer running as its own user ---------------------------------------------------


@dataclass
class Inbox:
    database: Database
    inbox: Table
    effects: ScratchEffects

    async def effects_of(self, event_id: uuid.UUID) -> int:
        return await self.effects.count(self.database, event_id)

    async def handled(self, event_id: uuid.UUID) -> bool:
        return await self.effects_of(event_id) == 1


@pytest.fixture
async def inbox(scratch_schema: ScratchSchema, scratch_effects: ScratchEffects) -> Inbox:
    inbox = define_inbox_table(scratch_schema.metadata)
    await scratch_schema.create_tables()
    engine = scratch_schema.engine("broker-access-test", pool_size=2, max_overflow=2)
    return Inbox(Database(engine), inbox, scratch_effects)


async def publish_as(broker: Broker, service: str, envelope: EventEnvelope) -> None:
    """Publish as the producing service's own user (payment-service publishes payment.*)."""
    connection = await aio_pika.connect(broker.url(service))
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.get_exchange(EVENTS_EXCHANGE, ensure=True)
        message = build_event_message(
            envelope.id, envelope.type, envelope.model_dump(mode="json"), service
        )
        await exchange.publish(message, routing_key=envelope.type, mandatory=True)
    finally:
        await connection.close()


async def queue_depth(broker: Broker, name: str) -> int:
    connection = await aio_pika.connect(broker.admin_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, passive=True)
        return int(queue.declaration_result.message_count or 0)
    finally:
        await connection.close()


async def test_a_consumer_handles_retries_dead_letters_and_replays_as_its_own_user(
    broker: Broker, inbox: Inbox
) -> None:
    subscription = fleet_topology().subscription("order-service")
    failures_left: dict[uuid.UUID, int] = {}
    attempts_seen: dict[uuid.UUID, list[int]] = {}

    async def on_payment_failed(session: AsyncSession, envelope: EventEnvelope) -> None:
        attempts_seen.setdefault(envelope.id, []).append(1)
        if failures_left.get(envelope.id, 0) > 0:
            failures_left[envelope.id] -= 1
            raise RuntimeError("handler not ready yet")
        await inbox.effects.apply(session, envelope)

    consumer = EventConsumer(
        database=inbox.database,
        inbox=inbox.inbox,
        amqp_url=broker.url("order-service"),
        exchange=EVENTS_EXCHANGE,
        service="order-service",
        # Whatever order-service consumes (the fleet's entry), handled alike here.
        handlers=dict.fromkeys(subscription.event_types, on_payment_failed),
        topology=fleet_topology(),
        max_retries=2,
        retry_delay_ms=100,
    )
    # Whatever earlier tests left in the queue is no concern of this one.
    connection = await aio_pika.connect(broker.admin_url)
    try:
        channel = await connection.channel()
        for name in subscription.queues:
            await (await channel.declare_queue(name, passive=True)).purge()
    finally:
        await connection.close()

    await consumer.start()
    try:
        await eventually(lambda: consumer.is_connected, "the consumer to connect as its user")

        # Handled at once.
        handled = EventEnvelope(type="payment.failed", producer="payment-service", data={})
        await publish_as(broker, "payment-service", handled)
        await eventually(lambda: inbox.handled(handled.id), "the event to be handled")

        # Fails twice, then succeeds: two trips through order-service.events.moves.
        flaky = EventEnvelope(type="payment.failed", producer="payment-service", data={})
        failures_left[flaky.id] = 2
        await publish_as(broker, "payment-service", flaky)
        await eventually(lambda: inbox.handled(flaky.id), "the retried event to be handled")
        assert len(attempts_seen[flaky.id]) == 3

        # Fails more often than allowed: the first attempt and two retries, then the DLQ.
        poison = EventEnvelope(type="payment.failed", producer="payment-service", data={})
        failures_left[poison.id] = 1000
        await publish_as(broker, "payment-service", poison)

        async def dead_lettered() -> bool:
            return await queue_depth(broker, subscription.dead_letter_queue) == 1

        await eventually(dead_lettered, "the event to be dead-lettered")
        assert len(attempts_seen[poison.id]) == 3
        assert await inbox.effects_of(poison.id) == 0

        # Fixed: replayed by the service's own user, it gets fresh attempts and is handled.
        failures_left[poison.id] = 0
        moved = await replay_dead_letters(broker.url("order-service"), subscription)
        assert moved == 1
        await eventually(lambda: inbox.handled(poison.id), "the replayed event to be handled")
        assert await queue_depth(broker, subscription.dead_letter_queue) == 0
        assert await queue_depth(broker, subscription.retry_queue) == 0
        assert await consumer.refresh_dlq_depth() == 0
    finally:
        await consumer.stop()
