#!/usr/bin/env python3
"""Order/inventory integration check against a running platform (`make up`).

Creates what it needs through the gateway (a verified vendor with a depot, stock
and prices; a hospital with a delivery site), then checks, one line each:
  1 inventory health           2 catalog nearby: pagination and caching
  3 reservation via an order   4 vendor availability
  5 order-service health       6 the orders endpoint with authentication
  7 a direct order end to end (confirm, dispatch, deliver; stock committed)
  8 a shortage around the hospital: routine orders paused, urgent ones placed
  9 an SOS accepted by the vendor (a confirmed emergency order); the shortage ended
 10 the site's oxygen runway: a low report, the SOS order inbound, the hospital told once
 11 a cylinder round trip: serials dispatched and delivered, one returned, its deposit credited
Steps 8 to 11 follow README's walkthrough steps 7 to 10 (kept in step by hand; here around
this script's own London points). Exits non-zero on the first failure. Usage:
  .venv/bin/python scripts/test-order-inventory-integration.py [--env-file F] [--port-offset N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flowctl import Fleet, load_config

from flow_shared.testing.polling import eventually

PASSWORD = "integration-check-password"  # noqa: S105 (a throwaway test account)
# A depot in central London and a hospital site about 3 km away.
DEPOT = {"lat": 51.5074, "lon": -0.1278}
SITE = {"lat": 51.5230, "lon": -0.0950}
# The shortage of check 8: around the site, small enough to touch no other e2e test's points.
SHORTAGE_RADIUS_KM = 5
# Over any allocation cap: a routine order this big is refused whatever happens, so polling
# with it never places an order (paused by a shortage, else over the cap).
OVER_ANY_CAP = 100_000


# The vendor's price of both products (check 11 adds a cylinder deposit to one).
PRICE = {
    "unit_price": "120.00",
    "currency": "GBP",
    "delivery_fee_per_km": "1.50",
    "min_delivery_fee": "15.00",
    "emergency_surcharge_pct": "10",
}

T = TypeVar("T")


class CheckFailed(Exception):
    pass


def expect(condition: object, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def expect_status(response: httpx.Response, status: int) -> dict[str, Any]:
    if response.status_code != status:
        raise CheckFailed(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}, expected {status}: {response.text[:300]}"
        )
    body: dict[str, Any] = response.json() if response.content else {}
    return body


class Platform:
    def __init__(self, gateway: str, admin_email: str, admin_password: str) -> None:
        self.http = httpx.Client(base_url=gateway, timeout=20)
        self.admin_email = admin_email
        self.admin_password = admin_password

    def login(self, email: str, password: str = PASSWORD) -> dict[str, str]:
        tokens = expect_status(
            self.http.post("/api/v1/auth/login", json={"email": email, "password": password}), 200
        )
        return {"Authorization": f"Bearer {tokens['access_token']}"}

    def register(self, kind: str) -> tuple[str, dict[str, str]]:
        email = f"integration-{kind}-{uuid.uuid4().hex[:10]}@flow.test"
        body = expect_status(
            self.http.post(
                "/api/v1/auth/register",
                json={
                    "email": email,
                    "password": PASSWORD,
                    "full_name": f"Integration {kind}",
                    "organization": {
                        "name": f"Integration {kind} {email[:24]}",
                        "kind": kind,
                        "license_number": "LIC-INT-1",
                    },
                },
            ),
            201,
        )
        return body["organization"]["id"], self.login(email)


def run(platform: Platform, fleet: Fleet) -> None:
    http = platform.http
    inventory_url = fleet.url(fleet.by_name("inventory-service"))
    order_url = fleet.url(fleet.by_name("order-service"))

    # --- set-up: a verified vendor with stock and prices, a hospital with a site ---------
    vendor_id, vendor = platform.register("vendor")
    admin = platform.login(platform.admin_email, platform.admin_password)
    expect_status(http.post(f"/api/v1/admin/vendors/{vendor_id}/verify", headers=admin), 200)
    products = expect_status(
        http.get(
            "/api/v1/catalog/products", params={"category": "oxygen_cylinder"}, headers=vendor
        ),
        200,
    )
    expect(products["total"] >= 2, "the seeded catalogue has cylinders")
    product, other_product = products["items"][0], products["items"][1]
    depot = expect_status(
        http.post(
            "/api/v1/inventory/depots",
            headers=vendor,
            json={"name": "Integration depot", **DEPOT, "service_radius_km": 30},
        ),
        201,
    )
    depot_id = depot.get("id") or depot["depot_id"]
    for item in (product, other_product):
        expect_status(
            http.put(
                f"/api/v1/inventory/depots/{depot_id}/stock/{item['id']}",
                headers=vendor,
                json={"on_hand": 10, "low_stock_threshold": 2},
            ),
            200,
        )
        expect_status(
            http.put(
                f"/api/v1/pricing/prices/{item['id']}",
                headers=vendor,
                json=PRICE,
            ),
            200,
        )
    hospital_id, hospital = platform.register("hospital")
    site = expect_status(
        http.post("/api/v1/locations/sites", headers=hospital, json={"name": "Ward block", **SITE}),
        201,
    )

    # 1 -----------------------------------------------------------------------------------
    expect_status(httpx.get(f"{inventory_url}/health/ready", timeout=5), 200)
    print("ok 1 inventory-service is ready")

    # 2 -----------------------------------------------------------------------------------
    nearby_params = {**SITE, "radius_km": 10, "page_size": 1}
    first = expect_status(
        http.get("/api/v1/catalog/nearby", params=nearby_params, headers=hospital), 200
    )
    mine = [row for row in first["items"] if row["depot_id"] == depot_id]
    expect(first["page_size"] == 1 and len(first["items"]) <= 1, "nearby honours page_size")
    expect(first["total"] >= 2, "nearby counts every matching row in total")
    again = expect_status(
        http.get("/api/v1/catalog/nearby", params=nearby_params, headers=hospital), 200
    )
    expect(again == first, "a repeated nearby call answers the same (cached) page")
    filtered = {**SITE, "radius_km": 10, "product_id": product["id"], "page_size": 100}
    rows = expect_status(http.get("/api/v1/catalog/nearby", params=filtered, headers=hospital), 200)
    mine = [row for row in rows["items"] if row["depot_id"] == depot_id]
    expect(len(mine) == 1 and mine[0]["available"] == 10, f"our depot offers 10: {mine}")
    expect(all("updated_at" in row for row in rows["items"]), "every row says how fresh it is")
    print("ok 2 catalog nearby pages, caches and filters")

    # 3 -----------------------------------------------------------------------------------
    order = expect_status(
        http.post(
            "/api/v1/orders",
            headers={**hospital, "Idempotency-Key": uuid.uuid4().hex},
            json={
                "vendor_id": vendor_id,
                "depot_id": depot_id,
                "site_id": site["id"],
                "items": [{"product_id": product["id"], "quantity": 3}],
                "priority": "urgent",
                "payment_method": "invoice",
            },
        ),
        201,
    )
    expect(
        order["status"] == "placed" and order.get("reservation_id"), "the order holds a reservation"
    )
    stock = expect_status(
        http.get(f"/api/v1/inventory/depots/{depot_id}/stock", headers=vendor), 200
    )
    row = next(r for r in stock.get("items", stock) if r["product_id"] == product["id"])
    expect(row["reserved"] == 3 and row["available"] == 7, f"3 reserved, 7 available: {row}")
    rows = expect_status(http.get("/api/v1/catalog/nearby", params=filtered, headers=hospital), 200)
    mine = [r for r in rows["items"] if r["depot_id"] == depot_id]
    expect(mine and mine[0]["available"] == 7, "nearby shows the reservation on the next call")
    print("ok 3 an order reserves stock, visible at once despite the cache")

    # 4 -----------------------------------------------------------------------------------
    availability = expect_status(
        http.get(f"/api/v1/vendors/{vendor_id}/availability", headers=hospital), 200
    )
    depot_row = next(d for d in availability["depots"] if d["depot_id"] == depot_id)
    by_product = {p["product_id"]: p["available"] for p in depot_row["products"]}
    expect(
        by_product.get(product["id"]) == 7 and by_product.get(other_product["id"]) == 10,
        f"availability per product: {by_product}",
    )
    print("ok 4 vendor availability")

    # 5 -----------------------------------------------------------------------------------
    expect_status(httpx.get(f"{order_url}/health/ready", timeout=5), 200)
    print("ok 5 order-service is ready")

    # 6 -----------------------------------------------------------------------------------
    expect(http.get("/api/v1/orders").status_code == 401, "orders need a token")
    listed = expect_status(http.get("/api/v1/orders", headers=hospital), 200)
    expect(order["id"] in {o["id"] for o in listed["items"]}, "the hospital sees its order")
    to_vendor = expect_status(http.get("/api/v1/orders", headers=vendor), 200)
    expect(order["id"] in {o["id"] for o in to_vendor["items"]}, "the vendor sees the order to it")
    _, stranger = platform.register("hospital")
    expect(
        http.get(f"/api/v1/orders/{order['id']}", headers=stranger).status_code == 404,
        "another hospital cannot see it",
    )
    print("ok 6 orders endpoint with authentication and per-organisation visibility")

    # 7 -----------------------------------------------------------------------------------
    direct = expect_status(
        http.post(
            "/api/v1/orders/direct",
            headers=hospital,
            json={
                "product_id": other_product["id"],
                "quantity": 4,
                "site_id": site["id"],
                "max_distance_km": 10,
            },
        ),
        201,
    )
    selection, direct_order = direct["selection"], direct["order"]
    expect(
        selection["depot_id"] == depot_id and selection["candidates_considered"] >= 1,
        f"the direct order chose our depot: {selection}",
    )
    expect(direct_order["priority"] == "emergency", "direct orders are emergencies by default")
    for action in ("confirm", "dispatch", "deliver"):
        moved = expect_status(
            http.post(f"/api/v1/orders/{direct_order['id']}/{action}", headers=vendor, json={}), 200
        )
    expect(moved["status"] == "delivered", "the vendor delivered")
    history = [h["status"] for h in moved["status_history"]]
    expect(history == ["placed", "confirmed", "dispatched", "delivered"], f"history: {history}")
    stock = expect_status(
        http.get(f"/api/v1/inventory/depots/{depot_id}/stock", headers=vendor), 200
    )
    row = next(r for r in stock.get("items", stock) if r["product_id"] == other_product["id"])
    expect(row["on_hand"] == 6 and row["reserved"] == 0, f"delivery took 4 off on_hand: {row}")
    print("ok 7 direct order placed, confirmed, dispatched and delivered; stock committed")

    # 8, 9 --------------------------------------------------------------------------------
    declared = expect_status(
        http.post(
            "/api/v1/admin/shortages",
            headers=admin,
            json={
                "area": {**SITE, "radius_km": SHORTAGE_RADIUS_KM},
                "categories": ["oxygen_cylinder"],
                "note": "Integration check",
            },
        ),
        201,
    )
    shortage_id = declared["id"]
    # The fleet is shared: the shortage must end even when a check fails, or later
    # tests' routine orders in this area would be paused.
    try:
        sos_order_id = check_shortage_and_sos(
            http,
            admin=admin,
            hospital=hospital,
            hospital_id=hospital_id,
            vendor=vendor,
            vendor_id=vendor_id,
            depot_id=depot_id,
            site_id=site["id"],
            product_id=product["id"],
            shortage_id=shortage_id,
        )
    finally:
        ended = http.post(f"/api/v1/admin/shortages/{shortage_id}/end", headers=admin)
    expect(expect_status(ended, 200)["status"] == "ended", f"the shortage ended: {ended.text}")
    active = expect_status(http.get("/api/v1/shortages", params=SITE, headers=hospital), 200)
    expect(shortage_id not in {s["id"] for s in active["items"]}, "no longer listed as active")
    print("ok 9 an SOS accepted by the vendor: a confirmed emergency order; shortage ended")

    # 10 ----------------------------------------------------------------------------------
    check_runway(
        http, hospital=hospital, site_id=site["id"], product=product, sos_order_id=sos_order_id
    )
    print("ok 10 a low runway report: the SOS order inbound, the hospital told once")

    # 11 ----------------------------------------------------------------------------------
    check_cylinder_round_trip(
        http,
        vendor=vendor,
        vendor_id=vendor_id,
        hospital=hospital,
        depot_id=depot_id,
        site_id=site["id"],
        product_id=other_product["id"],
    )
    print("ok 11 a cylinder round trip: serials delivered, one returned, its deposit credited")


def poll(probe: Callable[[], T | None], what: str) -> T:
    """flow_shared's `eventually`, from this synchronous script."""
    return asyncio.run(eventually(probe, what, interval=0.5))


