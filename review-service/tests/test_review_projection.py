"""Eligibility comes from order-service's `order.placed` and `order.delivered` events:
local projections, filled by the consumer, where a redelivered event has no second effect."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from prometheus_client import REGISTRY

from flow_shared.testing.broker import publish_envelope
from flow_shared.testing.infra import TestInfra

if TYPE_CHECKING:
    from conftest import Reviews

BROKER_DEADLINE_SECONDS = 30.0


async def test_the_handler_projects_a_delivered_order_once_however_often_it_runs(
    reviews: Reviews,
) -> None:
    hospital, vendor_id, order_id = reviews.hospital(), uuid.uuid4(), uuid.uuid4()
    delivered_at = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    envelope = reviews.order_delivered(order_id, hospital.org_id, vendor_id, at=delivered_at)

    await reviews.handle(envelope)
    await reviews.handle(envelope)  # the same envelope again: no error, no second row

    rows = await reviews.delivered_rows(order_id)
    assert len(rows) == 1
    row = rows[0]
    assert (row.order_id, row.hospital_org_id, row.vendor_id) == (
        order_id,
        hospital.org_id,
        vendor_id,
    )
    assert row.delivered_at == delivered_at


async def test_a_later_event_for_a_projected_order_does_not_change_it(reviews: Reviews) -> None:
    hospital, vendor_id, order_id = reviews.hospital(), uuid.uuid4(), uuid.uuid4()
    first_at = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    await reviews.handle(reviews.order_delivered(order_id, hospital.org_id, vendor_id, at=first_at))
    # A different envelope (new id) for the same order, e.g. re-published by a replay.
    await reviews.handle(
        reviews.order_delivered(
            order_id, reviews.hospital().org_id, uuid.uuid4(), at=first_at + timedelta(hours=1)
        )
    )

    rows = await reviews.delivered_rows(order_id)
    assert [(r.hospital_org_id, r.vendor_id, r.delivered_at) for r in rows] == [
        (hospital.org_id, vendor_id, first_at)
    ]


def _consumed(outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "flow_events_consumed_total",
        {"service": "review-service", "event_type": "order.delivered", "outcome": outcome},
    )
    return value or 0.0


async def _wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + BROKER_DEADLINE_SECONDS
    while not await condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


async def test_the_consumer_takes_order_delivered_from_the_broker_and_ignores_a_redelivery(
    app: FastAPI, reviews: Reviews, infra: TestInfra
) -> None:
    async def connected() -> bool:
        return bool(app.state.consumer.is_connected)

    await _wait_for(connected, "the consumer never connected")
    hospital, vendor_id, order_id = reviews.hospital(), uuid.uuid4(), uuid.uuid4()
    envelope = reviews.order_delivered(order_id, hospital.org_id, vendor_id)

    # Before any event, the order is unknown here.
    early = await reviews.post_review(hospital, order_id, 4)
    assert early.status_code == 404, early.text

    # order.placed reaches the consumer too: its hospital now hears "not delivered yet".
    await publish_envelope(
        infra.amqp_url,
        app.state.settings.events_exchange,
        reviews.order_placed(order_id, hospital.org_id, vendor_id),
    )

    async def known_as_undelivered() -> bool:
        return (await reviews.post_review(hospital, order_id, 4)).status_code == 409

    await _wait_for(known_as_undelivered, "order.placed never reached the projection")

    await publish_envelope(infra.amqp_url, app.state.settings.events_exchange, envelope)

    async def projected() -> bool:
        return len(await reviews.delivered_rows(order_id)) == 1

    await _wait_for(projected, "order.delivered never reached the projection")

    # The broker delivers the same event again: the inbox makes it a no-op.
    duplicates = _consumed("duplicate")
    await publish_envelope(infra.amqp_url, app.state.settings.events_exchange, envelope)

    async def seen_as_duplicate() -> bool:
        return _consumed("duplicate") > duplicates

    await _wait_for(seen_as_duplicate, "the redelivered event was never consumed")
    assert len(await reviews.delivered_rows(order_id)) == 1
    assert await reviews.inbox_count(envelope.id) == 1

    # And now the hospital it was delivered to may review it.
    created = await reviews.post_review(hospital, order_id, 4)
    assert created.status_code == 201, created.text
    assert created.json()["vendor_id"] == str(vendor_id)
