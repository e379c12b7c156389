"""Fair allocation (SPEC): a hospital's open units per product are capped; the database
counts them (one conditional UPDATE in the order's transaction), over-cap orders are 409
`allocation-cap-exceeded` with the figures and leave nothing behind, and an order gives
its units back exactly once, whichever way it ends. Emergency and direct orders count."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from sqlalchemy import text

from flow_shared.events.envelope import EventEnvelope
from order_service.consumers import event_handlers

if TYPE_CHECKING:
    from conftest import FakeDepot, Fleet, OrderApp, OrderAppFactory, OrdersDb, Org

CAP_UNVERIFIED = 10
CAP_VERIFIED = 200


@pytest.fixture
async def capped(order_app_for: OrderAppFactory) -> AsyncIterator[OrderApp]:
    """order-service with the SPEC's default caps."""
    async with order_app_for(
        allocation_cap_unverified=CAP_UNVERIFIED, allocation_cap_verified=CAP_VERIFIED
    ) as opened:
        yield opened


class World:
    def __init__(self, fleet: Fleet, app: OrderApp) -> None:
        self.fleet = fleet
        self.app = app
        self.client = app.client
        self.hospital = fleet.hospital()
        self.vendor = fleet.vendor()
        self.product = uuid.uuid4()
        self.depot: FakeDepot = fleet.depot(self.vendor, {self.product: 1000})

    async def order(
        self, quantity: int, *, hospital: Org | None = None, **fields: Any
    ) -> httpx.Response:
        body = self.fleet.order_body(self.vendor, self.depot, [(self.product, quantity)], **fields)
        return await self.client.post(
            "/api/v1/orders", json=body, headers=(hospital or self.hospital).headers
        )

    async def placed(self, quantity: int, **fields: Any) -> dict[str, Any]:
        response = await self.order(quantity, **fields)
        assert response.status_code == 201, response.text
        order: dict[str, Any] = response.json()
        return order

    async def move(self, order: dict[str, Any], action: str, body: Any = None) -> None:
        who = self.hospital if action == "cancel" else self.vendor
        response = await self.client.post(
            f"/api/v1/orders/{order['id']}/{action}", json=body, headers=who.headers
        )
        assert response.status_code == 200, response.text

    async def allocation(self, hospital: Org | None = None) -> list[dict[str, Any]]:
        response = await self.client.get(
            "/api/v1/allocation", headers=(hospital or self.hospital).headers
        )
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    async def open_units(self) -> int:
        items = [i for i in await self.allocation() if i["product_id"] == str(self.product)]
        return int(items[0]["open_units"]) if items else 0

    async def set_caps(self, caps: list[dict[str, Any]], org: Org | None = None) -> httpx.Response:
        return await self.client.put(
            f"/internal/allocation/{(org or self.hospital).org_id}",
            json={"caps": caps},
            headers={"X-Service-Key": "test-key-admin-service"},
        )


@pytest.fixture
def world(fleet: Fleet, capped: OrderApp) -> World:
    return World(fleet, capped)


def _event(event_type: str, org_id: uuid.UUID, kind: str = "hospital", **data: Any) -> Any:
    return EventEnvelope.model_validate(
        {
            "id": str(uuid.uuid4()),
            "type": event_type,
            "version": 1,
            "occurred_at": datetime.now(UTC).isoformat(),
            "producer": "user-service",
            "correlation_id": "test",
            "data": {"org_id": str(org_id), "name": "Lagos General", "kind": kind, **data},
        }
    )


async def _project(app: OrderApp, *envelopes: Any) -> None:
    database = app.app.state.database
    for envelope in envelopes:
        async with database.sessionmaker() as session, session.begin():
            await event_handlers()[envelope.type](session, envelope)


