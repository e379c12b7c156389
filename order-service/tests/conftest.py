"""Fixtures for order-service: the app on the real database, Redis and RabbitMQ, with
location-, inventory-, pricing- and payment-service stubbed at their HTTP boundary.

The stubs implement the internal contracts faithfully (and small): the fake
inventory enforces stock and reservation states, the fake pricing computes
quotes with Decimal, the fake location resolves sites per organisation and
estimates routes. Each records the requests it received and can be "down".
"""

from __future__ import annotations

import json
import math
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, NamedTuple

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from flow_shared.clock import Clock, utcnow
from flow_shared.testing.infra import TestInfra, asgi_client
from flow_shared.testing.service_app import schema_engine_fixture, settings_factory
from flow_shared.testing.tokens import TokenIssuer
from flow_shared.validation import MAX_AMOUNT
from order_service.config import Settings
from order_service.main import create_app

LOCATION_URL = "http://location-service.test"
INVENTORY_URL = "http://inventory-service.test"
PRICING_URL = "http://pricing-service.test"
PAYMENT_URL = "http://payment-service.test"
ORDER_SERVICE_KEY = "test-key-order-service"
CENT = Decimal("0.01")
# A delivery point in Lagos; depots are placed around it.
HOME = (6.5244, 3.3792)


def problem(status: int, code: str, detail: str, **extra: Any) -> httpx.Response:
    body = {
        "type": f"https://flow.example/problems/{code}",
        "title": code,
        "status": status,
        "detail": detail,
        **extra,
    }
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json"})


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0088 * math.asin(math.sqrt(a))


def offset(km_north: float = 0.0, km_east: float = 0.0) -> tuple[float, float]:
    """A point about that far from HOME."""
    lat = HOME[0] + km_north / 111.2
    lon = HOME[1] + km_east / (111.2 * math.cos(math.radians(HOME[0])))
    return lat, lon


class StubService(ABC):
    """Shared plumbing: service-key check, request log, "down" switch."""

    name = "stub"

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.down = False
        # Paths whose next answer is lost after the work is done (a read timeout).
        self.lose_answer_to: set[str] = set()
        # Called first with every request; may raise a transport error to fail just that one.
        self.on_request: Callable[[httpx.Request], None] | None = None

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        # Every attempt is logged, also those that find the service down.
        self.requests.append(request)
        if self.on_request is not None:
            self.on_request(request)
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if request.headers.get("X-Service-Key") != ORDER_SERVICE_KEY:
            return problem(401, "unauthorized", "A valid service key is required.")
        response = self.handle(request)
        if request.url.path in self.lose_answer_to:
            self.lose_answer_to.discard(request.url.path)
            raise httpx.ReadTimeout("no answer in time", request=request)
        return response

    @abstractmethod
    def handle(self, request: httpx.Request) -> httpx.Response:
        """The service's own answer to a request that passed the plumbing."""

    def calls(self, method: str, pattern: str) -> list[httpx.Request]:
        return [
            r for r in self.requests if r.method == method and re.fullmatch(pattern, r.url.path)
        ]


@dataclass
class FakeDepot:
    depot_id: uuid.UUID
    vendor_id: uuid.UUID
    lat: float
    lon: float
    on_hand: dict[uuid.UUID, int]
    reserved: dict[uuid.UUID, int] = field(default_factory=dict)
    vendor_active: bool = True

    def available(self, product_id: uuid.UUID) -> int:
        return self.on_hand.get(product_id, 0) - self.reserved.get(product_id, 0)


@dataclass
class FakeReservation:
    reservation_id: uuid.UUID
    order_id: uuid.UUID
    depot_id: uuid.UUID
    vendor_id: uuid.UUID
    items: dict[uuid.UUID, int]
    body: dict[str, Any]
    status: str
    expires_at: datetime

    def out(self) -> dict[str, Any]:
        return {
            "reservation_id": str(self.reservation_id),
            "order_id": str(self.order_id),
            "depot_id": str(self.depot_id),
            "vendor_id": str(self.vendor_id),
            "status": self.status,
            "expires_at": self.expires_at.isoformat(),
            "items": [{"product_id": str(p), "quantity": q} for p, q in self.items.items()],
        }


