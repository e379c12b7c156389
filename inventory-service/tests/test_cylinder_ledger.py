"""The cylinder ledger through the API, on real PostgreSQL: registration, who sees what,
an order's dispatch and delivery (order-service's internal routes), returns and
collections with their cylinder.returned events, order ends, hydrotests, and the
race of two orders for one serial.

The app runs on a clock the tests move (from 2030), so hydrotest dates and held days
are the tests' own.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from flow_shared.events.envelope import EventEnvelope
from flow_shared.testing.clock import MovableClock
from flow_shared.testing.infra import asgi_client, caller_key
from flow_shared.testing.outbox import outbox_events
from flow_shared.testing.tokens import TokenIssuer
from inventory_service.consumers import event_handlers
from inventory_service.main import create_app

START = datetime(2030, 1, 1, 8, 0, tzinfo=UTC)
ORDERS = {"X-Service-Key": caller_key("order-service")}
CYL = "O2-CYL-46.7L"
SMALL = "O2-CYL-10L"
LOX = "LOX-100KG"  # not a cylinder
DUE = (START + timedelta(days=365)).date()


def code(response: httpx.Response) -> str:
    return str(response.json()["type"]).rsplit("/", 1)[-1]


@dataclass
class Ledger:
    http: httpx.AsyncClient
    clock: MovableClock
    engine: AsyncEngine
    tokens: TokenIssuer
    products: dict[str, uuid.UUID]

    def vendor(self) -> tuple[uuid.UUID, dict[str, str]]:
        vendor_id = uuid.uuid4()
        return vendor_id, self.tokens.headers(org_kind="vendor", role="org_admin", org_id=vendor_id)

    def hospital(self) -> tuple[uuid.UUID, dict[str, str]]:
        hospital_id = uuid.uuid4()
        return hospital_id, self.tokens.headers(org_kind="hospital", org_id=hospital_id)

    async def depot(self, headers: dict[str, str]) -> uuid.UUID:
        response = await self.http.post(
            "/api/v1/inventory/depots",
            json={"name": "Depot", "lat": 19.07, "lon": 72.87, "service_radius_km": 30},
            headers=headers,
        )
        assert response.status_code == 201, response.text
        return uuid.UUID(response.json()["id"])

    def body(
        self, serial: str, depot_id: uuid.UUID, sku: str = CYL, due: date = DUE, **extra: Any
    ) -> dict[str, Any]:
        return {
            "serial": serial,
            "product_id": str(self.products[sku]),
            "depot_id": str(depot_id),
            "hydrotest_due": due.isoformat(),
            **extra,
        }

    async def register(
        self, headers: dict[str, str], depot_id: uuid.UUID, *serials: str, sku: str = CYL
    ) -> None:
        response = await self.http.post(
            "/api/v1/cylinders/bulk",
            json={"cylinders": [self.body(s, depot_id, sku) for s in serials]},
            headers=headers,
        )
        assert response.status_code == 201, response.text

    async def get(self, headers: dict[str, str], serial: str) -> dict[str, Any]:
        response = await self.http.get(f"/api/v1/cylinders/{serial}", headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def line(self, sku: str, quantity: int) -> dict[str, Any]:
        return {"product_id": str(self.products[sku]), "quantity": quantity}

    async def dispatch(
        self,
        *,
        order_id: uuid.UUID,
        vendor_id: uuid.UUID,
        depot_id: uuid.UUID,
        hospital_id: uuid.UUID,
        lines: list[dict[str, Any]],
        serials: list[str],
    ) -> httpx.Response:
        return await self.http.post(
            "/internal/cylinders/dispatch",
            json={
                "order_id": str(order_id),
                "vendor_id": str(vendor_id),
                "depot_id": str(depot_id),
                "hospital_org_id": str(hospital_id),
                "lines": lines,
                "serials": serials,
                "actor_id": str(uuid.uuid4()),
            },
            headers=ORDERS,
        )

    async def deliver(
        self,
        *,
        order_id: uuid.UUID,
        vendor_id: uuid.UUID,
        depot_id: uuid.UUID,
        hospital_id: uuid.UUID,
        returned: list[str] = (),  # type: ignore[assignment]
        deposit: str | None = "12.50",
    ) -> httpx.Response:
        deposits = []
        if deposit is not None:
            deposits = [
                {
                    "product_id": str(self.products[CYL]),
                    "deposit_per_unit": deposit,
                    "currency": "INR",
                }
            ]
        return await self.http.post(
            "/internal/cylinders/deliver",
            json={
                "order_id": str(order_id),
                "vendor_id": str(vendor_id),
                "depot_id": str(depot_id),
                "hospital_org_id": str(hospital_id),
                "returned": list(returned),
                "deposits": deposits,
                "actor_id": None,
            },
            headers=ORDERS,
        )

    async def order_event(self, status: str, order_id: uuid.UUID, hospital_id: uuid.UUID) -> None:
        envelope = EventEnvelope(
            type=f"order.{status}",
            producer="order-service",
            occurred_at=self.clock(),
            data={
                "order_id": str(order_id),
                "hospital_org_id": str(hospital_id),
                "status": status,
                "site_id": None,
                "items": [],
            },
        )
        handler = event_handlers(self.clock)[envelope.type]
        async with async_sessionmaker(self.engine)() as session, session.begin():
            await handler(session, envelope)

    async def returned_events(self, serial: str) -> list[dict[str, Any]]:
        rows = await outbox_events(self.engine, "cylinder.returned", serial=serial)
        return [row["data"] for row in rows]


@pytest.fixture(scope="module")
async def ledger_app(
    make_settings: Any, token_issuer: TokenIssuer
) -> AsyncIterator[tuple[httpx.AsyncClient, MovableClock]]:
    clock = MovableClock(START)
    app = create_app(make_settings(), jwks_fetcher=token_issuer.fetch_jwks, clock=clock)
    async with asgi_client(app) as http:
        yield http, clock


@pytest.fixture
def led(
    ledger_app: tuple[httpx.AsyncClient, MovableClock],
    inventory_db: AsyncEngine,
    token_issuer: TokenIssuer,
    product_ids: dict[str, uuid.UUID],
) -> Ledger:
    http, clock = ledger_app
    clock.set(START)
    return Ledger(http, clock, inventory_db, token_issuer, product_ids)


@dataclass
class Order:
    order_id: uuid.UUID
    vendor_id: uuid.UUID
    depot_id: uuid.UUID
    hospital_id: uuid.UUID

    def ids(self) -> dict[str, uuid.UUID]:
        return {
            "order_id": self.order_id,
            "vendor_id": self.vendor_id,
            "depot_id": self.depot_id,
            "hospital_id": self.hospital_id,
        }


async def _vendor_with(led: Ledger, *serials: str) -> tuple[uuid.UUID, dict[str, str], uuid.UUID]:
    vendor_id, headers = led.vendor()
    depot_id = await led.depot(headers)
    if serials:
        await led.register(headers, depot_id, *serials)
    return vendor_id, headers, depot_id


# --- registration and who sees what ---------------------------------------------------------


async def test_register_keeps_the_cylinder_and_its_first_move(led: Ledger) -> None:
    vendor_id, headers, depot_id = await _vendor_with(led)
    response = await led.http.post(
        "/api/v1/cylinders", json=led.body("A-001", depot_id), headers=headers
    )
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "full"
    empty = await led.http.post(
        "/api/v1/cylinders", json=led.body("A-002", depot_id, status="empty"), headers=headers
    )
    assert empty.json()["status"] == "empty"

    detail = await led.get(headers, "A-001")
    assert detail["vendor_id"] == str(vendor_id)
    assert [(m["from_status"], m["to_status"], m["to_place"]) for m in detail["moves"]] == [
        (None, "full", f"depot:{depot_id}")
    ]

    again = await led.http.post(
        "/api/v1/cylinders", json=led.body("A-001", depot_id), headers=headers
    )
    assert again.status_code == 409
    assert code(again) == "serial-taken"
    # Unique per vendor: another vendor may use the same serial.
    _other, other_headers, other_depot = await _vendor_with(led)
    theirs = await led.http.post(
        "/api/v1/cylinders", json=led.body("A-001", other_depot), headers=other_headers
    )
    assert theirs.status_code == 201


async def test_registration_refuses_what_is_not_the_vendors_cylinder(led: Ledger) -> None:
    _vendor_id, headers, depot_id = await _vendor_with(led)
    _other, _other_headers, other_depot = await _vendor_with(led)
    post = led.http.post
    foreign_depot = await post(
        "/api/v1/cylinders", json=led.body("B-1", other_depot), headers=headers
    )
    assert foreign_depot.status_code == 404
    unknown_product = await post(
        "/api/v1/cylinders",
        json={**led.body("B-1", depot_id), "product_id": str(uuid.uuid4())},
        headers=headers,
    )
    assert unknown_product.status_code == 404
    not_a_cylinder = await post(
        "/api/v1/cylinders", json=led.body("B-1", depot_id, LOX), headers=headers
    )
    assert not_a_cylinder.status_code == 422
    for bad in ({"status": "in_transit"}, {"serial": "-bad"}, {"serial": "x" * 41}):
        response = await post(
            "/api/v1/cylinders", json={**led.body("B-1", depot_id), **bad}, headers=headers
        )
        assert response.status_code == 422, bad
    _hospital, hospital_headers = led.hospital()
    forbidden = await post(
        "/api/v1/cylinders", json=led.body("B-1", depot_id), headers=hospital_headers
    )
    assert forbidden.status_code == 403
    listed = await led.http.get("/api/v1/cylinders", headers=headers)
    assert listed.json()["total"] == 0  # nothing was registered by any of these


async def test_bulk_is_all_or_nothing(led: Ledger) -> None:
    _vendor_id, headers, depot_id = await _vendor_with(led, "C-1")
    taken = await led.http.post(
        "/api/v1/cylinders/bulk",
        json={"cylinders": [led.body("C-2", depot_id), led.body("C-1", depot_id)]},
        headers=headers,
    )
    assert taken.status_code == 409
    assert taken.json()["serials"] == ["C-1"]
    twice = await led.http.post(
        "/api/v1/cylinders/bulk",
        json={"cylinders": [led.body("C-3", depot_id), led.body("C-3", depot_id)]},
        headers=headers,
    )
    assert twice.status_code == 422
    assert (await led.http.get("/api/v1/cylinders/C-2", headers=headers)).status_code == 404
    many = [led.body(f"D-{i:04}", depot_id) for i in range(1000)]
    created = await led.http.post(
        "/api/v1/cylinders/bulk", json={"cylinders": many}, headers=headers
    )
    assert created.status_code == 201
    assert created.json()["created"] == 1000
    too_many = [led.body(f"E-{i:04}", depot_id) for i in range(1001)]
    refused = await led.http.post(
        "/api/v1/cylinders/bulk", json={"cylinders": too_many}, headers=headers
    )
    assert refused.status_code == 422


async def test_vendors_see_only_their_own_and_lists_filter(led: Ledger) -> None:
    _vendor_id, headers, depot_id = await _vendor_with(led, "F-1", "F-2")
    await led.register(headers, depot_id, "F-3", sku=SMALL)
    _other, other_headers, _ = await _vendor_with(led)
    assert (await led.http.get("/api/v1/cylinders/F-1", headers=other_headers)).status_code == 404
    _hospital, hospital_headers = led.hospital()
    assert (await led.http.get("/api/v1/cylinders", headers=hospital_headers)).status_code == 403
    assert (await led.http.get("/api/v1/cylinders/held", headers=headers)).status_code == 403

    async def serials(**params: str) -> list[str]:
        response = await led.http.get("/api/v1/cylinders", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return [c["serial"] for c in response.json()["items"]]

    assert await serials() == ["F-1", "F-2", "F-3"]
    assert await serials(product_id=str(led.products[SMALL])) == ["F-3"]
    assert await serials(status="empty") == []
    assert await serials(hydrotest_due_before=(DUE + timedelta(days=1)).isoformat()) == [
        "F-1",
        "F-2",
        "F-3",
    ]
    assert await serials(hydrotest_due_before=DUE.isoformat()) == []
    bad = await led.http.get("/api/v1/cylinders", params={"status": "lost"}, headers=headers)
    assert bad.status_code == 422


# --- an order: dispatch, delivery, returns ---------------------------------------------------


async def test_dispatch_refuses_each_wrong_serial_and_changes_nothing(led: Ledger) -> None:
    vendor_id, headers, depot_id = await _vendor_with(led, "G-1", "G-2", "G-3")
    other_depot = await led.depot(headers)
    await led.register(headers, other_depot, "G-FAR")
    await led.register(headers, depot_id, "G-SMALL", sku=SMALL)
    await led.http.post(
        "/api/v1/cylinders",
        json=led.body("G-OLD", depot_id, due=START.date() - timedelta(days=1)),
        headers=headers,
    )
    await led.http.post(
        "/api/v1/cylinders", json=led.body("G-EMPTY", depot_id, status="empty"), headers=headers
    )
    hospital_id, _ = led.hospital()
    order = Order(uuid.uuid4(), vendor_id, depot_id, hospital_id)
    response = await led.dispatch(
        **order.ids(),
        lines=[led.line(CYL, 3), led.line(LOX, 2)],
        serials=["G-1", "NOPE", "G-EMPTY", "G-FAR", "G-OLD", "G-SMALL"],
    )
    assert response.status_code == 409, response.text
    problem = response.json()
    assert code(response) == "cylinders-refused"
    assert {(c["serial"], c["reason"]) for c in problem["cylinders"]} == {
        ("NOPE", "unknown"),
        ("G-EMPTY", "not_full"),
        ("G-FAR", "wrong_depot"),
        ("G-OLD", "hydrotest_overdue"),
        ("G-SMALL", "not_on_order"),
    }
    # 4 named of the cylinder line (G-1, G-EMPTY, G-FAR, G-OLD); LOX is not counted.
    assert problem["lines"] == [{"product_id": str(led.products[CYL]), "quantity": 3, "named": 4}]
    assert (await led.get(headers, "G-1"))["status"] == "full"
    short = await led.dispatch(**order.ids(), lines=[led.line(CYL, 3)], serials=["G-1", "G-2"])
    assert short.status_code == 409
    assert short.json()["cylinders"] == []
    assert short.json()["lines"][0]["named"] == 2

    ok = await led.dispatch(
        **order.ids(), lines=[led.line(CYL, 3), led.line(LOX, 2)], serials=["G-1", "G-2", "G-3"]
    )
    assert ok.status_code == 200, ok.text
    assert {c["serial"] for c in ok.json()["cylinders"]} == {"G-1", "G-2", "G-3"}
    detail = await led.get(headers, "G-1")
    assert detail["status"] == "in_transit"
    assert detail["order_id"] == str(order.order_id)
    assert detail["moves"][-1]["to_place"] == f"order:{order.order_id}"


async def test_dispatch_again_keeps_the_named_and_returns_the_others(led: Ledger) -> None:
    vendor_id, headers, depot_id = await _vendor_with(led, "H-1", "H-2", "H-3")
    hospital_id, _ = led.hospital()
    order = Order(uuid.uuid4(), vendor_id, depot_id, hospital_id)
    first = await led.dispatch(**order.ids(), lines=[led.line(CYL, 2)], serials=["H-1", "H-2"])
    assert first.status_code == 200
    again = await led.dispatch(**order.ids(), lines=[led.line(CYL, 2)], serials=["H-2", "H-3"])
    assert again.status_code == 200, again.text
    assert (await led.get(headers, "H-1"))["status"] == "full"
    h2 = await led.get(headers, "H-2")
    assert h2["status"] == "in_transit"
    assert len(h2["moves"]) == 2  # kept: no second move
    assert (await led.get(headers, "H-3"))["status"] == "in_transit"


async def test_two_orders_racing_for_one_serial_one_wins(led: Ledger) -> None:
    vendor_id, _headers, depot_id = await _vendor_with(led, "R-1")
    hospital_id, _ = led.hospital()
    orders = [Order(uuid.uuid4(), vendor_id, depot_id, hospital_id) for _ in range(2)]
    answers = await asyncio.gather(
        *(led.dispatch(**o.ids(), lines=[led.line(CYL, 1)], serials=["R-1"]) for o in orders)
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 409], [a.text for a in answers]
    loser = next(a for a in answers if a.status_code == 409)
    assert loser.json()["cylinders"] == [{"serial": "R-1", "reason": "not_full"}]


async def test_delivery_charges_deposits_takes_empties_back_and_replays(led: Ledger) -> None:
    vendor_id, headers, depot_id = await _vendor_with(led, "J-1", "J-2")
    hospital_id, hospital_headers = led.hospital()
    first = Order(uuid.uuid4(), vendor_id, depot_id, hospital_id)
    await led.dispatch(**first.ids(), lines=[led.line(CYL, 1)], serials=["J-1"])
    delivered = await led.deliver(**first.ids())
    assert delivered.status_code == 200, delivered.text
    assert delivered.json()["delivered"] == [
        {"serial": "J-1", "product_id": str(led.products[CYL])}
    ]
    j1 = await led.get(headers, "J-1")
    assert (j1["status"], j1["holder_org_id"], j1["deposit"]) == (
        "at_hospital",
        str(hospital_id),
        "12.50",
    )

    led.clock.advance(days=3)
    second = Order(uuid.uuid4(), vendor_id, depot_id, hospital_id)
    await led.dispatch(**second.ids(), lines=[led.line(CYL, 1)], serials=["J-2"])
    refused = await led.deliver(**second.ids(), returned=["J-1", "J-2", "NOPE"])
    assert refused.status_code == 409
    assert {(c["serial"], c["reason"]) for c in refused.json()["cylinders"]} == {
        ("J-2", "not_held"),
        ("NOPE", "unknown"),
    }
    assert (await led.get(headers, "J-2"))["status"] == "in_transit"  # nothing moved

    answer = await led.deliver(**second.ids(), returned=["J-1"])
    assert answer.status_code == 200, answer.text
    assert answer.json()["returned"] == [{"serial": "J-1", "product_id": str(led.products[CYL])}]
    j1 = await led.get(headers, "J-1")
    assert (j1["status"], j1["holder_org_id"], j1["depot_id"]) == ("empty", None, str(depot_id))
    events = await led.returned_events("J-1")
    assert len(events) == 1
    event = events[0]
    assert event["deposit"] == "12.50"
    assert event["currency"] == "INR"
    assert event["deposit_order_id"] == str(first.order_id)
    assert event["returned_order_id"] == str(second.order_id)
    assert event["hospital_org_id"] == str(hospital_id)

    replay = await led.deliver(**second.ids(), returned=["J-1"])
    assert replay.status_code == 200, replay.text
    assert replay.json() == answer.json()
    assert len(await led.returned_events("J-1")) == 1
    assert len((await led.get(headers, "J-1"))["moves"]) == len(j1["moves"])

    held = await led.http.get("/api/v1/cylinders/held", headers=hospital_headers)
    assert [c["serial"] for c in held.json()["items"]] == ["J-2"]
    assert held.json()["items"][0]["order_id"] == str(second.order_id)

    # The moves form a chain, each from where the last one left it.
    moves = j1["moves"]
    for before, after in itertools.pairwise(moves):
        assert (after["from_status"], after["from_place"]) == (
            before["to_status"],
            before["to_place"],
        )


async def test_held_and_overdue_follow_the_clock(led: Ledger) -> None:
    vendor_id, headers, depot_id = await _vendor_with(led, "K-1", "K-2")
    hospital_id, hospital_headers = led.hospital()
    order = Order(uuid.uuid4(), vendor_id, depot_id, hospital_id)
    await led.dispatch(**order.ids(), lines=[led.line(CYL, 1)], serials=["K-1"])
    await led.deliver(**order.ids(), deposit=None)
    led.clock.advance(days=10)
    later = Order(uuid.uuid4(), vendor_id, depot_id, hospital_id)
    await led.dispatch(**later.ids(), lines=[led.line(CYL, 1)], serials=["K-2"])
    await led.deliver(**later.ids())

    led.clock.advance(days=25)  # K-1 held 35 days, K-2 25
    held = (await led.http.get("/api/v1/cylinders/held", headers=hospital_headers)).json()
    assert [(c["serial"], c["overdue"], c["deposit"]) for c in held["items"]] == [
        ("K-1", True, "0.00"),
        ("K-2", False, "12.50"),
    ]
    assert held["items"][0]["return_due"].startswith("2030-01-31")
    overdue = (await led.http.get("/api/v1/cylinders/overdue", headers=headers)).json()
    assert [(c["serial"], c["days_held"], c["holder_org_id"]) for c in overdue["items"]] == [
        ("K-1", 35, str(hospital_id))
    ]
    _other_hospital, other_headers = led.hospital()
    others = await led.http.get("/api/v1/cylinders/held", headers=other_headers)
    assert others.json()["total"] == 0


async def test_a_collection_takes_held_cylinders_back(led: Ledger) -> None:
    vendor_id, headers, depot_id = await _vendor_with(led, "L-1", "L-2")
    hospital_id, _ = led.hospital()
    order = Order(uuid.uuid4(), vendor_id, depot_id, hospital_id)
    await led.dispatch(**order.ids(), lines=[led.line(CYL, 1)], serials=["L-1"])
    await led.deliver(**order.ids())
    home = await led.depot(headers)
    refused = await led.http.post(
        "/api/v1/cylinders/returns",
        json={"depot_id": str(home), "serials": ["L-1", "L-2"]},
        headers=headers,
    )
    assert refused.status_code == 409
    assert refused.json()["cylinders"] == [{"serial": "L-2", "reason": "not_held"}]
    assert (await led.get(headers, "L-1"))["status"] == "at_hospital"
    _other, _other_headers, other_depot = await _vendor_with(led)
    foreign = await led.http.post(
        "/api/v1/cylinders/returns",
        json={"depot_id": str(other_depot), "serials": ["L-1"]},
        headers=headers,
    )
    assert foreign.status_code == 404
    collected = await led.http.post(
        "/api/v1/cylinders/returns",
        json={"depot_id": str(home), "serials": ["L-1"]},
        headers=headers,
    )
    assert collected.status_code == 200, collected.text
    l1 = await led.get(headers, "L-1")
    assert (l1["status"], l1["depot_id"]) == ("empty", str(home))
    [event] = await led.returned_events("L-1")
    assert event["returned_order_id"] is None
    assert event["deposit_order_id"] == str(order.order_id)


@pytest.mark.parametrize("end", ["cancelled", "rejected", "expired", "failed"])
async def test_an_order_that_ends_gives_its_cylinders_back(led: Ledger, end: str) -> None:
    vendor_id, headers, depot_id = await _vendor_with(led, "M-1", "M-2")
    hospital_id, _ = led.hospital()
    order = Order(uuid.uuid4(), vendor_id, depot_id, hospital_id)
    await led.dispatch(**order.ids(), lines=[led.line(CYL, 1)], serials=["M-1"])
    delivered = Order(uuid.uuid4(), vendor_id, depot_id, hospital_id)
    await led.dispatch(**delivered.ids(), lines=[led.line(CYL, 1)], serials=["M-2"])
    await led.deliver(**delivered.ids())
    await led.order_event(end, order.order_id, hospital_id)
    await led.order_event(end, order.order_id, hospital_id)  # redelivered
    await led.order_event(end, delivered.order_id, hospital_id)  # its cylinder is held
    m1 = await led.get(headers, "M-1")
    assert (m1["status"], m1["order_id"]) == ("full", None)
    assert [m["reason"] for m in m1["moves"]] == ["registered", "dispatched", "order cancelled"]
    assert m1["moves"][-1]["actor_id"] is None
    assert (await led.get(headers, "M-2"))["status"] == "at_hospital"


# --- at the depot ------------------------------------------------------------------------


async def test_hydrotest_fill_and_retire(led: Ledger) -> None:
    vendor_id, headers, depot_id = await _vendor_with(led, "N-1", "N-2")
    url = "/api/v1/cylinders/N-1"
    failed = await led.http.post(f"{url}/hydrotest", json={"passed": False}, headers=headers)
    assert failed.json()["status"] == "quarantined"
    quarantined_fill = await led.http.post(f"{url}/fill", headers=headers)
    assert quarantined_fill.status_code == 409
    past = await led.http.post(
        f"{url}/hydrotest",
        json={"passed": True, "next_due": START.date().isoformat()},
        headers=headers,
    )
    assert past.status_code == 422
    next_due = (START + timedelta(days=5)).date()
    passed = await led.http.post(
        f"{url}/hydrotest", json={"passed": True, "next_due": next_due.isoformat()}, headers=headers
    )
    assert passed.status_code == 200
    assert (passed.json()["status"], passed.json()["hydrotest_due"]) == ("empty", "2030-01-06")
    led.clock.advance(days=6)  # the test is due again
    overdue = await led.http.post(f"{url}/fill", headers=headers)
    assert overdue.status_code == 409
    led.clock.set(START)
    filled = await led.http.post(f"{url}/fill", headers=headers)
    assert filled.json()["status"] == "full"
    reasons = [m["reason"] for m in (await led.get(headers, "N-1"))["moves"]]
    assert reasons == [
        "registered",
        "hydrotest failed",
        "hydrotest passed, next due 2030-01-06",
        "filled",
    ]

    hospital_id, _ = led.hospital()
    order = Order(uuid.uuid4(), vendor_id, depot_id, hospital_id)
    await led.dispatch(**order.ids(), lines=[led.line(CYL, 1)], serials=["N-2"])
    away = await led.http.post(
        "/api/v1/cylinders/N-2/hydrotest", json={"passed": False}, headers=headers
    )
    assert away.status_code == 409
    assert code(away) == "cylinder-not-at-depot"
    retire_away = await led.http.post(
        "/api/v1/cylinders/N-2/retire", json={"reason": "dented"}, headers=headers
    )
    assert retire_away.status_code == 409
    retired = await led.http.post(f"{url}/retire", json={"reason": "dented"}, headers=headers)
    assert retired.json()["status"] == "retired"
    # A retired serial cannot be dispatched: it is unknown to the ledger's orders.
    again = await led.dispatch(**order.ids(), lines=[led.line(CYL, 1)], serials=["N-1"])
    assert again.json()["cylinders"] == [{"serial": "N-1", "reason": "unknown"}]
    _other, other_headers, _ = await _vendor_with(led)
    theirs = await led.http.post(f"{url}/fill", headers=other_headers)
    assert theirs.status_code == 404


async def test_two_identical_deliveries_at_once_move_and_publish_once(led: Ledger) -> None:
    vendor_id, headers, depot_id = await _vendor_with(led, "S-1", "S-2")
    hospital_id, _ = led.hospital()
    first = Order(uuid.uuid4(), vendor_id, depot_id, hospital_id)
    await led.dispatch(**first.ids(), lines=[led.line(CYL, 1)], serials=["S-1"])
    await led.deliver(**first.ids())
    second = Order(uuid.uuid4(), vendor_id, depot_id, hospital_id)
    await led.dispatch(**second.ids(), lines=[led.line(CYL, 1)], serials=["S-2"])
    answers = await asyncio.gather(
        *(led.deliver(**second.ids(), returned=["S-1"]) for _ in range(2))
    )
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    assert answers[0].json() == answers[1].json()
    assert len(await led.returned_events("S-1")) == 1
    reasons = [m["reason"] for m in (await led.get(headers, "S-2"))["moves"]]
    assert reasons == ["registered", "dispatched", "delivered"]


async def test_the_ledger_routes_are_internal_to_order_service(led: Ledger) -> None:
    vendor_id, headers, depot_id = await _vendor_with(led, "T-1")
    hospital_id, _ = led.hospital()
    body = {
        "order_id": str(uuid.uuid4()),
        "vendor_id": str(vendor_id),
        "depot_id": str(depot_id),
        "hospital_org_id": str(hospital_id),
        "lines": [led.line(CYL, 1)],
        "serials": ["T-1"],
    }
    pricing = {"X-Service-Key": caller_key("pricing-service")}
    refused = await led.http.post("/internal/cylinders/dispatch", json=body, headers=pricing)
    assert refused.status_code == 403
    twice = await led.http.post(
        "/internal/cylinders/dispatch", json={**body, "serials": ["T-1", "T-1"]}, headers=ORDERS
    )
    assert twice.status_code == 422
    assert (await led.get(headers, "T-1"))["status"] == "full"


async def test_two_registrations_of_one_serial_at_once_one_wins(led: Ledger) -> None:
    _vendor_id, headers, depot_id = await _vendor_with(led)
    answers = await asyncio.gather(
        *(
            led.http.post(
                "/api/v1/cylinders/bulk",
                json={"cylinders": [led.body(s, depot_id) for s in serials]},
                headers=headers,
            )
            for serials in (["U-1", "U-2"], ["U-2", "U-1"])
        )
    )
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    loser = next(a for a in answers if a.status_code == 409)
    assert code(loser) == "serial-taken"
    listed = await led.http.get("/api/v1/cylinders", headers=headers)
    assert listed.json()["total"] == 2


async def test_the_database_holds_the_ledger_whatever_the_code_does(led: Ledger) -> None:
    vendor_id, headers, depot_id = await _vendor_with(led, "V-1")
    _other, _other_headers, other_depot = await _vendor_with(led)
    cylinder_id = uuid.UUID((await led.get(headers, "V-1"))["id"])
    refused = [
        # Not an oxygen cylinder, another vendor's depot, held without a holder.
        ("UPDATE cylinders SET product_id = :lox WHERE id = :id", {"lox": led.products[LOX]}),
        ("UPDATE cylinders SET depot_id = :d WHERE id = :id", {"d": other_depot}),
        ("UPDATE cylinders SET status = 'at_hospital' WHERE id = :id", {}),
        ("UPDATE cylinders SET status = 'in_transit' WHERE id = :id", {}),
        ("UPDATE cylinder_moves SET reason = 'edited' WHERE cylinder_id = :id", {}),
        ("DELETE FROM cylinder_moves WHERE cylinder_id = :id", {}),
    ]
    for statement, params in refused:
        with pytest.raises(DBAPIError):
            async with led.engine.begin() as conn:
                await conn.execute(text(statement), {"id": cylinder_id, **params})
    v1 = await led.get(headers, "V-1")
    assert (v1["status"], v1["depot_id"], len(v1["moves"])) == ("full", str(depot_id), 1)
    assert v1["vendor_id"] == str(vendor_id)
