"""Shortages (SPEC, shortage readiness): inside an active shortage for a product's category,
routine orders are 409 `shortage-routine-paused` (urgent and emergency go on), caps are
multiplied by SHORTAGE_CAP_FACTOR, and unconfirmed holds last at most
SHORTAGE_HOLD_MINUTES; outside the area, for other categories, or once the shortage has
ended, orders are as usual. The shortage is learned from admin-service's events."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from flow_shared.events.envelope import EventEnvelope
from order_service.consumers import event_handlers
from order_service.service.shortages import shortage_cap

if TYPE_CHECKING:
    from conftest import FakeDepot, Fleet, OrderApp, OrderAppFactory, Org

CYLINDER, CONCENTRATOR = "oxygen_cylinder", "concentrator"


def _envelope(event_type: str, **data: Any) -> EventEnvelope:
    return EventEnvelope.model_validate(
        {
            "id": str(uuid.uuid4()),
            "type": event_type,
            "version": 1,
            "occurred_at": datetime.now(UTC).isoformat(),
            "producer": "admin-service",
            "correlation_id": "test",
            "data": data,
        }
    )


class Area:
    """A shortage-sized world of its own, far from every other test's points: a hospital,
    a vendor with a depot at its centre, a cylinder and a concentrator product."""

    def __init__(self, fleet: Fleet, app: OrderApp) -> None:
        self.fleet = fleet
        self.app = app
        self.client = app.client
        # Somewhere in the Southern Ocean, different for every test.
        self.lat = random.uniform(-60, -45)
        self.lon = random.uniform(-170, -100)
        self.hospital: Org = fleet.hospital()
        self.vendor: Org = fleet.vendor()
        self.cylinder, self.concentrator = uuid.uuid4(), uuid.uuid4()
        fleet.inventory.categories[self.cylinder] = CYLINDER
        fleet.inventory.categories[self.concentrator] = CONCENTRATOR
        self.depot: FakeDepot = fleet.depot(
            self.vendor, {self.cylinder: 1000, self.concentrator: 1000}, at=(self.lat, self.lon)
        )
        self.shortage_ids: list[str] = []

    def point(self, km_east: float = 0.0) -> dict[str, float]:
        # One degree of longitude here is about 111 km * cos(lat).
        import math

        return {
            "lat": self.lat,
            "lon": self.lon + km_east / (111.32 * math.cos(math.radians(self.lat))),
        }

    async def project(self, envelope: EventEnvelope) -> None:
        database = self.app.app.state.database
        async with database.sessionmaker() as session, session.begin():
            await event_handlers()[envelope.type](session, envelope)

    async def declare(self, categories: list[str], radius_km: float = 10) -> str:
        shortage_id = str(uuid.uuid4())
        self.shortage_ids.append(shortage_id)
        await self.project(
            _envelope(
                "shortage.declared",
                shortage_id=shortage_id,
                area={"lat": self.lat, "lon": self.lon, "radius_km": radius_km},
                categories=categories,
                note="",
                starts_at=datetime.now(UTC).isoformat(),
                ends_at=None,
                declared_by=str(uuid.uuid4()),
                recipient_org_ids=[],
            )
        )
        return shortage_id

    async def end(self, shortage_id: str) -> None:
        await self.project(
            _envelope(
                "shortage.ended",
                shortage_id=shortage_id,
                area={"lat": self.lat, "lon": self.lon, "radius_km": 10},
                categories=[CYLINDER],
                ended_at=datetime.now(UTC).isoformat(),
                ended_by=None,
                recipient_org_ids=[],
            )
        )

    async def order(
        self,
        product: uuid.UUID,
        quantity: int = 1,
        *,
        priority: str = "routine",
        km_east: float = 0.0,
    ) -> httpx.Response:
        body = self.fleet.order_body(
            self.vendor,
            self.depot,
            [(product, quantity)],
            priority=priority,
            delivery={**self.point(km_east), "address": None},
        )
        return await self.client.post("/api/v1/orders", json=body, headers=self.hospital.headers)

    async def direct(self, product: uuid.UUID, *, priority: str) -> httpx.Response:
        body = {
            "product_id": str(product),
            "quantity": 1,
            "delivery": self.point(),
            "priority": priority,
        }
        return await self.client.post(
            "/api/v1/orders/direct", json=body, headers=self.hospital.headers
        )


@pytest.fixture
async def shortage_app(order_app_for: OrderAppFactory) -> AsyncIterator[OrderApp]:
    async with order_app_for(allocation_cap_unverified=10, allocation_cap_verified=200) as app:
        yield app


@pytest.fixture
async def area(
    fleet: Fleet, shortage_app: OrderApp, orders_engine: AsyncEngine
) -> AsyncIterator[Area]:
    world = Area(fleet, shortage_app)
    yield world
    # Projected rows outlive the test: take them away so no other test is inside them.
    async with orders_engine.begin() as conn:
        for shortage_id in world.shortage_ids:
            await conn.execute(
                text("DELETE FROM orders.shortages WHERE shortage_id = :id"),
                {"id": uuid.UUID(shortage_id)},
            )


async def test_a_routine_order_inside_a_shortage_is_paused_and_leaves_nothing_held(
    area: Area,
) -> None:
    shortage_id = await area.declare([CYLINDER])

    refused = await area.order(area.cylinder)

    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    body = refused.json()
    assert body["type"].endswith("/shortage-routine-paused")
    assert body["shortage_ids"] == [shortage_id]
    assert body["shortage_id"] == shortage_id
    assert body["categories"] == [CYLINDER]
    # Refused before any stock was held.
    assert area.fleet.inventory.calls("POST", "/internal/reservations") == []


@pytest.mark.parametrize("priority", ["urgent", "emergency"])
async def test_urgent_and_emergency_orders_go_on_inside_a_shortage(
    area: Area, priority: str
) -> None:
    await area.declare([CYLINDER])

    placed = await area.order(area.cylinder, priority=priority)

    assert placed.status_code == 201, placed.text


async def test_outside_the_area_and_for_other_categories_routine_orders_go_on(
    area: Area,
) -> None:
    await area.declare([CYLINDER], radius_km=10)

    outside = await area.order(area.cylinder, km_east=15)
    other_category = await area.order(area.concentrator)

    assert outside.status_code == 201, outside.text
    assert other_category.status_code == 201, other_category.text


async def test_once_the_shortage_has_ended_routine_orders_go_again(area: Area) -> None:
    shortage_id = await area.declare([CYLINDER])
    assert (await area.order(area.cylinder)).status_code == 409

    await area.end(shortage_id)
    # A redelivered declaration after the end does not reopen it.
    await area.project(
        _envelope(
            "shortage.declared",
            shortage_id=shortage_id,
            area={"lat": area.lat, "lon": area.lon, "radius_km": 10},
            categories=[CYLINDER],
            starts_at=datetime.now(UTC).isoformat(),
        )
    )

    placed = await area.order(area.cylinder)
    assert placed.status_code == 201, placed.text


async def test_direct_orders_are_paused_when_routine_and_go_on_when_emergency(
    area: Area,
) -> None:
    await area.declare([CYLINDER])

    routine = await area.direct(area.cylinder, priority="routine")
    emergency = await area.direct(area.cylinder, priority="emergency")

    assert routine.status_code == 409, routine.text
    assert routine.json()["type"].endswith("/shortage-routine-paused")
    assert emergency.status_code == 201, emergency.text


async def test_caps_are_halved_inside_a_shortage_for_its_categories_only(area: Area) -> None:
    await area.declare([CYLINDER])

    # Unverified default 10, times 0.5: 5 cylinders, and the sixth is over the cap.
    assert (await area.order(area.cylinder, 5, priority="urgent")).status_code == 201
    refused = await area.order(area.cylinder, 1, priority="emergency")
    # Concentrators are not short here: the full cap of 10.
    concentrators = await area.order(area.concentrator, 10, priority="urgent")

    assert refused.status_code == 409, refused.text
    assert refused.json()["type"].endswith("/allocation-cap-exceeded")
    assert refused.json()["cap"] == 5
    assert concentrators.status_code == 201, concentrators.text


async def test_allocation_at_a_site_shows_the_caps_a_shortage_there_tightens(area: Area) -> None:
    near = area.fleet.location.add_site(area.hospital.org_id, area.lat, area.lon)
    far = area.fleet.location.add_site(area.hospital.org_id, area.lat + 5, area.lon)
    shortage_id = await area.declare([CYLINDER])
    assert (await area.order(area.cylinder, 2, priority="urgent")).status_code == 201
    assert (await area.order(area.concentrator, 1, priority="urgent")).status_code == 201

    async def allocation(**params: str) -> dict[str, Any]:
        answer = await area.client.get(
            "/api/v1/allocation", params=params, headers=area.hospital.headers
        )
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def caps(body: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return {i["product_id"]: (i["cap"], i["open_units"]) for i in body["items"]}

    at_near = await allocation(site_id=str(near))
    assert at_near["site_id"] == str(near)
    assert at_near["shortage_ids"] == [shortage_id]
    assert caps(at_near) == {str(area.cylinder): (5, 2), str(area.concentrator): (10, 1)}
    at_far = await allocation(site_id=str(far))
    assert at_far["shortage_ids"] == []
    assert caps(at_far) == {str(area.cylinder): (10, 2), str(area.concentrator): (10, 1)}
    anywhere = await allocation()
    assert anywhere["site_id"] is None
    assert caps(anywhere) == caps(at_far)

    others = area.fleet.location.add_site(uuid.uuid4(), area.lat, area.lon)
    hidden = await area.client.get(
        "/api/v1/allocation", params={"site_id": str(others)}, headers=area.hospital.headers
    )
    assert hidden.status_code == 404, hidden.text


def test_the_shortage_cap_is_floored_and_never_below_one() -> None:
    assert shortage_cap(200, 0.5) == 100
    assert shortage_cap(11, 0.5) == 5
    assert shortage_cap(1, 0.5) == 1
    assert shortage_cap(0, 0.5) == 0


async def test_unconfirmed_holds_last_at_most_the_shortage_hold(area: Area) -> None:
    await area.declare([CYLINDER])

    urgent = await area.order(area.cylinder, priority="urgent")
    usual = await area.order(area.concentrator, priority="urgent")

    assert urgent.status_code == usual.status_code == 201
    order = urgent.json()

    def window(o: dict[str, Any]) -> timedelta:
        return datetime.fromisoformat(o["expires_at"]) - datetime.fromisoformat(o["created_at"])

    # Urgent is 1 h normally; inside the shortage its hold is cut to 15 minutes.
    assert window(order) == timedelta(minutes=15)
    assert window(usual.json()) == timedelta(hours=1)
    reservation = area.fleet.inventory.reservation(order["reservation_id"])
    assert reservation.body["ttl_seconds"] == 15 * 60 + 5 * 60
