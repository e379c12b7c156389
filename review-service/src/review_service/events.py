"""Events review-service publishes (through its outbox, in the caller's transaction)
and the ones it consumes into the placed- and delivered-orders projections.

Published `data` is a contract with consumers: add fields, never rename or remove.
- review.created {review_id, order_id, vendor_id, hospital_org_id, rating}
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.events.consumer import EventHandlers
from flow_shared.events.envelope import EventEnvelope
from flow_shared.events.outbox import add_event
from review_service.models import DeliveredOrder, PlacedOrder, Review, outbox

PRODUCER = "review-service"
REVIEW_CREATED = "review.created"
ORDER_PLACED = "order.placed"
ORDER_DELIVERED = "order.delivered"


async def review_created(session: AsyncSession, review: Review) -> None:
    """Carries the correlation id of the request that wrote the review."""
    await add_event(
        session,
        outbox,
        event_type=REVIEW_CREATED,
        producer=PRODUCER,
        data={
            "review_id": str(review.id),
            "order_id": str(review.order_id),
            "vendor_id": str(review.vendor_id),
            "hospital_org_id": str(review.hospital_org_id),
            "rating": review.rating,
        },
    )


# --- consumed -------------------------------------------------------------------------


class OrderFact(BaseModel):
    """The fields of order-service's order events that eligibility needs."""

    model_config = ConfigDict(extra="ignore")

    order_id: uuid.UUID
    hospital_org_id: uuid.UUID
    vendor_id: uuid.UUID
    at: datetime | None = None


async def on_order_delivered(session: AsyncSession, envelope: EventEnvelope) -> None:
    """The hospital the order was delivered to may now review it (once)."""
    data = OrderFact.model_validate(envelope.data)
    # A delivered order never changes, so a second delivery of the fact is a no-op.
    await session.execute(
        pg_insert(DeliveredOrder)
        .values(
            order_id=data.order_id,
            hospital_org_id=data.hospital_org_id,
            vendor_id=data.vendor_id,
            delivered_at=data.at or envelope.occurred_at,
        )
        .on_conflict_do_nothing(index_elements=[DeliveredOrder.order_id])
    )


async def on_order_placed(session: AsyncSession, envelope: EventEnvelope) -> None:
    """Remember whose order it is, so its hospital can be told it is not delivered yet."""
    data = OrderFact.model_validate(envelope.data)
    # The owner of an order never changes, so a second placement of the fact is a no-op.
    await session.execute(
        pg_insert(PlacedOrder)
        .values(
            order_id=data.order_id,
            hospital_org_id=data.hospital_org_id,
            vendor_id=data.vendor_id,
            placed_at=data.at or envelope.occurred_at,
        )
        .on_conflict_do_nothing(index_elements=[PlacedOrder.order_id])
    )


def event_handlers() -> EventHandlers:
    """What review-service consumes: the orders a hospital may review."""
    return EventHandlers({ORDER_PLACED: on_order_placed, ORDER_DELIVERED: on_order_delivered})
