"""SPEC Catalog and inventory: vendors manage their own depots and stock; another
vendor's depot is 404, hospitals get 403; on_hand never below reserved; every
movement kept; stock_changed on every change and low_stock once per crossing."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import text


async def test_vendor_creates_and_lists_only_its_own_depots(
    client: httpx.AsyncClient, inv: Any
) -> None:
    vendor, other = uuid.uuid4(), uuid.uuid4()  # unverified vendors may set up depots
    response = await client.post(
        "/api/v1/inventory/depots",
        json={"name": "North depot", "lat": 48.8566, "lon": 2.3522, "service_radius_km": 40},
        headers=inv.vendor_headers(vendor),
    )
    assert response.status_code == 201, response.text
    depot = response.json()
    assert depot["vendor_id"] == str(vendor)
    assert depot["name"] == "North depot"
    assert depot["address"] is None
    assert (depot["lat"], depot["lon"], depot["service_radius_km"]) == (48.8566, 2.3522, 40.0)
    second = await inv.depot(vendor, name="South depot")
    await inv.depot(other)

    listed = await client.get("/api/v1/inventory/depots", headers=inv.vendor_headers(vendor))
    assert listed.status_code == 200
    body = listed.json()
    assert body["total"] == 2
    assert [d["id"] for d in body["items"]] == [depot["id"], str(second)]

    own = await client.get(f"/api/v1/inventory/depots/{second}", headers=inv.vendor_headers(vendor))
    assert own.status_code == 200
    assert own.json()["name"] == "South depot"


async def test_depot_input_is_validated(client: httpx.AsyncClient, inv: Any) -> None:
    headers = inv.vendor_headers(uuid.uuid4())
    good = {"name": "D", "lat": 10.0, "lon": 10.0, "service_radius_km": 10}
    for bad in (
        {**good, "lat": 91},
        {**good, "lon": -181},
        {**good, "service_radius_km": 0},
        {**good, "owner": "me"},
        {k: v for k, v in good.items() if k != "lat"},
    ):
        response = await client.post("/api/v1/inventory/depots", json=bad, headers=headers)
        assert response.status_code == 422, bad


async def test_stock_put_adjust_and_list(
    client: httpx.AsyncClient, inv: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    vendor = uuid.uuid4()
    depot = await inv.depot(vendor)
    cylinder, lox = product_ids["O2-CYL-10L"], product_ids["LOX-100KG"]
    headers = inv.vendor_headers(vendor)

    row = await inv.set_stock(vendor, depot, cylinder, 30, low_stock_threshold=5)
    assert row["depot_id"] == str(depot)
    assert row["product_id"] == str(cylinder)
    assert (row["on_hand"], row["reserved"], row["available"]) == (30, 0, 30)
    assert row["low_stock_threshold"] == 5
    assert row["sku"] == "O2-CYL-10L"
    assert row["updated_at"]

    adjusted = await client.post(
        f"/api/v1/inventory/depots/{depot}/stock/{cylinder}/adjust",
        json={"delta": -4, "reason": "damaged valve"},
        headers=headers,
    )
    assert adjusted.status_code == 200, adjusted.text
    assert (adjusted.json()["on_hand"], adjusted.json()["available"]) == (26, 26)
    # Adjusting a product without a row yet starts from zero.
    first = await client.post(
        f"/api/v1/inventory/depots/{depot}/stock/{lox}/adjust",
        json={"delta": 3, "reason": "delivery from plant"},
        headers=headers,
    )
    assert first.status_code == 200
    assert first.json()["on_hand"] == 3
    # A PUT without a threshold keeps the row's threshold.
    kept = await client.put(
        f"/api/v1/inventory/depots/{depot}/stock/{cylinder}", json={"on_hand": 20}, headers=headers
    )
    assert kept.json()["low_stock_threshold"] == 5

    listed = await client.get(f"/api/v1/inventory/depots/{depot}/stock", headers=headers)
    assert listed.status_code == 200
    rows = {r["sku"]: r for r in listed.json()["items"]}
    assert listed.json()["total"] == 2
    assert (rows["O2-CYL-10L"]["on_hand"], rows["LOX-100KG"]["on_hand"]) == (20, 3)

    movements = await client.get(
        f"/api/v1/inventory/depots/{depot}/stock/{cylinder}/movements", headers=headers
    )
    assert movements.status_code == 200
    kinds = [(m["kind"], m["delta"], m["on_hand_after"]) for m in movements.json()["items"]]
    assert kinds == [("set", -6, 20), ("adjust", -4, 26), ("set", 30, 30)]
    newest_adjust = movements.json()["items"][1]
    assert newest_adjust["reason"] == "damaged valve"
    assert newest_adjust["actor"]  # the user who did it


async def test_stock_input_is_validated(
    client: httpx.AsyncClient, inv: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    line = await inv.stock_line(product_ids["O2-CYL-5L"])
    url, headers = line.url, line.headers
    for bad in ({"on_hand": -1}, {"on_hand": 1, "low_stock_threshold": -1}, {"on_hand": "x"}):
        assert (await client.put(url, json=bad, headers=headers)).status_code == 422
    for bad_adjust in ({"delta": 0, "reason": "x"}, {"delta": 1}, {"delta": 1, "reason": ""}):
        response = await client.post(url + "/adjust", json=bad_adjust, headers=headers)
        assert response.status_code == 422, bad_adjust
    unknown = await client.put(
        inv.stock_url(line.depot_id, uuid.uuid4()), json={"on_hand": 1}, headers=headers
    )
    assert unknown.status_code == 404


async def test_stock_never_goes_below_what_is_reserved(
    client: httpx.AsyncClient, inv: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    vendor = await inv.vendor()
    depot = await inv.depot(vendor)
    product = product_ids["O2-CYL-40L"]
    headers = inv.vendor_headers(vendor)
    await inv.set_stock(vendor, depot, product, 10)
    held = await inv.reserve(depot, [(product, 6)])
    assert held.status_code == 201, held.text

    url = f"/api/v1/inventory/depots/{depot}/stock/{product}"
    below = await client.put(url, json={"on_hand": 5}, headers=headers)
    assert below.status_code == 409
    assert below.json()["type"].endswith("/stock-below-reserved")
    too_far = await client.post(url + "/adjust", json={"delta": -5, "reason": "x"}, headers=headers)
    assert too_far.status_code == 409
    negative = await client.post(
        url + "/adjust", json={"delta": -11, "reason": "x"}, headers=headers
    )
    assert negative.status_code == 409
    assert await inv.stock_row(depot, product) == (10, 6)

    exactly = await client.put(url, json={"on_hand": 6}, headers=headers)
    assert exactly.status_code == 200
    assert exactly.json()["available"] == 0


async def test_another_vendors_depot_is_not_found(
    client: httpx.AsyncClient, inv: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    owner, intruder = uuid.uuid4(), uuid.uuid4()
    depot = await inv.depot(owner)
    product = product_ids["O2-CYL-10L"]
    await inv.set_stock(owner, depot, product, 7)
    headers = inv.vendor_headers(intruder)
    url = f"/api/v1/inventory/depots/{depot}"
    answers = [
        await client.get(url, headers=headers),
        await client.get(url + "/stock", headers=headers),
        await client.put(url + f"/stock/{product}", json={"on_hand": 0}, headers=headers),
        await client.post(
            url + f"/stock/{product}/adjust", json={"delta": -7, "reason": "x"}, headers=headers
        ),
        await client.get(url + f"/stock/{product}/movements", headers=headers),
    ]
    assert [a.status_code for a in answers] == [404] * 5
    assert await inv.stock_row(depot, product) == (7, 0)
    listed = await client.get("/api/v1/inventory/depots", headers=headers)
    assert listed.json()["total"] == 0


async def test_hospitals_and_admins_cannot_use_vendor_routes(
    client: httpx.AsyncClient, inv: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    vendor = uuid.uuid4()
    depot = await inv.depot(vendor)
    product = product_ids["O2-CYL-10L"]
    for headers in (inv.hospital_headers(), inv.admin_headers()):
        answers = [
            await client.post(
                "/api/v1/inventory/depots",
                json={"name": "D", "lat": 1, "lon": 1, "service_radius_km": 5},
                headers=headers,
            ),
            await client.get("/api/v1/inventory/depots", headers=headers),
            await client.get(f"/api/v1/inventory/depots/{depot}/stock", headers=headers),
            await client.put(
                f"/api/v1/inventory/depots/{depot}/stock/{product}",
                json={"on_hand": 1},
                headers=headers,
            ),
            await client.post(
                f"/api/v1/inventory/depots/{depot}/stock/{product}/adjust",
                json={"delta": 1, "reason": "x"},
                headers=headers,
            ),
        ]
        assert [a.status_code for a in answers] == [403] * 5
    assert (await client.get("/api/v1/inventory/depots")).status_code == 401


# --- events ---------------------------------------------------------------------------


async def test_a_stock_put_publishes_exactly_one_stock_changed(
    inv: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    vendor = uuid.uuid4()
    depot = await inv.depot(vendor)
    product = product_ids["CONC-5LPM"]
    await inv.set_stock(vendor, depot, product, 12, low_stock_threshold=2)

    events = await inv.outbox_events("inventory.stock_changed", depot_id=str(depot))
    assert len(events) == 1
    event = events[0]
    assert event["producer"] == "inventory-service"
    assert event["data"] == {
        "depot_id": str(depot),
        "vendor_id": str(vendor),
        "product_id": str(product),
        "sku": "CONC-5LPM",
        "on_hand": 12,
        "reserved": 0,
        "available": 12,
        "low_stock_threshold": 2,
        "reason": "set",
        "delta": 12,
        "reference": None,
        "note": None,
        "actor": event["data"]["actor"],
    }
    assert await inv.outbox_events("inventory.low_stock", depot_id=str(depot)) == []


async def test_low_stock_is_published_once_per_crossing(
    client: httpx.AsyncClient, inv: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    vendor = await inv.vendor()
    depot = await inv.depot(vendor)
    product = product_ids["O2-CYL-46.7L"]
    url = f"/api/v1/inventory/depots/{depot}/stock/{product}/adjust"
    headers = inv.vendor_headers(vendor)

    async def adjust(delta: int) -> None:
        response = await client.post(url, json={"delta": delta, "reason": "count"}, headers=headers)
        assert response.status_code == 200, response.text

    async def alerts() -> list[dict[str, Any]]:
        return [
            e["data"] for e in await inv.outbox_events("inventory.low_stock", depot_id=str(depot))
        ]

    await inv.set_stock(vendor, depot, product, 10, low_stock_threshold=5)
    assert await alerts() == []
    await adjust(-6)  # 4 available: below 5, the first crossing
    assert [(a["available"], a["low_stock_threshold"]) for a in await alerts()] == [(4, 5)]
    await adjust(-1)  # further down: no second alert
    assert len(await alerts()) == 1
    await adjust(+1)  # 4, still below
    await adjust(+1)  # 5, back at the threshold: the flag clears
    assert len(await alerts()) == 1
    await adjust(-2)  # 3: the second crossing
    assert [a["available"] for a in await alerts()] == [4, 3]

    # Reservations count: available (not on_hand) crossing below the threshold alerts too.
    await inv.set_stock(vendor, depot, product, 8, low_stock_threshold=5)  # flag clears
    held = await inv.reserve(depot, [(product, 4)])
    assert held.status_code == 201
    data = await alerts()
    assert len(data) == 3
    assert data[-1]["available"] == 4
    assert data[-1]["vendor_id"] == str(vendor)
    assert data[-1]["sku"] == "O2-CYL-46.7L"

    # Every change of the row published one stock_changed, in order.
    changes = await inv.outbox_events("inventory.stock_changed", depot_id=str(depot))
    assert [c["data"]["reason"] for c in changes] == ["set"] + ["adjust"] * 5 + ["set", "reserve"]
    assert [c["data"]["available"] for c in changes] == [10, 4, 3, 4, 5, 3, 8, 4]


async def test_every_movement_is_kept_with_its_reference(
    inv: Any, inventory_db: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    vendor = await inv.vendor()
    depot = await inv.depot(vendor)
    product = product_ids["REFILL-10L"]
    await inv.set_stock(vendor, depot, product, 10)
    first = (await inv.reserve(depot, [(product, 3)])).json()["reservation_id"]
    second = (await inv.reserve(depot, [(product, 2)])).json()["reservation_id"]
    commit = await inv.http.post(
        f"/internal/reservations/{first}/commit", headers=inv.internal_headers
    )
    release = await inv.http.post(
        f"/internal/reservations/{second}/release", headers=inv.internal_headers
    )
    assert commit.status_code == release.status_code == 200

    async with inventory_db.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT kind, delta, on_hand_after, reserved_after, reference, actor "
                    "FROM stock_movements WHERE depot_id = :d ORDER BY id"
                ),
                {"d": depot},
            )
        ).all()
    assert [tuple(r)[:5] for r in rows] == [
        ("set", 10, 10, 0, None),
        ("reserve", 3, 10, 3, first),
        ("reserve", 2, 10, 5, second),
        ("commit", -3, 7, 2, first),
        ("release", -2, 7, 0, second),
    ]
    assert all(r.actor for r in rows)
    assert await inv.stock_row(depot, product) == (7, 0)