@dataclass
class FakeCylinder:
    """One serial in inventory's cylinder ledger, as far as order-service's moves touch it."""

    serial: str
    vendor_id: uuid.UUID
    product_id: uuid.UUID
    depot_id: uuid.UUID
    status: str = "full"
    hydrotest_due: date = field(default_factory=lambda: date.today() + timedelta(days=365))
    order_id: uuid.UUID | None = None
    holder: uuid.UUID | None = None
    deposit: Decimal = Decimal("0.00")
    deposit_order_id: uuid.UUID | None = None
    returned_order_id: uuid.UUID | None = None


class FakeInventory(StubService):
    """inventory-service's /internal API over in-memory depots that enforce stock.

    Holds expire by the fake's own clock (`advance` moves it on): an expired hold
    cannot be committed or extended, and `expire_due` releases them as inventory's
    sweeper does.
    """

    name = "inventory-service"
    max_ttl_seconds = 7 * 24 * 3600  # inventory's default RESERVATION_MAX_TTL_SECONDS

    def __init__(self) -> None:
        super().__init__()
        self.clock_offset = timedelta(0)
        self.depots: dict[uuid.UUID, FakeDepot] = {}
        self.reservations: dict[uuid.UUID, FakeReservation] = {}
        self.by_order: dict[uuid.UUID, uuid.UUID] = {}
        # Test hooks: hand out this reservation id next (a misbehaving inventory), and
        # run this before a reservation is decided (another buyer racing us).
        self.next_reservation_id: uuid.UUID | None = None
        self.before_reserve: Callable[[FakeDepot], None] | None = None
        # GET /internal/products: each product's category (unknown ones are left out).
        self.categories: dict[uuid.UUID, str] = {}
        # The cylinder ledger: (vendor, serial) -> cylinder; cylinder.returned events sent.
        self.cylinders: dict[tuple[uuid.UUID, str], FakeCylinder] = {}
        self.returned_events: list[dict[str, Any]] = []

    def add_cylinder(
        self,
        vendor_id: uuid.UUID,
        product_id: uuid.UUID,
        depot_id: uuid.UUID,
        serial: str,
        **kw: Any,
    ) -> FakeCylinder:
        self.categories[product_id] = "oxygen_cylinder"
        cylinder = FakeCylinder(serial, vendor_id, product_id, depot_id, **kw)
        self.cylinders[(vendor_id, serial)] = cylinder
        return cylinder

    def add_depot(
        self, vendor_id: uuid.UUID, lat: float, lon: float, stock: dict[uuid.UUID, int]
    ) -> FakeDepot:
        depot = FakeDepot(uuid.uuid4(), vendor_id, lat, lon, dict(stock))
        self.depots[depot.depot_id] = depot
        return depot

    def reservation(self, reservation_id: str | uuid.UUID) -> FakeReservation:
        return self.reservations[uuid.UUID(str(reservation_id))]

    def now(self) -> datetime:
        return datetime.now(UTC) + self.clock_offset

    def advance(self, seconds: float) -> None:
        """Move inventory's clock on (order-service's clock is not affected)."""
        self.clock_offset += timedelta(seconds=seconds)

    def expire_due(self) -> list[uuid.UUID]:
        """inventory's sweeper: held reservations past their expiry give their stock back."""
        expired = []
        for reservation in self.reservations.values():
            if reservation.status == "held" and reservation.expires_at <= self.now():
                depot = self.depots[reservation.depot_id]
                for product_id, quantity in reservation.items.items():
                    depot.reserved[product_id] -= quantity
                reservation.status = "expired"
                expired.append(reservation.reservation_id)
        return expired

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST" and path == "/internal/reservations":
            return self._reserve(json.loads(request.content))
        match = re.fullmatch(r"/internal/reservations/([^/]+)/(commit|release|extend)", path)
        if request.method == "POST" and match:
            reservation = self.reservations.get(uuid.UUID(match.group(1)))
            if reservation is None:
                return problem(404, "reservation-not-found", "No such reservation.")
            if match.group(2) == "extend":
                return self._extend(reservation, json.loads(request.content))
            return (
                self._commit(reservation)
                if match.group(2) == "commit"
                else self._release(reservation)
            )
        if request.method == "GET" and path == "/internal/catalog/nearby":
            return self._nearby(request.url.params)
        if request.method == "POST" and path == "/internal/cylinders/dispatch":
            return self._dispatch_cylinders(json.loads(request.content))
        if request.method == "POST" and path == "/internal/cylinders/deliver":
            return self._deliver_cylinders(json.loads(request.content))
        if request.method == "GET" and path == "/internal/products":
            ids = [uuid.UUID(i) for i in request.url.params["ids"].split(",")]
            items = [
                {"id": str(i), "category": self.categories[i]} for i in ids if i in self.categories
            ]
            return httpx.Response(200, json={"items": items})
        return problem(404, "not-found", "No such route.")

    def _dispatch_cylinders(self, body: dict[str, Any]) -> httpx.Response:
        """POST /internal/cylinders/dispatch as the contract says: all named or nothing."""
        order_id, vendor_id = uuid.UUID(body["order_id"]), uuid.UUID(body["vendor_id"])
        depot_id = uuid.UUID(body["depot_id"])
        wanted: dict[uuid.UUID, int] = {}
        for line in body["lines"]:
            product_id = uuid.UUID(line["product_id"])
            if self.categories.get(product_id) == "oxygen_cylinder":
                wanted[product_id] = wanted.get(product_id, 0) + int(line["quantity"])
        refused, named, chosen = [], dict.fromkeys(wanted, 0), []
        for serial in body["serials"]:
            cylinder = self.cylinders.get((vendor_id, serial))
            if cylinder is None or cylinder.status == "retired":
                refused.append({"serial": serial, "reason": "unknown"})
                continue
            if cylinder.product_id not in wanted:
                refused.append({"serial": serial, "reason": "not_on_order"})
                continue
            named[cylinder.product_id] += 1
            ours = cylinder.status == "in_transit" and cylinder.order_id == order_id
            if not ours and cylinder.status != "full":
                refused.append({"serial": serial, "reason": "not_full"})
            elif not ours and cylinder.depot_id != depot_id:
                refused.append({"serial": serial, "reason": "wrong_depot"})
            elif not ours and cylinder.hydrotest_due < date.today():
                refused.append({"serial": serial, "reason": "hydrotest_overdue"})
            else:
                chosen.append(cylinder)
        lines = [
            {"product_id": str(p), "quantity": q, "named": named[p]}
            for p, q in wanted.items()
            if named[p] != q
        ]
        if refused or lines:
            return problem(
                409,
                "cylinders-refused",
                "Some cylinders cannot go.",
                cylinders=refused,
                lines=lines,
            )
        for cylinder in self.cylinders.values():
            if cylinder.order_id == order_id and cylinder.status == "in_transit":
                # Named earlier, not now: back on the depot's shelf.
                cylinder.status, cylinder.order_id = "full", None
        for cylinder in chosen:
            cylinder.status, cylinder.order_id = "in_transit", order_id
        out = [{"serial": c.serial, "product_id": str(c.product_id)} for c in chosen]
        return httpx.Response(200, json={"order_id": str(order_id), "cylinders": out})

    def _deliver_cylinders(self, body: dict[str, Any]) -> httpx.Response:
        """POST /internal/cylinders/deliver as the contract says; a replay moves nothing."""
        order_id, vendor_id = uuid.UUID(body["order_id"]), uuid.UUID(body["vendor_id"])
        hospital = uuid.UUID(body["hospital_org_id"])
        refused, returning = [], []
        for serial in body["returned"]:
            cylinder = self.cylinders.get((vendor_id, serial))
            if cylinder is None or cylinder.status == "retired":
                refused.append({"serial": serial, "reason": "unknown"})
            elif cylinder.status == "empty" and cylinder.returned_order_id == order_id:
                returning.append(cylinder)  # returned by this very delivery already
            elif cylinder.status != "at_hospital" or cylinder.holder != hospital:
                refused.append({"serial": serial, "reason": "not_held"})
            else:
                returning.append(cylinder)
        if refused:
            return problem(
                409, "cylinders-refused", "Some returns are not held.", cylinders=refused
            )
        deposits = {
            uuid.UUID(d["product_id"]): Decimal(d["deposit_per_unit"]) for d in body["deposits"]
        }
        for cylinder in self.cylinders.values():
            if cylinder.order_id == order_id and cylinder.status == "in_transit":
                cylinder.status, cylinder.holder = "at_hospital", hospital
                cylinder.deposit = deposits.get(cylinder.product_id, Decimal("0.00"))
                cylinder.deposit_order_id = order_id
        for cylinder in returning:
            if cylinder.status == "empty":
                continue
            self.returned_events.append(
                {
                    "serial": cylinder.serial,
                    "deposit": str(cylinder.deposit),
                    "deposit_order_id": cylinder.deposit_order_id,
                    "returned_order_id": order_id,
                }
            )
            cylinder.status, cylinder.holder = "empty", None
            cylinder.depot_id = uuid.UUID(body["depot_id"])
            cylinder.returned_order_id = order_id
        delivered = [
            {"serial": c.serial, "product_id": str(c.product_id)}
            for c in self.cylinders.values()
            if c.order_id == order_id and c.status == "at_hospital"
        ]
        returned = [{"serial": c.serial, "product_id": str(c.product_id)} for c in returning]
        return httpx.Response(
            200, json={"order_id": str(order_id), "delivered": delivered, "returned": returned}
        )

    def _reserve(self, body: dict[str, Any]) -> httpx.Response:
        order_id = uuid.UUID(body["order_id"])
        existing = self.by_order.get(order_id)
        if existing is not None:
            reservation = self.reservations[existing]
            if reservation.body != body:
                return problem(409, "reservation-mismatch", "Another body for this order.")
            return httpx.Response(200, json=reservation.out())
        if not 1 <= int(body["ttl_seconds"]) <= self.max_ttl_seconds:
            return problem(422, "validation-error", "ttl_seconds is out of range.")
        depot = self.depots.get(uuid.UUID(body["depot_id"]))
        if depot is None:
            return problem(404, "depot-not-found", "No such depot.")
        if not depot.vendor_active:
            return problem(409, "vendor-unavailable", "The vendor is suspended.")
        wanted: dict[uuid.UUID, int] = {}
        for line in body["items"]:
            product_id = uuid.UUID(line["product_id"])
            wanted[product_id] = wanted.get(product_id, 0) + int(line["quantity"])
        if self.before_reserve is not None:
            self.before_reserve(depot)
        short = [
            {"product_id": str(p), "requested": q, "available": max(depot.available(p), 0)}
            for p, q in wanted.items()
            if depot.available(p) < q
        ]
        if short:
            return problem(409, "insufficient-stock", "Not enough stock.", short_items=short)
        for product_id, quantity in wanted.items():
            depot.reserved[product_id] = depot.reserved.get(product_id, 0) + quantity
        reservation = FakeReservation(
            reservation_id=self.next_reservation_id or uuid.uuid4(),
            order_id=order_id,
            depot_id=depot.depot_id,
            vendor_id=depot.vendor_id,
            items=wanted,
            body=body,
            status="held",
            expires_at=self.now() + timedelta(seconds=int(body["ttl_seconds"])),
        )
        self.next_reservation_id = None
        self.reservations[reservation.reservation_id] = reservation
        self.by_order[order_id] = reservation.reservation_id
        return httpx.Response(201, json=reservation.out())

    def _live(self, reservation: FakeReservation) -> bool:
        return reservation.status == "held" and reservation.expires_at > self.now()

    def _extend(self, reservation: FakeReservation, body: Any) -> httpx.Response:
        ttl = body.get("ttl_seconds") if isinstance(body, dict) else None
        if (
            not isinstance(body, dict)
            or set(body) != {"ttl_seconds"}
            or not isinstance(ttl, int)
            or not 1 <= ttl <= self.max_ttl_seconds
        ):
            return problem(422, "validation-error", "ttl_seconds is out of range.")
        if not self._live(reservation):
            return problem(409, "reservation-not-held", "The reservation is no longer held.")
        # Never shortens a later expiry.
        reservation.expires_at = max(reservation.expires_at, self.now() + timedelta(seconds=ttl))
        return httpx.Response(200, json=reservation.out())

    def _commit(self, reservation: FakeReservation) -> httpx.Response:
        depot = self.depots[reservation.depot_id]
        if self._live(reservation):
            for product_id, quantity in reservation.items.items():
                depot.reserved[product_id] -= quantity
                depot.on_hand[product_id] -= quantity
            reservation.status = "committed"
        elif reservation.status != "committed":
            return problem(409, "reservation-not-held", "The reservation is no longer held.")
        return httpx.Response(
            200, json={"reservation_id": str(reservation.reservation_id), "status": "committed"}
        )

    def _release(self, reservation: FakeReservation) -> httpx.Response:
        depot = self.depots[reservation.depot_id]
        if reservation.status == "committed":
            return problem(409, "reservation-committed", "Committed reservations stay.")
        if reservation.status == "held":
            for product_id, quantity in reservation.items.items():
                depot.reserved[product_id] -= quantity
            reservation.status = "released"
        return httpx.Response(
            200, json={"reservation_id": str(reservation.reservation_id), "status": "released"}
        )

    def _nearby(self, params: httpx.QueryParams) -> httpx.Response:
        lat, lon = float(params["lat"]), float(params["lon"])
        radius = float(params["radius_km"])
        product_id = uuid.UUID(params["product_id"])
        min_quantity = int(params.get("min_quantity", "1"))
        page, page_size = int(params.get("page", "1")), int(params.get("page_size", "20"))
        rows = []
        for depot in self.depots.values():
            distance = haversine_km(lat, lon, depot.lat, depot.lon)
            available = depot.available(product_id)
            if distance <= radius and available >= min_quantity and depot.vendor_active:
                rows.append(
                    {
                        "depot_id": str(depot.depot_id),
                        "depot_name": f"Depot {depot.depot_id.hex[:6]}",
                        "vendor_id": str(depot.vendor_id),
                        "vendor_name": f"Vendor {depot.vendor_id.hex[:6]}",
                        "product_id": str(product_id),
                        "sku": "O2-CYL-46L",
                        "product_name": "Oxygen cylinder 46 L",
                        "available": available,
                        "updated_at": datetime.now(UTC).isoformat(),
                        "distance_km": round(distance, 3),
                        "lat": depot.lat,
                        "lon": depot.lon,
                    }
                )
        rows.sort(key=lambda r: r["distance_km"])
        start = (page - 1) * page_size
        body = {
            "items": rows[start : start + page_size],
            "page": page,
            "page_size": page_size,
            "total": len(rows),
        }
        return httpx.Response(200, json=body)


