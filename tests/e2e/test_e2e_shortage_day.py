"""A shortage day on the real fleet (issue 13), read top to bottom:

1. three verified vendors with stocked depots at about 2, 8 and 18 km north of a
   hospital's site, the hospital we follow, and a hoarder with a small cap (6);
2. the platform admin declares a shortage over the area for the product's category and
   everyone inside hears `shortage.declared`;
3. routine orders pause; caps halve, so the hoarder is refused at 3 units open; an
   unconfirmed urgent order's hold is at most SHORTAGE_HOLD_MINUTES;
4. our hospital's SOS rings the nearest vendor, which declines; ring 2 offers the next
   one (`sos.escalated`), which accepts: a confirmed emergency order;
5. it is dispatched and delivered, and the hospital's open units come back;
6. the admin ends the shortage and a routine order goes through;
7. the invariants, read from the databases: stock conservation per depot row, reserved =
   live holds, one payment per order, no hold without an order, the orders outbox drained.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime, timedelta
from itertools import cycle
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
import pytest

from flow_shared.testing.polling import eventually

if TYPE_CHECKING:
    from flow_shared.testing.fleet import IsolatedFleet
    from tests.e2e.conftest import Account, Accounts, StockedDepot

# Tromsø: far from every other end-to-end test's points. The depots lie due north of the
# site, so their order by distance (and so by ETA) is unambiguous.
SITE = {"lat": 69.6492, "lon": 18.9553}
HOARDER_SITE = {"lat": 69.6400, "lon": 18.9300}  # about 1.5 km from SITE
DEPOTS = (
    ("Tromsø near depot", {"lat": 69.6670, "lon": 18.9553}),  # about 2 km
    ("Tromsø middle depot", {"lat": 69.7210, "lon": 18.9553}),  # about 8 km
    ("Tromsø far depot", {"lat": 69.8100, "lon": 18.9553}),  # about 18 km
)
CATEGORY = "liquid_oxygen"
ON_HAND = 20
SHORTAGE_RADIUS_KM = 30  # covers both sites and all three depots

HOARDER_OVERRIDE = 6
SHORTAGE_CAP_FACTOR = 0.5  # order-service's default
SHORTAGE_CAP = math.floor(HOARDER_OVERRIDE * SHORTAGE_CAP_FACTOR)
ALLOCATION_CAP_UNVERIFIED = 10  # order-service's default: our hospital is not verified
SHORTAGE_HOLD = timedelta(minutes=15)  # SHORTAGE_HOLD_MINUTES's default
SOS_QUANTITY = 2


def problem_type(response: httpx.Response) -> str:
    """The last segment of an error's RFC 9457 `type` ("" for a success)."""
    if response.status_code < 400:
        return ""
    return str(response.json().get("type", "")).rsplit("/", 1)[-1]


async def notified(
    gateway: httpx.AsyncClient, who: Account, kind: str, **data: Any
) -> dict[str, Any]:
    """Poll `who`'s notifications until one of `kind` whose data holds `data` arrives."""

    async def probe() -> dict[str, Any] | None:
        answer = await gateway.get(
            "/api/v1/notifications", params={"page_size": 100}, headers=who.headers
        )
        assert answer.status_code == 200, answer.text
        for notification in answer.json()["items"]:
            held = notification["data"]
            if notification["type"] == kind and all(held.get(k) == v for k, v in data.items()):
                return dict(notification)
        return None

    return await eventually(probe, f"{who.email} told {kind} {data}")


async def open_units(gateway: httpx.AsyncClient, hospital: Account, product_id: str) -> int:
    answer = await gateway.get("/api/v1/allocation", headers=hospital.headers)
    assert answer.status_code == 200, answer.text
    # A product with nothing open and no override is not listed: nothing open.
    return next(
        (i["open_units"] for i in answer.json()["items"] if i["product_id"] == product_id), 0
    )


