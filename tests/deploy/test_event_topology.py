"""The event topology a deploy declares (flow_shared.events.topology), against the fleet.

Its routing table is what every service really consumes: each service is built as
`make up` configures it (scripts/flowctl.py's environment from .env.example) and its
event handlers are compared with its entry. Its publications table is what every
service really writes (add_event refuses anything else at run time; here, each
service's event-type constants against its entry), and every event service is started
as its own broker user (flow_shared.events.access). And `flowctl topology` (which `make migrate`
and `make up` run) declares, on a real RabbitMQ vhost of its own and idempotently, every
consumer's queue bound to every type it consumes, before any service has started.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import re
import subprocess
import sys
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import pytest
from fastapi import FastAPI

from flow_shared.events.access import broker_services
from flow_shared.events.envelope import EventEnvelope
from flow_shared.events.relay import build_event_message
from flow_shared.events.topology import (
    EVENTS_EXCHANGE,
    FLEET_PUBLICATIONS,
    FLEET_SUBSCRIPTIONS,
    fleet_topology,
)
from flow_shared.services import ServiceSpec, load_service_specs
from flow_shared.testing.infra import create_vhost, delete_vhost

ROOT = Path(__file__).resolve().parents[2]
FLOWCTL = ROOT / "scripts" / "flowctl.py"
SPECS = load_service_specs(ROOT)
DEFAULT_AMQP_BASE_URL = "amqp://guest:guest@127.0.0.1:5672/"


def handled_event_types(app: FastAPI) -> set[str]:
    """What the service's consumer handles, read from the app `create_app` builds."""
    events = app.state.events
    # Handlers without an inbox are never consumed (create_service_app starts no consumer).
    return set(events.handlers) if events.inbox is not None else set()


@pytest.mark.parametrize("spec", SPECS, ids=[spec.name for spec in SPECS])
def test_the_routing_table_is_what_each_service_consumes(
    spec: ServiceSpec, fleet_apps: dict[str, FastAPI]
) -> None:
    expected = FLEET_SUBSCRIPTIONS.get(spec.name, frozenset())

    assert handled_event_types(fleet_apps[spec.name]) == expected


def test_the_routing_table_names_only_services_of_the_fleet() -> None:
    assert set(FLEET_SUBSCRIPTIONS) <= {spec.name for spec in SPECS}
    assert set(FLEET_PUBLICATIONS) <= {spec.name for spec in SPECS}


def written_event_types(spec: ServiceSpec) -> set[str]:
    """The event types `<package>.events` names (upper-case constants such as
    `LOW_STOCK = "inventory.low_stock"`) and, for order-service, `order.<status>` for
    every status (its events module derives the type from the status)."""
    try:
        events = importlib.import_module(f"{spec.package}.events")
    except ModuleNotFoundError:
        return set()
    found = {
        value
        for name, value in vars(events).items()
        if name.isupper() and isinstance(value, str) and re.fullmatch(r"[a-z_]+\.[a-z_]+", value)
    }
    if spec.name == "order-service":
        from order_service.models import OrderStatus

        found |= {events.event_type(status) for status in OrderStatus}
    return found


@pytest.mark.parametrize("spec", SPECS, ids=[spec.name for spec in SPECS])
def test_the_publications_table_is_what_each_service_writes(spec: ServiceSpec) -> None:
    # Constants of types it consumes (handlers' keys) are not its own events.
    written = written_event_types(spec) - FLEET_SUBSCRIPTIONS.get(spec.name, frozenset())

    assert written == FLEET_PUBLICATIONS.get(spec.name, frozenset())


def test_every_subscribed_event_type_has_a_publisher() -> None:
    published = set().union(*FLEET_PUBLICATIONS.values())
    for service, event_types in FLEET_SUBSCRIPTIONS.items():
        # Its broker user could bind it, but nobody could ever publish it.
        assert event_types <= published, f"{service}: {sorted(event_types - published)}"


@pytest.mark.parametrize("spec", SPECS, ids=[spec.name for spec in SPECS])
def test_each_event_service_runs_as_its_own_broker_user(
    spec: ServiceSpec, flowctl_env: dict[str, dict[str, str]]
) -> None:
    env = flowctl_env[spec.name]
    main = ROOT / spec.name / "src" / spec.package / "main.py"
    uses_events = "EventsConfig(" in main.read_text()

    assert (spec.name in broker_services()) == uses_events
    if uses_events:
        url = urllib.parse.urlsplit(env["AMQP_URL"])
        assert url.username == f"flow-{spec.name}"
        assert url.password == flowctl_env[spec.name][f"AMQP_PASSWORD_{spec.short}"]
    else:
        # Never connects, so gets no URL (the admin's would otherwise be inherited).
        assert "AMQP_URL" not in env


# -- the deploy step -------------------------------------------------------------------------


@pytest.fixture
def vhost_url() -> Iterator[str]:
    """A RabbitMQ vhost of its own, as a fresh deploy's broker is: nothing declared yet."""
    vhost = f"flow-topology-{uuid.uuid4().hex[:8]}"
    base = os.environ.get("FLOW_TEST_AMQP_URL", DEFAULT_AMQP_BASE_URL)
    create_vhost(vhost)
    try:
        yield base.rstrip("/") + "/" + urllib.parse.quote(vhost, safe="")
    finally:
        delete_vhost(vhost)


def run_flowctl_topology(env_file: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(FLOWCTL), "topology", "--env-file", str(env_file)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


async def publish_every_type_and_count(amqp_url: str) -> dict[str, int]:
    """Publish one mandatory event of each consumed type; return each queue's depth."""
    topology = fleet_topology()
    event_types = sorted({t for s in topology.subscriptions for t in s.event_types})
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        # Passive: the step must have declared it; this test declares nothing itself.
        exchange = await channel.get_exchange(EVENTS_EXCHANGE, ensure=True)
        for event_type in event_types:
            envelope = EventEnvelope(type=event_type, producer="topology-test", data={})
            message = build_event_message(
                envelope.id, event_type, envelope.model_dump(mode="json"), "topology-test"
            )
            await exchange.publish(message, routing_key=event_type, mandatory=True)
        depths: dict[str, int] = {}
        for subscription in topology.subscriptions:
            for name in (
                subscription.queue,
                subscription.retry_queue,
                subscription.dead_letter_queue,
            ):
                queue = await channel.declare_queue(name, passive=True)
                depths[name] = int(queue.declaration_result.message_count or 0)
        return depths
    finally:
        await connection.close()


def test_flowctl_declares_every_consumers_queue_before_any_service_starts(
    vhost_url: str, tmp_path: Path
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(f"AMQP_URL={vhost_url}\n")

    run_flowctl_topology(env_file)
    run_flowctl_topology(env_file)  # every deploy runs it again

    depths = asyncio.run(publish_every_type_and_count(vhost_url))
    expected: dict[str, int] = {}
    for subscription in fleet_topology().subscriptions:
        expected[subscription.queue] = len(subscription.event_types)
        expected[subscription.retry_queue] = 0
        expected[subscription.dead_letter_queue] = 0
    assert depths == expected

    # A third run with events waiting (a redeploy) keeps them all.
    run_flowctl_topology(env_file)
    assert asyncio.run(publish_every_type_and_count(vhost_url)) == {
        name: 2 * count for name, count in expected.items()
    }
