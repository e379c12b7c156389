"""The oxygen runway through the API, on real PostgreSQL: reports, the figures they give
(hand-computed here), inbound orders and deliveries from order events, the alerts once
per crossing, auto-reorder, and who may see which site.

The app runs on a clock the tests move (starting in 2030, so no wall-clock job of
another app ever finds these sites due); location-service and order-service are stubbed
at their HTTP boundary: the first knows which hospital owns which site, the second
places auto-reorders, answering a repeated Idempotency-Key with its first answer.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from flow_shared.db import Database
from flow_shared.events.envelope import EventEnvelope
from flow_shared.testing.clock import MovableClock
from flow_shared.testing.infra import asgi_client, caller_key
from flow_shared.testing.outbox import outbox_events
from flow_shared.testing.tokens import TokenIssuer
from inventory_service.consumers import event_handlers
from inventory_service.main import create_app
from inventory_service.service.auto_reorder import AutoReorderSender

START = datetime(2030, 1, 1, 8, 0, tzinfo=UTC)
INVENTORY_KEY = caller_key("inventory-service")
LARGE = "O2-CYL-46.7L"  # 7,000 L of gas a cylinder
MEDIUM = "O2-CYL-10L"  # 1,500 L


class LocationStub:
    """location-service's GET /internal/sites/{id}?org_id=: the site if that org owns it."""

    def __init__(self) -> None:
        self.sites: dict[uuid.UUID, tuple[uuid.UUID, str]] = {}

    def add(self, hospital_id: uuid.UUID, name: str = "Ward block A") -> uuid.UUID:
        site_id = uuid.uuid4()
        self.sites[site_id] = (hospital_id, name)
        return site_id

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("X-Service-Key") != INVENTORY_KEY:
            return httpx.Response(401, json={"title": "Unauthorized"})
        site_id = uuid.UUID(request.url.path.rsplit("/", 1)[1])
        owner = self.sites.get(site_id)
        if owner is None or str(owner[0]) != request.url.params.get("org_id"):
            return httpx.Response(
                404,
                json={"type": "https://flow.example/problems/site-not-found", "status": 404},
                headers={"Content-Type": "application/problem+json"},
            )
        return httpx.Response(
            200,
            json={
                "id": str(site_id),
                "org_id": str(owner[0]),
                "name": owner[1],
                "address": "1 Hospital Road",
                "lat": 52.5,
                "lon": 13.4,
            },
        )