class FakePricing(StubService):
    """pricing-service's POST /internal/quotes with Decimal arithmetic, as the contract says."""

    name = "pricing-service"
    delivery_fee = Decimal("25.00")
    emergency_surcharge_pct = Decimal(10)
    tax_rate = Decimal("0.05")

    def __init__(self, inventory: FakeInventory) -> None:
        super().__init__()
        self.inventory = inventory
        self.prices: dict[tuple[uuid.UUID, uuid.UUID], Decimal] = {}
        self.quotes: dict[str, dict[str, Any]] = {}
        # Test hooks: answer this many quotes already expired (clock skew, a stale cache);
        # refuse to quote for these depots (the delivery point is beyond their range).
        self.expired_quotes_to_send = 0
        self.out_of_range_depots: set[uuid.UUID] = set()
        # (vendor, product) -> deposit per cylinder; `sends_deposits` False answers as a
        # pricing-service from before deposits did (no deposit fields at all).
        self.deposits: dict[tuple[uuid.UUID, uuid.UUID], Decimal] = {}
        self.sends_deposits = True

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/internal/quotes":
            return self._quote(json.loads(request.content))
        return problem(404, "not-found", "No such route.")

    def _quote(self, body: dict[str, Any]) -> httpx.Response:
        vendor_id, depot_id = uuid.UUID(body["vendor_id"]), uuid.UUID(body["depot_id"])
        depot = self.inventory.depots.get(depot_id)
        if depot is None or depot.vendor_id != vendor_id:
            return problem(404, "depot-not-found", "This vendor has no such depot.")
        if depot_id in self.out_of_range_depots:
            return problem(409, "out-of-delivery-range", "Beyond the depot's delivery range.")
        missing = [
            line["product_id"]
            for line in body["items"]
            if (vendor_id, uuid.UUID(line["product_id"])) not in self.prices
        ]
        if missing:
            return problem(409, "no-price", "No price for some products.", product_ids=missing)
        lines = []
        for line in body["items"]:
            unit_price = self.prices[(vendor_id, uuid.UUID(line["product_id"]))]
            line_total = (unit_price * line["quantity"]).quantize(CENT, ROUND_HALF_UP)
            lines.append((line, unit_price, line_total))
        subtotal = sum((lt for _, _, lt in lines), Decimal(0))
        surcharge = Decimal("0.00")
        if body["priority"] == "emergency":
            surcharge = (subtotal * self.emergency_surcharge_pct / 100).quantize(
                CENT, ROUND_HALF_UP
            )
        tax = ((subtotal + self.delivery_fee + surcharge) * self.tax_rate).quantize(
            CENT, ROUND_HALF_UP
        )
        if subtotal + self.delivery_fee + surcharge + tax > MAX_AMOUNT:
            return problem(422, "amount-too-large", "The quote total would exceed the maximum.")
        expires_at = datetime.now(UTC) + timedelta(minutes=15)
        if self.expired_quotes_to_send > 0:
            self.expired_quotes_to_send -= 1
            expires_at = datetime.now(UTC) - timedelta(seconds=1)
        distance = haversine_km(
            depot.lat, depot.lon, body["delivery"]["lat"], body["delivery"]["lon"]
        )
        quote = {
            "quote_id": str(uuid.uuid4()),
            "vendor_id": str(vendor_id),
            "depot_id": str(depot_id),
            "priority": body["priority"],
            "distance_km": round(distance * 1.3, 1),
            "items": [
                {
                    "product_id": line["product_id"],
                    "quantity": line["quantity"],
                    "unit_price": str(unit_price),
                    "line_total": str(line_total),
                }
                for line, unit_price, line_total in lines
            ],
            "subtotal": str(subtotal),
            "delivery_fee": str(self.delivery_fee),
            "surcharge": str(surcharge),
            "tax_rate": str(self.tax_rate),
            "tax": str(tax),
            "total": str(subtotal + self.delivery_fee + surcharge + tax),
            "currency": "NGN",
            "created_at": datetime.now(UTC).isoformat(),
            "expires_at": expires_at.isoformat(),
        }
        if self.sends_deposits:
            deposit_total = Decimal("0.00")
            for item in quote["items"]:
                deposit = self.deposits.get((vendor_id, uuid.UUID(item["product_id"])), Decimal(0))
                item["deposit_per_unit"] = str(deposit.quantize(CENT))
                deposit_total += deposit.quantize(CENT) * item["quantity"]
            quote["deposit_total"] = str(deposit_total)
        self.quotes[quote["quote_id"]] = quote
        return httpx.Response(201, json=quote)


