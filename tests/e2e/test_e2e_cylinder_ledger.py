"""The cylinder ledger on the real fleet (SPEC "Cylinder ledger"), through the gateway.

A vendor registers its cylinders by serial and charges a deposit on each; a hospital's
order of two carries the deposits (`deposit_total`, `amount_due`) and its card is charged
them; dispatch names the serials and is refused, with the offending serials, for one that
is not full or past its hydrotest; delivery puts them at the hospital, whose held list
shows them with the deposit paid; the next delivery takes one back empty, and payment
-service refunds its deposit exactly once (`cylinder.returned` -> `payment.deposit_credited`)
to the card it was charged on. Every move is kept; another vendor's or hospital's view
never shows them.

Montevideo and Asunción are this file's corners of the world, far from every other
end-to-end test's points.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx

from flow_shared.testing.polling import eventually
from tests.e2e.conftest import outbox_events

if TYPE_CHECKING:
    from flow_shared.testing.fleet import IsolatedFleet
    from tests.e2e.conftest import Account, Accounts, StockedDepot

CATEGORY = "oxygen_cylinder"
SKU = "O2-CYL-10L"
DEPOSIT = Decimal("150.00")
MONTEVIDEO = {"lat": -34.9011, "lon": -56.1645}
ASUNCION = {"lat": -25.2637, "lon": -57.5759}
# About 2.2 km of latitude: where each test's depot stands from its site.
DEPOT_OFFSET_LAT = 0.02


async def _ledger_depot(
    gateway: httpx.AsyncClient, accounts: Accounts, point: dict[str, float]
) -> StockedDepot:
    """A verified vendor's depot of 10 L cylinders near `point`, priced with a deposit."""
    depot = await accounts.stocked_depot(
        name="Ledger depot",
        lat=point["lat"] + DEPOT_OFFSET_LAT,
        lon=point["lon"],
        category=CATEGORY,
        on_hand=20,
        sku=SKU,
    )
    priced = await gateway.put(
        f"/api/v1/pricing/prices/{depot.product_id}",
        headers=depot.vendor.headers,
        json={
            "unit_price": "85.00",
            "currency": "GBP",
            "delivery_fee_per_km": "1.20",
            "min_delivery_fee": "25.00",
            "emergency_surcharge_pct": "20",
            "deposit_per_cylinder": str(DEPOSIT),
        },
    )
    assert priced.status_code == 200, priced.text
    assert Decimal(priced.json()["deposit_per_cylinder"]) == DEPOSIT
    return depot


async def _register(
    gateway: httpx.AsyncClient, depot: StockedDepot, serials: list[str], *, due: date
) -> list[dict[str, Any]]:
    registered = await gateway.post(
        "/api/v1/cylinders/bulk",
        headers=depot.vendor.headers,
        json={
            "cylinders": [
                {
                    "serial": serial,
                    "product_id": depot.product_id,
                    "depot_id": depot.depot_id,
                    "hydrotest_due": due.isoformat(),
                }
                for serial in serials
            ]
        },
    )
    assert registered.status_code == 201, registered.text
    assert registered.json()["created"] == len(serials)
    cylinders: list[dict[str, Any]] = registered.json()["cylinders"]
    return cylinders


async def _cylinder(gateway: httpx.AsyncClient, who: Account, serial: str) -> httpx.Response:
    return await gateway.get(f"/api/v1/cylinders/{serial}", headers=who.headers)


async def _order_by_card(
    gateway: httpx.AsyncClient, hospital: Account, depot: StockedDepot, site_id: str, quantity: int
) -> dict[str, Any]:
    placed = await gateway.post(
        "/api/v1/orders",
        headers=hospital.headers,
        json=depot.order_body(
            "urgent",
            quantity=quantity,
            site_id=site_id,
            payment_method="card",
            card_token="tok_visa",
        ),
    )
    assert placed.status_code == 201, placed.text
    order: dict[str, Any] = placed.json()
    confirmed = await gateway.post(
        f"/api/v1/orders/{order['id']}/confirm",
        headers=depot.vendor.headers,
        json={"eta_minutes": 40},
    )
    assert confirmed.status_code == 200, confirmed.text
    return order


async def _payment(
    gateway: httpx.AsyncClient, hospital: Account, order_id: str, status: str
) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        answer = await gateway.get(
            "/api/v1/payments", params={"order_id": order_id}, headers=hospital.headers
        )
        assert answer.status_code == 200, answer.text
        matching = [p for p in answer.json()["items"] if p["status"] == status]
        return matching[0] if matching else None

    payment: dict[str, Any] = await eventually(found, f"the order's payment {status}")
    return payment


