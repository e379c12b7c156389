"""POST /internal/reservations/{id}/extend: a live hold is kept longer (a confirmed order
waiting for delivery), never shortened, never revived once expired, released or
committed, never stock-changing, and never lost to a sweeper running at the same time."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from inventory_service.service.reservations import extend_reservation

TINY_TTL = 1


async def _wait_past(seconds: float) -> None:
    # Holds expire by the database clock; sleeping past the TTL is the honest way there.
    await asyncio.sleep(seconds + 0.2)


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def _stocked(inv: Any, product: uuid.UUID, on_hand: int) -> tuple[uuid.UUID, uuid.UUID]:
    vendor = await inv.vendor()
    depot = await inv.depot(vendor)
    await inv.set_stock(vendor, depot, product, on_hand)
    return vendor, depot


async def _extend(inv: Any, reservation_id: str, ttl_seconds: Any) -> httpx.Response:
    response: httpx.Response = await inv.http.post(
        f"/internal/reservations/{reservation_id}/extend",
        json={"ttl_seconds": ttl_seconds},
        headers=inv.internal_headers,
    )
    return response


async def _reservation_row(inv: Any, reservation_id: str) -> tuple[str, datetime]:
    async with inv.engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT status, expires_at FROM reservations WHERE id = :id"),
                {"id": uuid.UUID(reservation_id)},
            )
        ).one()
    return str(row.status), row.expires_at


async def _movement_kinds(inv: Any, reservation_id: str) -> list[str]:
    async with inv.engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT kind FROM stock_movements WHERE reference = :r ORDER BY id"),
                {"r": reservation_id},
            )
        ).all()
    return [row.kind for row in rows]


async def test_extending_a_live_hold_moves_its_expiry_and_no_stock(
    app: FastAPI, inv: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    product = product_ids["O2-CYL-10L"]
    _vendor, depot = await _stocked(inv, product, 10)
    held = await inv.reserve(depot, [(product, 3)], ttl_seconds=60)
    assert held.status_code == 201
    reservation = held.json()
    rid = reservation["reservation_id"]

    before = datetime.now().astimezone()
    extended = await _extend(inv, rid, 7200)
    after = datetime.now().astimezone()

    assert extended.status_code == 200, extended.text
    body = extended.json()
    new_expiry = _at(body["expires_at"])
    assert before + timedelta(seconds=7190) < new_expiry < after + timedelta(seconds=7210)
    # Everything else is the same reservation.
    assert {k: v for k, v in body.items() if k != "expires_at"} == {
        k: v for k, v in reservation.items() if k != "expires_at"
    }
    fetched = await inv.http.get(f"/internal/reservations/{rid}", headers=inv.internal_headers)
    assert fetched.json() == body
    # No stock moved, so nothing is recorded as a movement.
    assert await inv.stock_row(depot, product) == (10, 3)
    assert await _movement_kinds(inv, rid) == ["reserve"]

    # A shorter extension never shortens the hold.
    shorter = await _extend(inv, rid, 60)
    assert shorter.status_code == 200
    assert _at(shorter.json()["expires_at"]) == new_expiry
    assert (await _reservation_row(inv, rid))[1] == new_expiry

    # The body is checked: bounds from configuration, no unknown fields.
    max_ttl = app.state.settings.reservation_max_ttl_seconds
    for bad in (0, -5, max_ttl + 1, "soon"):
        refused = await _extend(inv, rid, bad)
        assert refused.status_code == 422, bad
    extra = await inv.http.post(
        f"/internal/reservations/{rid}/extend",
        json={"ttl_seconds": 60, "expires_at": "2099-01-01T00:00:00Z"},
        headers=inv.internal_headers,
    )
    assert extra.status_code == 422
    at_max = await _extend(inv, rid, max_ttl)
    assert at_max.status_code == 200
    assert (await _reservation_row(inv, rid))[1] > new_expiry

    unknown = await _extend(inv, str(uuid.uuid4()), 60)
    assert unknown.status_code == 404
    assert unknown.json()["type"].endswith("/reservation-not-found")

    # The extended hold is committed as any other.
    commit = await inv.http.post(
        f"/internal/reservations/{rid}/commit", headers=inv.internal_headers
    )
    assert commit.status_code == 200
    assert await inv.stock_row(depot, product) == (7, 0)


async def test_only_a_live_hold_can_be_extended(
    app: FastAPI, inv: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    product = product_ids["O2-CYL-5L"]
    _vendor, depot = await _stocked(inv, product, 10)
    expiring = (await inv.reserve(depot, [(product, 1)], ttl_seconds=TINY_TTL)).json()
    released = (await inv.reserve(depot, [(product, 2)])).json()
    committed = (await inv.reserve(depot, [(product, 3)])).json()
    headers = inv.internal_headers
    for rid, action in ((released, "release"), (committed, "commit")):
        done = await inv.http.post(
            f"/internal/reservations/{rid['reservation_id']}/{action}", headers=headers
        )
        assert done.status_code == 200
    await _wait_past(TINY_TTL)
    stock_before = await inv.stock_row(depot, product)
    assert stock_before == (7, 1)  # the expired hold is held until swept
    expiring_before = await _reservation_row(inv, expiring["reservation_id"])

    # Expired by the clock but not swept yet: it is not revived.
    late = await _extend(inv, expiring["reservation_id"], 3600)
    assert late.status_code == 409
    assert late.json()["type"].endswith("/reservation-not-held")
    assert await _reservation_row(inv, expiring["reservation_id"]) == expiring_before

    await app.state.sweeper.run_once()
    assert (await _reservation_row(inv, expiring["reservation_id"]))[0] == "expired"
    for gone in (expiring, released, committed):
        refused = await _extend(inv, gone["reservation_id"], 3600)
        assert refused.status_code == 409, gone
        assert refused.json()["type"].endswith("/reservation-not-held")
    assert await inv.stock_row(depot, product) == (7, 0)
    assert [
        (await _reservation_row(inv, r["reservation_id"]))[0]
        for r in (expiring, released, committed)
    ] == ["expired", "released", "committed"]


async def test_a_hold_extended_just_before_the_sweeper_runs_is_not_released(
    app: FastAPI, inv: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    product = product_ids["O2-CYL-2L"]
    _vendor, depot = await _stocked(inv, product, 10)
    kept = (await inv.reserve(depot, [(product, 4)], ttl_seconds=TINY_TTL)).json()
    left = (await inv.reserve(depot, [(product, 1)], ttl_seconds=TINY_TTL)).json()
    assert (await _extend(inv, kept["reservation_id"], 3600)).status_code == 200
    await _wait_past(TINY_TTL)

    await app.state.sweeper.run_once()

    assert (await _reservation_row(inv, kept["reservation_id"]))[0] == "held"
    assert (await _reservation_row(inv, left["reservation_id"]))[0] == "expired"
    assert await inv.stock_row(depot, product) == (10, 4)
    assert await _movement_kinds(inv, kept["reservation_id"]) == ["reserve"]
    commit = await inv.http.post(
        f"/internal/reservations/{kept['reservation_id']}/commit", headers=inv.internal_headers
    )
    assert commit.status_code == 200


async def test_a_sweeper_running_while_an_extension_is_uncommitted_leaves_the_hold(
    app: FastAPI, inv: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    product = product_ids["O2-CYL-1L"]
    _vendor, depot = await _stocked(inv, product, 10)
    hold = (await inv.reserve(depot, [(product, 2)], ttl_seconds=TINY_TTL)).json()
    rid = hold["reservation_id"]
    max_ttl = app.state.settings.reservation_max_ttl_seconds

    async with inv.sessions() as session, session.begin():
        # The extension has its row (still live by this transaction's clock) but has
        # not committed when the hold's time is up and the sweeper runs.
        view = await extend_reservation(
            session, uuid.UUID(rid), ttl_seconds=3600, max_ttl_seconds=max_ttl, actor="test"
        )
        await _wait_past(TINY_TTL)
        await app.state.sweeper.run_once()
        # The sweeper skipped the row it could not lock; others still see the old hold.
        status, expires_at = await _reservation_row(inv, rid)
        assert status == "held"
        assert expires_at == _at(hold["expires_at"])

    # Committed: the sweeper's re-check finds the new expiry, not a due hold.
    await app.state.sweeper.run_once()
    assert await _reservation_row(inv, rid) == ("held", view.expires_at)
    assert await inv.stock_row(depot, product) == (10, 2)
    assert await _movement_kinds(inv, rid) == ["reserve"]


async def test_extend_needs_the_service_key(
    client: httpx.AsyncClient, inv: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    product = product_ids["O2-CYL-10L"]
    vendor, depot = await _stocked(inv, product, 5)
    hold = (await inv.reserve(depot, [(product, 1)], ttl_seconds=60)).json()
    rid = hold["reservation_id"]
    for headers in ({}, {"X-Service-Key": "wrong-key"}, inv.vendor_headers(vendor)):
        response = await client.post(
            f"/internal/reservations/{rid}/extend", json={"ttl_seconds": 3600}, headers=headers
        )
        assert response.status_code == 401, headers
    assert (await _reservation_row(inv, rid))[1] == _at(hold["expires_at"])