class FakePayment(StubService):
    """payment-service's PUT /internal/{orders|sos}/{id}/card-token: one token kept per
    order or SOS request."""

    name = "payment-service"

    def __init__(self) -> None:
        super().__init__()
        self.card_tokens: dict[uuid.UUID, str] = {}

    def handle(self, request: httpx.Request) -> httpx.Response:
        match = re.fullmatch(r"/internal/(?:orders|sos)/([^/]+)/card-token", request.url.path)
        if request.method == "PUT" and match:
            order_id, token = uuid.UUID(match.group(1)), json.loads(request.content)["card_token"]
            if self.card_tokens.setdefault(order_id, token) != token:
                return problem(409, "card-token-conflict", "Another token for this order.")
            return httpx.Response(204)
        return problem(404, "not-found", "No such route.")


class FakeLocation(StubService):
    """location-service's sites (per organisation) and batch route estimates."""

    name = "location-service"
    road_factor = 1.3
    speed_kmh = 60.0
    handling_min = 10

    def __init__(self) -> None:
        super().__init__()
        self.sites: dict[uuid.UUID, dict[str, Any]] = {}
        # Per origin id: a duration that traffic imposes, overriding the estimate.
        self.duration_overrides: dict[str, int] = {}

    def add_site(self, org_id: uuid.UUID, lat: float, lon: float) -> uuid.UUID:
        site_id = uuid.uuid4()
        self.sites[site_id] = {
            "id": str(site_id),
            "org_id": str(org_id),
            "name": "Main theatre",
            "address": "1 Hospital Road, Lagos",
            "lat": lat,
            "lon": lon,
        }
        return site_id

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        match = re.fullmatch(r"/internal/sites/([^/]+)", path)
        if request.method == "GET" and match:
            site = self.sites.get(uuid.UUID(match.group(1)))
            if site is None or site["org_id"] != request.url.params.get("org_id"):
                return problem(404, "site-not-found", "No such site.")
            return httpx.Response(200, json=site)
        if request.method == "POST" and path == "/internal/routes/batch":
            body = json.loads(request.content)
            to = body["to"]
            routes = []
            for origin in body["origins"]:
                distance = round(
                    haversine_km(origin["lat"], origin["lon"], to["lat"], to["lon"])
                    * self.road_factor,
                    1,
                )
                duration = self.duration_overrides.get(
                    origin["id"], round(distance / self.speed_kmh * 60) + self.handling_min
                )
                routes.append(
                    {
                        "id": origin["id"],
                        "distance_km": distance,
                        "duration_min": duration,
                        "source": "haversine-x1.3",
                    }
                )
            return httpx.Response(200, json={"routes": routes})
        return problem(404, "not-found", "No such route.")