async def _site(gateway: httpx.AsyncClient, hospital: Account, point: dict[str, float]) -> str:
    created = await gateway.post(
        "/api/v1/locations/sites", headers=hospital.headers, json={"name": "Stores", **point}
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def test_a_cylinder_round_trip_charges_and_credits_its_deposit_once(
    gateway: httpx.AsyncClient, accounts: Accounts, fleet: IsolatedFleet
) -> None:
    depot = await _ledger_depot(gateway, accounts, MONTEVIDEO)
    vendor = depot.vendor
    today = date.today()
    await _register(gateway, depot, ["MV-0001", "MV-0002", "MV-0003"], due=today + timedelta(365))
    # One whose hydrotest fell due yesterday (registered before its date passed).
    await _register(gateway, depot, ["MV-0004"], due=today - timedelta(days=1))
    listed = await gateway.get(
        "/api/v1/cylinders", params={"status": "full"}, headers=vendor.headers
    )
    assert listed.status_code == 200, listed.text
    assert {c["serial"] for c in listed.json()["items"]} == {
        "MV-0001",
        "MV-0002",
        "MV-0003",
        "MV-0004",
    }
    due = await gateway.get(
        "/api/v1/cylinders",
        params={"hydrotest_due_before": today.isoformat()},
        headers=vendor.headers,
    )
    assert [c["serial"] for c in due.json()["items"]] == ["MV-0004"]

    hospital = await accounts.register("hospital")
    site_id = await _site(gateway, hospital, MONTEVIDEO)

    # Two cylinders: 2 x 150.00 of deposit on top of the total, charged to the card.
    first = await _order_by_card(gateway, hospital, depot, site_id, 2)
    assert Decimal(first["deposit_total"]) == 2 * DEPOSIT
    assert Decimal(first["amount_due"]) == Decimal(first["total"]) + 2 * DEPOSIT
    authorized = await _payment(gateway, hospital, first["id"], "authorized")
    assert Decimal(authorized["amount"]) == Decimal(first["amount_due"])
    assert Decimal(authorized["deposit_amount"]) == 2 * DEPOSIT

    dispatch = f"/api/v1/orders/{first['id']}/dispatch"
    # A deposit was taken: the serials must be named.
    unnamed = await gateway.post(dispatch, headers=vendor.headers, json={})
    assert unnamed.status_code == 409, unnamed.text
    assert unnamed.json()["type"].endswith("/cylinders-required")
    # One overdue for its hydrotest, one the vendor does not have: both named, nothing moves.
    refused = await gateway.post(
        dispatch, headers=vendor.headers, json={"cylinders": ["MV-0001", "MV-0004"]}
    )
    assert refused.status_code == 409, refused.text
    assert refused.json()["type"].endswith("/cylinders-refused")
    assert refused.json()["cylinders"] == [{"serial": "MV-0004", "reason": "hydrotest_overdue"}]
    assert (await _cylinder(gateway, vendor, "MV-0001")).json()["status"] == "full"

    sent = await gateway.post(
        dispatch, headers=vendor.headers, json={"cylinders": ["MV-0001", "MV-0002"]}
    )
    assert sent.status_code == 200, sent.text
    assert (await _cylinder(gateway, vendor, "MV-0001")).json()["status"] == "in_transit"
    delivered = await gateway.post(
        f"/api/v1/orders/{first['id']}/deliver", headers=vendor.headers, json={}
    )
    assert delivered.status_code == 200, delivered.text
    captured = await _payment(gateway, hospital, first["id"], "captured")

    held = await gateway.get("/api/v1/cylinders/held", headers=hospital.headers)
    assert held.status_code == 200, held.text
    rows = {row["serial"]: row for row in held.json()["items"]}
    assert set(rows) == {"MV-0001", "MV-0002"}
    assert all(Decimal(row["deposit"]) == DEPOSIT for row in rows.values())
    assert all(row["order_id"] == first["id"] and not row["overdue"] for row in rows.values())

    # The next delivery brings one full cylinder and takes MV-0001 back empty.
    second = await _order_by_card(gateway, hospital, depot, site_id, 1)
    sent = await gateway.post(
        f"/api/v1/orders/{second['id']}/dispatch",
        headers=vendor.headers,
        json={"cylinders": ["MV-0003"]},
    )
    assert sent.status_code == 200, sent.text
    # A serial the hospital does not hold cannot be taken back from it.
    wrong = await gateway.post(
        f"/api/v1/orders/{second['id']}/deliver",
        headers=vendor.headers,
        json={"returned_cylinders": ["MV-0004"]},
    )
    assert wrong.status_code == 409, wrong.text
    assert wrong.json()["cylinders"] == [{"serial": "MV-0004", "reason": "not_held"}]
    delivered = await gateway.post(
        f"/api/v1/orders/{second['id']}/deliver",
        headers=vendor.headers,
        json={"returned_cylinders": ["MV-0001"]},
    )
    assert delivered.status_code == 200, delivered.text

    back = (await _cylinder(gateway, vendor, "MV-0001")).json()
    assert (back["status"], back["depot_id"], back["holder_org_id"]) == (
        "empty",
        depot.depot_id,
        None,
    )
    # Every move kept, with who and where: registered, sent, delivered, returned.
    assert [(m["from_status"], m["to_status"]) for m in back["moves"]] == [
        (None, "full"),
        ("full", "in_transit"),
        ("in_transit", "at_hospital"),
        ("at_hospital", "empty"),
    ]
    assert back["moves"][-1]["actor_id"] == vendor.user_id
    assert back["moves"][-1]["from_place"] == f"hospital:{hospital.org_id}"
    assert back["moves"][-1]["order_id"] == second["id"]

    # The deposit comes back to the card it was charged on, once.
    async def credited() -> dict[str, Any] | None:
        payment = await _payment(gateway, hospital, first["id"], "captured")
        return payment if Decimal(payment["deposit_credited"]) > 0 else None

    refunded: dict[str, Any] = await eventually(credited, "the deposit credited")
    assert Decimal(refunded["deposit_credited"]) == DEPOSIT
    assert Decimal(refunded["refunded_amount"]) == DEPOSIT
    [credit] = refunded["deposit_credits"]
    assert (credit["serial"], credit["kind"], credit["status"]) == (
        "MV-0001",
        "refund",
        "credited",
    )
    assert refunded["id"] == captured["id"]
    [returned] = await outbox_events(fleet, "inventory", serial="MV-0001")
    assert returned["type"] == "cylinder.returned"
    assert Decimal(returned["data"]["deposit"]) == DEPOSIT
    assert returned["data"]["deposit_order_id"] == first["id"]
    credited_events = await outbox_events(fleet, "payments", order_id=first["id"])
    assert [e["type"] for e in credited_events].count("payment.deposit_credited") == 1

    held = await gateway.get("/api/v1/cylinders/held", headers=hospital.headers)
    assert {row["serial"] for row in held.json()["items"]} == {"MV-0002", "MV-0003"}


async def test_the_ledger_is_each_vendors_and_each_hospitals_own(
    gateway: httpx.AsyncClient, accounts: Accounts
) -> None:
    depot = await _ledger_depot(gateway, accounts, ASUNCION)
    await _register(gateway, depot, ["AS-0001"], due=date.today() + timedelta(days=365))
    other_vendor = await accounts.verified_vendor()
    hospital = await accounts.register("hospital")

    # Another vendor's serial does not exist for it; the same serial is free to it.
    assert (await _cylinder(gateway, other_vendor, "AS-0001")).status_code == 404
    listed = await gateway.get("/api/v1/cylinders", headers=other_vendor.headers)
    assert listed.status_code == 200, listed.text
    assert listed.json()["items"] == []
    # A hospital reads only what it holds; the vendor's ledger is not its to read.
    assert (await _cylinder(gateway, hospital, "AS-0001")).status_code == 403
    held = await gateway.get("/api/v1/cylinders/held", headers=hospital.headers)
    assert (held.status_code, held.json()["items"]) == (200, [])
    # A deposit belongs on a cylinder, never on a concentrator.
    concentrators = await gateway.get(
        "/api/v1/catalog/products",
        params={"category": "concentrator"},
        headers=depot.vendor.headers,
    )
    concentrator_id = concentrators.json()["items"][0]["id"]
    refused = await gateway.put(
        f"/api/v1/pricing/prices/{concentrator_id}",
        headers=depot.vendor.headers,
        json={
            "unit_price": "900.00",
            "currency": "GBP",
            "delivery_fee_per_km": "1.00",
            "min_delivery_fee": "20.00",
            "emergency_surcharge_pct": "10",
            "deposit_per_cylinder": "50.00",
        },
    )
    assert refused.status_code == 422, refused.text
