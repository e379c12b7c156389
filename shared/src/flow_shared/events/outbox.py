"""The transactional outbox: an event is a row written in the business transaction.

If the transaction rolls back, the event never existed; if it commits, the
relay (relay.py) publishes it, however long the broker is away.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
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
from sqlalchemy import event as orm_event
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from flow_shared.events.envelope import EventEnvelope
from flow_shared.events.topology import check_publication

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
    session.info.setdefault(_WRITTEN_OUTBOXES, set()).add(outbox)
    return envelope


# The relays of this process, by the outbox they publish: woken as soon as a transaction
# that wrote to their outbox commits, instead of at their next poll. The poll stays, for
# rows committed by other processes.
_WRITTEN_OUTBOXES = "flow_written_outboxes"
_WAKERS: dict[Table, list[Callable[[], None]]] = {}


def wake_on_commit(outbox: Table, wake: Callable[[], None]) -> Callable[[], None]:
    """Call `wake` after each commit that added events to `outbox`; returns the undo."""
    _WAKERS.setdefault(outbox, []).append(wake)

    def forget() -> None:
        wakers = _WAKERS.get(outbox, [])
        if wake in wakers:
            wakers.remove(wake)

    return forget


@orm_event.listens_for(Session, "after_commit")
def _wake_relays(session: Session) -> None:
    for outbox in session.info.pop(_WRITTEN_OUTBOXES, ()):
        for wake in list(_WAKERS.get(outbox, ())):
            wake()


@orm_event.listens_for(Session, "after_rollback")
def _forget_written_outboxes(session: Session) -> None:
    session.info.pop(_WRITTEN_OUTBOXES, None)