def check_shortage_and_sos(
    http: httpx.Client,
    *,
    admin: dict[str, str],
    hospital: dict[str, str],
    hospital_id: str,
    vendor: dict[str, str],
    vendor_id: str,
    depot_id: str,
    site_id: str,
    product_id: str,
    shortage_id: str,
) -> str:
    """Checks 8 and 9 up to the shortage's end (README walkthrough steps 7 and 8); returns
    the SOS's order's id."""
    # A verified hospital's cap is 200 (halved inside the shortage), not 10.
    licence_until = datetime.now(UTC).date() + timedelta(days=365)
    verified = expect_status(
        http.post(
            f"/api/v1/admin/organizations/{hospital_id}/verify",
            headers=admin,
            json={"license_expires_on": licence_until.isoformat()},
        ),
        200,
    )
    expect(verified["verified"], f"the hospital is verified: {verified}")

    def order(priority: str, quantity: int) -> httpx.Response:
        return http.post(
            "/api/v1/orders",
            headers=hospital,
            json={
                "vendor_id": vendor_id,
                "depot_id": depot_id,
                "site_id": site_id,
                "items": [{"product_id": product_id, "quantity": quantity}],
                "priority": priority,
                "payment_method": "invoice",
            },
        )

    def paused(answer: httpx.Response) -> bool:
        return answer.status_code == 409 and str(answer.json().get("type", "")).endswith(
            "/shortage-routine-paused"
        )

    # order-service learns of the shortage (and of the verification) from events.
    poll(lambda: paused(order("routine", OVER_ANY_CAP)), "routine orders paused")
    refused = order("routine", 1)
    expect(paused(refused), f"a routine order is paused: {refused.text}")
    expect(refused.json()["shortage_id"] == shortage_id, "the refusal names the shortage")
    urgent = expect_status(order("urgent", 1), 201)
    expect(urgent["status"] == "placed", f"an urgent order goes through: {urgent}")

    listed = expect_status(http.get("/api/v1/shortages", params=SITE, headers=hospital), 200)
    expect(shortage_id in {s["id"] for s in listed["items"]}, f"listed at the site: {listed}")

    def verified_allocation() -> dict[str, Any] | None:
        items = expect_status(http.get("/api/v1/allocation", headers=hospital), 200)["items"]
        row = next((i for i in items if i["product_id"] == product_id), None)
        return row if row and row["source"] == "default_verified" else None

    allocation = poll(verified_allocation, "the verified cap in force")
    # 3 units from check 3 (still placed) and the urgent one.
    expect(allocation["cap"] == 200 and allocation["open_units"] == 4, f"caps: {allocation}")

    def shortage_notice() -> dict[str, Any] | None:
        notices = expect_status(
            http.get("/api/v1/notifications", params={"page_size": 100}, headers=hospital), 200
        )["items"]
        return next((n for n in notices if n["type"] == "shortage.declared"), None)

    notice = poll(shortage_notice, "the hospital told of the shortage")
    expect(notice["data"].get("shortage_id") == shortage_id, f"the notice: {notice}")
    print("ok 8 a shortage pauses routine orders at the site; urgent ones go through")

    sos = expect_status(
        http.post(
            "/api/v1/sos",
            headers={**hospital, "Idempotency-Key": uuid.uuid4().hex},
            json={"product_id": product_id, "quantity": 2, "site_id": site_id},
        ),
        201,
    )
    ring = sos["rings"][0]
    expect(sos["status"] == "open" and ring["number"] == 1, f"ring 1 is open: {sos}")
    expect(vendor_id in {o["vendor_id"] for o in ring["offers"]}, f"our vendor in ring 1: {ring}")
    offered = expect_status(http.get("/api/v1/sos", params={"status": "open"}, headers=vendor), 200)
    expect(sos["id"] in {s["id"] for s in offered["items"]}, "the vendor sees the SOS")
    accepted = expect_status(
        http.post(
            f"/api/v1/sos/{sos['id']}/accept",
            headers=vendor,
            json={"depot_id": depot_id, "eta_minutes": 30},
        ),
        201,
    )
    emergency = accepted["order"]
    expect(
        emergency["status"] == "confirmed"
        and emergency["priority"] == "emergency"
        and emergency["vendor_id"] == vendor_id,
        f"the accepting vendor has a confirmed emergency order: {emergency}",
    )
    expect(accepted["sos"]["status"] == "fulfilled", f"the SOS is fulfilled: {accepted['sos']}")
    return str(emergency["id"])


