"""admin-service hears every event of the platform and projects it once: the audit keeps
each event, order facts only move forward whatever order events arrive in, organisation
facts converge, and a redelivered event is never counted twice."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from asgi_lifespan import LifespanManager
from prometheus_client import REGISTRY

from admin_service.events import REDACTED, event_handlers
from flow_shared.events.envelope import EventEnvelope
from flow_shared.testing.infra import asgi_client
from flow_shared.testing.polling import eventually

if TYPE_CHECKING:
    from conftest import AdminAppFactory, Projection

# SPEC's Events list, and order.failed (order-service's eighth status).
SPEC_EVENTS = {
    "user.registered",
    "organization.verified",
    "organization.suspended",
    "inventory.stock_changed",
    "inventory.low_stock",
    "inventory.reservation_expired",
    "order.placed",
    "order.confirmed",
    "order.rejected",
    "order.dispatched",
    "order.delivered",
    "order.cancelled",
    "order.expired",
    "payment.authorized",
    "payment.failed",
    "payment.captured",
    "payment.refunded",
    "review.created",
}
T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def consumed(event_type: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "flow_events_consumed_total",
        {"service": "admin-service", "event_type": event_type, "outcome": outcome},
    )
    return value or 0.0


def test_admin_service_consumes_every_event_of_the_spec_and_order_failed() -> None:
    assert set(event_handlers()) == SPEC_EVENTS | {
        "order.failed",
        "organization.reinstated",
        "organization.license_expiring",
        # SOS broadcast (order-service): open_sos, and the audit.
        "sos.opened",
        "sos.request",
        "sos.escalated",
        "sos.fulfilled",
        "sos.closed",
        "sos.unfilled",
        "sos.cancelled",
        # Oxygen runway crossings (inventory-service): the audit.
        "supply.runway_low",
        "supply.runway_critical",
        # The cylinder ledger (inventory-service) and its deposits (payment-service).
        "cylinder.returned",
        "payment.deposit_credited",
    }


async def test_every_event_is_kept_in_the_audit_as_it_arrived(projection: Projection) -> None:
    envelope = projection.other_event(
        "inventory.low_stock",
        "inventory-service",
        at=T0,
        depot_id=str(uuid.uuid4()),
        sku="CYL-D",
        available=2,
        low_stock_threshold=5,
    )

    await projection.feed(envelope)

    row = await projection.audit_row(envelope.id)
    assert row is not None
    assert (row.type, row.producer, row.occurred_at) == (
        "inventory.low_stock",
        "inventory-service",
        T0,
    )
    assert row.correlation_id == envelope.correlation_id
    assert row.data == envelope.data


async def test_a_card_token_never_reaches_the_audit(projection: Projection) -> None:
    placed = projection.order_event(
        "placed", uuid.uuid4(), at=T0, payment_method="card", card_token="tok_visa_secret"
    )

    await projection.feed(placed)

    row = await projection.audit_row(placed.id)
    assert row is not None
    assert row.data["card_token"] == REDACTED
    assert row.data["payment_method"] == "card"
    assert "tok_visa_secret" not in str(row.data)


async def test_the_same_event_handled_twice_counts_once(projection: Projection) -> None:
    order_id = uuid.uuid4()
    placed = projection.order_event("placed", order_id, at=T0, total="250.00")
    delivered = [
        projection.order_event("confirmed", order_id, at=T0 + timedelta(minutes=5)),
        projection.order_event("dispatched", order_id, at=T0 + timedelta(minutes=10)),
        projection.order_event("delivered", order_id, at=T0 + timedelta(minutes=40)),
    ]

    await projection.feed(placed, *delivered)
    # Every event again (a redelivery, or a replay that bypassed the inbox).
    await projection.feed(placed, *delivered)

    assert await projection.count("events") == 4
    assert await projection.count("order_facts") == 1
    fact = await projection.order(order_id)
    assert fact is not None
    assert (fact.status, fact.total, fact.delivered_at) == (
        "delivered",
        Decimal("250.00"),
        T0 + timedelta(minutes=40),
    )


async def test_order_events_out_of_order_never_move_an_order_backwards(
    projection: Projection,
) -> None:
    order_id, hospital, vendor = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    times = {
        "placed": T0,
        "confirmed": T0 + timedelta(minutes=3),
        "dispatched": T0 + timedelta(minutes=20),
        "delivered": T0 + timedelta(minutes=55),
    }
    events = {
        status: projection.order_event(
            status,
            order_id,
            at=at,
            hospital_org_id=hospital,
            vendor_id=vendor,
            priority="emergency",
            total="1250.00",
            currency="EUR",
        )
        for status, at in times.items()
    }

    # Delivered first, confirmed after it, placed last.
    await projection.feed(events["delivered"], events["confirmed"])
    fact = await projection.order(order_id)
    assert fact is not None
    assert fact.status == "delivered"
    assert (fact.confirmed_at, fact.delivered_at) == (times["confirmed"], times["delivered"])
    assert fact.placed_at is None

    await projection.feed(events["dispatched"], events["placed"])

    fact = await projection.order(order_id)
    assert fact is not None
    assert fact.status == "delivered"
    assert (fact.placed_at, fact.confirmed_at, fact.delivered_at) == (
        times["placed"],
        times["confirmed"],
        times["delivered"],
    )
    assert fact.updated_at == times["delivered"]
    assert (fact.hospital_org_id, fact.vendor_id) == (hospital, vendor)
    assert (fact.priority, fact.total, fact.currency) == ("emergency", Decimal("1250.00"), "EUR")


async def test_a_late_placed_event_does_not_reopen_a_cancelled_order(
    projection: Projection,
) -> None:
    order_id = uuid.uuid4()
    cancelled = projection.order_event(
        "cancelled", order_id, at=T0 + timedelta(minutes=2), reason="no longer needed"
    )
    placed = projection.order_event("placed", order_id, at=T0)

    await projection.feed(cancelled, placed)

    fact = await projection.order(order_id)
    assert fact is not None
    assert (fact.status, fact.placed_at) == ("cancelled", T0)


async def test_events_of_many_orders_handled_concurrently_all_land(
    projection: Projection,
) -> None:
    # The consumer runs handlers side by side; upserts must not lose a concurrent change.
    orders = [uuid.uuid4() for _ in range(12)]
    steps = {"placed": 0, "confirmed": 4, "dispatched": 9, "delivered": 33}
    events = [
        projection.order_event(status, order_id, at=T0 + timedelta(minutes=minutes))
        for order_id in orders
        for status, minutes in steps.items()
    ]
    random.Random(7).shuffle(events)
    limit = asyncio.Semaphore(6)

    async def feed(envelope: EventEnvelope) -> None:
        async with limit:
            await projection.feed(envelope)

    await asyncio.gather(*(feed(envelope) for envelope in events))

    for order_id in orders:
        fact = await projection.order(order_id)
        assert fact is not None
        assert (fact.status, fact.placed_at, fact.confirmed_at, fact.delivered_at) == (
            "delivered",
            T0,
            T0 + timedelta(minutes=4),
            T0 + timedelta(minutes=33),
        )
    assert await projection.count("events") == len(events)


async def test_organisation_facts_converge_whatever_the_delivery_order(
    projection: Projection,
) -> None:
    vendor = uuid.uuid4()
    registered = projection.user_registered(vendor, "vendor", verified=False, at=T0, name="Oxy Ltd")
    verified = projection.organization_event(
        "verified", vendor, at=T0 + timedelta(hours=1), name="Oxy Ltd"
    )
    suspended = projection.organization_event(
        "suspended", vendor, at=T0 + timedelta(hours=2), name="Oxy Holdings"
    )

    # Suspension arrives first, registration last.
    await projection.feed(suspended, verified, registered)

    fact = await projection.org(vendor)
    assert fact is not None
    assert (fact.kind, fact.verified, fact.suspended) == ("vendor", True, True)
    # The name comes from the newest event, not the last to arrive.
    assert fact.name == "Oxy Holdings"


async def test_the_consumer_projects_an_event_from_the_broker_and_ignores_its_redelivery(
    admin_app_for: AdminAppFactory, projection: Projection
) -> None:
    app = admin_app_for()
    order_id = uuid.uuid4()
    placed = projection.order_event("placed", order_id, at=datetime.now(UTC), total="80.50")

    async with LifespanManager(app):
        consumer = app.state.consumer

        async def connected() -> bool:
            return bool(consumer.is_connected)

        await eventually(connected, "the consumer to connect to the broker")
        await projection.publish(placed)

        async def projected() -> bool:
            return await projection.order(order_id) is not None

        await eventually(projected, "order.placed to reach the projection")

        # The broker hands the same event over again: the inbox makes it a no-op.
        duplicates = consumed("order.placed", "duplicate")
        await projection.publish(placed)

        async def seen_again() -> bool:
            return consumed("order.placed", "duplicate") > duplicates

        await eventually(seen_again, "the redelivered event to be consumed")

    assert await projection.inbox_count(placed.id) == 1
    assert await projection.audit_count(placed.id) == 1
    fact = await projection.order(order_id)
    assert fact is not None
    assert (fact.status, fact.total) == ("placed", Decimal("80.50"))


async def test_oxygen_runway_crossings_from_the_broker_are_audited_once(
    admin_app_for: AdminAppFactory, projection: Projection
) -> None:
    app = admin_app_for()
    site_id, hospital = str(uuid.uuid4()), str(uuid.uuid4())
    crossings = [
        projection.other_event(
            f"supply.runway_{level}",
            "inventory-service",
            at=datetime.now(UTC),
            site_id=site_id,
            hospital_org_id=hospital,
            site_name="Main theatre",
            level=level,
            hours_left=hours,
            runs_out_at="2026-12-08T14:30:00Z",
            gas_liters=18838.0,
            consumption_lpm=17.0,
            alert_hours=24.0,
            critical_hours=6.0,
            as_of="2026-12-07T20:02:36Z",
        )
        for level, hours in (("low", 18.46), ("critical", 5.9))
    ]

    async with LifespanManager(app):
        consumer = app.state.consumer

        async def connected() -> bool:
            return bool(consumer.is_connected)

        await eventually(connected, "the consumer to connect to the broker")
        for envelope in crossings:
            await projection.publish(envelope)

        async def audited() -> bool:
            rows = [await projection.audit_row(envelope.id) for envelope in crossings]
            return all(row is not None for row in rows)

        await eventually(audited, "both runway crossings to reach the audit")

        # Delivered again: the inbox makes it a no-op.
        duplicates = consumed("supply.runway_low", "duplicate")
        await projection.publish(crossings[0])

        async def seen_again() -> bool:
            return consumed("supply.runway_low", "duplicate") > duplicates

        await eventually(seen_again, "the redelivered crossing to be consumed")

    for envelope in crossings:
        row = await projection.audit_row(envelope.id)
        assert row is not None
        assert (row.type, row.producer, row.data) == (
            envelope.type,
            "inventory-service",
            envelope.data,
        )
        assert await projection.audit_count(envelope.id) == 1


async def test_stats_from_broker_events_survive_a_restart(
    admin_app_for: AdminAppFactory, projection: Projection, platform_admin: dict[str, str]
) -> None:
    now = datetime.now(UTC)
    events = [
        projection.order_event("placed", uuid.uuid4(), at=now, priority="emergency")
        for _ in range(3)
    ]

    app = admin_app_for()
    async with LifespanManager(app):
        consumer = app.state.consumer

        async def connected() -> bool:
            return bool(consumer.is_connected)

        await eventually(connected, "the consumer to connect to the broker")
        for envelope in events:
            await projection.publish(envelope)

        async def all_projected() -> bool:
            return await projection.count("order_facts") == len(events)

        await eventually(all_projected, "every order.placed to reach the projection")

    # A new process reads the same figures: they live in the database, not in memory.
    async with asgi_client(admin_app_for()) as client:
        response = await client.get("/api/v1/admin/stats", headers=platform_admin)
    assert response.status_code == 200
    body = response.json()
    assert body["orders_by_status"]["placed"] == 3
    assert body["open_emergency_orders"] == 3