@dataclass
class Org:
    org_id: uuid.UUID
    user_id: uuid.UUID
    headers: dict[str, str]

    def with_request_id(self, request_id: str) -> dict[str, str]:
        return {**self.headers, "X-Request-ID": request_id}


class StockedDepot(NamedTuple):
    """A hospital, a vendor, a new product, and the vendor's depot holding some of it."""

    hospital: Org
    vendor: Org
    product: uuid.UUID
    depot: FakeDepot


@dataclass
class Fleet:
    """The four stubbed services and helpers to set up a small world in them."""

    token_issuer: TokenIssuer
    location: FakeLocation
    inventory: FakeInventory
    pricing: FakePricing
    payment: FakePayment = field(default_factory=FakePayment)

    def org(self, kind: str, role: str = "staff") -> Org:
        org_id, user_id = uuid.uuid4(), uuid.uuid4()
        headers = self.token_issuer.headers(
            org_kind=kind, role=role, org_id=org_id, user_id=user_id
        )
        return Org(org_id, user_id, headers)

    def hospital(self) -> Org:
        return self.org("hospital")

    def vendor(self) -> Org:
        return self.org("vendor")

    def admin(self) -> Org:
        return self.org("platform", "platform_admin")

    home = HOME

    @staticmethod
    def point(km_north: float = 0.0, km_east: float = 0.0) -> tuple[float, float]:
        return offset(km_north, km_east)

    @staticmethod
    def order_body(
        vendor: Org, depot: FakeDepot, lines: list[tuple[uuid.UUID, int]], **fields: Any
    ) -> dict[str, Any]:
        """A valid POST /api/v1/orders body (delivery to HOME), with `fields` replaced."""
        body: dict[str, Any] = {
            "vendor_id": str(vendor.org_id),
            "depot_id": str(depot.depot_id),
            "delivery": {"lat": HOME[0], "lon": HOME[1], "address": "Ward 3, Lagos General"},
            "items": [{"product_id": str(p), "quantity": q} for p, q in lines],
            "priority": "urgent",
            "payment_method": "invoice",
        }
        body.update(fields)
        return body

    def depot(
        self,
        vendor: Org,
        stock: dict[uuid.UUID, int],
        *,
        price: Decimal | str = "100.00",
        at: tuple[float, float] | None = None,
    ) -> FakeDepot:
        lat, lon = at or offset(km_north=3)
        depot = self.inventory.add_depot(vendor.org_id, lat, lon, stock)
        for product_id in stock:
            self.pricing.prices[(vendor.org_id, product_id)] = Decimal(price)
        return depot

    def stocked_depot(
        self,
        on_hand: int,
        *,
        price: Decimal | str = "100.00",
        at: tuple[float, float] | None = None,
    ) -> StockedDepot:
        """A new hospital and vendor, and `on_hand` of a new product at a new depot of the
        vendor (`depot`'s price and place)."""
        hospital, vendor = self.hospital(), self.vendor()
        product = uuid.uuid4()
        depot = self.depot(vendor, {product: on_hand}, price=price, at=at)
        return StockedDepot(hospital, vendor, product, depot)


