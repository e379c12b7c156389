"""/internal routes (service key required): quotes for order-service."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from flow_shared.auth import accepts_callers
from flow_shared.unit_of_work import DbSession
from pricing_service.deps import AppSettings, Inventory, Location
from pricing_service.schemas import QuoteOut, QuoteRequest
from pricing_service.service import quotes

router = APIRouter(
    prefix="/internal", tags=["internal"], dependencies=[accepts_callers("order-service")]
)


@router.post("/quotes", status_code=status.HTTP_201_CREATED)
async def create_quote(
    body: QuoteRequest,
    session: DbSession,
    inventory: Inventory,
    location: Location,
    settings: AppSettings,
) -> QuoteOut:
    quote = await quotes.create_quote(
        session, inventory, location, settings, body, quotes.QuoteSource(kind="internal")
    )
    return quotes.quote_out(quote)


@router.get("/quotes/{quote_id}")
async def get_quote(quote_id: uuid.UUID, session: DbSession) -> QuoteOut:
    return quotes.quote_out(await quotes.get_quote(session, quote_id))