async def test_orders_up_to_the_cap_pass_and_the_next_unit_is_409_with_the_figures(
    world: World, orders_db: OrdersDb
) -> None:
    await world.placed(4)
    await world.placed(6, priority="routine")

    refused = await world.order(1, priority="emergency")

    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    body = refused.json()
    assert body["type"].endswith("/allocation-cap-exceeded")
    assert {k: body[k] for k in ("product_id", "cap", "open", "requested")} == {
        "product_id": str(world.product),
        "cap": CAP_UNVERIFIED,
        "open": 10,
        "requested": 1,
    }
    # Nothing left behind: no third order, no reservation asked for.
    assert len(await orders_db.order_ids_of(world.hospital.org_id)) == 2
    assert len(world.fleet.inventory.calls("POST", "/internal/reservations")) == 2
    assert await world.allocation() == [
        {
            "product_id": str(world.product),
            "cap": CAP_UNVERIFIED,
            "open_units": 10,
            "source": "default_unverified",
        }
    ]


async def test_lines_of_one_product_are_summed_and_other_hospitals_are_not_counted(
    world: World, fleet: Fleet
) -> None:
    other_product = uuid.uuid4()
    world.depot.on_hand[other_product] = 100
    fleet.pricing.prices[(world.vendor.org_id, other_product)] = fleet.pricing.prices[
        (world.vendor.org_id, world.product)
    ]
    body = fleet.order_body(
        world.vendor,
        world.depot,
        [(world.product, 6), (other_product, 2), (world.product, 5)],
    )
    refused = await world.client.post("/api/v1/orders", json=body, headers=world.hospital.headers)
    assert refused.status_code == 409, refused.text
    assert (refused.json()["product_id"], refused.json()["requested"]) == (str(world.product), 11)
    # The other product's count rolled back with it.
    assert await world.allocation() == []

    other_hospital = fleet.hospital()
    assert (await world.order(10, hospital=other_hospital)).status_code == 201
    assert (await world.order(10)).status_code == 201


@pytest.mark.parametrize("ending", ["cancel", "reject", "deliver", "expire", "payment_failed"])
async def test_every_end_gives_the_units_back_exactly_once(
    world: World, ending: str, orders_db: OrdersDb
) -> None:
    order = await world.placed(7)
    keep = await world.placed(2)
    assert await world.open_units() == 9

    if ending == "cancel":
        await world.move(order, "cancel", {"reason": "not needed"})
    elif ending == "reject":
        await world.move(order, "reject", {"reason": "no driver"})
    elif ending == "deliver":
        for action in ("confirm", "dispatch", "deliver"):
            await world.move(order, action, {})
    elif ending == "expire":
        async with orders_db.engine.begin() as conn:
            await conn.execute(
                text("UPDATE orders.orders SET expires_at = now() WHERE id = :id"),
                {"id": uuid.UUID(order["id"])},
            )
        await world.app.sweep()
    else:
        failed = EventEnvelope.model_validate(
            {
                "id": str(uuid.uuid4()),
                "type": "payment.failed",
                "version": 1,
                "occurred_at": datetime.now(UTC).isoformat(),
                "producer": "payment-service",
                "correlation_id": "test",
                "data": {"order_id": order["id"], "reason": "declined"},
            }
        )
        from order_service.service.payments import on_payment_failed

        database = world.app.app.state.database
        for _ in range(2):  # a redelivery changes nothing
            async with database.sessionmaker() as session, session.begin():
                await on_payment_failed(session, failed)

    assert await world.open_units() == 2
    # Moving an ended order again is refused and gives nothing back a second time.
    again = await world.client.post(
        f"/api/v1/orders/{order['id']}/cancel", json={}, headers=world.hospital.headers
    )
    assert again.status_code == 409
    await world.app.sweep()
    assert await world.open_units() == 2
    assert keep["status"] == "placed"
    # The freed units can be ordered again.
    assert (await world.order(8)).status_code == 201


async def test_a_placement_that_fails_after_the_cap_leaves_no_count(
    world: World, fleet: Fleet
) -> None:
    fleet.pricing.down = True
    failed = await world.order(5)
    assert failed.status_code == 503, failed.text
    fleet.pricing.down = False

    assert await world.open_units() == 0
    assert (await world.order(10)).status_code == 201


