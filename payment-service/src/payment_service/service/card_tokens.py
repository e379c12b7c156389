"""Card tokens handed over by order-service, held until the order's order.placed.

The token reaches payment-service only over order-service's authenticated internal call,
made before the order is committed; order.placed is published only after that commit, so
the token is always here when the event arrives. It is taken (deleted) by the first
handling of order.placed — or of the order's end — in that handler's transaction, so a
rolled-back attempt leaves it for the retry. A token whose order was never committed (the
placement failed after the hand-over) is pruned after its retention.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.lifecycle import delete_older_than
from flow_shared.metrics import business_counter
from payment_service.errors import CardTokenConflict
from payment_service.models import PendingCardToken

CARD_TOKENS_PRUNED = business_counter(
    "flow_payment_card_tokens_pruned_total",
    "Handed-over card tokens deleted unused: their order was never placed",
)


async def hold_card_token(
    session: AsyncSession, order_id: uuid.UUID, token: str, *, at: datetime
) -> None:
    """Keep the token for the order. Handing the same one over again (a retry after a
    timeout) is a no-op; another token for the same order is refused (409)."""
    held = await session.scalar(
        pg_insert(PendingCardToken)
        .values(order_id=order_id, token=token, received_at=at)
        .on_conflict_do_nothing(index_elements=[PendingCardToken.order_id])
        .returning(PendingCardToken.order_id)
    )
    if held is not None:
        return
    existing = await session.scalar(
        select(PendingCardToken.token).where(PendingCardToken.order_id == order_id)
    )
    if existing != token:
        raise CardTokenConflict("Another card token was already handed over for this order.")


async def take_card_token(session: AsyncSession, order_id: uuid.UUID) -> str | None:
    """The order's token, removed: an order is authorized once, with what it was given."""
    token: str | None = await session.scalar(
        delete(PendingCardToken)
        .where(PendingCardToken.order_id == order_id)
        .returning(PendingCardToken.token)
    )
    return token


async def prune_card_tokens(
    session: AsyncSession, *, now: datetime, retention: timedelta, batch_size: int
) -> int:
    """Delete up to `batch_size` tokens handed over more than `retention` before `now`
    whose order.placed never came; returns how many."""
    count = await delete_older_than(
        session,
        PendingCardToken.order_id,
        PendingCardToken.received_at,
        now - retention,
        batch_size=batch_size,
    )
    CARD_TOKENS_PRUNED.inc(count)
    return count