class OrderStub:
    """order-service's /internal/auto-orders and /internal/sos."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.created: dict[str, uuid.UUID] = {}  # Idempotency-Key -> order or SOS id
        self.refusal: str | None = None  # the detail of a 409 to answer with
        self.down = False
        self.lose_next_answer = False  # do the work, then time out

    def calls(self, path: str) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests if r.url.path == path]

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if request.headers.get("X-Service-Key") != INVENTORY_KEY:
            return httpx.Response(401, json={"title": "Unauthorized"})
        if self.refusal is not None:
            return httpx.Response(
                409,
                json={"status": 409, "detail": self.refusal},
                headers={"Content-Type": "application/problem+json"},
            )
        key = request.headers["Idempotency-Key"]
        created = self.created.setdefault(key, uuid.uuid4())
        if self.lose_next_answer:
            self.lose_next_answer = False
            raise httpx.ReadTimeout("no answer in time", request=request)
        name = "order" if request.url.path.endswith("auto-orders") else "sos"
        return httpx.Response(201, json={name: {"id": str(created)}})


@dataclass
class Supply:
    http: httpx.AsyncClient
    app: Any
    clock: MovableClock
    location: LocationStub
    orders: OrderStub
    engine: AsyncEngine
    tokens: TokenIssuer
    products: dict[str, uuid.UUID]

    def hospital(self) -> tuple[uuid.UUID, dict[str, str]]:
        hospital_id = uuid.uuid4()
        return hospital_id, self.tokens.headers(org_kind="hospital", org_id=hospital_id)

    def admin_headers(self) -> dict[str, str]:
        return self.tokens.headers(org_kind="platform", role="platform_admin")

    async def report(
        self, site_id: uuid.UUID, headers: dict[str, str], body: dict[str, Any]
    ) -> httpx.Response:
        return await self.http.put(f"/api/v1/supply/sites/{site_id}", json=body, headers=headers)

    async def runway(self, site_id: uuid.UUID, headers: dict[str, str]) -> dict[str, Any]:
        response = await self.http.get(f"/api/v1/supply/sites/{site_id}/runway", headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def stock(self, sku: str, units: int) -> dict[str, Any]:
        return {"product_id": str(self.products[sku]), "full_units": units}

    async def alerts(self, site_id: uuid.UUID) -> list[str]:
        """The levels of the site's runway alerts in the outbox, oldest first."""
        found = []
        for event_type in ("supply.runway_low", "supply.runway_critical"):
            for envelope in await outbox_events(self.engine, event_type, site_id=str(site_id)):
                found.append((envelope["occurred_at"], envelope["data"]["level"]))
        return [level for _, level in sorted(found)]

    async def alert_data(self, site_id: uuid.UUID, level: str) -> list[dict[str, Any]]:
        envelopes = await outbox_events(self.engine, f"supply.runway_{level}", site_id=str(site_id))
        return [envelope["data"] for envelope in envelopes]

    async def run_alert_job(self) -> int:
        handled: int = await self.app.state.runway_alerts.run_once()
        return handled

    async def send_auto_reorders(self) -> int:
        sent: int = await self.app.state.auto_reorder_sender.run_once()
        return sent

    async def requests(self, site_id: uuid.UUID) -> list[dict[str, Any]]:
        """The site's auto-reorders as its runway shows them."""
        runway = await self.runway(site_id, self.admin_headers())
        shown: list[dict[str, Any]] = runway["auto_reorders"]
        return shown

    async def order_event(
        self,
        status: str,
        *,
        order_id: uuid.UUID,
        hospital_id: uuid.UUID,
        site_id: uuid.UUID | None,
        items: list[tuple[str, int]],
        eta: datetime | None = None,
        occurred_at: datetime | None = None,
    ) -> EventEnvelope:
        """Hand an order.<status> event, as order-service publishes it, to the consumer's
        handler (as the consumer does, in one transaction)."""
        envelope = EventEnvelope(
            type=f"order.{status}",
            producer="order-service",
            occurred_at=occurred_at or self.clock(),
            data={
                "order_id": str(order_id),
                "hospital_org_id": str(hospital_id),
                "vendor_id": str(uuid.uuid4()),
                "depot_id": str(uuid.uuid4()),
                "status": status,
                "priority": "urgent",
                "site_id": str(site_id) if site_id else None,
                "eta": eta.isoformat().replace("+00:00", "Z") if eta else None,
                "items": [
                    {
                        "product_id": str(self.products[sku]),
                        "quantity": quantity,
                        "unit_price": "10.00",
                        "line_total": "10.00",
                    }
                    for sku, quantity in items
                ],
            },
        )
        await self.deliver(envelope)
        return envelope

    async def deliver(self, envelope: EventEnvelope) -> None:
        handler = event_handlers(self.clock)[envelope.type]
        async with async_sessionmaker(self.engine)() as session, session.begin():
            await handler(session, envelope)


SupplyApp = tuple[Any, httpx.AsyncClient, MovableClock, LocationStub, OrderStub]


@pytest.fixture(scope="module")
async def supply_app(make_settings: Any, token_issuer: TokenIssuer) -> AsyncIterator[SupplyApp]:
    clock = MovableClock(START)
    location, orders = LocationStub(), OrderStub()
    app = create_app(
        # The tests run the jobs themselves (the background ones only at start-up).
        make_settings(runway_alert_interval_seconds=3600.0, auto_reorder_interval_seconds=3600.0),
        jwks_fetcher=token_issuer.fetch_jwks,
        clock=clock,
        location_transport=httpx.MockTransport(location.handle),
        order_transport=httpx.MockTransport(orders.handle),
    )
    async with asgi_client(app) as http:
        yield app, http, clock, location, orders


@pytest.fixture
def sup(
    supply_app: SupplyApp,
    inventory_db: AsyncEngine,
    token_issuer: TokenIssuer,
    product_ids: dict[str, uuid.UUID],
) -> Supply:
    app, http, clock, location, orders = supply_app
    orders.refusal, orders.down = None, False
    return Supply(http, app, clock, location, orders, inventory_db, token_issuer, product_ids)


def _hours(moment: str) -> float:
    return (datetime.fromisoformat(moment) - START).total_seconds() / 3600


# --- the figures ----------------------------------------------------------------------------