async def test_direct_orders_are_capped_too(world: World, fleet: Fleet) -> None:
    async def direct(quantity: int) -> httpx.Response:
        return await world.client.post(
            "/api/v1/orders/direct",
            json={
                "product_id": str(world.product),
                "quantity": quantity,
                "delivery": {"lat": fleet.home[0], "lon": fleet.home[1]},
            },
            headers=world.hospital.headers,
        )

    assert (await direct(8)).status_code == 201
    refused = await direct(3)
    assert refused.status_code == 409, refused.text
    assert refused.json()["type"].endswith("/allocation-cap-exceeded")
    assert (refused.json()["open"], refused.json()["cap"]) == (8, CAP_UNVERIFIED)
    assert await world.open_units() == 8


async def test_concurrent_orders_never_pass_the_cap(world: World) -> None:
    answers = await asyncio.gather(*(world.order(1) for _ in range(25)))

    statuses = [a.status_code for a in answers]
    assert statuses.count(201) == CAP_UNVERIFIED, statuses
    assert statuses.count(409) == 25 - CAP_UNVERIFIED, statuses
    assert await world.open_units() == CAP_UNVERIFIED


async def test_a_verified_hospital_has_the_verified_default_until_suspended(
    world: World,
) -> None:
    hospital = world.hospital.org_id
    verified = _event("organization.verified", hospital)
    await _project(world.app, verified, verified)  # redelivered: the same
    assert (await world.order(150)).status_code == 201
    assert (await world.allocation())[0]["source"] == "default_verified"
    assert (await world.allocation())[0]["cap"] == CAP_VERIFIED

    await _project(world.app, _event("organization.suspended", hospital, reason="x"))
    assert (await world.allocation())[0] == {
        "product_id": str(world.product),
        "cap": CAP_UNVERIFIED,
        "open_units": 150,
        "source": "default_unverified",
    }
    await _project(world.app, _event("organization.reinstated", hospital, verified=True))
    assert (await world.allocation())[0]["source"] == "default_verified"
    # A vendor's verification is not a hospital's.
    await _project(world.app, _event("organization.verified", world.vendor.org_id, "vendor"))
    vendor_ordering = await world.order(11, hospital=world.fleet.hospital())
    assert vendor_ordering.status_code == 409


