"""SPEC "Verified hospitals and licences", inventory's part: nearby marks stock the vendor
has not reported (set or adjusted) for STALE_STOCK_HOURS as `stale` and ranks it after
fresh stock (the cache shows a row turning stale within its TTL); the verified-vendor
projection brings a reinstated vendor back and ignores hospitals."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from flow_shared.testing.infra import asgi_client
from flow_shared.testing.polling import eventually
from inventory_service.cache import bump_generation
from inventory_service.config import Settings
from inventory_service.main import create_app

NEARBY = "/api/v1/catalog/nearby"


def _place(seed: int) -> tuple[float, float]:
    rng = random.Random(seed)
    return rng.uniform(-55, 55), rng.uniform(-170, 170)


async def _age(inv: Any, depot_id: uuid.UUID, hours: float) -> None:
    """Make a depot's stock look last reported `hours` ago (the clock of staleness)."""
    async with inv.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE stock SET reported_at = now() - make_interval(secs => :s) "
                "WHERE depot_id = :d"
            ),
            {"s": hours * 3600, "d": depot_id},
        )


async def _rows(http: httpx.AsyncClient, inv: Any, lat: float, lon: float, **params: Any) -> Any:
    response = await http.get(
        NEARBY,
        params={"lat": lat, "lon": lon, "radius_km": 30, **params},
        headers=inv.hospital_headers(),
    )
    assert response.status_code == 200, response.text
    return response


def test_stale_stock_hours_defaults_to_a_day() -> None:
    assert Settings.model_fields["stale_stock_hours"].default == 24.0


async def test_holds_do_not_refresh_stale_stock_but_a_report_does(
    client: httpx.AsyncClient, inv: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    # A hold changes what is available, not what anyone counted on the shelf.
    lat, lon = _place(2407)
    product = product_ids["O2-CYL-10L"]
    vendor, depot = await inv.stocked_depot(product, 10, lat=lat, lon=lon)
    await _age(inv, depot, 30)
    held = await inv.reserve(depot, [(product, 2)])
    assert held.status_code == 201, held.text

    [row] = (await _rows(client, inv, lat, lon, product_id=product)).json()["items"]
    assert (row["available"], row["stale"]) == (8, True)

    await inv.set_stock(vendor, depot, product, 12)
    [row] = (await _rows(client, inv, lat, lon, product_id=product)).json()["items"]
    assert row["stale"] is False
    assert datetime.fromisoformat(row["reported_at"]) > datetime.now(UTC) - timedelta(minutes=1)


async def test_fresh_stock_ranks_before_stale_then_by_distance(
    client: httpx.AsyncClient, inv: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    lat, lon = _place(2401)
    product = product_ids["O2-CYL-10L"]
    vendor = await inv.vendor()
    near_stale = await inv.depot(vendor, lat=lat + 0.01, lon=lon)
    far_fresh = await inv.depot(vendor, lat=lat + 0.1, lon=lon)
    middle_stale = await inv.depot(vendor, lat=lat + 0.05, lon=lon)
    farther_fresh = await inv.depot(vendor, lat=lat + 0.15, lon=lon)
    for depot in (near_stale, far_fresh, middle_stale, farther_fresh):
        await inv.set_stock(vendor, depot, product, 10)
    await _age(inv, near_stale, 25)
    await _age(inv, middle_stale, 24.5)
    await _age(inv, far_fresh, 23)

    body = (await _rows(client, inv, lat, lon, product_id=product)).json()

    order = [(uuid.UUID(r["depot_id"]), r["stale"]) for r in body["items"]]
    assert order == [
        (far_fresh, False),
        (farther_fresh, False),
        (near_stale, True),
        (middle_stale, True),
    ]
    # Paging follows the same order.
    second = (await _rows(client, inv, lat, lon, product_id=product, page=2, page_size=2)).json()
    assert [uuid.UUID(r["depot_id"]) for r in second["items"]] == [near_stale, middle_stale]


async def test_stale_stock_hours_is_a_setting_and_the_cache_follows_within_its_ttl(
    make_settings: Any, token_issuer: Any, inv: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    lat, lon = _place(2402)
    product = product_ids["O2-CYL-10L"]
    _, depot = await inv.stocked_depot(product, 10, lat=lat, lon=lon)
    await _age(inv, depot, 1.5)
    app = create_app(
        make_settings(stale_stock_hours=2, nearby_cache_seconds=1),
        jwks_fetcher=token_issuer.fetch_jwks,
    )
    async with asgi_client(app) as http:
        first = await _rows(http, inv, lat, lon, product_id=product)
        assert [r["stale"] for r in first.json()["items"]] == [False]

        # Turning stale is no stock change: a cached page may say "fresh" until its TTL.
        await _age(inv, depot, 2.5)

        async def stale_now() -> bool:
            response = await _rows(http, inv, lat, lon, product_id=product)
            return [r["stale"] for r in response.json()["items"]] == [True]

        assert await eventually(stale_now, "the row shown stale once the cache expired", seconds=10)


async def test_a_reinstated_vendor_is_listed_again_and_hospitals_are_ignored(
    app: FastAPI, client: httpx.AsyncClient, inv: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    lat, lon = _place(2403)
    product = product_ids["O2-CYL-10L"]
    vendor, depot = await inv.stocked_depot(product, 10, lat=lat, lon=lon)
    t0 = datetime.now(UTC)

    async def listed() -> bool:
        # The consumer bumps the catalogue generation after each projection change.
        await bump_generation(app.state.redis, app.state.settings.redis_key_prefix)
        body = (await _rows(client, inv, lat, lon, product_id=product)).json()
        return any(uuid.UUID(r["depot_id"]) == depot for r in body["items"])

    assert await listed()
    suspended = inv.org_event("organization.suspended", vendor, "V", occurred_at=t0)
    reinstated = inv.org_event(
        "organization.reinstated", vendor, "V", occurred_at=t0 + timedelta(seconds=1)
    )
    await inv.handle(suspended)
    assert not await listed()
    await inv.handle(reinstated)
    assert await listed()
    # Redelivered late, the older suspension changes nothing.
    await inv.handle(suspended)
    assert await listed()
    # A later suspension wins over the reinstatement it follows.
    await inv.handle(
        inv.org_event("organization.suspended", vendor, "V", occurred_at=t0 + timedelta(seconds=2))
    )
    assert not await listed()

    # A reinstated vendor that was never verified stays out.
    unverified = uuid.uuid4()
    await inv.handle(inv.org_event("organization.reinstated", unverified, "U"))

    hospital = uuid.uuid4()
    for action in ("verified", "suspended", "reinstated"):
        await inv.handle(inv.org_event(f"organization.{action}", hospital, "H", kind="hospital"))
    async with inv.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT vendor_id, verified, suspended FROM vendors WHERE vendor_id IN (:u, :h)"),
            {"u": unverified, "h": hospital},
        )
        assert [tuple(r) for r in rows] == [(unverified, False, False)]