@pytest.fixture
def fleet(token_issuer: TokenIssuer) -> Fleet:
    inventory = FakeInventory()
    return Fleet(token_issuer, FakeLocation(), inventory, FakePricing(inventory))


def order_settings(infra: TestInfra, **overrides: Any) -> Settings:
    make = settings_factory(
        infra,
        "order-service",
        Settings,
        location_service_url=LOCATION_URL,
        inventory_service_url=INVENTORY_URL,
        pricing_service_url=PRICING_URL,
        payment_service_url=PAYMENT_URL,
        # Tests run the sweeper themselves (app.state.order_sweeper.run_once()).
        order_sweep_interval_seconds=3600,
        # ... and the SOS sweeper (app.state.sos_sweeper.run_once(now)).
        sos_sweep_interval_seconds=3600,
        # Out of the way of tests about other rules; test_order_allocation.py sets its own.
        allocation_cap_unverified=1_000_000,
        allocation_cap_verified=1_000_000,
    )
    return make(**overrides)


@dataclass
class OrderApp:
    app: FastAPI
    client: httpx.AsyncClient

    async def sweep(self) -> Any:
        return await self.app.state.order_sweeper.run_once()


OrderAppFactory = Callable[..., AbstractAsyncContextManager[OrderApp]]


@pytest.fixture
def order_app_for(infra: TestInfra, token_issuer: TokenIssuer, fleet: Fleet) -> OrderAppFactory:
    """Opens order-service in-process (on `clock`, the wall clock unless given); other
    keyword arguments override its settings."""

    @asynccontextmanager
    async def open_app(clock: Clock = utcnow, **overrides: Any) -> AsyncIterator[OrderApp]:
        app = create_app(
            order_settings(infra, **overrides),
            clock=clock,
            jwks_fetcher=token_issuer.fetch_jwks,
            location_transport=fleet.location.transport(),
            inventory_transport=fleet.inventory.transport(),
            pricing_transport=fleet.pricing.transport(),
            payment_transport=fleet.payment.transport(),
        )
        async with asgi_client(app) as client:
            yield OrderApp(app, client)

    return open_app


