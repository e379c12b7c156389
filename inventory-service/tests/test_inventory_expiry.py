"""Expired holds are released by the sweeper (safe with several at once, SKIP LOCKED),
publishing inventory.reservation_expired; an expired hold can never be committed."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from flow_shared.db import Database, create_engine
from flow_shared.testing.infra import TestInfra, asgi_client
from inventory_service.main import create_app
from inventory_service.sweeper import ReservationSweeper

TINY_TTL = 1


async def _wait_past(seconds: float) -> None:
    # Holds expire by the database clock; sleeping past the TTL is the honest way there.
    await asyncio.sleep(seconds + 0.2)


async def _statuses(engine: Any, ids: list[str]) -> list[str]:
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT status FROM reservations WHERE id = ANY(:ids)"),
                {"ids": [uuid.UUID(i) for i in ids]},
            )
        ).all()
    return sorted(r.status for r in rows)


async def test_two_sweepers_release_each_expired_hold_exactly_once(
    app: FastAPI,
    inv: Any,
    infra: TestInfra,
    inventory_db: Any,
    product_ids: dict[str, uuid.UUID],
) -> None:
    product = product_ids["O2-CYL-5L"]
    vendor = await inv.vendor()
    depot = await inv.depot(vendor)
    await inv.set_stock(vendor, depot, product, 10)
    long_hold = await inv.reserve(depot, [(product, 3)], ttl_seconds=3600)
    assert long_hold.status_code == 201
    short = [await inv.reserve(depot, [(product, 1)], ttl_seconds=TINY_TTL) for _ in range(4)]
    assert [r.status_code for r in short] == [201] * 4
    short_ids = [r.json()["reservation_id"] for r in short]
    assert await inv.stock_row(depot, product) == (10, 7)
    await _wait_past(TINY_TTL)

    # Two sweepers, each with its own connection pool, as two processes would have.
    settings = app.state.settings
    databases = [
        Database(
            create_engine(
                infra.database_url("inventory"), schema="inventory", application_name="sweeper"
            )
        )
        for _ in range(2)
    ]
    sweepers = [
        ReservationSweeper(
            db, app.state.redis, redis_prefix=settings.redis_key_prefix, batch_size=1
        )
        for db in databases
    ]
    try:
        expired = await asyncio.gather(*(s.run_once() for s in sweepers))
    finally:
        for db in databases:
            await db.dispose()
    assert sum(expired) >= 4  # other tests' holds may have expired too

    assert await _statuses(inventory_db, short_ids) == ["expired"] * 4
    assert await inv.stock_row(depot, product) == (10, 3)  # the long hold stays
    async with inventory_db.connect() as conn:
        per_reservation = (
            await conn.execute(
                text(
                    "SELECT reference, count(*) AS n, sum(delta) AS delta FROM stock_movements "
                    "WHERE depot_id = :d AND kind = 'expire' GROUP BY reference"
                ),
                {"d": depot},
            )
        ).all()
    assert sorted(r.reference for r in per_reservation) == sorted(short_ids)
    assert all(r.n == 1 and r.delta == -1 for r in per_reservation)

    events = await inv.outbox_events("inventory.reservation_expired", depot_id=str(depot))
    assert sorted(e["data"]["reservation_id"] for e in events) == sorted(short_ids)
    one = events[0]["data"]
    assert one["vendor_id"] == str(vendor)
    assert one["items"] == [{"product_id": str(product), "quantity": 1}]
    assert set(one) >= {"reservation_id", "order_id", "depot_id", "vendor_id"}

    # Expired holds cannot be committed; releasing one is a no-op that says so.
    headers = inv.internal_headers
    commit = await inv.http.post(f"/internal/reservations/{short_ids[0]}/commit", headers=headers)
    assert commit.status_code == 409
    assert commit.json()["type"].endswith("/reservation-not-held")
    release = await inv.http.post(f"/internal/reservations/{short_ids[1]}/release", headers=headers)
    assert release.status_code == 200
    assert release.json()["status"] == "expired"
    assert await inv.stock_row(depot, product) == (10, 3)

    # Nothing left to do: a second pass releases nothing of ours.
    await app.state.sweeper.run_once()
    assert await inv.stock_row(depot, product) == (10, 3)


async def test_an_expired_hold_is_refused_before_the_sweeper_gets_to_it(
    app: FastAPI, inv: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    product = product_ids["O2-CYL-2L"]
    vendor = await inv.vendor()
    depot = await inv.depot(vendor)
    await inv.set_stock(vendor, depot, product, 5)
    held = await inv.reserve(depot, [(product, 2)], ttl_seconds=TINY_TTL)
    reservation_id = held.json()["reservation_id"]
    await _wait_past(TINY_TTL)

    commit = await inv.http.post(
        f"/internal/reservations/{reservation_id}/commit", headers=inv.internal_headers
    )
    assert commit.status_code == 409
    assert await inv.stock_row(depot, product) == (5, 2)  # still held until swept
    await app.state.sweeper.run_once()
    assert await inv.stock_row(depot, product) == (5, 0)  # stock is back
    again = await inv.http.post(
        f"/internal/reservations/{reservation_id}/commit", headers=inv.internal_headers
    )
    assert again.status_code == 409


async def test_the_service_runs_the_sweeper_in_the_background(
    make_settings: Any,
    token_issuer: Any,
    inv: Any,
    inventory_db: Any,
    product_ids: dict[str, uuid.UUID],
) -> None:
    product = product_ids["O2-CYL-1L"]
    vendor = await inv.vendor()
    depot = await inv.depot(vendor)
    await inv.set_stock(vendor, depot, product, 5)
    held = await inv.reserve(depot, [(product, 1)], ttl_seconds=TINY_TTL)
    reservation_id = held.json()["reservation_id"]

    app = create_app(
        make_settings(reservation_sweep_interval_seconds=0.2),
        jwks_fetcher=token_issuer.fetch_jwks,
    )
    async with asgi_client(app) as http:
        assert isinstance(http, httpx.AsyncClient)
        deadline = time.monotonic() + 30
        while await _statuses(inventory_db, [reservation_id]) != ["expired"]:
            assert time.monotonic() < deadline, "the background sweeper never expired the hold"
            await asyncio.sleep(0.2)
    assert await inv.stock_row(depot, product) == (5, 0)
