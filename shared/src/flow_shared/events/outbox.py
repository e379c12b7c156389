"""The transactional outbox: an event is a row written in the business transaction.

If the transaction rolls back, the event never existed; if it commits, the
relay (relay.py) publishes it, however long the broker is away. Written in a unit
of work (flow_shared.unit_of_work), its commit wakes this process's relay at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.events.envelope import EventEnvelope
from flow_shared.events.topology import check_publication
from flow_shared.unit_of_work import unit_of_work_of

OUTBOX_TABLE = "outbox"
INBOX_TABLE = "inbox"


def define_outbox_table(metadata: MetaData) -> Table:
    table = Table(
        OUTBOX_TABLE,
        metadata,
        Column("seq", BigInteger, primary_key=True, autoincrement=True),
        Column("event_id", UUID(as_uuid=True), nullable=False, unique=True),
        Column("event_type", String(100), nullable=False),
        Column("payload", JSONB, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True), nullable=True),
        Column("attempts", Integer, nullable=False, server_default=text("0")),
        Column("last_error", Text, nullable=True),
    )
    # The relay only ever scans unpublished rows, oldest first.
    Index(
        f"ix_{OUTBOX_TABLE}_unpublished",
        table.c.seq,
        postgresql_where=table.c.published_at.is_(None),
    )
    return table


def define_inbox_table(metadata: MetaData) -> Table:
    """One row per handled event: the unique key makes a redelivery a no-op."""
    return Table(
        INBOX_TABLE,
        metadata,
        Column("consumer", String(100), primary_key=True),
        Column("event_id", UUID(as_uuid=True), primary_key=True),
        Column("event_type", String(100), nullable=False),
        Column("handled_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


async def add_event(
    session: AsyncSession,
    outbox: Table,
    *,
    event_type: str,
    data: dict[str, Any],
    producer: str,
    event_id: uuid.UUID | None = None,
    publications: Mapping[str, frozenset[str]] | None = None,
) -> EventEnvelope:
    """Write an event into the caller's transaction. Nothing is sent until it commits.

    Raises UndeclaredPublication unless `producer` publishes `event_type` according to
    `publications` (the fleet's table, FLEET_PUBLICATIONS, unless a test brings its own):
    its broker user could not publish it, so it would sit in the outbox for ever."""
    check_publication(producer, event_type, publications)
    envelope = EventEnvelope(
        id=event_id or uuid.uuid4(), type=event_type, producer=producer, data=data
    )
    await session.execute(
        insert(outbox).values(
            event_id=envelope.id,
            event_type=envelope.type,
            payload=envelope.model_dump(mode="json"),
        )
    )
    uow = unit_of_work_of(session)
    if uow is not None:
        uow.events_written(outbox)
    return envelope
