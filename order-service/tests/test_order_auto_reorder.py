"""Auto-reorder (SPEC "Oxygen runway"): inventory-service asks order-service to place a
hospital's configured order when a site's runway is low, and to open an SOS when it is
critical. Flow acts for the hospital with nobody acting: every rule of a user's order
applies, the nearest depot with the stock by ETA takes it, and a repeated key never
places a second order, also when both requests arrive at once."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from flow_shared.events.envelope import EventEnvelope
from order_service.consumers import event_handlers
from order_service.service.auto_reorder import ORDER_NOTE, SOS_NOTE

if TYPE_CHECKING:
    from conftest import FakeDepot, Fleet, OrderApp, OrderAppFactory, OrdersDb, Org

INVENTORY_KEY = "test-key-inventory-service"
CAP = 10


@pytest.fixture
async def auto_app(order_app_for: OrderAppFactory) -> AsyncIterator[OrderApp]:
    # inventory-service's key is trusted here whether or not services.toml lists it yet.
    async with order_app_for(
        trusted_service_keys={
            "admin-service": "test-key-admin-service",
            "inventory-service": INVENTORY_KEY,
        },
        allocation_cap_unverified=CAP,
        allocation_cap_verified=CAP,
    ) as opened:
        yield opened


@pytest.fixture
def auto_client(auto_app: OrderApp) -> httpx.AsyncClient:
    return auto_app.client


def as_inventory(key: str) -> dict[str, str]:
    return {"X-Service-Key": INVENTORY_KEY, "Idempotency-Key": key}


class Site:
    """A hospital with a site at home and the product its runway reorders."""

    def __init__(self, fleet: Fleet, at: tuple[float, float] | None = None) -> None:
        self.fleet = fleet
        self.at = at or fleet.home
        self.hospital: Org = fleet.hospital()
        self.site_id = fleet.location.add_site(self.hospital.org_id, *self.at)
        self.product = uuid.uuid4()

    def depot(self, stock: int, *, km_north: float, eta_min: int | None = None) -> FakeDepot:
        lat = self.at[0] + km_north / 111.2
        depot = self.fleet.depot(self.fleet.vendor(), {self.product: stock}, at=(lat, self.at[1]))
        if eta_min is not None:
            self.fleet.location.duration_overrides[str(depot.depot_id)] = eta_min
        return depot

    def order_body(self, quantity: int = 4, **fields: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "hospital_org_id": str(self.hospital.org_id),
            "site_id": str(self.site_id),
            "product_id": str(self.product),
            "quantity": quantity,
            "priority": "urgent",
            "note": "Ward 3 runway 20 h",
        }
        body.update(fields)
        return body

    def sos_body(self, quantity: int = 4, **fields: Any) -> dict[str, Any]:
        body = self.order_body(quantity, **fields)
        del body["priority"]
        return body


@pytest.fixture
def site(fleet: Fleet) -> Site:
    return Site(fleet)


async def test_the_order_goes_to_the_best_eta_depot_with_the_stock_placed_by_flow(
    auto_client: httpx.AsyncClient, site: Site, orders_db: OrdersDb, fleet: Fleet
) -> None:
    site.depot(10, km_north=1, eta_min=60)  # nearest, but stuck in traffic
    fast = site.depot(10, km_north=4, eta_min=15)
    site.depot(2, km_north=0.5, eta_min=5)  # fastest, too little stock

    response = await auto_client.post(
        "/internal/auto-orders", json=site.order_body(4), headers=as_inventory("low-1")
    )

    assert response.status_code == 201, response.text
    order = response.json()["order"]
    assert response.headers["location"] == f"/api/v1/orders/{order['id']}"
    assert order["depot_id"] == str(fast.depot_id)
    assert order["hospital_org_id"] == str(site.hospital.org_id)
    assert order["site_id"] == str(site.site_id)
    assert order["status"] == "placed"
    assert order["priority"] == "urgent"
    assert order["payment_method"] == "invoice"
    assert order["placed_by"] is None
    assert order["notes"] == f"{ORDER_NOTE}. Ward 3 runway 20 h"
    assert [(c["status"], c["actor"]) for c in order["status_history"]] == [("placed", "system")]
    assert fast.available(site.product) == 6
    [reserve] = fleet.inventory.calls("POST", "/internal/reservations")
    # The order's own priority decides whether the depot's emergency reserve may be used.
    assert json.loads(reserve.content)["priority"] == "urgent"
    [placed] = await orders_db.events_of(order["id"])
    assert placed["type"] == "order.placed"
    assert placed["data"]["actor_id"] is None
    assert placed["data"]["hospital_org_id"] == str(site.hospital.org_id)
    assert placed["data"]["payment_method"] == "invoice"
    # The public API shows the same order to the hospital.
    seen = await auto_client.get(f"/api/v1/orders/{order['id']}", headers=site.hospital.headers)
    assert seen.status_code == 200
    assert seen.json() == order


async def test_a_depot_whose_stock_goes_meanwhile_is_skipped_for_the_next(
    auto_client: httpx.AsyncClient, site: Site, fleet: Fleet
) -> None:
    first = site.depot(10, km_north=1, eta_min=10)
    second = site.depot(10, km_north=2, eta_min=20)

    def another_hospital_buys_it_all(depot: FakeDepot) -> None:
        if depot is first:
            depot.reserved[site.product] = depot.on_hand[site.product]

    fleet.inventory.before_reserve = another_hospital_buys_it_all

    response = await auto_client.post(
        "/internal/auto-orders", json=site.order_body(3), headers=as_inventory("low-1")
    )

    assert response.status_code == 201, response.text
    assert response.json()["order"]["depot_id"] == str(second.depot_id)
    assert second.available(site.product) == 7


async def test_nobody_with_the_stock_in_range_is_409_and_nothing_is_placed(
    auto_client: httpx.AsyncClient, site: Site, orders_db: OrdersDb
) -> None:
    site.depot(2, km_north=1)
    site.depot(10, km_north=80)  # out of range

    response = await auto_client.post(
        "/internal/auto-orders", json=site.order_body(4), headers=as_inventory("low-1")
    )

    assert response.status_code == 409, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/no-supplier-in-range")
    assert await orders_db.order_ids_of(site.hospital.org_id) == []
    # The failed request stored nothing: the same key may place the order once stock is back.
    site.depot(10, km_north=2)
    retried = await auto_client.post(
        "/internal/auto-orders", json=site.order_body(4), headers=as_inventory("low-1")
    )
    assert retried.status_code == 201, retried.text


async def test_the_same_key_answers_the_first_order_and_another_body_is_refused(
    auto_client: httpx.AsyncClient, site: Site, orders_db: OrdersDb, fleet: Fleet
) -> None:
    depot = site.depot(20, km_north=1)
    first = await auto_client.post(
        "/internal/auto-orders", json=site.order_body(4), headers=as_inventory("low-7")
    )
    assert first.status_code == 201, first.text

    again = await auto_client.post(
        "/internal/auto-orders", json=site.order_body(4), headers=as_inventory("low-7")
    )

    assert again.status_code == 201, again.text
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert await orders_db.order_ids_of(site.hospital.org_id) == [first.json()["order"]["id"]]
    assert depot.available(site.product) == 16
    assert len(fleet.inventory.calls("POST", "/internal/reservations")) == 1

    other = await auto_client.post(
        "/internal/auto-orders", json=site.order_body(5), headers=as_inventory("low-7")
    )
    assert other.status_code == 422, other.text
    assert other.json()["type"].endswith("/idempotency-key-reused")
    assert len(await orders_db.order_ids_of(site.hospital.org_id)) == 1


async def test_two_requests_with_one_key_at_the_same_instant_place_one_order(
    auto_client: httpx.AsyncClient, site: Site, orders_db: OrdersDb
) -> None:
    depot = site.depot(20, km_north=1)

    one, two = await asyncio.gather(
        *(
            auto_client.post(
                "/internal/auto-orders", json=site.order_body(4), headers=as_inventory("low-9")
            )
            for _ in range(2)
        )
    )

    assert (one.status_code, two.status_code) == (201, 201), (one.text, two.text)
    assert one.json() == two.json()
    assert await orders_db.order_ids_of(site.hospital.org_id) == [one.json()["order"]["id"]]
    assert depot.available(site.product) == 16


async def test_a_key_one_hospital_used_does_not_replay_for_another(
    auto_client: httpx.AsyncClient, site: Site, fleet: Fleet
) -> None:
    site.depot(20, km_north=1)
    neighbour = Site(fleet)
    neighbour.product = site.product
    first = await auto_client.post(
        "/internal/auto-orders", json=site.order_body(4), headers=as_inventory("low-1")
    )
    assert first.status_code == 201, first.text

    theirs = await auto_client.post(
        "/internal/auto-orders", json=neighbour.order_body(4), headers=as_inventory("low-1")
    )

    assert theirs.status_code == 201, theirs.text
    assert "idempotent-replayed" not in theirs.headers
    assert theirs.json()["order"]["hospital_org_id"] == str(neighbour.hospital.org_id)
    assert theirs.json()["order"]["id"] != first.json()["order"]["id"]


async def test_over_the_allocation_cap_is_409_with_the_figures_and_holds_nothing(
    auto_client: httpx.AsyncClient, site: Site, orders_db: OrdersDb, fleet: Fleet
) -> None:
    depot = site.depot(50, km_north=1)
    assert (
        await auto_client.post(
            "/internal/auto-orders", json=site.order_body(8), headers=as_inventory("low-1")
        )
    ).status_code == 201

    refused = await auto_client.post(
        "/internal/auto-orders", json=site.order_body(3), headers=as_inventory("low-2")
    )

    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    body = refused.json()
    assert body["type"].endswith("/allocation-cap-exceeded")
    assert {k: body[k] for k in ("product_id", "cap", "open", "requested")} == {
        "product_id": str(site.product),
        "cap": CAP,
        "open": 8,
        "requested": 3,
    }
    assert len(await orders_db.order_ids_of(site.hospital.org_id)) == 1
    assert len(fleet.inventory.calls("POST", "/internal/reservations")) == 1
    assert depot.available(site.product) == 42


async def test_a_site_of_another_hospital_is_404_and_nothing_is_held(
    auto_client: httpx.AsyncClient, site: Site, fleet: Fleet, orders_db: OrdersDb
) -> None:
    site.depot(20, km_north=1)
    stranger = fleet.hospital()

    for route, body in (
        ("/internal/auto-orders", site.order_body(4, hospital_org_id=str(stranger.org_id))),
        ("/internal/sos", site.sos_body(4, hospital_org_id=str(stranger.org_id))),
    ):
        response = await auto_client.post(route, json=body, headers=as_inventory("x-1"))
        assert response.status_code == 404, response.text
        assert response.headers["content-type"] == "application/problem+json"

    assert await orders_db.order_ids_of(stranger.org_id) == []
    assert fleet.inventory.calls("POST", "/internal/reservations") == []


async def test_the_key_is_required_and_the_body_is_validated(
    auto_client: httpx.AsyncClient, site: Site
) -> None:
    site.depot(20, km_north=1)
    bad_bodies = [
        site.order_body(0),
        site.order_body(4, priority="whenever"),
        site.order_body(4, note="x" * 501),
        site.order_body(4, depot_id=str(uuid.uuid4())),
        {k: v for k, v in site.order_body(4).items() if k != "site_id"},
    ]
    for body in bad_bodies:
        response = await auto_client.post(
            "/internal/auto-orders", json=body, headers=as_inventory("v-1")
        )
        assert response.status_code == 422, (body, response.text)
    for route, body in (
        ("/internal/auto-orders", site.order_body(4)),
        ("/internal/sos", site.sos_body(4)),
    ):
        keyless = await auto_client.post(route, json=body, headers={"X-Service-Key": INVENTORY_KEY})
        assert keyless.status_code == 422, keyless.text
        assert keyless.headers["content-type"] == "application/problem+json"


async def test_only_inventory_services_key_opens_the_routes(
    auto_client: httpx.AsyncClient, site: Site, orders_db: OrdersDb
) -> None:
    site.depot(20, km_north=1)
    for route, body in (
        ("/internal/auto-orders", site.order_body(4)),
        ("/internal/sos", site.sos_body(4)),
    ):
        other_service = await auto_client.post(
            route,
            json=body,
            headers={"X-Service-Key": "test-key-admin-service", "Idempotency-Key": "k"},
        )
        assert other_service.status_code == 403, other_service.text
        for headers in (
            {"X-Service-Key": "wrong", "Idempotency-Key": "k"},
            {**site.hospital.headers, "Idempotency-Key": "k"},
        ):
            refused = await auto_client.post(route, json=body, headers=headers)
            assert refused.status_code == 401, refused.text
    assert await orders_db.order_ids_of(site.hospital.org_id) == []


async def test_the_auto_sos_opens_ring_one_and_replays_on_the_same_key(
    auto_client: httpx.AsyncClient, site: Site, fleet: Fleet, orders_db: OrdersDb
) -> None:
    depots = [site.depot(10, km_north=km, eta_min=10 * km) for km in (1, 2, 3, 4)]

    response = await auto_client.post(
        "/internal/sos", json=site.sos_body(4), headers=as_inventory("critical-1")
    )

    assert response.status_code == 201, response.text
    sos = response.json()["sos"]
    assert response.headers["location"] == f"/api/v1/sos/{sos['id']}"
    assert sos["status"] == "open"
    assert sos["hospital_org_id"] == str(site.hospital.org_id)
    assert sos["site_id"] == str(site.site_id)
    assert sos["payment_method"] == "invoice"
    assert sos["notes"] == f"{SOS_NOTE}. Ward 3 runway 20 h"
    # The SPEC defaults.
    assert (sos["max_distance_km"], sos["ring_size"], sos["ring_timeout_seconds"]) == (50, 3, 180)
    [ring] = sos["rings"]
    assert ring["number"] == 1
    assert [o["depot_id"] for o in ring["offers"]] == [str(d.depot_id) for d in depots[:3]]

    again = await auto_client.post(
        "/internal/sos", json=site.sos_body(4), headers=as_inventory("critical-1")
    )
    assert again.status_code == 201, again.text
    assert again.json() == response.json()
    listed = (await auto_client.get("/api/v1/sos", headers=site.hospital.headers)).json()
    assert [s["id"] for s in listed["items"]] == [sos["id"]]

    # A vendor's acceptance places the order for the hospital, still with no user.
    vendor_of_first = fleet.token_issuer.headers(
        org_kind="vendor",
        role="staff",
        org_id=depots[0].vendor_id,
        user_id=uuid.uuid4(),
    )
    accepted = await auto_client.post(
        f"/api/v1/sos/{sos['id']}/accept",
        json={"depot_id": str(depots[0].depot_id), "eta_minutes": 25},
        headers=vendor_of_first,
    )
    assert accepted.status_code == 201, accepted.text
    order = accepted.json()["order"]
    assert order["placed_by"] is None
    assert order["status_history"][0] == {
        "status": "placed",
        "at": order["status_history"][0]["at"],
        "actor": "system",
    }
    assert await orders_db.order_ids_of(site.hospital.org_id) == [order["id"]]


async def test_the_auto_sos_is_capped_like_any_sos(
    auto_client: httpx.AsyncClient, site: Site
) -> None:
    site.depot(50, km_north=1)

    refused = await auto_client.post(
        "/internal/sos", json=site.sos_body(CAP + 1), headers=as_inventory("critical-1")
    )

    assert refused.status_code == 409, refused.text
    assert refused.json()["type"].endswith("/allocation-cap-exceeded")
    assert refused.json()["requested"] == CAP + 1


async def test_a_routine_auto_order_inside_a_shortage_is_paused_an_urgent_one_goes_on(
    auto_app: OrderApp, fleet: Fleet, orders_db: OrdersDb
) -> None:
    # Somewhere no other test's shortage covers.
    site = Site(fleet, at=(random.uniform(-60, -45), random.uniform(-170, -100)))
    fleet.inventory.categories[site.product] = "oxygen_cylinder"
    site.depot(50, km_north=1)
    declared = EventEnvelope.model_validate(
        {
            "id": str(uuid.uuid4()),
            "type": "shortage.declared",
            "version": 1,
            "occurred_at": datetime.now(UTC).isoformat(),
            "producer": "admin-service",
            "correlation_id": "test",
            "data": {
                "shortage_id": str(uuid.uuid4()),
                "area": {"lat": site.at[0], "lon": site.at[1], "radius_km": 20},
                "categories": ["oxygen_cylinder"],
                "note": "",
                "starts_at": datetime.now(UTC).isoformat(),
                "ends_at": None,
                "declared_by": str(uuid.uuid4()),
                "recipient_org_ids": [],
            },
        }
    )
    async with auto_app.app.state.database.sessionmaker() as session, session.begin():
        await event_handlers()[declared.type](session, declared)

    paused = await auto_app.client.post(
        "/internal/auto-orders",
        json=site.order_body(2, priority="routine"),
        headers=as_inventory("low-1"),
    )
    assert paused.status_code == 409, paused.text
    assert paused.json()["type"].endswith("/shortage-routine-paused")
    assert await orders_db.order_ids_of(site.hospital.org_id) == []

    urgent = await auto_app.client.post(
        "/internal/auto-orders",
        json=site.order_body(2, priority="urgent"),
        headers=as_inventory("low-2"),
    )
    assert urgent.status_code == 201, urgent.text
