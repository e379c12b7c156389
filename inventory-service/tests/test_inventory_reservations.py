"""Reservations (/internal, for order-service): never oversold, lines of one product
summed, fixed lock order (no deadlocks), idempotent on order_id, commit and release
semantics, and the contract's error answers."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text


async def _stocked_depot(inv: Any, stock: dict[uuid.UUID, int]) -> tuple[uuid.UUID, uuid.UUID]:
    vendor = await inv.vendor()
    depot = await inv.depot(vendor)
    for product, on_hand in stock.items():
        await inv.set_stock(vendor, depot, product, on_hand)
    return vendor, depot


async def test_internal_routes_need_the_service_key(client: httpx.AsyncClient, inv: Any) -> None:
    body = inv.reservation_body(uuid.uuid4(), [(uuid.uuid4(), 1)])
    rid = uuid.uuid4()
    for headers in ({}, {"X-Service-Key": "wrong-key"}, inv.vendor_headers(uuid.uuid4())):
        answers = [
            await client.post("/internal/reservations", json=body, headers=headers),
            await client.post(f"/internal/reservations/{rid}/commit", headers=headers),
            await client.post(f"/internal/reservations/{rid}/release", headers=headers),
            await client.get(f"/internal/reservations/{rid}", headers=headers),
            await client.get(f"/internal/depots/{uuid.uuid4()}", headers=headers),
            await client.get(
                "/internal/catalog/nearby", params={"lat": 1, "lon": 1}, headers=headers
            ),
        ]
        assert [a.status_code for a in answers] == [401] * 6


async def test_reservation_holds_stock_and_answers_the_contract(
    client: httpx.AsyncClient, inv: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    a, b = product_ids["O2-CYL-10L"], product_ids["REG-BULLNOSE"]
    vendor, depot = await _stocked_depot(inv, {a: 10, b: 4})
    order_id = uuid.uuid4()
    before = datetime.now().astimezone()
    response = await inv.reserve(
        depot, [(a, 3), (b, 1), (a, 2)], order_id=order_id, ttl_seconds=600
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["order_id"] == str(order_id)
    assert body["depot_id"] == str(depot)
    assert body["vendor_id"] == str(vendor)
    assert body["status"] == "held"
    expires_at = datetime.fromisoformat(body["expires_at"])
    assert before + timedelta(seconds=590) < expires_at < before + timedelta(seconds=660)
    # Lines of one product are summed.
    assert sorted((i["product_id"], i["quantity"]) for i in body["items"]) == sorted(
        [(str(a), 5), (str(b), 1)]
    )
    assert await inv.stock_row(depot, a) == (10, 5)
    assert await inv.stock_row(depot, b) == (4, 1)

    fetched = await client.get(
        f"/internal/reservations/{body['reservation_id']}", headers=inv.internal_headers
    )
    assert fetched.status_code == 200
    assert fetched.json() == body

    depot_info = await client.get(f"/internal/depots/{depot}", headers=inv.pricing_headers)
    assert depot_info.status_code == 200
    info = depot_info.json()
    assert info["vendor_id"] == str(vendor)
    assert info["vendor_active"] is True
    assert info["vendor_name"].startswith("Vendor ")
    assert {"depot_id", "name", "lat", "lon", "service_radius_km"} <= set(info)


async def test_short_stock_is_409_with_the_short_items(
    inv: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    a, b, c = product_ids["O2-CYL-5L"], product_ids["FLOW-0-15LPM"], product_ids["LOX-250KG"]
    _vendor, depot = await _stocked_depot(inv, {a: 5, b: 10})
    response = await inv.reserve(depot, [(a, 4), (b, 2), (c, 1), (a, 2)])
    assert response.status_code == 409
    problem = response.json()
    assert problem["type"].endswith("/insufficient-stock")
    assert response.headers["content-type"].startswith("application/problem+json")
    # requested is the total over the lines of that product; c has no stock row at all.
    assert sorted(problem["short_items"], key=lambda s: s["product_id"]) == sorted(
        [
            {"product_id": str(a), "requested": 6, "available": 5},
            {"product_id": str(c), "requested": 1, "available": 0},
        ],
        key=lambda s: s["product_id"],
    )
    # Nothing is held for the lines that would have fitted.
    assert await inv.stock_row(depot, a) == (5, 0)
    assert await inv.stock_row(depot, b) == (10, 0)


async def test_two_lines_of_one_product_that_together_exceed_stock_are_refused(
    inv: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    a = product_ids["O2-CYL-20L"]
    _vendor, depot = await _stocked_depot(inv, {a: 5})
    response = await inv.reserve(depot, [(a, 3), (a, 3)])
    assert response.status_code == 409
    assert response.json()["short_items"] == [
        {"product_id": str(a), "requested": 6, "available": 5}
    ]
    assert await inv.stock_row(depot, a) == (5, 0)


async def test_unknown_depot_or_product_is_404_and_bad_input_422(
    inv: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    a = product_ids["O2-CYL-2L"]
    _vendor, depot = await _stocked_depot(inv, {a: 5})
    unknown_depot = await inv.reserve(uuid.uuid4(), [(a, 1)])
    assert unknown_depot.status_code == 404
    unknown_product = await inv.reserve(depot, [(a, 1), (uuid.uuid4(), 1)])
    assert unknown_product.status_code == 404
    for bad in (
        {"items": []},
        {"items": [{"product_id": str(a), "quantity": 0}]},
        {"ttl_seconds": 0},
        {"ttl_seconds": 10**9},
        {"unexpected": True},
    ):
        body = {**inv.reservation_body(depot, [(a, 1)]), **bad}
        response = await inv.http.post(
            "/internal/reservations", json=body, headers=inv.internal_headers
        )
        assert response.status_code == 422, bad
    assert await inv.stock_row(depot, a) == (5, 0)


async def test_unverified_or_suspended_vendors_cannot_take_reservations(
    inv: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    a = product_ids["CONC-10LPM"]
    for verified, suspended in ((False, False), (True, True), (False, True)):
        vendor = await inv.vendor(verified=verified, suspended=suspended)
        depot = await inv.depot(vendor)
        await inv.set_stock(vendor, depot, a, 5)  # stock before verification is allowed
        response = await inv.reserve(depot, [(a, 1)])
        assert response.status_code == 409
        assert response.json()["type"].endswith("/vendor-unavailable")
        assert await inv.stock_row(depot, a) == (5, 0)
        info = await inv.http.get(f"/internal/depots/{depot}", headers=inv.pricing_headers)
        assert info.json()["vendor_active"] is False


async def test_concurrent_identical_requests_make_one_reservation(
    inv: Any, inventory_db: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    a, b = product_ids["O2-CYL-1L"], product_ids["MASK-NRB-ADULT"]
    _vendor, depot = await _stocked_depot(inv, {a: 50, b: 50})
    order_id = uuid.uuid4()
    answers = await asyncio.gather(
        *(inv.reserve(depot, [(a, 2), (b, 3)], order_id=order_id) for _ in range(10))
    )
    assert sorted(r.status_code for r in answers) == [200] * 9 + [201]
    assert len({r.json()["reservation_id"] for r in answers}) == 1
    assert await inv.stock_row(depot, a) == (50, 2)
    assert await inv.stock_row(depot, b) == (50, 3)
    async with inventory_db.connect() as conn:
        count = await conn.scalar(
            text("SELECT count(*) FROM reservations WHERE order_id = :o"), {"o": order_id}
        )
    assert count == 1

    # A later replay still answers the same reservation; another body is a mismatch.
    replay = await inv.reserve(depot, [(b, 3), (a, 1), (a, 1)], order_id=order_id)
    assert replay.status_code == 200
    assert replay.json()["reservation_id"] == answers[0].json()["reservation_id"]
    mismatch = await inv.reserve(depot, [(a, 3)], order_id=order_id)
    assert mismatch.status_code == 409
    assert mismatch.json()["type"].endswith("/reservation-mismatch")
    assert await inv.stock_row(depot, a) == (50, 2)


async def test_opposite_line_orders_never_deadlock(
    inv: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    a, b = product_ids["O2-CYL-40L"], product_ids["REG-CGA870"]
    _vendor, depot = await _stocked_depot(inv, {a: 40, b: 40})
    requests = []
    for _ in range(30):
        requests.append(inv.reserve(depot, [(a, 1), (b, 1)]))
        requests.append(inv.reserve(depot, [(b, 1), (a, 1)]))
    answers = await asyncio.gather(*requests)
    statuses = Counter(r.status_code for r in answers)
    assert statuses == {201: 40, 409: 20}, [r.text for r in answers if r.status_code >= 500][:1]
    assert await inv.stock_row(depot, a) == (40, 40)
    assert await inv.stock_row(depot, b) == (40, 40)


async def test_commit_and_release_are_idempotent_and_exclusive(
    client: httpx.AsyncClient, inv: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    a = product_ids["O2-CYL-10L"]
    _vendor, depot = await _stocked_depot(inv, {a: 10})
    first = (await inv.reserve(depot, [(a, 4)])).json()["reservation_id"]
    second = (await inv.reserve(depot, [(a, 3)])).json()["reservation_id"]
    headers = inv.internal_headers

    for _ in range(2):
        committed = await client.post(f"/internal/reservations/{first}/commit", headers=headers)
        assert committed.status_code == 200
        assert committed.json() == {"reservation_id": first, "status": "committed"}
    assert await inv.stock_row(depot, a) == (6, 3)
    cannot_release = await client.post(f"/internal/reservations/{first}/release", headers=headers)
    assert cannot_release.status_code == 409

    for _ in range(2):
        released = await client.post(f"/internal/reservations/{second}/release", headers=headers)
        assert released.status_code == 200
        assert released.json() == {"reservation_id": second, "status": "released"}
    assert await inv.stock_row(depot, a) == (6, 0)
    cannot_commit = await client.post(f"/internal/reservations/{second}/commit", headers=headers)
    assert cannot_commit.status_code == 409
    assert cannot_commit.json()["type"].endswith("/reservation-not-held")
    assert await inv.stock_row(depot, a) == (6, 0)

    missing = await client.post(f"/internal/reservations/{uuid.uuid4()}/commit", headers=headers)
    assert missing.status_code == 404