@pytest.fixture
async def order_app(order_app_for: OrderAppFactory) -> AsyncIterator[OrderApp]:
    async with order_app_for() as opened:
        yield opened


@pytest.fixture
def client(order_app: OrderApp) -> httpx.AsyncClient:
    return order_app.client


orders_engine = schema_engine_fixture("orders", schema_on_search_path=False)


@dataclass
class OrdersDb:
    engine: AsyncEngine

    async def order_ids_of(self, hospital_org_id: uuid.UUID) -> list[str]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT id FROM orders.orders WHERE hospital_org_id = :org"),
                {"org": hospital_org_id},
            )
            return [str(row.id) for row in rows]

    async def events_of(self, order_id: str) -> list[dict[str, Any]]:
        """The outbox envelopes about one order, oldest first."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT payload FROM orders.outbox "
                    "WHERE payload->'data'->>'order_id' = :order_id ORDER BY seq"
                ),
                {"order_id": order_id},
            )
            return [row.payload for row in rows]

    async def abandoned_holds_at(self, depot_id: uuid.UUID) -> list[dict[str, Any]]:
        """Holds failed placements at this depot left behind, not yet given back."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT order_id, reservation_id FROM orders.abandoned_holds "
                    "WHERE reserve_request->>'depot_id' = :depot_id"
                ),
                {"depot_id": str(depot_id)},
            )
            return [dict(row._mapping) for row in rows]

    async def reservation_status(self, order_id: str) -> str:
        async with self.engine.connect() as conn:
            value = await conn.scalar(
                text("SELECT reservation_status FROM orders.orders WHERE id = :id"),
                {"id": uuid.UUID(order_id)},
            )
            return str(value)


@pytest.fixture
def orders_db(orders_engine: AsyncEngine) -> OrdersDb:
    return OrdersDb(orders_engine)


PlaceOrder = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def place_order(client: httpx.AsyncClient) -> PlaceOrder:
    """POST /api/v1/orders that must succeed; returns the order."""

    async def place(hospital: Org, body: dict[str, Any], **headers: str) -> dict[str, Any]:
        response = await client.post(
            "/api/v1/orders", json=body, headers={**hospital.headers, **headers}
        )
        assert response.status_code == 201, response.text
        order: dict[str, Any] = response.json()
        return order

    return place
