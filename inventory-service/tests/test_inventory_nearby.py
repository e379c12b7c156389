"""SPEC catalog/nearby and vendors/{id}/availability: exactly the depots a brute-force
distance check finds, nearest first, paged; verified vendors only; one SQL query;
cached, yet a stock change shows on the next call and the cache never decides a write."""

from __future__ import annotations

import asyncio
import random
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError

from flow_shared.testing.broker import publish_envelope
from flow_shared.testing.infra import TestInfra
from inventory_service.cache import generation_key
from inventory_service.service.catalog import nearby_sql

NEARBY = "/api/v1/catalog/nearby"
ROW_FIELDS = {
    "depot_id",
    "depot_name",
    "vendor_id",
    "vendor_name",
    "product_id",
    "sku",
    "product_name",
    "available",
    "updated_at",
    "reported_at",
    "stale",
    "distance_km",
    "lat",
    "lon",
}


def _cache_hits() -> float:
    return REGISTRY.get_sample_value("flow_inventory_nearby_cache_total", {"outcome": "hit"}) or 0.0


@contextmanager
def _statements(app: FastAPI) -> Iterator[list[str]]:
    """The SQL the app's request handlers send; the background relay, consumer and
    hold sweeper (outbox, inbox, reservations, schema-qualified or not) are left out."""
    seen: list[str] = []
    background_tables = ("outbox", "inbox", "reservations")

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not any(table in statement for table in background_tables):
            seen.append(statement)

    engine = app.state.database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _place(rng: random.Random) -> tuple[float, float]:
    """A random spot on land or sea, away from the other tests' spots."""
    return rng.uniform(-55, 55), rng.uniform(-170, 170)


async def _nearby(client: httpx.AsyncClient, inv: Any, **params: Any) -> dict[str, Any]:
    response = await client.get(NEARBY, params=params, headers=inv.hospital_headers())
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _all_pages(
    client: httpx.AsyncClient, inv: Any, page_size: int, **params: Any
) -> tuple[list[dict[str, Any]], int]:
    rows: list[dict[str, Any]] = []
    page, total = 1, None
    while True:
        body = await _nearby(client, inv, page=page, page_size=page_size, **params)
        assert total is None or body["total"] == total, "total changed between pages"
        total = body["total"]
        assert len(body["items"]) == min(page_size, max(total - (page - 1) * page_size, 0))
        rows += body["items"]
        if page * page_size >= total:
            break
        page += 1
    past_end = await _nearby(client, inv, page=page + 1, page_size=page_size, **params)
    assert past_end["items"] == []
    assert past_end["total"] == total
    return rows, total


