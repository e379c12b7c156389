"""/internal routes (service key required): order-service hands over card tokens, of an
order it is placing or of a card-paid SOS request it is opening."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from flow_shared.auth import accepts_callers
from flow_shared.clock import utcnow
from flow_shared.unit_of_work import DbSession
from payment_service.schemas import CardTokenHandover
from payment_service.service import card_tokens

router = APIRouter(
    prefix="/internal", tags=["internal"], dependencies=[accepts_callers("order-service")]
)


@router.put("/orders/{order_id}/card-token", status_code=status.HTTP_204_NO_CONTENT)
async def hand_over_card_token(
    order_id: uuid.UUID, body: CardTokenHandover, session: DbSession
) -> Response:
    """Held for the order's order.placed, which authorizes the card. Idempotent."""
    await card_tokens.hold_card_token(session, order_id, body.card_token, at=utcnow())
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put("/sos/{sos_id}/card-token", status_code=status.HTTP_204_NO_CONTENT)
async def hand_over_sos_card_token(
    sos_id: uuid.UUID, body: CardTokenHandover, session: DbSession
) -> Response:
    """Held for the SOS order's order.placed (it carries the sos_id). Idempotent."""
    await card_tokens.hold_card_token(session, sos_id, body.card_token, at=utcnow())
    return Response(status_code=status.HTTP_204_NO_CONTENT)
