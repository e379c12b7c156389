"""The oxygen runway on the real fleet (SPEC "Oxygen runway"), through the gateway.

A hospital reports a site's oxygen and reads how long it lasts; an order it places for the
site shows as inbound once the vendor confirms it with an ETA, and its delivery adds its
gas; a report that leaves the site low tells the hospital once; auto-reorder places
exactly one order while one is open, and one SOS when critical; the runway is the
hospital's alone.

The figures are the 46.7 L cylinder's (7,000 L of gas a unit): 20 of them are 140,000 L,
at 50 L/min 2,800 minutes, 46.66 hours. Each test has its own corner of the world (southern
Africa, East Africa), far from every other end-to-end test's points, so no other test's
depot is a candidate for its orders.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx

from flow_shared.testing.polling import eventually
from tests.e2e.conftest import outbox_events

if TYPE_CHECKING:
    from flow_shared.testing.fleet import IsolatedFleet
    from tests.e2e.conftest import Account, Accounts, StockedDepot

CATEGORY = "oxygen_cylinder"
SKU = "O2-CYL-46.7L"
GAS_PER_UNIT = 7_000.0  # litres of gas in one 46.7 L cylinder (the product's gas_liters)
ON_HAND = 30

CAPE_TOWN = {"lat": -33.9249, "lon": 18.4241}  # reports, inbound and delivery
DURBAN = {"lat": -29.8587, "lon": 31.0218}  # the low alert
WINDHOEK = {"lat": -22.5609, "lon": 17.0658}  # auto-reorder
NAIROBI = {"lat": -1.2921, "lon": 36.8219}  # who may read a runway
LUSAKA = {"lat": -15.3875, "lon": 28.3228}  # auto-reorder's SOS
# About 2.2 km of latitude: where each test's depot stands from its site.
DEPOT_OFFSET_LAT = 0.02


def _minutes(later: str, earlier: str) -> float:
    return (datetime.fromisoformat(later) - datetime.fromisoformat(earlier)) / timedelta(minutes=1)


async def _hospital_with_site(
    gateway: httpx.AsyncClient, accounts: Accounts, point: dict[str, float], name: str
) -> tuple[Account, str]:
    hospital = await accounts.register("hospital")
    created = await gateway.post(
        "/api/v1/locations/sites", headers=hospital.headers, json={"name": name, **point}
    )
    assert created.status_code == 201, created.text
    return hospital, str(created.json()["id"])


async def _product_id(gateway: httpx.AsyncClient, who: Account, sku: str = SKU) -> str:
    listed = await gateway.get(
        "/api/v1/catalog/products",
        params={"category": CATEGORY, "page_size": 100},
        headers=who.headers,
    )
    assert listed.status_code == 200, listed.text
    [product] = [p for p in listed.json()["items"] if p["sku"] == sku]
    assert product["gas_liters"] == GAS_PER_UNIT, product
    return str(product["id"])


async def _depot_near(
    gateway: httpx.AsyncClient, accounts: Accounts, hospital: Account, site: dict[str, float]
) -> StockedDepot:
    """A verified vendor's priced depot of 46.7 L cylinders just north of `site`, returned
    once the catalogue lists it (inventory learns of the verification by an event)."""
    depot = await accounts.stocked_depot(
        name="Runway depot",
        lat=site["lat"] + DEPOT_OFFSET_LAT,
        lon=site["lon"],
        category=CATEGORY,
        on_hand=ON_HAND,
        sku=SKU,
    )

    async def listed() -> StockedDepot | None:
        nearby = await gateway.get(
            "/api/v1/catalog/nearby",
            headers=hospital.headers,
            params={**site, "radius_km": 30, "product_id": depot.product_id},
        )
        assert nearby.status_code == 200, nearby.text
        depots = {row["depot_id"] for row in nearby.json()["items"]}
        return depot if depot.depot_id in depots else None

    return await eventually(listed, "the runway depot listed in the catalogue")


async def _report(
    gateway: httpx.AsyncClient, hospital: Account, site_id: str, **body: Any
) -> dict[str, Any]:
    reported = await gateway.put(
        f"/api/v1/supply/sites/{site_id}", headers=hospital.headers, json=body
    )
    assert reported.status_code == 200, reported.text
    runway: dict[str, Any] = reported.json()
    return runway


async def _runway(gateway: httpx.AsyncClient, who: Account, site_id: str) -> dict[str, Any]:
    answer = await gateway.get(f"/api/v1/supply/sites/{site_id}/runway", headers=who.headers)
    assert answer.status_code == 200, answer.text
    runway: dict[str, Any] = answer.json()
    return runway


def _stock(product_id: str, full_units: int) -> list[dict[str, Any]]:
    return [{"product_id": product_id, "full_units": full_units}]


async def _alerts(fleet: IsolatedFleet, site_id: str) -> list[str]:
    """The types of the runway alerts inventory-service wrote for the site, oldest first
    (its outbox keeps them after publishing; other supply.* events are left out)."""
    return [
        event["type"]
        for event in await outbox_events(fleet, "inventory", site_id=site_id)
        if event["type"] in ("supply.runway_low", "supply.runway_critical")
    ]


async def _runway_notifications(
    gateway: httpx.AsyncClient, who: Account, event_type: str, site_id: str
) -> list[dict[str, Any]]:
    listed = await gateway.get(
        "/api/v1/notifications", params={"page_size": 100}, headers=who.headers
    )
    assert listed.status_code == 200, listed.text
    return [
        note
        for note in listed.json()["items"]
        if note["type"] == event_type and note["data"].get("site_id") == site_id
    ]


async def test_a_report_reads_as_hours_and_an_order_shows_inbound_then_adds_its_gas(
    gateway: httpx.AsyncClient, accounts: Accounts
) -> None:
    hospital, site_id = await _hospital_with_site(gateway, accounts, CAPE_TOWN, "Ward 4")
    depot = await _depot_near(gateway, accounts, hospital, CAPE_TOWN)
    product_id = depot.product_id

    # 20 x 7,000 L = 140,000 L at 50 L/min: 2,800 minutes, 46.66 hours (rounded down).
    reported = await _report(
        gateway, hospital, site_id, stock=_stock(product_id, 20), consumption_lpm=50
    )
    assert reported["gas_liters"] == 140_000
    assert reported["consumption_lpm"] == 50
    assert reported["hours_left"] == 46.66
    assert reported["level"] == "ok"
    assert reported["inbound"] == []
    assert reported["hours_left_with_inbound"] == 46.66
    assert _minutes(reported["runs_out_at"], reported["reported_at"]) == 2_800

    # Read later, the gas has drained at 50 L/min since the report, never more.
    read = await _runway(gateway, hospital, site_id)
    drained = 50 * _minutes(read["as_of"], read["reported_at"])
    assert abs(read["gas_liters"] - (140_000 - drained)) < 0.01, read
    assert read["runs_out_at"] == reported["runs_out_at"]
    assert read["level"] == "ok"

    # An order of 4 cylinders (28,000 L) for the site: listed once order-service's event
    # arrives, without an ETA until the vendor confirms with one.
    placed = await gateway.post(
        "/api/v1/orders",
        headers=hospital.headers,
        json=depot.order_body("urgent", quantity=4, site_id=site_id),
    )
    assert placed.status_code == 201, placed.text
    order_id = str(placed.json()["id"])

    async def inbound_with(status: str) -> dict[str, Any] | None:
        runway = await _runway(gateway, hospital, site_id)
        lines = [line for line in runway["inbound"] if line["order_id"] == order_id]
        return runway if lines and lines[0]["status"] == status else None

    listed: dict[str, Any] = await eventually(
        lambda: inbound_with("placed"), "the order listed as inbound"
    )
    [line] = listed["inbound"]
    assert (line["product_id"], line["quantity"], line["eta"]) == (product_id, 4, None)
    # Without an ETA it is not counted.
    assert listed["hours_left_with_inbound"] == listed["hours_left"]

    confirmed = await gateway.post(
        f"/api/v1/orders/{order_id}/confirm",
        headers=depot.vendor.headers,
        json={"eta_minutes": 90},
    )
    assert confirmed.status_code == 200, confirmed.text
    confirmed_at = next(
        c["at"] for c in confirmed.json()["status_history"] if c["status"] == "confirmed"
    )
    on_its_way: dict[str, Any] = await eventually(
        lambda: inbound_with("confirmed"), "the order confirmed"
    )
    [line] = on_its_way["inbound"]
    assert _minutes(line["eta"], confirmed_at) == 90
    # It arrives long before the gas runs out: its 28,000 L are 28,000 / 50 / 60 = 9.33
    # more hours (each figure rounded down to 0.01, so they differ by at most 0.01 more).
    extra = on_its_way["hours_left_with_inbound"] - on_its_way["hours_left"]
    assert 9.32 <= extra <= 9.34, on_its_way
    assert on_its_way["level"] == "ok"

    moved = await gateway.post(
        f"/api/v1/orders/{order_id}/dispatch", headers=depot.vendor.headers, json={}
    )
    assert moved.status_code == 200, moved.text
    dispatched: dict[str, Any] = await eventually(
        lambda: inbound_with("dispatched"), "the order dispatched"
    )
    assert dispatched["inbound"][0]["eta"] == line["eta"]

    delivered = await gateway.post(
        f"/api/v1/orders/{order_id}/deliver", headers=depot.vendor.headers, json={}
    )
    assert delivered.status_code == 200, delivered.text

    async def arrived() -> dict[str, Any] | None:
        runway = await _runway(gateway, hospital, site_id)
        return runway if not runway["inbound"] else None

    after: dict[str, Any] = await eventually(arrived, "the delivery counted on site")
    # The drain is linear and never reached 0, so at as_of the site holds the report's gas
    # less 50 L/min since the report, plus the delivery's 28,000 L.
    drained = 50 * _minutes(after["as_of"], after["reported_at"])
    assert abs(after["gas_liters"] - (140_000 - drained + 4 * GAS_PER_UNIT)) < 0.01, after
    assert after["hours_left_with_inbound"] == after["hours_left"]
    # It runs out 28,000 / 50 = 560 minutes later than the report said (to a microsecond:
    # the drained litres are a 28-digit Decimal, the moment is rounded up).
    later = _minutes(after["runs_out_at"], reported["runs_out_at"])
    assert abs(later - 4 * GAS_PER_UNIT / 50) < 1e-6, after


async def test_a_low_report_tells_the_hospital_once(
    gateway: httpx.AsyncClient, accounts: Accounts, fleet: IsolatedFleet
) -> None:
    hospital, site_id = await _hospital_with_site(gateway, accounts, DURBAN, "Theatre O2")
    product_id = await _product_id(gateway, hospital)

    # 20 x 7,000 L at 120 L/min: 140,000 / 7,200 = 19.44 hours, under the 24 h alert.
    reported = await _report(
        gateway, hospital, site_id, stock=_stock(product_id, 20), consumption_lpm=120
    )
    assert (reported["hours_left"], reported["level"]) == (19.44, "low")

    async def told() -> list[dict[str, Any]] | None:
        notes = await _runway_notifications(gateway, hospital, "supply.runway_low", site_id)
        return notes or None

    notes: list[dict[str, Any]] = await eventually(told, "the hospital told its oxygen is low")
    [note] = notes
    assert note["title"].startswith("Oxygen low at Theatre O2: about 19.4 hours left"), note
    assert "under your alert level of 24 hours" in note["body"], note
    assert note["data"]["hours_left"] == 19.44

    # Reading the runway, and reporting the same again, is no new crossing.
    for _ in range(3):
        assert (await _runway(gateway, hospital, site_id))["level"] == "low"
    again = await _report(
        gateway, hospital, site_id, stock=_stock(product_id, 20), consumption_lpm=120
    )
    assert again["level"] == "low"
    # The alert is written with the report's transaction: what the outbox holds for the
    # site is all there will be, and notification-service has heard the one event.
    assert await _alerts(fleet, site_id) == ["supply.runway_low"]
    assert len(await _runway_notifications(gateway, hospital, "supply.runway_low", site_id)) == 1

    # Down to 2 cylinders: 14,000 / 7,200 = 1.94 hours, critical: told once more, critically.
    critical = await _report(
        gateway, hospital, site_id, stock=_stock(product_id, 2), consumption_lpm=120
    )
    assert (critical["hours_left"], critical["level"]) == (1.94, "critical")

    async def told_critical() -> list[dict[str, Any]] | None:
        notes = await _runway_notifications(gateway, hospital, "supply.runway_critical", site_id)
        return notes or None

    criticals: list[dict[str, Any]] = await eventually(
        told_critical, "the hospital told its oxygen is critical"
    )
    [urgent] = criticals
    assert urgent["title"].startswith("Oxygen CRITICAL at Theatre O2: about 1.9 hours left")
    assert await _alerts(fleet, site_id) == ["supply.runway_low", "supply.runway_critical"]
    assert len(await _runway_notifications(gateway, hospital, "supply.runway_low", site_id)) == 1


async def test_auto_reorder_places_one_order_while_one_is_open(
    gateway: httpx.AsyncClient, accounts: Accounts, fleet: IsolatedFleet
) -> None:
    hospital, site_id = await _hospital_with_site(gateway, accounts, WINDHOEK, "Oxygen store")
    depot = await _depot_near(gateway, accounts, hospital, WINDHOEK)
    product_id = depot.product_id
    auto_reorder = {"product_id": product_id, "quantity": 4, "priority": "urgent"}
    low = {"stock": _stock(product_id, 20), "consumption_lpm": 120, "auto_reorder": auto_reorder}

    reported = await _report(gateway, hospital, site_id, **low)
    assert reported["level"] == "low"
    assert reported["auto_reorder"] == auto_reorder

    # The request is sent by inventory's periodic sender: wait for the order it places.
    async def the_order() -> dict[str, Any] | None:
        listed = await gateway.get("/api/v1/orders", headers=hospital.headers)
        assert listed.status_code == 200, listed.text
        items: list[dict[str, Any]] = listed.json()["items"]
        assert len(items) <= 1, items
        return items[0] if items else None

    order: dict[str, Any] = await eventually(
        the_order, "the auto-reorder's order placed", seconds=60
    )
    assert order["site_id"] == site_id
    assert (order["vendor_id"], order["depot_id"]) == (depot.vendor.org_id, depot.depot_id)
    assert [(i["product_id"], i["quantity"]) for i in order["items"]] == [(product_id, 4)]
    assert (order["priority"], order["payment_method"]) == ("urgent", "invoice")
    assert order["placed_by"] is None
    assert order["notes"].startswith("Placed automatically by Flow"), order["notes"]

    async def request_open() -> dict[str, Any] | None:
        runway = await _runway(gateway, hospital, site_id)
        return runway if [r["status"] for r in runway["auto_reorders"]] == ["open"] else None

    runway: dict[str, Any] = await eventually(request_open, "the auto-reorder open on the runway")
    [request] = runway["auto_reorders"]
    assert (request["kind"], request["order_id"]) == ("order", order["id"])
    assert [line["order_id"] for line in runway["inbound"]] == [order["id"]]

    # Recovered (a recount finds more) and low again while the order is open: a second
    # crossing, a second alert, and no second order: no second request is even written.
    recovered = await _report(
        gateway,
        hospital,
        site_id,
        stock=_stock(product_id, 60),
        consumption_lpm=120,
        auto_reorder=auto_reorder,
    )
    assert recovered["level"] == "ok"
    again = await _report(gateway, hospital, site_id, **low)
    assert again["level"] == "low"
    assert [(r["id"], r["status"]) for r in again["auto_reorders"]] == [(request["id"], "open")]
    assert await _alerts(fleet, site_id) == ["supply.runway_low", "supply.runway_low"]
    listed = await gateway.get("/api/v1/orders", headers=hospital.headers)
    assert [o["id"] for o in listed.json()["items"]] == [order["id"]]

    # Its payment is the invoice's, as for any order (payment-service follows the event).
    async def payment() -> list[dict[str, Any]] | None:
        answer = await gateway.get(
            "/api/v1/payments", params={"order_id": order["id"]}, headers=hospital.headers
        )
        assert answer.status_code == 200, answer.text
        return [p for p in answer.json()["items"] if p["order_id"] == order["id"]] or None

    payments: list[dict[str, Any]] = await eventually(payment, "the auto-reorder's payment")
    [paid] = payments
    assert paid["method"] == "invoice", paid


async def test_auto_reorder_opens_one_sos_when_critical(
    gateway: httpx.AsyncClient, accounts: Accounts, fleet: IsolatedFleet
) -> None:
    hospital, site_id = await _hospital_with_site(gateway, accounts, LUSAKA, "ICU store")
    depot = await _depot_near(gateway, accounts, hospital, LUSAKA)
    product_id = depot.product_id
    auto_reorder = {"product_id": product_id, "quantity": 3, "priority": "urgent"}
    # 2 x 7,000 L at 120 L/min: 1.94 hours, straight from ok to critical: the SOS only.
    critical = {
        "stock": _stock(product_id, 2),
        "consumption_lpm": 120,
        "auto_reorder": auto_reorder,
    }

    reported = await _report(gateway, hospital, site_id, **critical)
    assert (reported["hours_left"], reported["level"]) == (1.94, "critical")

    async def the_sos() -> dict[str, Any] | None:
        listed = await gateway.get("/api/v1/sos", headers=hospital.headers)
        assert listed.status_code == 200, listed.text
        items: list[dict[str, Any]] = listed.json()["items"]
        assert len(items) <= 1, items
        return items[0] if items else None

    sos: dict[str, Any] = await eventually(the_sos, "the auto-reorder's SOS opened", seconds=60)
    assert (sos["site_id"], sos["product_id"], sos["quantity"]) == (site_id, product_id, 3)
    assert sos["notes"].startswith("Opened automatically by Flow"), sos["notes"]
    assert sos["payment_method"] == "invoice"
    [ring] = sos["rings"]
    assert [o["depot_id"] for o in ring["offers"]] == [depot.depot_id]

    accepted = await gateway.post(
        f"/api/v1/sos/{sos['id']}/accept",
        headers=depot.vendor.headers,
        json={"depot_id": depot.depot_id, "eta_minutes": 25},
    )
    assert accepted.status_code == 201, accepted.text
    order_id = str(accepted.json()["order"]["id"])

    # The request follows its SOS to the order, and the order is inbound with its ETA.
    async def joined() -> dict[str, Any] | None:
        runway = await _runway(gateway, hospital, site_id)
        requests = runway["auto_reorders"]
        inbound = [line for line in runway["inbound"] if line["eta"] is not None]
        if [(r["sos_id"], r["order_id"]) for r in requests] == [(sos["id"], order_id)] and inbound:
            return runway
        return None

    runway: dict[str, Any] = await eventually(joined, "the SOS's order on the runway")
    [request] = runway["auto_reorders"]
    assert (request["kind"], request["status"]) == ("sos", "open")
    assert [line["order_id"] for line in runway["inbound"]] == [order_id]
    # 3 cylinders (21,000 L) in 25 minutes: 21,000 / 120 / 60 = 2.91 hours more.
    extra = runway["hours_left_with_inbound"] - runway["hours_left"]
    assert 2.90 <= extra <= 2.93, runway

    # Recovered and critical again while the SOS's order is open: alerted, nothing opened.
    recovered = await _report(
        gateway,
        hospital,
        site_id,
        stock=_stock(product_id, 60),
        consumption_lpm=120,
        auto_reorder=auto_reorder,
    )
    assert recovered["level"] == "ok"
    again = await _report(gateway, hospital, site_id, **critical)
    assert again["level"] == "critical"
    assert [(r["id"], r["status"]) for r in again["auto_reorders"]] == [(request["id"], "open")]
    assert await _alerts(fleet, site_id) == ["supply.runway_critical", "supply.runway_critical"]
    listed = await gateway.get("/api/v1/sos", headers=hospital.headers)
    assert [s["id"] for s in listed.json()["items"]] == [sos["id"]]


async def test_a_runway_is_its_hospitals_alone(
    gateway: httpx.AsyncClient, accounts: Accounts
) -> None:
    hospital, site_id = await _hospital_with_site(gateway, accounts, NAIROBI, "Main ward")
    product_id = await _product_id(gateway, hospital)
    await _report(gateway, hospital, site_id, stock=_stock(product_id, 20), consumption_lpm=50)
    other, _ = await _hospital_with_site(gateway, accounts, NAIROBI, "Other ward")
    vendor = await accounts.verified_vendor()
    url = f"/api/v1/supply/sites/{site_id}"
    body = {"stock": _stock(product_id, 1), "consumption_lpm": 500}

    # Another hospital's site is as unknown as one that does not exist, to read and write.
    unknown = await gateway.get(f"{url}/runway", headers=other.headers)
    assert unknown.status_code == 404, unknown.text
    assert unknown.headers["content-type"].startswith("application/problem+json")
    assert (await gateway.put(url, headers=other.headers, json=body)).status_code == 404
    listed = await gateway.get("/api/v1/supply/runway", headers=other.headers)
    assert listed.status_code == 200, listed.text
    assert listed.json()["items"] == []

    # Vendors have no runways.
    for refused in (
        await gateway.get(f"{url}/runway", headers=vendor.headers),
        await gateway.put(url, headers=vendor.headers, json=body),
        await gateway.get("/api/v1/supply/runway", headers=vendor.headers),
    ):
        assert refused.status_code == 403, refused.text

    # The other hospital's attempt changed nothing: still 20 cylinders at 50 L/min.
    mine = await _runway(gateway, hospital, site_id)
    assert mine["consumption_lpm"] == 50
    assert mine["level"] == "ok"
    [own] = (await gateway.get("/api/v1/supply/runway", headers=hospital.headers)).json()["items"]
    assert own["site_id"] == site_id
