"""Stored quotes are deleted QUOTE_RETENTION_SECONDS after they expire (finding 3), by a
periodic job in every process; never earlier, and their lines go with them. Time is the
pruner's injected clock, so nothing here waits for a quote to expire."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from flow_shared.db import Database
from flow_shared.testing.infra import asgi_client
from pricing_service.pruner import QuotePruner

if TYPE_CHECKING:
    from conftest import InventoryStub, PricingAppFactory, QuoteBody, SetPrice

RETENTION = timedelta(hours=6)


@pytest.fixture
def pricing_database(pricing_engine: AsyncEngine) -> Database:
    return Database(pricing_engine)


async def _quote(
    client: httpx.AsyncClient,
    inventory: InventoryStub,
    set_price: SetPrice,
    make_quote_body: QuoteBody,
    headers: dict[str, str],
) -> dict[str, Any]:
    depot, product = inventory.add_depot(), uuid.uuid4()
    await set_price(depot.vendor_id, product)
    response = await client.post(
        "/api/v1/pricing/quotes", json=make_quote_body(depot, [(product, 1)]), headers=headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def _rows(engine: AsyncEngine, quote_id: str) -> tuple[int, int]:
    """(quote rows, quote line rows) stored for this quote id."""
    async with engine.connect() as conn:
        quotes = await conn.scalar(
            text("SELECT count(*) FROM pricing.quotes WHERE id = :q"), {"q": quote_id}
        )
        lines = await conn.scalar(
            text("SELECT count(*) FROM pricing.quote_items WHERE quote_id = :q"), {"q": quote_id}
        )
    return int(quotes or 0), int(lines or 0)


async def test_a_quote_is_kept_through_its_retention_and_pruned_after_it(
    pricing_client: httpx.AsyncClient,
    pricing_engine: AsyncEngine,
    pricing_database: Database,
    inventory: InventoryStub,
    set_price: SetPrice,
    make_quote_body: QuoteBody,
    hospital: dict[str, str],
) -> None:
    quote = await _quote(pricing_client, inventory, set_price, make_quote_body, hospital)
    expires_at = datetime.fromisoformat(quote["expires_at"])
    assert await _rows(pricing_engine, quote["quote_id"]) == (1, 1)

    def pruner_at(now: datetime) -> QuotePruner:
        return QuotePruner(pricing_database, retention=RETENTION, batch_size=2, clock=lambda: now)

    # Still valid, then expired but within its retention: kept, and still readable.
    for now in (expires_at - timedelta(minutes=1), expires_at + RETENTION - timedelta(seconds=1)):
        await pruner_at(now).run_once()
        assert await _rows(pricing_engine, quote["quote_id"]) == (1, 1), now
    readable = await pricing_client.get(
        f"/api/v1/pricing/quotes/{quote['quote_id']}", headers=hospital
    )
    assert readable.status_code == 200

    # Past its retention: gone with its lines, whatever else the batches take with it.
    pruned = await pruner_at(expires_at + RETENTION + timedelta(seconds=1)).run_once()

    assert pruned >= 1
    assert await _rows(pricing_engine, quote["quote_id"]) == (0, 0)
    gone = await pricing_client.get(f"/api/v1/pricing/quotes/{quote['quote_id']}", headers=hospital)
    assert gone.status_code == 404


async def test_pruning_runs_in_batches_until_nothing_is_due(
    pricing_client: httpx.AsyncClient,
    pricing_engine: AsyncEngine,
    pricing_database: Database,
    inventory: InventoryStub,
    set_price: SetPrice,
    make_quote_body: QuoteBody,
    hospital: dict[str, str],
) -> None:
    quotes = [
        await _quote(pricing_client, inventory, set_price, make_quote_body, hospital)
        for _ in range(5)
    ]
    latest = max(datetime.fromisoformat(q["expires_at"]) for q in quotes)
    pruner = QuotePruner(
        pricing_database, retention=RETENTION, batch_size=2, clock=lambda: latest + RETENTION * 2
    )

    assert await pruner.run_once() >= 5
    for quote in quotes:
        assert await _rows(pricing_engine, quote["quote_id"]) == (0, 0)


async def test_the_service_runs_the_pruner_periodically_with_the_configured_retention(
    pricing_app_for: PricingAppFactory,
    pricing_engine: AsyncEngine,
    inventory: InventoryStub,
    set_price: SetPrice,
    make_quote_body: QuoteBody,
    hospital: dict[str, str],
) -> None:
    app = pricing_app_for(quote_retention_seconds=0, quote_prune_interval_seconds=0.05)
    async with asgi_client(app) as client:
        assert app.state.quote_pruner.retention == timedelta(0)
        assert app.state.periodic_tasks["quote-pruner"].interval_seconds == 0.05
        quote = await _quote(client, inventory, set_price, make_quote_body, hospital)
        fresh = await client.get(f"/api/v1/pricing/quotes/{quote['quote_id']}", headers=hospital)
        assert fresh.status_code == 200  # not expired: the running job leaves it alone
        # Let it expire without waiting for it: move its expiry into the past.
        async with pricing_engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE pricing.quotes SET created_at = now() - interval '2 hours', "
                    "expires_at = now() - interval '1 hour' WHERE id = :q"
                ),
                {"q": quote["quote_id"]},
            )

        deadline = time.monotonic() + 10
        while await _rows(pricing_engine, quote["quote_id"]) != (0, 0):
            assert time.monotonic() < deadline, "the periodic pruner never removed the quote"
            await asyncio.sleep(0.05)