def check_runway(
    http: httpx.Client,
    *,
    hospital: dict[str, str],
    site_id: str,
    product: dict[str, Any],
    sos_order_id: str,
) -> None:
    """Check 10 (README walkthrough step 9): 12 full 10 L cylinders (1,500 L of gas each)
    at 15 L/min are 18,000 L, 20 hours: under the 24-hour alert level."""
    expect(product["gas_liters"] == 1500, f"the README's 10 L cylinder: {product}")
    reported = expect_status(
        http.put(
            f"/api/v1/supply/sites/{site_id}",
            headers=hospital,
            json={
                "stock": [{"product_id": product["id"], "full_units": 12}],
                "consumption_lpm": 15,
            },
        ),
        200,
    )
    expect(
        (reported["gas_liters"], reported["hours_left"], reported["level"]) == (18000, 20, "low"),
        f"18,000 L, 20 hours, low: {reported}",
    )

    def sos_order_inbound() -> dict[str, Any] | None:
        runway = expect_status(
            http.get(f"/api/v1/supply/sites/{site_id}/runway", headers=hospital), 200
        )
        lines = [line for line in runway["inbound"] if line["order_id"] == sos_order_id]
        return runway if lines and lines[0]["eta"] is not None else None

    runway = poll(sos_order_inbound, "the SOS order inbound with its ETA")
    # Its 2 cylinders (3,000 L) arrive in 30 minutes: 3,000 / 15 / 60 = 3.33 hours more
    # (each figure rounded down to 0.01).
    extra = runway["hours_left_with_inbound"] - runway["hours_left"]
    expect(3.32 <= extra <= 3.34, f"the SOS order adds 3.33 hours: {runway}")

    def told() -> list[dict[str, Any]] | None:
        notices = expect_status(
            http.get("/api/v1/notifications", params={"page_size": 100}, headers=hospital), 200
        )["items"]
        low = [
            n
            for n in notices
            if n["type"] == "supply.runway_low" and n["data"].get("site_id") == site_id
        ]
        return low or None

    notices = poll(told, "the hospital told its oxygen is low")
    expect(len(notices) == 1, f"told once: {notices}")
    expect(notices[0]["title"].startswith("Oxygen low at "), f"the notice: {notices[0]}")
    listed = expect_status(http.get("/api/v1/supply/runway", headers=hospital), 200)
    expect(
        [r["site_id"] for r in listed["items"]] == [site_id], f"the hospital's runways: {listed}"
    )


