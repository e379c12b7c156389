"""Card tokens handed over by order-service, held until the order's order.placed.

The token reaches payment-service only over order-service's authenticated internal call,
made before the order is committed; order.placed is published only after that commit, so
the token is always here when the event arrives. A card-paid SOS request hands its token
over when it opens, held for the SOS's id (its order's id is chosen when a vendor accepts);
the SOS order's order.placed names the sos_id, and takes it from there.

It is taken (deleted) by the first handling of order.placed — or of the order's end — in
that handler's transaction, so a rolled-back attempt leaves it for the retry. A token whose
order was never committed (the placement failed after the hand-over, or the SOS was
cancelled or went unfilled) is pruned after its retention.
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
    session: AsyncSession, held_for: uuid.UUID, token: str, *, at: datetime
) -> None:
    """Keep the token for the order (or SOS request) `held_for`. Handing the same one over
    again (a retry after a timeout) is a no-op; another token for it is refused (409)."""
    held = await session.scalar(
        pg_insert(PendingCardToken)
        .values(held_for=held_for, token=token, received_at=at)
        .on_conflict_do_nothing(index_elements=[PendingCardToken.held_for])
        .returning(PendingCardToken.held_for)
    )
    if held is not None:
        return
    existing = await session.scalar(
        select(PendingCardToken.token).where(PendingCardToken.held_for == held_for)
    )
    if existing != token:
        raise CardTokenConflict("Another card token was already handed over for this order.")


async def take_card_token(
    session: AsyncSession, order_id: uuid.UUID, *, sos_id: uuid.UUID | None = None
) -> str | None:
    """The order's token, removed: an order is authorized once, with what it was given.
    An SOS order's token was held for its SOS request (both are taken: neither is of use
    again)."""
    held_for = [order_id] if sos_id is None else [order_id, sos_id]
    tokens = (
        await session.scalars(
            delete(PendingCardToken)
            .where(PendingCardToken.held_for.in_(held_for))
            .returning(PendingCardToken.token)
        )
    ).all()
    return tokens[0] if tokens else None


async def prune_card_tokens(
    session: AsyncSession, *, now: datetime, retention: timedelta, batch_size: int
) -> int:
    """Delete up to `batch_size` tokens handed over more than `retention` before `now`
    whose order.placed never came; returns how many."""
    count = await delete_older_than(
        session,
        PendingCardToken.held_for,
        PendingCardToken.received_at,
        now - retention,
        batch_size=batch_size,
    )
    CARD_TOKENS_PRUNED.inc(count)
    return count