# Only a guard against hanging: run alone, this test also pays for starting the fleet
# (its setup counts against the item's timeout), which takes longer than the suite's
# 120 s on a busy two-core machine (several minutes when other fleets run).
@pytest.mark.timeout(900)
async def test_a_shortage_day_from_declaration_to_the_end_keeps_every_invariant(
    gateway: httpx.AsyncClient, accounts: Accounts, fleet: IsolatedFleet
) -> None:
    # 1. The cast.
    depots: list[StockedDepot] = [
        await accounts.stocked_depot(name=name, **point, category=CATEGORY, on_hand=ON_HAND)
        for name, point in DEPOTS
    ]
    near, middle, far = depots
    product_id = near.product_id
    assert {d.product_id for d in depots} == {product_id}
    hospital = await accounts.register("hospital")
    hoarder = await accounts.register("hospital")
    site_ids: dict[str, str] = {}
    for who, point in ((hospital, SITE), (hoarder, HOARDER_SITE)):
        site = await gateway.post(
            "/api/v1/locations/sites", headers=who.headers, json={"name": "Ward O2", **point}
        )
        assert site.status_code == 201, site.text
        site_ids[who.org_id] = str(site.json()["id"])
    admin = await accounts.admin()
    override = await gateway.put(
        f"/api/v1/admin/organizations/{hoarder.org_id}/allocation",
        headers=admin,
        json={"caps": [{"product_id": product_id, "units": HOARDER_OVERRIDE}]},
    )
    assert override.status_code == 200, override.text

    placed_ids: set[str] = set()  # every order the day created, to check against the DB

    async def order(
        who: Account, depot: StockedDepot, priority: str, quantity: int = 1
    ) -> httpx.Response:
        answer = await gateway.post(
            "/api/v1/orders",
            headers=who.headers,
            json={
                "vendor_id": depot.vendor.org_id,
                "depot_id": depot.depot_id,
                "site_id": site_ids[who.org_id],
                "items": [{"product_id": product_id, "quantity": quantity}],
                "priority": priority,
                "payment_method": "invoice",
            },
        )
        if answer.status_code == 201:
            placed_ids.add(str(answer.json()["id"]))
        return answer

    # 2. The declaration, and everyone inside hears of it.
    declared = await gateway.post(
        "/api/v1/admin/shortages",
        headers=admin,
        json={
            "area": {**SITE, "radius_km": SHORTAGE_RADIUS_KM},
            "categories": [CATEGORY],
            "note": "Liquid oxygen plant outage",
        },
    )
    assert declared.status_code == 201, declared.text
    shortage_id = str(declared.json()["id"])
    assert declared.json()["status"] == "active"
    for who in (hospital, hoarder, near.vendor, middle.vendor, far.vendor):
        told = await notified(gateway, who, "shortage.declared", shortage_id=shortage_id)
        assert told["data"]["categories"] == [CATEGORY]

    # 3. Routine orders pause once order-service has heard. The probe asks for more than
    # even the normal cap, so before then it is refused for the cap: it never places an
    # order (which would count against the hospital's cap for the rest of the day).
    async def routine_paused() -> httpx.Response | None:
        answer = await order(hospital, near, "routine", quantity=ALLOCATION_CAP_UNVERIFIED + 1)
        assert answer.status_code == 409, answer.text
        return answer if problem_type(answer) == "shortage-routine-paused" else None

    paused: httpx.Response = await eventually(
        routine_paused, "routine orders paused by the shortage", interval=1
    )
    assert paused.json()["shortage_id"] == shortage_id
    assert paused.json()["categories"] == [CATEGORY]

    # The hoarder's cap is halved: urgent and emergency orders until it is refused.
    hoarded: list[dict[str, Any]] = []
    refused: httpx.Response | None = None
    priorities: Iterator[str] = cycle(("urgent", "emergency"))
    for _ in range(HOARDER_OVERRIDE + 1):
        answer = await order(hoarder, far, next(priorities))
        if answer.status_code != 201:
            refused = answer
            break
        hoarded.append(answer.json())
    assert refused is not None, f"{len(hoarded)} orders, none refused"
    assert refused.status_code == 409, refused.text
    assert problem_type(refused) == "allocation-cap-exceeded", refused.text
    assert len(hoarded) == SHORTAGE_CAP
    body = refused.json()
    assert (body["product_id"], body["cap"], body["open"], body["requested"]) == (
        product_id,
        SHORTAGE_CAP,
        SHORTAGE_CAP,
        1,
    )
    assert await open_units(gateway, hoarder, product_id) == SHORTAGE_CAP
    # At its site the hoarder sees the cap the shortage imposes, and which shortage does.
    at_site = await gateway.get(
        "/api/v1/allocation",
        params={"site_id": site_ids[hoarder.org_id]},
        headers=hoarder.headers,
    )
    assert at_site.status_code == 200, at_site.text
    assert at_site.json()["shortage_ids"] == [shortage_id]
    assert [(i["product_id"], i["cap"], i["open_units"]) for i in at_site.json()["items"]] == [
        (product_id, SHORTAGE_CAP, SHORTAGE_CAP)
    ]

    # An unconfirmed urgent order (normally held an hour) is held at most 15 minutes.
    urgent = next(o for o in hoarded if o["priority"] == "urgent")
    assert urgent["status"] == "placed"
    hold = datetime.fromisoformat(urgent["expires_at"]) - datetime.fromisoformat(
        urgent["created_at"]
    )
    assert timedelta(0) < hold <= SHORTAGE_HOLD, hold

    # Our hospital has one urgent order open before its SOS: the baseline to come back to.
    standing = await order(hospital, near, "urgent")
    assert standing.status_code == 201, standing.text
    baseline = await open_units(gateway, hospital, product_id)
    assert baseline == 1

    # 4. The SOS: ring 1 is the nearest vendor alone. The rings move on declines here, so
    # the time-out is long: the sweeper must not escalate while the test is answering.
    opened = await gateway.post(
        "/api/v1/sos",
        headers=hospital.headers,
        json={
            "product_id": product_id,
            "quantity": SOS_QUANTITY,
            "site_id": site_ids[hospital.org_id],
            "ring_size": 1,
            "ring_timeout_seconds": 600,
        },
    )
    assert opened.status_code == 201, opened.text
    sos = opened.json()
    sos_id = str(sos["id"])
    assert (sos["status"], sos["current_ring"]) == ("open", 1)
    assert [(o["vendor_id"], o["depot_id"]) for o in sos["rings"][0]["offers"]] == [
        (near.vendor.org_id, near.depot_id)
    ]
    # The open SOS counts against the (halved) cap.
    assert await open_units(gateway, hospital, product_id) == baseline + SOS_QUANTITY

    declined = await gateway.post(
        f"/api/v1/sos/{sos_id}/decline",
        headers=near.vendor.headers,
        json={"reason": "Our tanker is out"},
    )
    assert declined.status_code == 200, declined.text
    escalated = await notified(gateway, hospital, "sos.escalated", sos_id=sos_id)
    assert (escalated["data"]["from_ring"], escalated["data"]["to_ring"]) == (1, 2)
    now_open = await gateway.get(f"/api/v1/sos/{sos_id}", headers=hospital.headers)
    assert now_open.status_code == 200, now_open.text
    rings = now_open.json()["rings"]
    assert [r["closed_reason"] for r in rings] == ["declined", None]
    assert [(o["vendor_id"], o["depot_id"]) for o in rings[1]["offers"]] == [
        (middle.vendor.org_id, middle.depot_id)
    ]

    accepted = await gateway.post(
        f"/api/v1/sos/{sos_id}/accept",
        headers=middle.vendor.headers,
        json={"depot_id": middle.depot_id, "eta_minutes": 25},
    )
    assert accepted.status_code == 201, accepted.text
    sos_order = accepted.json()["order"]
    placed_ids.add(str(sos_order["id"]))
    assert accepted.json()["sos"]["status"] == "fulfilled"
    assert (sos_order["status"], sos_order["priority"]) == ("confirmed", "emergency")
    assert (sos_order["vendor_id"], sos_order["depot_id"]) == (
        middle.vendor.org_id,
        middle.depot_id,
    )
    assert sos_order["items"][0]["quantity"] == SOS_QUANTITY
    # The order now holds the SOS's units: counted once, not twice.
    assert await open_units(gateway, hospital, product_id) == baseline + SOS_QUANTITY

    # 5. Dispatched and delivered: the cap frees.
    for action in ("dispatch", "deliver"):
        moved = await gateway.post(
            f"/api/v1/orders/{sos_order['id']}/{action}", headers=middle.vendor.headers, json={}
        )
        assert moved.status_code == 200, moved.text
    assert moved.json()["status"] == "delivered"
    assert await open_units(gateway, hospital, product_id) == baseline

    # 6. The shortage ends; routine orders go through again (a 409 paused places nothing).
    ended = await gateway.post(f"/api/v1/admin/shortages/{shortage_id}/end", headers=admin)
    assert ended.status_code == 200, ended.text
    assert ended.json()["status"] == "ended"

    async def routine_resumed() -> httpx.Response | None:
        answer = await order(hospital, near, "routine")
        if answer.status_code == 201:
            return answer
        assert problem_type(answer) == "shortage-routine-paused", answer.text
        return None

    resumed: httpx.Response = await eventually(
        routine_resumed, "routine orders taken once the shortage ended", interval=1
    )
    assert (resumed.json()["priority"], resumed.json()["status"]) == ("routine", "placed")

    # 7. The invariants, straight from the databases.
    connection = await asyncpg.connect(fleet.database_dsn)
    try:
        await check_invariants(
            connection,
            initial={(d.depot_id, product_id): ON_HAND for d in depots},
            placed_ids=placed_ids,
            delivered={(middle.depot_id, product_id): SOS_QUANTITY},
        )
    finally:
        await connection.close()