def check_cylinder_round_trip(
    http: httpx.Client,
    *,
    vendor: dict[str, str],
    vendor_id: str,
    hospital: dict[str, str],
    depot_id: str,
    site_id: str,
    product_id: str,
) -> None:
    """Check 11 (README walkthrough step 10): a deposit of 40.00 a cylinder; an order of two
    dispatched by serial and delivered; the next delivery takes one back empty, and its
    deposit is credited on the first order's invoice."""
    expect_status(
        http.put(
            f"/api/v1/pricing/prices/{product_id}",
            headers=vendor,
            json={**PRICE, "deposit_per_cylinder": "40.00"},
        ),
        200,
    )
    due = (datetime.now(UTC).date() + timedelta(days=365)).isoformat()
    serials = ["INT-0001", "INT-0002", "INT-0003"]
    registered = expect_status(
        http.post(
            "/api/v1/cylinders/bulk",
            headers=vendor,
            json={
                "cylinders": [
                    {
                        "serial": serial,
                        "product_id": product_id,
                        "depot_id": depot_id,
                        "hydrotest_due": due,
                    }
                    for serial in serials
                ]
            },
        ),
        201,
    )
    expect(registered["created"] == 3, f"three cylinders registered: {registered}")

    def delivered_order(quantity: int, dispatched: list[str], returned: list[str]) -> str:
        order = expect_status(
            http.post(
                "/api/v1/orders",
                headers=hospital,
                json={
                    "vendor_id": vendor_id,
                    "depot_id": depot_id,
                    "site_id": site_id,
                    "items": [{"product_id": product_id, "quantity": quantity}],
                    "priority": "urgent",
                    "payment_method": "invoice",
                },
            ),
            201,
        )
        expect(Decimal(order["deposit_total"]) == 40 * quantity, f"the order's deposits: {order}")
        path = f"/api/v1/orders/{order['id']}"
        expect_status(http.post(f"{path}/confirm", headers=vendor, json={"eta_minutes": 30}), 200)
        expect_status(
            http.post(f"{path}/dispatch", headers=vendor, json={"cylinders": dispatched}), 200
        )
        expect_status(
            http.post(f"{path}/deliver", headers=vendor, json={"returned_cylinders": returned}), 200
        )
        return str(order["id"])

    first = delivered_order(2, serials[:2], [])
    held = expect_status(http.get("/api/v1/cylinders/held", headers=hospital), 200)["items"]
    expect(sorted(row["serial"] for row in held) == serials[:2], f"the hospital holds two: {held}")
    delivered_order(1, serials[2:], serials[:1])
    back = expect_status(http.get(f"/api/v1/cylinders/{serials[0]}", headers=vendor), 200)
    expect(
        [move["to_status"] for move in back["moves"]]
        == ["full", "in_transit", "at_hospital", "empty"],
        f"every move kept: {back['moves']}",
    )

    def credited() -> dict[str, Any] | None:
        payments = expect_status(
            http.get("/api/v1/payments", params={"order_id": first}, headers=hospital), 200
        )["items"]
        credited = [p for p in payments if Decimal(p["deposit_credited"]) == 40]
        return credited[0] if credited else None

    payment = poll(credited, "the returned cylinder's deposit credited")
    [credit] = payment["deposit_credits"]
    expect(
        (credit["serial"], credit["kind"]) == (serials[0], "invoice_credit"),
        f"credited on the invoice: {credit}",
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env-file", type=Path, default=None)
    parser.add_argument(
        "--port-offset", type=int, default=int(os.environ.get("FLOW_PORT_OFFSET", "0"))
    )
    args = parser.parse_args()
    config = load_config(args.env_file)
    fleet = Fleet(config, port_offset=args.port_offset)
    platform = Platform(
        fleet.url(fleet.by_name("api-gateway")),
        config["BOOTSTRAP_ADMIN_EMAIL"],
        config["BOOTSTRAP_ADMIN_PASSWORD"],
    )
    try:
        run(platform, fleet)
    # AssertionError: `eventually` gave up.
    except (CheckFailed, AssertionError, httpx.HTTPError, KeyError, StopIteration) as exc:
        print(f"FAIL {type(exc).__name__}: {exc}")
        return 1
    print("all integration checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