async def test_a_report_gives_hand_computed_hours_that_drain_with_time(sup: Supply) -> None:
    hospital_id, headers = sup.hospital()
    site_id = sup.location.add(hospital_id, "North wing")
    sup.clock.set(START)  # each test starts at the same moment
    # 20 x 7,000 L = 140,000 L at 50 L/min: 2,800 min = 46.67 h.
    response = await sup.report(
        site_id, headers, {"stock": [sup.stock(LARGE, 20)], "consumption_lpm": 50}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["site_id"] == str(site_id)
    assert body["site_name"] == "North wing"
    assert body["gas_liters"] == 140_000
    assert body["consumption_lpm"] == 50
    assert body["hours_left"] == 46.66  # rounded down
    assert body["runs_out_at"] == (START + timedelta(minutes=2800)).isoformat().replace(
        "+00:00", "Z"
    )
    assert body["level"] == "ok"
    assert body["inbound"] == []
    assert body["hours_left_with_inbound"] == 46.66
    assert (body["alert_hours"], body["critical_hours"]) == (24, 6)
    assert datetime.fromisoformat(body["as_of"]) == START

    # Ten hours on: 30,000 L used, 110,000 L left = 36.66 h.
    sup.clock.advance(hours=10)
    later = await sup.runway(site_id, headers)
    assert later["gas_liters"] == 110_000
    assert later["hours_left"] == 36.66
    assert later["runs_out_at"] == body["runs_out_at"]  # the drain is linear

    # Past the end: never below zero, and it stays the moment it ran out.
    sup.clock.advance(hours=40)
    empty = await sup.runway(site_id, headers)
    assert (empty["gas_liters"], empty["hours_left"], empty["level"]) == (0, 0, "critical")
    assert empty["runs_out_at"] == body["runs_out_at"]


async def test_a_product_whose_gas_is_unknown_is_refused_until_an_admin_sets_it(
    sup: Supply,
) -> None:
    """A cylinder created before products carried gas_liters (the migration's NOT VALID
    CHECK leaves such rows alone) is not counted as empty: the report is refused, naming
    it, until a platform admin sets its gas."""
    product_id = uuid.uuid4()
    async with sup.engine.begin() as conn:
        # The state such a product is in: made before the CHECK that refuses it now.
        await conn.execute(
            text("ALTER TABLE products DROP CONSTRAINT ck_products_gas_liters_known")
        )
        await conn.execute(
            text(
                "INSERT INTO products (id, sku, name, category, unit)"
                " VALUES (:id, :sku, 'Old 3 L cylinder', 'oxygen_cylinder', 'cylinder')"
            ),
            {"id": product_id, "sku": f"OLD-{product_id.hex[:8].upper()}"},
        )
        await conn.execute(
            text(
                "ALTER TABLE products ADD CONSTRAINT ck_products_gas_liters_known CHECK"
                " (gas_liters IS NOT NULL"
                " OR category NOT IN ('oxygen_cylinder', 'liquid_oxygen', 'refill')) NOT VALID"
            )
        )
    try:
        hospital_id, headers = sup.hospital()
        site_id = sup.location.add(hospital_id)
        sup.clock.set(START)
        body = {
            "stock": [{"product_id": str(product_id), "full_units": 10}],
            "consumption_lpm": 10,
        }
        refused = await sup.report(site_id, headers, body)
        assert refused.status_code == 422, refused.text
        assert refused.json()["type"].endswith("/gas-unknown")
        assert refused.json()["product_ids"] == [str(product_id)]

        path = f"/api/v1/catalog/products/{product_id}"
        # Only a platform admin corrects the catalogue, and only with a gas that fits.
        assert (
            await sup.http.patch(path, json={"gas_liters": 600}, headers=headers)
        ).status_code == 403
        for bad in ({"gas_liters": None}, {"gas_liters": 0}, {"name": None}):
            answer = await sup.http.patch(path, json=bad, headers=sup.admin_headers())
            assert answer.status_code == 422, (bad, answer.text)
        unknown = f"/api/v1/catalog/products/{uuid.uuid4()}"
        assert (
            await sup.http.patch(unknown, json={}, headers=sup.admin_headers())
        ).status_code == 404
        set_gas = await sup.http.patch(path, json={"gas_liters": 600}, headers=sup.admin_headers())
        assert set_gas.status_code == 200, set_gas.text
        assert (set_gas.json()["gas_liters"], set_gas.json()["name"]) == (600, "Old 3 L cylinder")

        # 10 x 600 L at 10 L/min: 600 minutes, 10 hours.
        counted = await sup.report(site_id, headers, body)
        assert counted.status_code == 200, counted.text
        assert (counted.json()["gas_liters"], counted.json()["hours_left"]) == (6000, 10)
        # An accessory never holds gas, so a correction cannot give it any.
        accessory = f"/api/v1/catalog/products/{sup.products['REG-CGA870']}"
        answer = await sup.http.patch(
            accessory, json={"gas_liters": 10}, headers=sup.admin_headers()
        )
        assert answer.status_code == 422, answer.text
    finally:
        async with sup.engine.begin() as conn:
            await conn.execute(text("DELETE FROM products WHERE id = :id"), {"id": product_id})


async def test_consumption_from_patients_and_an_accessory_counts_no_gas(sup: Supply) -> None:
    hospital_id, headers = sup.hospital()
    site_id = sup.location.add(hospital_id)
    sup.clock.set(START)
    accessory = "REG-CGA870"  # a regulator: no gas
    # 4 x 10 + 2 x 15 = 70 L/min; 5 x 1,500 L = 7,500 L: 107.14 min = 1.78 h.
    response = await sup.report(
        site_id,
        headers,
        {
            "stock": [sup.stock(MEDIUM, 5), sup.stock(accessory, 40)],
            "patients": [{"count": 4, "flow_lpm": 10}, {"count": 2, "flow_lpm": 15}],
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["gas_liters"], body["consumption_lpm"], body["hours_left"]) == (7500, 70, 1.78)
    # Reported already below critical_hours: the one alert is "critical" (not low too).
    assert body["level"] == "critical"
    assert await sup.alerts(site_id) == ["critical"]
    data = (await sup.alert_data(site_id, "critical"))[0]
    assert data == {
        "site_id": str(site_id),
        "hospital_org_id": str(hospital_id),
        "site_name": "Ward block A",
        "level": "critical",
        "hours_left": 1.78,
        "runs_out_at": data["runs_out_at"],
        "gas_liters": 7500.0,
        "consumption_lpm": 70.0,
        "alert_hours": 24.0,
        "critical_hours": 6.0,
        "as_of": "2030-01-01T08:00:00Z",
    }
    assert abs(_hours(data["runs_out_at"]) - 7500 / 70 / 60) < 1e-6


async def test_a_report_tells_order_service_the_units_it_uses_a_day(sup: Supply) -> None:
    """supply.reported: the ALLOCATION_DAYS floor of the hospital's caps, per product."""
    hospital_id, headers = sup.hospital()
    site_id = sup.location.add(hospital_id)
    sup.clock.set(START)
    await sup.report(site_id, headers, {"stock": [], "consumption_lpm": 50})
    [envelope] = await outbox_events(sup.engine, "supply.reported", site_id=str(site_id))
    data = envelope["data"]
    assert (data["hospital_org_id"], data["consumption_lpm"]) == (str(hospital_id), 50.0)
    daily = {line["product_id"]: line["units_per_day"] for line in data["daily_units"]}
    # 50 L/min x 1,440 min = 72,000 L a day: 10.29 large or 48 medium cylinders.
    assert abs(daily[str(sup.products[LARGE])] - 72_000 / 7_000) < 1e-9
    assert daily[str(sup.products[MEDIUM])] == 48
    assert str(sup.products["REG-CGA870"]) not in daily  # holds no gas


async def test_nothing_consumed_means_no_runway_and_no_alert(sup: Supply) -> None:
    hospital_id, headers = sup.hospital()
    site_id = sup.location.add(hospital_id)
    sup.clock.set(START)
    response = await sup.report(
        site_id, headers, {"stock": [sup.stock(LARGE, 0)], "consumption_lpm": 0}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["hours_left"] is None
    assert body["runs_out_at"] is None
    assert body["hours_left_with_inbound"] is None
    assert body["level"] == "ok"
    assert await sup.alerts(site_id) == []


# --- alerts once per crossing ----------------------------------------------------------------


async def test_alerts_fire_once_per_crossing_and_again_after_a_recovery(sup: Supply) -> None:
    hospital_id, headers = sup.hospital()
    site_id = sup.location.add(hospital_id)
    sup.clock.set(START)
    report = {"stock": [sup.stock(LARGE, 20)], "consumption_lpm": 50}  # 46.67 h
    assert (await sup.report(site_id, headers, report)).status_code == 200
    assert await sup.alerts(site_id) == []

    # 23 h on: 23.67 h left, below alert_hours. Reading says so but raises nothing:
    # the alert is the job's (or a report's or a delivery's), once.
    sup.clock.advance(hours=23)
    assert (await sup.runway(site_id, headers))["level"] == "low"
    assert await sup.alerts(site_id) == []
    await sup.run_alert_job()
    await sup.run_alert_job()
    await sup.runway(site_id, headers)
    assert await sup.alerts(site_id) == ["low"]

    # 41 h on: 5.67 h left: critical, once.
    sup.clock.advance(hours=18)
    await sup.run_alert_job()
    await sup.run_alert_job()
    assert await sup.alerts(site_id) == ["low", "critical"]

    # A report with fresh stock recovers it (no alert), and re-arms: the next descent
    # alerts again.
    sup.clock.advance(hours=1)
    assert (await sup.report(site_id, headers, report)).json()["level"] == "ok"
    assert await sup.alerts(site_id) == ["low", "critical"]
    sup.clock.advance(hours=23)
    await sup.run_alert_job()
    assert await sup.alerts(site_id) == ["low", "critical", "low"]


async def test_the_alert_job_reaches_exactly_the_sites_that_are_due(sup: Supply) -> None:
    """Its one query takes the sites whose stored next change has come, no others."""
    sup.clock.set(START)
    hospital_id, headers = sup.hospital()
    soon, later = sup.location.add(hospital_id), sup.location.add(hospital_id)
    # At 100 L/min (6,000 L/h), 25 h and 48 h of gas: low 1 h and 24 h from now.
    await sup.report(soon, headers, {"stock": [sup.stock(MEDIUM, 100)], "consumption_lpm": 100})
    await sup.report(later, headers, {"stock": [sup.stock(MEDIUM, 192)], "consumption_lpm": 100})
    async with sup.engine.connect() as conn:
        due = dict(
            (
                await conn.execute(
                    text(
                        "SELECT site_id, next_check_at FROM site_supply WHERE site_id IN (:a, :b)"
                    ),
                    {"a": soon, "b": later},
                )
            ).all()
        )
    assert due[soon] == START + timedelta(hours=1)
    assert due[later] == START + timedelta(hours=24)
    sup.clock.advance(hours=2)
    await sup.run_alert_job()
    assert await sup.alerts(soon) == ["low"]
    assert await sup.alerts(later) == []


# --- inbound orders and deliveries ------------------------------------------------------------


async def test_inbound_orders_count_at_their_eta_and_a_delivery_adds_once(sup: Supply) -> None:
    hospital_id, headers = sup.hospital()
    site_id = sup.location.add(hospital_id)
    sup.clock.set(START)
    # 10 x 7,000 = 70,000 L at 100 L/min: 11.66 h, low at once.
    await sup.report(site_id, headers, {"stock": [sup.stock(LARGE, 10)], "consumption_lpm": 100})
    assert await sup.alerts(site_id) == ["low"]
    order_id = uuid.uuid4()
    line = [(LARGE, 5)]  # 35,000 L

    await sup.order_event(
        "placed", order_id=order_id, hospital_id=hospital_id, site_id=site_id, items=line
    )
    placed = await sup.runway(site_id, headers)
    assert placed["inbound"] == [
        {
            "order_id": str(order_id),
            "product_id": str(sup.products[LARGE]),
            "quantity": 5,
            "status": "placed",
            "eta": None,
        }
    ]
    # No ETA yet: listed, not counted.
    assert placed["hours_left_with_inbound"] == placed["hours_left"] == 11.66

    # Confirmed to arrive in 2 h: 58,000 L left then, + 35,000 = 93,000 L = 15.5 h more.
    eta = START + timedelta(hours=2)
    await sup.order_event(
        "confirmed",
        order_id=order_id,
        hospital_id=hospital_id,
        site_id=site_id,
        items=line,
        eta=eta,
    )
    confirmed = await sup.runway(site_id, headers)
    assert confirmed["inbound"][0]["status"] == "confirmed"
    assert datetime.fromisoformat(confirmed["inbound"][0]["eta"]) == eta
    assert confirmed["hours_left_with_inbound"] == 17.5
    assert confirmed["hours_left"] == 11.66  # on site only

    # A late, older event changes nothing: statuses only move forward.
    await sup.order_event(
        "placed", order_id=order_id, hospital_id=hospital_id, site_id=site_id, items=line
    )
    assert (await sup.runway(site_id, headers))["inbound"][0]["status"] == "confirmed"

    # Delivered 3 h in: 70,000 - 18,000 + 35,000 = 87,000 L = 14.5 h; inbound empty.
    sup.clock.advance(hours=3)
    delivered = await sup.order_event(
        "delivered", order_id=order_id, hospital_id=hospital_id, site_id=site_id, items=line
    )
    after = await sup.runway(site_id, headers)
    assert (after["gas_liters"], after["hours_left"], after["inbound"]) == (87_000, 14.5, [])
    assert after["level"] == "low"  # still: no second alert
    assert await sup.alerts(site_id) == ["low"]

    # The same event again (a redelivery) and a second delivered event add nothing.
    await sup.deliver(delivered)
    await sup.order_event(
        "delivered", order_id=order_id, hospital_id=hospital_id, site_id=site_id, items=line
    )
    assert (await sup.runway(site_id, headers))["gas_liters"] == 87_000


async def test_a_delivery_before_the_latest_report_is_not_counted_twice(sup: Supply) -> None:
    hospital_id, headers = sup.hospital()
    site_id = sup.location.add(hospital_id)
    sup.clock.set(START)
    order_id = uuid.uuid4()
    await sup.order_event(
        "dispatched", order_id=order_id, hospital_id=hospital_id, site_id=site_id,
        items=[(LARGE, 5)], eta=START,
    )  # fmt: skip
    await sup.report(site_id, headers, {"stock": [sup.stock(LARGE, 10)], "consumption_lpm": 0})
    # Delivered (by the vendor's clock) a minute before the officer counted 10 units.
    await sup.order_event(
        "delivered", order_id=order_id, hospital_id=hospital_id, site_id=site_id,
        items=[(LARGE, 5)], occurred_at=START - timedelta(minutes=1),
    )  # fmt: skip
    assert (await sup.runway(site_id, headers))["gas_liters"] == 70_000


async def test_orders_without_a_site_and_ended_orders_are_not_inbound(sup: Supply) -> None:
    hospital_id, headers = sup.hospital()
    site_id = sup.location.add(hospital_id)
    sup.clock.set(START)
    await sup.report(site_id, headers, {"stock": [], "consumption_lpm": 10})
    cancelled = uuid.uuid4()
    await sup.order_event(
        "placed", order_id=cancelled, hospital_id=hospital_id, site_id=site_id, items=[(LARGE, 1)]
    )
    await sup.order_event(
        "cancelled", order_id=cancelled, hospital_id=hospital_id, site_id=site_id,
        items=[(LARGE, 1)],
    )  # fmt: skip
    await sup.order_event(
        "placed", order_id=uuid.uuid4(), hospital_id=hospital_id, site_id=None, items=[(LARGE, 1)]
    )
    assert (await sup.runway(site_id, headers))["inbound"] == []


# --- who sees what -----------------------------------------------------------------------------


async def test_sites_are_their_hospitals_and_admins_see_all_soonest_first(sup: Supply) -> None:
    sup.clock.set(START)
    hospital_id, headers = sup.hospital()
    _other_id, other_headers = sup.hospital()
    site_id = sup.location.add(hospital_id)
    body = {"stock": [sup.stock(LARGE, 1)], "consumption_lpm": 1}

    # Another hospital's site: location-service says not found, so do we.
    refused = await sup.report(site_id, other_headers, body)
    assert refused.status_code == 404, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert (await sup.report(site_id, headers, body)).status_code == 200
    response = await sup.http.get(f"/api/v1/supply/sites/{site_id}/runway", headers=other_headers)
    assert response.status_code == 404
    vendor = sup.tokens.headers(org_kind="vendor")
    assert (await sup.report(site_id, vendor, body)).status_code == 403
    listing = await sup.http.get("/api/v1/supply/runway", headers=vendor)
    assert listing.status_code == 403
    assert (await sup.runway(site_id, sup.admin_headers()))["site_id"] == str(site_id)

    # A hospital lists its own sites only, soonest to run out first.
    sooner = sup.location.add(hospital_id)
    idle = sup.location.add(hospital_id)
    await sup.report(sooner, headers, {"stock": [sup.stock(MEDIUM, 1)], "consumption_lpm": 1})
    await sup.report(idle, headers, {"stock": [], "consumption_lpm": 0})
    mine = (await sup.http.get("/api/v1/supply/runway", headers=headers)).json()
    assert [item["site_id"] for item in mine["items"]] == [str(sooner), str(site_id), str(idle)]
    assert mine["total"] == 3
    theirs = (await sup.http.get("/api/v1/supply/runway", headers=other_headers)).json()
    assert theirs["items"] == []
    assert theirs["total"] == 0

    # Admins see every site, in the same order, paged.
    admin = await sup.http.get(
        "/api/v1/supply/runway", params={"page_size": 100}, headers=sup.admin_headers()
    )
    async with sup.engine.connect() as conn:
        sites = await conn.scalar(text("SELECT count(*) FROM site_supply"))
    assert admin.json()["total"] == sites  # the trigger-kept count
    listed = [item["runs_out_at"] for item in admin.json()["items"]]
    dated = [moment for moment in listed if moment is not None]
    assert dated == sorted(dated, key=datetime.fromisoformat)
    assert listed[: len(dated)] == dated  # those that use nothing come last


# --- bad input changes nothing ---------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"stock": [], "consumption_lpm": 10, "patients": []},  # both
        {"stock": []},  # neither
        {"stock": [], "consumption_lpm": 10, "alert_hours": 6, "critical_hours": 6},
        {"stock": [], "consumption_lpm": -1},
        {"stock": [], "consumption_lpm": "NaN"},
        {"stock": [], "patients": [{"count": 1, "flow_lpm": 1000}]},
        {"stock": [], "consumption_lpm": 1, "auto_reorder": {"product_id": "x", "quantity": 1}},
        {"stock": [], "consumption_lpm": 1, "surprise": True},
    ],
)
async def test_bad_reports_are_422_and_change_nothing(sup: Supply, body: dict[str, Any]) -> None:
    hospital_id, headers = sup.hospital()
    site_id = sup.location.add(hospital_id)
    response = await sup.report(site_id, headers, body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    missing = await sup.http.get(f"/api/v1/supply/sites/{site_id}/runway", headers=headers)
    assert missing.status_code == 404


async def test_unknown_and_repeated_products_are_422(sup: Supply) -> None:
    hospital_id, headers = sup.hospital()
    site_id = sup.location.add(hospital_id)
    unknown = str(uuid.uuid4())
    response = await sup.report(
        site_id,
        headers,
        {"stock": [{"product_id": unknown, "full_units": 1}], "consumption_lpm": 1},
    )
    assert response.status_code == 422
    assert response.json()["product_ids"] == [unknown]
    twice = await sup.report(
        site_id,
        headers,
        {"stock": [sup.stock(LARGE, 1), sup.stock(LARGE, 2)], "consumption_lpm": 1},
    )
    assert twice.status_code == 422


async def test_two_first_reports_at_once_make_one_site(sup: Supply) -> None:
    hospital_id, headers = sup.hospital()
    site_id = sup.location.add(hospital_id)
    bodies = [{"stock": [sup.stock(LARGE, units)], "consumption_lpm": 1} for units in (1, 2)]
    answers = await asyncio.gather(*(sup.report(site_id, headers, body) for body in bodies))
    assert [answer.status_code for answer in answers] == [200, 200]
    async with sup.engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT gas_liters FROM site_supply WHERE site_id = :s"), {"s": site_id}
            )
        ).all()
    assert len(rows) == 1
    assert rows[0].gas_liters in (7000, 14000)
    async with sup.engine.connect() as conn:
        counted = await conn.scalar(text("SELECT sites FROM site_supply_count"))
        sites = await conn.scalar(text("SELECT count(*) FROM site_supply"))
    assert counted == sites  # one insert counted, the other report's did nothing