async def test_an_admin_override_sets_the_cap_and_null_removes_it(world: World) -> None:
    other = uuid.uuid4()
    answer = await world.set_caps(
        [{"product_id": str(world.product), "units": 3}, {"product_id": str(other), "units": 50}]
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["items"] == sorted(
        [
            {"product_id": str(world.product), "cap": 3, "open_units": 0, "source": "override"},
            {"product_id": str(other), "cap": 50, "open_units": 0, "source": "override"},
        ],
        key=lambda i: i["product_id"],
    )
    assert (await world.order(3)).status_code == 201
    refused = await world.order(1)
    assert refused.status_code == 409
    assert refused.json()["cap"] == 3

    removed = await world.set_caps([{"product_id": str(world.product), "units": None}])
    assert removed.status_code == 200
    assert [i for i in removed.json()["items"] if i["product_id"] == str(world.product)] == [
        {
            "product_id": str(world.product),
            "cap": CAP_UNVERIFIED,
            "open_units": 3,
            "source": "default_unverified",
        }
    ]
    assert (await world.order(7)).status_code == 201


async def test_the_override_route_is_admin_services_only_and_validates(world: World) -> None:
    url = f"/internal/allocation/{world.hospital.org_id}"
    body = {"caps": [{"product_id": str(world.product), "units": 5}]}
    for key in ("test-key-inventory-service", "wrong"):
        refused = await world.client.put(url, json=body, headers={"X-Service-Key": key})
        assert refused.status_code in (401, 403), refused.text
    bad = await world.set_caps([{"product_id": str(world.product), "units": -1}])
    assert bad.status_code == 422
    twice = await world.set_caps(
        [
            {"product_id": str(world.product), "units": 1},
            {"product_id": str(world.product), "units": 2},
        ]
    )
    assert twice.status_code == 422
    assert await world.allocation() == []


async def test_only_hospitals_see_an_allocation(world: World) -> None:
    for org in (world.vendor, world.fleet.admin()):
        response = await world.client.get("/api/v1/allocation", headers=org.headers)
        assert response.status_code == 403
    assert (await world.client.get("/api/v1/allocation")).status_code == 401


async def test_orders_send_their_priority_to_inventory(world: World) -> None:
    import json

    await world.placed(1, priority="routine")
    await world.placed(1, priority="emergency")
    sent = [
        json.loads(r.content) for r in world.fleet.inventory.calls("POST", "/internal/reservations")
    ]
    assert [body["priority"] for body in sent] == ["routine", "emergency"]


def _supply_reported(
    hospital: uuid.UUID, site_id: uuid.UUID, product: uuid.UUID, per_day: float, as_of: datetime
) -> Any:
    """inventory-service's supply.reported: `per_day` units of `product` a day at a site."""
    return EventEnvelope.model_validate(
        {
            "id": str(uuid.uuid4()),
            "type": "supply.reported",
            "version": 1,
            "occurred_at": datetime.now(UTC).isoformat(),
            "producer": "inventory-service",
            "correlation_id": "test",
            "data": {
                "site_id": str(site_id),
                "hospital_org_id": str(hospital),
                "consumption_lpm": 50.0,
                "as_of": as_of.isoformat(),
                "daily_units": [{"product_id": str(product), "units_per_day": per_day}],
            },
        }
    )


async def test_a_verified_cap_is_at_least_allocation_days_of_reported_use(world: World) -> None:
    hospital, product = world.hospital.org_id, world.product
    await _project(world.app, _event("organization.verified", hospital))
    await world.placed(1)
    now = datetime.now(UTC)
    ward, theatre = uuid.uuid4(), uuid.uuid4()
    await _project(
        world.app,
        _supply_reported(hospital, ward, product, 60.5, now),
        _supply_reported(hospital, theatre, product, 20, now),
    )
    # ALLOCATION_DAYS (3) x (60.5 + 20) a day = 241.5: 242, above the verified 200.
    assert await world.allocation() == [
        {"product_id": str(product), "cap": 242, "open_units": 1, "source": "consumption"}
    ]
    await world.placed(241)
    refused = await world.order(1)
    assert refused.status_code == 409
    assert refused.json()["cap"] == 242

    # An older report of a site changes nothing; a newer one replaces it.
    await _project(
        world.app, _supply_reported(hospital, ward, product, 1000, now - timedelta(hours=1))
    )
    assert (await world.allocation())[0]["cap"] == 242
    await _project(
        world.app, _supply_reported(hospital, ward, product, 0, now + timedelta(seconds=1))
    )
    assert (await world.allocation())[0]["source"] == "default_verified"  # 3 x 20 < 200

    # A report older than ALLOCATION_REPORT_MAX_AGE_HOURS (7 days) no longer counts.
    old = uuid.uuid4()
    await _project(
        world.app, _supply_reported(hospital, old, product, 500, now - timedelta(days=8))
    )
    assert (await world.allocation())[0]["cap"] == CAP_VERIFIED

    # An admin's override decides over everything.
    await _project(
        world.app, _supply_reported(hospital, ward, product, 100, now + timedelta(seconds=2))
    )
    assert (await world.set_caps([{"product_id": str(product), "units": 250}])).status_code == 200
    assert (await world.allocation())[0] == {
        "product_id": str(product),
        "cap": 250,
        "open_units": 242,
        "source": "override",
    }


async def test_an_unverified_hospitals_reported_use_does_not_raise_its_cap(world: World) -> None:
    await world.placed(1)
    await _project(
        world.app,
        _supply_reported(
            world.hospital.org_id, uuid.uuid4(), world.product, 500, datetime.now(UTC)
        ),
    )
    assert (await world.allocation())[0]["cap"] == CAP_UNVERIFIED