async def _brute_force(
    engine: Any,
    lat: float,
    lon: float,
    radius_km: float,
    min_quantity: int,
    product_id: uuid.UUID | None,
) -> list[tuple[str, str, float]]:
    """Every stock row of every depot, distance by ST_Distance on the sphere (the measure
    the search promises) from the depot's own location, filtered in Python."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT d.id AS depot_id, s.product_id, s.on_hand - s.reserved AS available, "
                    "COALESCE(v.verified AND NOT v.suspended, false) AS active, "
                    "ST_Distance(d.location, "
                    "  ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography, false) AS distance_m "
                    "FROM depots d JOIN stock s ON s.depot_id = d.id "
                    "LEFT JOIN vendors v ON v.vendor_id = d.vendor_id"
                ),
                {"lat": lat, "lon": lon},
            )
        ).all()
    matches = [
        r
        for r in rows
        if r.distance_m <= radius_km * 1000
        and r.active
        and r.available >= min_quantity
        and (product_id is None or r.product_id == product_id)
    ]
    matches.sort(key=lambda r: (r.distance_m, r.depot_id, r.product_id))
    return [(str(r.depot_id), str(r.product_id), r.distance_m / 1000) for r in matches]


async def test_nearby_equals_a_brute_force_distance_check_nearest_first(
    client: httpx.AsyncClient, inv: Any, inventory_db: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    rng = random.Random(20261124)
    center_lat, center_lon = _place(rng)
    products = [product_ids[s] for s in ("O2-CYL-10L", "O2-CYL-46.7L", "LOX-100KG")]
    active = [await inv.vendor() for _ in range(4)]
    inactive = [
        await inv.vendor(verified=False),
        await inv.vendor(verified=True, suspended=True),
        await inv.vendor(verified=False, suspended=True),
    ]
    for _ in range(30):
        vendor = rng.choice(active + inactive)
        depot = await inv.depot(
            vendor,
            lat=center_lat + rng.uniform(-0.6, 0.6),
            lon=center_lon + rng.uniform(-0.6, 0.6),
        )
        for product in rng.sample(products, rng.randint(1, 3)):
            await inv.set_stock(vendor, depot, product, rng.randint(0, 6))

    inactive_ids = {str(v) for v in inactive}
    non_empty = 0
    for _ in range(10):
        lat = center_lat + rng.uniform(-0.7, 0.7)
        lon = center_lon + rng.uniform(-0.7, 0.7)
        radius_km = round(rng.uniform(5, 90), 2)
        min_quantity = rng.randint(1, 3)
        product_id = rng.choice([None, *products])
        params: dict[str, Any] = {"lat": lat, "lon": lon, "radius_km": radius_km}
        params["min_quantity"] = min_quantity
        if product_id is not None:
            params["product_id"] = str(product_id)
        rows, total = await _all_pages(client, inv, rng.randint(3, 8), **params)

        expected = await _brute_force(inventory_db, lat, lon, radius_km, min_quantity, product_id)
        assert total == len(expected)
        assert [(r["depot_id"], r["product_id"]) for r in rows] == [e[:2] for e in expected]
        for row, (_, _, distance_km) in zip(rows, expected, strict=True):
            assert row["distance_km"] == pytest.approx(distance_km, abs=0.001)
            assert set(row) == ROW_FIELDS
            assert row["vendor_id"] not in inactive_ids
            assert row["available"] >= min_quantity
            assert datetime.fromisoformat(row["updated_at"]).tzinfo is not None
        distances = [r["distance_km"] for r in rows]
        assert distances == sorted(distances)
        non_empty += bool(rows)
    assert non_empty >= 5, "the random searches should mostly find something"


async def test_unverified_and_suspended_vendors_never_appear(
    client: httpx.AsyncClient, inv: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    lat, lon = _place(random.Random(7))
    product = product_ids["O2-CYL-40L"]
    verified = await inv.vendor(name="Verified Oxygen")
    shown = await inv.depot(verified, lat=lat, lon=lon)
    await inv.set_stock(verified, shown, product, 5)
    for flags in ({"verified": False}, {"suspended": True}, {"verified": False, "suspended": True}):
        vendor = await inv.vendor(**flags)
        depot = await inv.depot(vendor, lat=lat + 0.001, lon=lon)
        await inv.set_stock(vendor, depot, product, 50)
    unprojected = uuid.uuid4()  # a vendor no organization.* event has told us about
    depot = await inv.depot(unprojected, lat=lat, lon=lon + 0.001)
    await inv.set_stock(unprojected, depot, product, 50)

    body = await _nearby(client, inv, lat=lat, lon=lon, radius_km=5)
    assert [(r["depot_id"], r["vendor_name"]) for r in body["items"]] == [
        (str(shown), "Verified Oxygen")
    ]
    assert body["total"] == 1


async def test_nearby_is_one_query_and_answers_the_same_on_the_internal_route(
    app: FastAPI, client: httpx.AsyncClient, inv: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    lat, lon = _place(random.Random(11))
    vendor = await inv.vendor()
    for offset in (0.01, 0.02):
        depot = await inv.depot(vendor, lat=lat + offset, lon=lon)
        await inv.set_stock(vendor, depot, product_ids["CONC-5LPM"], 3)
    params = {"lat": lat, "lon": lon, "radius_km": 10, "category": "concentrator"}
    with _statements(app) as statements:
        public = await _nearby(client, inv, **params)
    assert public["total"] == 2
    assert len(statements) == 1
    assert "ST_DWithin" in statements[0]

    internal = await client.get(
        "/internal/catalog/nearby", params=params, headers=inv.internal_headers
    )
    assert internal.status_code == 200
    assert internal.json() == public
    other_category = await _nearby(client, inv, **{**params, "category": "refill"})
    assert other_category["total"] == 0

    # A product search starts from stock, not depots: still one statement.
    by_product = {"lat": lat, "lon": lon, "radius_km": 10, "product_id": product_ids["CONC-5LPM"]}
    with _statements(app) as statements:
        assert (await _nearby(client, inv, **by_product))["total"] == 2
    assert len(statements) == 1


async def test_a_product_and_a_category_together_need_the_product_in_the_category(
    client: httpx.AsyncClient, inv: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    lat, lon = _place(random.Random(29))
    vendor = await inv.vendor()
    depot = await inv.depot(vendor, lat=lat, lon=lon)
    concentrator = product_ids["CONC-10LPM"]
    await inv.set_stock(vendor, depot, concentrator, 2)
    await inv.set_stock(vendor, depot, product_ids["REFILL-5L"], 2)
    params = {"lat": lat, "lon": lon, "radius_km": 1, "product_id": str(concentrator)}

    inside = await _nearby(client, inv, **params, category="concentrator")
    assert [(r["depot_id"], r["sku"]) for r in inside["items"]] == [(str(depot), "CONC-10LPM")]
    assert inside["total"] == 1
    outside = await _nearby(client, inv, **params, category="refill")
    assert (outside["items"], outside["total"]) == ([], 0)


# --- stock rows carry their depot's vendor and location ---------------------------------

_PLACEMENT = text(
    "SELECT s.vendor_id, d.vendor_id AS depot_vendor_id, "
    "ST_AsBinary(s.location) = ST_AsBinary(d.location) AS same_location "
    "FROM stock s JOIN depots d ON d.id = s.depot_id "
    "WHERE s.depot_id = :depot AND s.product_id = :product"
)
_MISPLACED = text(
    "SELECT count(*) FROM stock s JOIN depots d ON d.id = s.depot_id "
    "WHERE s.vendor_id <> d.vendor_id OR ST_AsBinary(s.location) <> ST_AsBinary(d.location)"
)


async def test_a_stock_row_has_its_depots_vendor_and_location_whatever_a_writer_sends(
    inv: Any, inventory_db: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    """The search trusts stock.vendor_id and stock.location instead of reading the depot:
    the database keeps them equal to the depot's, not each writer."""
    lat, lon = _place(random.Random(31))
    vendor = await inv.vendor()
    depot = await inv.depot(vendor, lat=lat, lon=lon)
    through_api = product_ids["O2-CYL-5L"]
    await inv.set_stock(vendor, depot, through_api, 4)  # the ORM sends neither column
    direct = product_ids["O2-CYL-20L"]
    stranger = uuid.uuid4()
    key = {"depot": depot, "product": direct}

    async def placement(conn: Any, product: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID, bool]:
        """(stock's vendor, depot's vendor, same location)."""
        row = (await conn.execute(_PLACEMENT, {"depot": depot, "product": product})).one()
        return row.vendor_id, row.depot_vendor_id, row.same_location

    async def placement_after(conn: Any, statement: str) -> tuple[uuid.UUID, uuid.UUID, bool]:
        """`direct`'s placement once a writer has run `statement`, sending `stranger`."""
        await conn.execute(text(statement), {**key, "stranger": stranger})
        return await placement(conn, direct)

    async with inventory_db.connect() as conn:  # rolled back at the end
        assert await placement(conn, through_api) == (vendor, vendor, True)

        # A writer sending a wrong vendor and a place at the other end of the world.
        inserted = await placement_after(
            conn,
            "INSERT INTO stock (depot_id, product_id, on_hand, vendor_id, location) "
            "VALUES (:depot, :product, 3, :stranger, 'SRID=4326;POINT(0 0)')",
        )
        assert inserted == (vendor, vendor, True)
        updated = await placement_after(
            conn,
            "UPDATE stock SET vendor_id = :stranger, location = 'SRID=4326;POINT(1 1)' "
            "WHERE depot_id = :depot AND product_id = :product",
        )
        assert updated == (vendor, vendor, True)

        # No endpoint moves a depot or hands it over; should a writer do it, stock follows.
        await conn.execute(
            text("UPDATE depots SET lat = lat + 0.5, vendor_id = :stranger WHERE id = :depot"),
            {"depot": depot, "stranger": stranger},
        )
        for product in (through_api, direct):
            assert await placement(conn, product) == (stranger, stranger, True)
        assert await conn.scalar(_MISPLACED) == 0

        # An unknown depot is still the foreign key's error (not NOT NULL on the copies).
        with pytest.raises(IntegrityError, match="fk_stock_depot_id_depots"):
            async with conn.begin_nested():
                await conn.execute(
                    text("INSERT INTO stock (depot_id, product_id) VALUES (:depot, :product)"),
                    {"depot": uuid.uuid4(), "product": direct},
                )
        await conn.rollback()