# Scoped to this test's depots (other tests share the database), unlike the bench's global
# checks (bench/flow_bench/checks.py), which read their initial quantities from a table.
_STOCK_ROWS = """
WITH per_status AS (
    SELECT r.depot_id, ri.product_id,
           sum(ri.quantity) FILTER (WHERE r.status = 'committed') AS delivered,
           sum(ri.quantity) FILTER (WHERE r.status = 'held') AS held
    FROM inventory.reservations r
    JOIN inventory.reservation_items ri ON ri.reservation_id = r.id
    WHERE r.depot_id = ANY($1::uuid[])
    GROUP BY r.depot_id, ri.product_id
)
SELECT s.depot_id::text, s.product_id::text, s.on_hand, s.reserved,
       coalesce(t.delivered, 0) AS delivered, coalesce(t.held, 0) AS held
FROM inventory.stock s LEFT JOIN per_status t USING (depot_id, product_id)
WHERE s.depot_id = ANY($1::uuid[])
"""

_ORDERS = "SELECT id::text FROM orders.orders WHERE depot_id = ANY($1::uuid[])"

_PAYMENTS_PER_ORDER = """
SELECT o.id::text, count(p.id) AS payments
FROM orders.orders o LEFT JOIN payments.payments p ON p.order_id = o.id
WHERE o.depot_id = ANY($1::uuid[])
GROUP BY o.id
"""

