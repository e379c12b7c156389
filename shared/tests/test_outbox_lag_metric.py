"""The relay reports how far publication lags: pending rows and the oldest one's age.

The outbox-lag alert and the outbox dashboard read `flow_outbox_oldest_pending_age_seconds`;
it must be the age of the oldest *unpublished* row, and 0 once everything is published.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Table, func, insert

from flow_shared.db import Database
from flow_shared.events.outbox import define_outbox_table
from flow_shared.events.relay import OutboxRelay
from flow_shared.events.topology import EventTopology, Subscription

if TYPE_CHECKING:
    from conftest import ScratchSchema

    from flow_shared.testing.infra import TestInfra

TEN_MINUTES = timedelta(minutes=10)


@dataclass
class ScratchOutbox:
    database: Database
    outbox: Table

    async def add_row(self, *, age: timedelta, published: bool = False) -> None:
        """An outbox row created `age` ago (by the database's clock)."""
        created_at = func.now() - age
        async with self.database.sessionmaker() as session, session.begin():
            await session.execute(
                insert(self.outbox).values(
                    event_id=uuid.uuid4(),
                    event_type="test.lagging",
                    payload={"data": {}},
                    created_at=created_at,
                    published_at=func.now() if published else None,
                )
            )


@pytest.fixture
async def scratch_outbox(scratch_schema: ScratchSchema) -> ScratchOutbox:
    outbox = define_outbox_table(scratch_schema.metadata)
    await scratch_schema.create_tables()
    engine = scratch_schema.engine("outbox-lag-test", pool_size=2, max_overflow=0)
    return ScratchOutbox(Database(engine), outbox)


def gauge(name: str, service: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"service": service})


async def test_lag_gauges_show_the_oldest_unpublished_row_and_return_to_zero(
    infra: TestInfra, scratch_outbox: ScratchOutbox
) -> None:
    service = f"lagtest-{uuid.uuid4().hex[:8]}"
    exchange = f"flow.events.lagtest.{uuid.uuid4().hex[:8]}"
    relay = OutboxRelay(
        database=scratch_outbox.database,
        outbox=scratch_outbox.outbox,
        amqp_url=infra.amqp_url,
        exchange=exchange,
        service=service,
        # Someone must be bound to the rows' type, or the broker returns them unpublished.
        topology=EventTopology(exchange, (Subscription(service, frozenset({"test.lagging"})),)),
    )
    try:
        # Registered with a sample from the start, so dashboards show 0, not "no data".
        assert gauge("flow_outbox_oldest_pending_age_seconds", service) == 0.0

        # An older row that is already published must not count.
        await scratch_outbox.add_row(age=timedelta(hours=5), published=True)
        await scratch_outbox.add_row(age=TEN_MINUTES)
        await scratch_outbox.add_row(age=timedelta(seconds=1))

        assert await relay.refresh_pending_gauge() == 2
        assert gauge("flow_outbox_pending_events", service) == 2.0
        age = gauge("flow_outbox_oldest_pending_age_seconds", service)
        assert age is not None
        # At least the row's age; well under the published row's five hours.
        assert TEN_MINUTES.total_seconds() <= age < timedelta(hours=1).total_seconds()

        assert await relay.publish_pending() == 2
        assert await relay.refresh_pending_gauge() == 0
        assert gauge("flow_outbox_oldest_pending_age_seconds", service) == 0.0
    finally:
        await relay.stop()