# --- the plan -------------------------------------------------------------------------

_PARAMETER_TYPES = {
    "lat": "float8",
    "lon": "float8",
    "radius_m": "float8",
    "min_quantity": "int4",
    "limit": "int8",
    "offset": "int8",
    "product_id": "uuid",
    "category": "text",
    "stale_before": "timestamptz",
}


def _prepare_statement(name: str, sql: str) -> tuple[str, list[str]]:
    """`PREPARE name(types) AS sql` with $n for each :name (casts, `::x`, left alone),
    and the parameter names in order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    body = re.sub(r"(?<!:):([a-z_]+)", number, sql)
    types = ", ".join(_PARAMETER_TYPES[n] for n in names)
    return f"PREPARE {name}({types}) AS {body}", names


def _literal(value: object) -> str:
    return f"'{value}'" if isinstance(value, uuid.UUID | str) else str(value)


@pytest.mark.parametrize(
    ("by_product", "index"),
    [(True, "ix_stock_product_id_location"), (False, "ix_depots_location")],
)
async def test_the_search_plan_starts_from_the_spatial_index(
    app: FastAPI, product_ids: dict[str, uuid.UUID], by_product: bool, index: str
) -> None:
    """With a product, its stock rows come from the GiST index on stock (product_id,
    location); without, depots come from theirs. Checked on the service's own engine,
    over some 50,000 stock rows (so that the planner has a real choice), for both the
    custom plans of a prepared statement's first runs and the generic plan it then
    may switch to (asyncpg prepares every statement)."""
    sql = nearby_sql(by_product=by_product, by_category=False)
    prepare, names = _prepare_statement("nearby_probe", sql)
    values: dict[str, object] = {
        "lat": 65.0,
        "lon": 110.0,
        "radius_m": 25_000.0,
        "min_quantity": 1,
        "limit": 20,
        "offset": 0,
        "product_id": product_ids["O2-CYL-10L"],
        "stale_before": "2026-12-01T00:00:00+00:00",
    }
    execute = "EXECUTE nearby_probe(" + ", ".join(_literal(values[n]) for n in names) + ")"
    vendor = uuid.uuid4()
    plans: dict[str, str] = {}
    engine = app.state.database.engine
    async with engine.connect() as conn:
        try:
            await conn.execute(
                text("INSERT INTO vendors (vendor_id, name, verified) VALUES (:v, 'Probe', true)"),
                {"v": vendor},
            )
            # 2,000 depots over Siberia, every product at each: rolled back at the end.
            await conn.execute(
                text(
                    "INSERT INTO depots (id, vendor_id, name, lat, lon, service_radius_km) "
                    "SELECT gen_random_uuid(), :v, 'Probe ' || n, 60 + random() * 10, "
                    "100 + random() * 20, 50 FROM generate_series(1, 2000) AS n"
                ),
                {"v": vendor},
            )
            await conn.execute(
                text(
                    "INSERT INTO stock (depot_id, product_id, on_hand) "
                    "SELECT d.id, p.id, 5 FROM depots d CROSS JOIN products p "
                    "WHERE d.vendor_id = :v"
                ),
                {"v": vendor},
            )
            await conn.exec_driver_sql("ANALYZE depots, stock, vendors, products")
            await conn.exec_driver_sql(prepare)
            for mode in ("force_custom_plan", "force_generic_plan"):
                await conn.exec_driver_sql(f"SET LOCAL plan_cache_mode = {mode}")
                result = await conn.exec_driver_sql(f"EXPLAIN {execute}")
                plans[mode] = "\n".join(row[0] for row in result)
        finally:
            # PREPARE outlives the transaction: leave no statement on a pooled connection.
            await conn.invalidate()
    for mode, plan in plans.items():
        assert index in plan, f"{mode}:\n{plan}"


async def test_a_stock_change_shows_on_the_next_call_despite_the_cache(
    app: FastAPI,
    client: httpx.AsyncClient,
    inv: Any,
    infra: TestInfra,
    product_ids: dict[str, uuid.UUID],
) -> None:
    lat, lon = _place(random.Random(13))
    product = product_ids["O2-CYL-10L"]
    vendor, depot = await inv.stocked_depot(product, 8, lat=lat, lon=lon)
    params = {"lat": lat, "lon": lon, "radius_km": 3, "product_id": str(product)}

    first = await _nearby(client, inv, **params)
    hits = _cache_hits()
    with _statements(app) as statements:
        response = await client.get(NEARBY, params=params, headers=inv.hospital_headers())
    second = response.json()
    assert response.headers["X-Cache"] == "hit"
    # Served from Redis: no SQL at all, one more hit, the same answer.
    assert statements == []
    assert _cache_hits() == hits + 1
    assert second == first
    assert first["items"][0]["available"] == 8
    redis: Redis = app.state.redis
    generation = await redis.get(generation_key(infra.redis_prefix))
    cached = [k async for k in redis.scan_iter(match=f"{infra.redis_prefix}inventory:nearby:*")]
    assert any(k.split(":")[-2] == generation for k in cached)

    changed = await inv.set_stock(vendor, depot, product, 5)
    response = await client.get(NEARBY, params=params, headers=inv.hospital_headers())
    assert response.headers["X-Cache"] == "miss"
    third = response.json()
    assert third["items"][0]["available"] == 5
    assert datetime.fromisoformat(third["items"][0]["updated_at"]) == datetime.fromisoformat(
        changed["updated_at"]
    )
    assert _cache_hits() == hits + 1  # that was a miss


async def test_the_cache_is_never_trusted_for_writes(
    client: httpx.AsyncClient, inv: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    lat, lon = _place(random.Random(17))
    product = product_ids["LOX-1000KG"]
    _, depot = await inv.stocked_depot(product, 3, lat=lat, lon=lon)
    params = {"lat": lat, "lon": lon, "radius_km": 2, "min_quantity": 1}

    await _nearby(client, inv, **params)
    hits = _cache_hits()
    cached = await _nearby(client, inv, **params)
    assert _cache_hits() == hits + 1
    assert [(r["depot_id"], r["available"]) for r in cached["items"]] == [(str(depot), 3)]

    sold_out = await inv.reserve(depot, [(product, 3)])
    assert sold_out.status_code == 201
    refused = await inv.reserve(depot, [(product, 1)])
    assert refused.status_code == 409
    assert refused.json()["short_items"] == [
        {"product_id": str(product), "requested": 1, "available": 0}
    ]
    after = await _nearby(client, inv, **params)
    assert after["items"] == []
    assert after["total"] == 0


async def test_nearby_input_is_validated(client: httpx.AsyncClient, inv: Any) -> None:
    for params in (
        {"lon": 1},
        {"lat": 91, "lon": 1},
        {"lat": 1, "lon": 1, "radius_km": 0},
        {"lat": 1, "lon": 1, "radius_km": 501},
        {"lat": 1, "lon": 1, "min_quantity": -1},
        {"lat": 1, "lon": 1, "page_size": 101},
        {"lat": 1, "lon": 1, "category": "x"},
    ):
        response = await client.get(NEARBY, params=params, headers=inv.hospital_headers())
        assert response.status_code == 422, params
    assert (await client.get(NEARBY, params={"lat": 1, "lon": 1})).status_code == 401


# --- availability ---------------------------------------------------------------------


async def test_vendor_availability_in_one_query(
    app: FastAPI, client: httpx.AsyncClient, inv: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    vendor = await inv.vendor(name="Acme Medical Gases")
    north = await inv.depot(vendor, name="A North", lat=10, lon=10)
    south = await inv.depot(vendor, name="B South", lat=9, lon=10)
    empty = await inv.depot(vendor, name="C Empty", lat=8, lon=10)
    a, b = product_ids["O2-CYL-10L"], product_ids["REFILL-10L"]
    await inv.set_stock(vendor, north, a, 7)
    await inv.set_stock(vendor, north, b, 2)
    await inv.set_stock(vendor, south, a, 4)
    assert (await inv.reserve(south, [(a, 3)])).status_code == 201
    other = await inv.vendor()
    await inv.set_stock(other, await inv.depot(other), a, 99)

    with _statements(app) as statements:
        response = await client.get(
            f"/api/v1/vendors/{vendor}/availability", headers=inv.hospital_headers()
        )
    assert response.status_code == 200, response.text
    assert len(statements) == 1
    body = response.json()
    assert body["vendor_id"] == str(vendor)
    assert body["vendor_name"] == "Acme Medical Gases"
    depots = body["depots"]
    assert [(d["depot_id"], d["name"]) for d in depots] == [
        (str(north), "A North"),
        (str(south), "B South"),
        (str(empty), "C Empty"),
    ]
    assert [(p["sku"], p["available"]) for p in depots[0]["products"]] == [
        ("O2-CYL-10L", 7),
        ("REFILL-10L", 2),
    ]
    assert [(p["product_id"], p["available"]) for p in depots[1]["products"]] == [(str(a), 1)]
    assert depots[2]["products"] == []
    assert all(p["updated_at"] for d in depots for p in d["products"])


async def test_availability_of_unknown_unverified_or_suspended_vendors_is_404(
    client: httpx.AsyncClient, inv: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    vendors = [
        uuid.uuid4(),
        await inv.vendor(verified=False),
        await inv.vendor(suspended=True),
    ]
    for vendor in vendors:
        depot = await inv.depot(vendor)
        await inv.set_stock(vendor, depot, product_ids["O2-CYL-10L"], 5)
        response = await client.get(
            f"/api/v1/vendors/{vendor}/availability", headers=inv.hospital_headers()
        )
        assert response.status_code == 404


# --- the vendor projection ------------------------------------------------------------


async def test_projection_handlers_are_idempotent_and_order_independent(
    inv: Any, inventory_db: Any
) -> None:
    vendor = uuid.uuid4()
    verified = inv.org_event("organization.verified", vendor, "Old Name Gases")
    suspended = inv.org_event("organization.suspended", vendor, "New Name Gases")

    async def projected() -> tuple[Any, ...] | None:
        async with inventory_db.connect() as conn:
            row = (
                await conn.execute(
                    text("SELECT name, verified, suspended FROM vendors WHERE vendor_id = :v"),
                    {"v": vendor},
                )
            ).one_or_none()
        return tuple(row) if row else None

    await inv.handle(verified)
    await inv.handle(verified)  # a redelivery (past the inbox) changes nothing
    assert await projected() == ("Old Name Gases", True, False)
    await inv.handle(suspended)
    await inv.handle(suspended)
    assert await projected() == ("New Name Gases", True, True)
    await inv.handle(verified)  # a late, older event neither un-suspends nor renames
    assert await projected() == ("New Name Gases", True, True)

    # Suspension arriving first converges to the same state.
    other = uuid.uuid4()
    await inv.handle(inv.org_event("organization.suspended", other, "X"))
    await inv.handle(inv.org_event("organization.verified", other, "X"))
    async with inventory_db.connect() as conn:
        flags = (
            await conn.execute(
                text("SELECT verified, suspended FROM vendors WHERE vendor_id = :v"), {"v": other}
            )
        ).one()
    assert tuple(flags) == (True, True)

    hospital = uuid.uuid4()
    await inv.handle(inv.org_event("organization.verified", hospital, "St Mary", kind="hospital"))
    async with inventory_db.connect() as conn:
        count = await conn.scalar(
            text("SELECT count(*) FROM vendors WHERE vendor_id = :v"), {"v": hospital}
        )
    assert count == 0


async def test_a_suspension_event_from_the_broker_hides_the_vendor_on_the_next_call(
    app: FastAPI,
    client: httpx.AsyncClient,
    inv: Any,
    infra: TestInfra,
    product_ids: dict[str, uuid.UUID],
) -> None:
    lat, lon = _place(random.Random(19))
    vendor, depot = await inv.stocked_depot(
        product_ids["O2-CYL-10L"], 4, lat=lat, lon=lon, vendor_name="Soon Suspended"
    )
    params = {"lat": lat, "lon": lon, "radius_km": 2}
    await _nearby(client, inv, **params)
    hits = _cache_hits()
    assert (await _nearby(client, inv, **params))["total"] == 1
    assert _cache_hits() == hits + 1  # cached

    deadline = time.monotonic() + 30
    while not app.state.consumer.is_connected:
        assert time.monotonic() < deadline, "the consumer never connected"
        await asyncio.sleep(0.1)
    envelope = inv.org_event("organization.suspended", vendor, "Soon Suspended")
    await publish_envelope(infra.amqp_url, app.state.settings.events_exchange, envelope)

    while (await _nearby(client, inv, **params))["total"] != 0:
        assert time.monotonic() < deadline, "the suspended vendor is still listed"
        await asyncio.sleep(0.1)
    refused = await inv.reserve(depot, [(product_ids["O2-CYL-10L"], 1)])
    assert refused.status_code == 409
    assert refused.json()["type"].endswith("/vendor-unavailable")