_ORPHAN_HOLDS = """
SELECT r.id::text FROM inventory.reservations r
LEFT JOIN orders.orders o ON o.id = r.order_id
WHERE r.depot_id = ANY($1::uuid[]) AND o.id IS NULL AND r.status IN ('held', 'committed')
"""

# A live order holds its stock, a delivered one has committed it, and every order's
# reservation exists.
_WRONG_HOLDS = """
SELECT o.id::text, o.status, r.status AS hold FROM orders.orders o
LEFT JOIN inventory.reservations r ON r.id = o.reservation_id
WHERE o.depot_id = ANY($1::uuid[])
  AND (r.id IS NULL
       OR (o.status IN ('placed', 'confirmed', 'dispatched') AND r.status <> 'held')
       OR (o.status = 'delivered' AND r.status <> 'committed'))
"""

_UNPUBLISHED = "SELECT count(*) FROM orders.outbox WHERE published_at IS NULL"


async def check_invariants(
    connection: asyncpg.Connection,
    *,
    initial: dict[tuple[str, str], int],
    placed_ids: set[str],
    delivered: dict[tuple[str, str], int],
) -> None:
    depot_ids = sorted({depot_id for depot_id, _ in initial})

    # Only the orders the day placed exist: no refused attempt left one behind.
    assert {r["id"] for r in await connection.fetch(_ORDERS, depot_ids)} == placed_ids

    rows = await connection.fetch(_STOCK_ROWS, depot_ids)
    assert {(r["depot_id"], r["product_id"]) for r in rows} == set(initial)
    for row in rows:
        key = (row["depot_id"], row["product_id"])
        available = row["on_hand"] - row["reserved"]
        assert initial[key] == available + row["reserved"] + row["delivered"], dict(row)
        assert row["reserved"] == row["held"], dict(row)
        assert row["delivered"] == delivered.get(key, 0), dict(row)

    assert await connection.fetch(_WRONG_HOLDS, depot_ids) == []
    assert await connection.fetch(_ORPHAN_HOLDS, depot_ids) == []

    # Payments follow order.placed asynchronously: wait for each order to have one, then
    # check that none has two.
    async def payments_per_order() -> dict[str, int] | None:
        counts = {
            r["id"]: r["payments"] for r in await connection.fetch(_PAYMENTS_PER_ORDER, depot_ids)
        }
        return counts if all(counts.values()) else None

    counts: dict[str, int] = await eventually(payments_per_order, "a payment for every order")
    assert counts == dict.fromkeys(placed_ids, 1)

    async def outbox_drained() -> bool:
        return int(await connection.fetchval(_UNPUBLISHED)) == 0

    drained: bool = await eventually(outbox_drained, "the orders outbox drained")
    assert drained