# --- auto-reorder ------------------------------------------------------------------------------

AUTO = {"quantity": 10, "priority": "urgent"}


async def _auto_site(sup: Supply) -> tuple[uuid.UUID, uuid.UUID, dict[str, str], dict[str, Any]]:
    """A site with auto-reorder of 10 large cylinders, 46.66 h of gas at 50 L/min."""
    sup.clock.set(START)
    hospital_id, headers = sup.hospital()
    site_id = sup.location.add(hospital_id)
    report = {
        "stock": [sup.stock(LARGE, 20)],
        "consumption_lpm": 50,
        "auto_reorder": {"product_id": str(sup.products[LARGE]), **AUTO},
    }
    response = await sup.report(site_id, headers, report)
    assert response.status_code == 200, response.text
    assert response.json()["auto_reorder"] == {"product_id": str(sup.products[LARGE]), **AUTO}
    return hospital_id, site_id, headers, report


def _for(site_id: uuid.UUID, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [call for call in calls if call["site_id"] == str(site_id)]


async def test_low_places_the_order_once_and_critical_opens_an_sos_once(sup: Supply) -> None:
    hospital_id, site_id, headers, report = await _auto_site(sup)
    await sup.send_auto_reorders()
    assert _for(site_id, sup.orders.calls("/internal/auto-orders")) == []

    sup.clock.advance(hours=23)  # low
    await sup.run_alert_job()
    await sup.send_auto_reorders()
    await sup.send_auto_reorders()
    placed = _for(site_id, sup.orders.calls("/internal/auto-orders"))
    assert placed == [
        {
            "hospital_org_id": str(hospital_id),
            "site_id": str(site_id),
            "product_id": str(sup.products[LARGE]),
            "quantity": 10,
            "priority": "urgent",
            "note": placed[0]["note"],
        }
    ]
    [request] = await sup.requests(site_id)
    assert (request["kind"], request["status"]) == ("order", "open")
    order_id = uuid.UUID(request["order_id"])

    # Recovered and low again while the order is open: no second order.
    sup.clock.advance(minutes=30)
    await sup.report(site_id, headers, report)
    sup.clock.advance(hours=23)
    await sup.run_alert_job()
    await sup.send_auto_reorders()
    assert len(_for(site_id, sup.orders.calls("/internal/auto-orders"))) == 1
    assert await sup.alerts(site_id) == ["low", "low"]

    # Critical: an SOS for the same product and quantity, once.
    sup.clock.advance(hours=18)
    await sup.run_alert_job()
    await sup.send_auto_reorders()
    await sup.send_auto_reorders()
    [sos] = _for(site_id, sup.orders.calls("/internal/sos"))
    assert (sos["product_id"], sos["quantity"]) == (str(sup.products[LARGE]), 10)
    kinds = {(r["kind"], r["status"]) for r in await sup.requests(site_id)}
    assert kinds == {("order", "open"), ("sos", "open")}

    # The order delivered: its request closes, so the next descent orders again.
    await sup.order_event(
        "delivered", order_id=order_id, hospital_id=hospital_id, site_id=site_id,
        items=[(LARGE, 10)],
    )  # fmt: skip
    assert [r["kind"] for r in await sup.requests(site_id)] == ["sos"]
    sup.clock.advance(minutes=1)
    await sup.report(site_id, headers, report)
    sup.clock.advance(hours=23)
    await sup.run_alert_job()
    await sup.send_auto_reorders()
    assert len(_for(site_id, sup.orders.calls("/internal/auto-orders"))) == 2


async def test_an_sos_that_ends_unfilled_closes_its_request(sup: Supply) -> None:
    hospital_id, site_id, _headers, _report = await _auto_site(sup)
    sup.clock.advance(hours=42)  # straight to critical: the SOS only
    await sup.run_alert_job()
    await sup.send_auto_reorders()
    assert _for(site_id, sup.orders.calls("/internal/auto-orders")) == []
    [request] = await sup.requests(site_id)
    assert request["kind"] == "sos"
    await sup.deliver(
        EventEnvelope(
            type="sos.unfilled",
            producer="order-service",
            occurred_at=sup.clock(),
            data={"sos_id": request["sos_id"], "hospital_org_id": str(hospital_id)},
        )
    )
    assert await sup.requests(site_id) == []


async def test_a_lost_answer_and_a_restart_never_place_a_second_order(
    sup: Supply, infra: Any
) -> None:
    _hospital_id, site_id, _headers, _report = await _auto_site(sup)
    sup.clock.advance(hours=23)
    await sup.run_alert_job()
    sup.orders.lose_next_answer = True
    assert await sup.send_auto_reorders() == 0  # the order was placed; the answer lost
    [pending] = await sup.requests(site_id)
    assert pending["status"] == "pending"

    # Another process (a restarted one, say), with its own pool, once the retry is due;
    # the original one at the same instant.
    sup.clock.advance(seconds=10)
    restarted = AutoReorderSender(
        Database(create_async_engine(infra.database_url("inventory"))),
        sup.app.state.upstreams.order,
        clock=sup.clock,
    )
    await asyncio.gather(restarted.run_once(), sup.send_auto_reorders())
    calls = _for(site_id, sup.orders.calls("/internal/auto-orders"))
    assert len(calls) == 2  # the lost one and one more, with the same key
    keys = {
        r.headers["Idempotency-Key"]
        for r in sup.orders.requests
        if json.loads(r.content)["site_id"] == str(site_id)
    }
    assert len(keys) == 1
    [request] = await sup.requests(site_id)
    assert request["status"] == "open"
    assert uuid.UUID(request["order_id"]) == sup.orders.created[keys.pop()]
    await restarted.database.engine.dispose()


async def test_order_service_down_defers_and_a_refusal_is_kept(sup: Supply) -> None:
    _hospital_id, site_id, _headers, _report = await _auto_site(sup)
    sup.clock.advance(hours=23)
    await sup.run_alert_job()
    sup.orders.down = True
    await sup.send_auto_reorders()
    [pending] = await sup.requests(site_id)
    assert pending["status"] == "pending"
    tries = len(_for(site_id, sup.orders.calls("/internal/auto-orders")))
    await sup.send_auto_reorders()  # not due yet: nothing sent
    assert len(_for(site_id, sup.orders.calls("/internal/auto-orders"))) == tries

    sup.orders.down = False
    sup.orders.refusal = "Over the allocation cap for this product."
    sup.clock.advance(minutes=1)
    assert await sup.send_auto_reorders() >= 1
    [refused] = await sup.requests(site_id)
    assert (refused["status"], refused["reason"]) == (
        "refused",
        "Over the allocation cap for this product.",
    )
    sent = len(_for(site_id, sup.orders.calls("/internal/auto-orders")))
    sup.clock.advance(minutes=5)
    await sup.send_auto_reorders()
    assert len(_for(site_id, sup.orders.calls("/internal/auto-orders"))) == sent
