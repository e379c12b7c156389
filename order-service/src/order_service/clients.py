"""Typed clients of the internal APIs order-service calls: location, inventory, pricing,
payment.

Every call goes through flow_shared's ServiceClient (timeouts, a breaker per
upstream, retries for idempotent methods only). Upstream 4xx problems become
this service's own errors (read with flow_shared.upstream); an answer that
breaks the contract is a 502.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict

from flow_shared.http import ServiceClient, UpstreamAnswer
from flow_shared.upstream import (
    BadUpstreamResponse,
    parse_answer,
    problem_code,
    problem_detail,
    problem_extensions,
    problem_of,
    unexpected_answer,
)
from flow_shared.validation import AmountTooLarge
from order_service.config import Settings
from order_service.errors import (
    CylindersRefused,
    DepotOrProductNotFound,
    HoldLost,
    InsufficientStock,
    PriceUnavailable,
    QuoteRefused,
    ReservationNotHeld,
    ReservationRefused,
    SiteNotFound,
    VendorUnavailable,
)

LOCATION_SERVICE = "location-service"
INVENTORY_SERVICE = "inventory-service"
PRICING_SERVICE = "pricing-service"
PAYMENT_SERVICE = "payment-service"
CENT = Decimal("0.01")


# What order-service reads from the answers (unknown fields are ignored, so callees may add).
class Site(BaseModel):
    id: uuid.UUID
    org_id: uuid.UUID
    name: str | None = None
    address: str | None = None
    lat: float
    lon: float


class Route(BaseModel):
    id: str
    distance_km: float
    duration_min: float
    source: str | None = None


class RouteBatch(BaseModel):
    routes: list[Route]


class StockLine(BaseModel):
    product_id: uuid.UUID
    quantity: int


class Reservation(BaseModel):
    reservation_id: uuid.UUID
    order_id: uuid.UUID
    depot_id: uuid.UUID
    vendor_id: uuid.UUID
    status: str
    expires_at: datetime | None = None


class NearbyStock(BaseModel):
    depot_id: uuid.UUID
    vendor_id: uuid.UUID
    product_id: uuid.UUID
    available: int
    distance_km: float
    lat: float
    lon: float
    depot_name: str | None = None
    vendor_name: str | None = None


class NearbyPage(BaseModel):
    items: list[NearbyStock]
    total: int


class QuoteLine(BaseModel):
    product_id: uuid.UUID
    quantity: int
    unit_price: Decimal
    line_total: Decimal
    # Absent from a pricing-service that predates cylinder deposits: none.
    deposit_per_unit: Decimal = Decimal("0.00")


class Quote(BaseModel):
    quote_id: uuid.UUID
    vendor_id: uuid.UUID
    depot_id: uuid.UUID
    priority: str
    distance_km: float | None = None
    items: list[QuoteLine]
    subtotal: Decimal
    delivery_fee: Decimal
    surcharge: Decimal
    tax: Decimal
    total: Decimal
    deposit_total: Decimal = Decimal("0.00")
    currency: str
    expires_at: datetime


class TrackedCylinder(BaseModel):
    serial: str
    product_id: uuid.UUID


class DispatchedCylinders(BaseModel):
    order_id: uuid.UUID
    cylinders: list[TrackedCylinder]


class DeliveredCylinders(BaseModel):
    order_id: uuid.UUID
    delivered: list[TrackedCylinder]
    returned: list[TrackedCylinder]


@dataclass(frozen=True, slots=True)
class CylinderMove:
    """Who and where a cylinder move at inventory-service is about (one order)."""

    order_id: uuid.UUID
    vendor_id: uuid.UUID
    depot_id: uuid.UUID
    hospital_org_id: uuid.UUID
    actor_id: uuid.UUID | None

    def body(self) -> dict[str, Any]:
        return {
            "order_id": str(self.order_id),
            "vendor_id": str(self.vendor_id),
            "depot_id": str(self.depot_id),
            "hospital_org_id": str(self.hospital_org_id),
            "actor_id": str(self.actor_id) if self.actor_id is not None else None,
        }


@dataclass(frozen=True, slots=True)
class LineDeposit:
    product_id: uuid.UUID
    deposit_per_unit: Decimal
    currency: str


class ReleaseOutcome(StrEnum):
    RELEASED = "released"
    # inventory-service does not know the hold: nothing is held, nothing to do.
    UNKNOWN = "unknown"
    # Already committed (goods taken): cannot be given back by a release.
    COMMITTED = "committed"


def _lines(items: Sequence[StockLine]) -> list[dict[str, Any]]:
    return [{"product_id": str(line.product_id), "quantity": line.quantity} for line in items]


def _cylinders_refused(response: UpstreamAnswer) -> CylindersRefused | None:
    """inventory's refusal of named serials, its offending serials and lines kept as sent:
    the vendor must see which ones to fix."""
    problem = problem_of(response)
    if response.status_code != 409 or problem_code(problem) != CylindersRefused.code:
        return None
    extra = {"cylinders": problem.get("cylinders", [])}
    if "lines" in problem:
        extra["lines"] = problem["lines"]
    return CylindersRefused(
        problem_detail(problem, "inventory-service refused these cylinders."), extra=extra
    )


def _refuse_unknown_or_unavailable(
    response: UpstreamAnswer, problem: dict[str, Any], *, not_found: str
) -> None:
    """The refusals reserving and pricing an order share: a depot or product the callee
    does not know (404, its detail else `not_found`), a vendor that cannot take orders."""
    if response.status_code == 404:
        raise DepotOrProductNotFound(problem_detail(problem, not_found))
    if response.status_code == 409 and problem_code(problem) == "vendor-unavailable":
        raise VendorUnavailable("This vendor cannot take orders right now.")


class LocationClient:
    def __init__(self, http: ServiceClient) -> None:
        self.http = http

    async def get_site(self, site_id: uuid.UUID, *, org_id: uuid.UUID) -> Site:
        response = await self.http.get(f"/internal/sites/{site_id}", params={"org_id": str(org_id)})
        if response.status_code == 404:
            raise SiteNotFound("Your organisation has no delivery site with this id.")
        return parse_answer(LOCATION_SERVICE, response, Site, expect=200)

    async def route_batch(
        self,
        *,
        to_lat: float,
        to_lon: float,
        origins: Sequence[tuple[str, float, float]],
        priority: str,
    ) -> list[Route]:
        body = {
            "to": {"lat": to_lat, "lon": to_lon},
            "origins": [{"id": id_, "lat": lat, "lon": lon} for id_, lat, lon in origins],
            "priority": priority,
        }
        response = await self.http.post("/internal/routes/batch", json=body)
        routes = parse_answer(LOCATION_SERVICE, response, RouteBatch, expect=200).routes
        if [route.id for route in routes] != [origin[0] for origin in origins]:
            raise BadUpstreamResponse(f"{LOCATION_SERVICE} answered routes for other origins.")
        return routes


class InventoryClient:
    def __init__(self, http: ServiceClient) -> None:
        self.http = http

    async def reserve(
        self,
        *,
        order_id: uuid.UUID,
        depot_id: uuid.UUID,
        items: Sequence[StockLine],
        ttl_seconds: int,
        priority: str,
    ) -> Reservation:
        """Hold stock for an order. Idempotent on `order_id` at inventory-service.

        Always sent with the order's priority: a routine hold may not dip into a depot's
        emergency reserve, urgent and emergency ones may.
        """
        response = await self.http.post(
            "/internal/reservations",
            json={
                "order_id": str(order_id),
                "depot_id": str(depot_id),
                "items": _lines(items),
                "ttl_seconds": ttl_seconds,
                "priority": priority,
            },
        )
        if response.status_code in (200, 201):
            return parse_answer(INVENTORY_SERVICE, response, Reservation)
        problem = problem_of(response)
        if response.status_code == 409 and isinstance(problem.get("short_items"), list):
            raise InsufficientStock(
                "The depot does not have enough stock for this order.",
                extra={"short_items": problem["short_items"]},
            )
        _refuse_unknown_or_unavailable(
            response, problem, not_found="The depot or one of the products does not exist."
        )
        if response.status_code == 409:
            raise ReservationRefused(problem_detail(problem, "The stock could not be reserved."))
        raise unexpected_answer(INVENTORY_SERVICE, response)

    async def extend(self, reservation_id: uuid.UUID, *, ttl_seconds: int) -> Reservation:
        """Keep a live hold for at least `ttl_seconds` from now (never shortened).

        Sent once (a POST), but repeating it is harmless: a retry only moves the expiry on.
        """
        response = await self.http.post(
            f"/internal/reservations/{reservation_id}/extend", json={"ttl_seconds": ttl_seconds}
        )
        if response.status_code == 200:
            return parse_answer(INVENTORY_SERVICE, response, Reservation)
        problem = problem_of(response)
        if response.status_code == 404 or (
            response.status_code == 409 and problem_code(problem) == "reservation-not-held"
        ):
            raise HoldLost(
                "The stock held for this order has expired or been released; "
                "it cannot be confirmed. Ask the hospital to order again."
            )
        raise unexpected_answer(INVENTORY_SERVICE, response)

    async def commit(self, reservation_id: uuid.UUID) -> None:
        """Take the held goods off stock (idempotent)."""
        response = await self.http.post(f"/internal/reservations/{reservation_id}/commit")
        if response.status_code == 200:
            return
        if response.status_code == 409:
            raise ReservationNotHeld(
                "The stock hold of this order is no longer held (released or expired)."
            )
        raise unexpected_answer(INVENTORY_SERVICE, response)

    async def release(self, reservation_id: uuid.UUID) -> ReleaseOutcome:
        """Give held goods back (idempotent); any final answer is reported, not raised."""
        response = await self.http.post(f"/internal/reservations/{reservation_id}/release")
        if response.status_code == 200:
            return ReleaseOutcome.RELEASED
        if response.status_code == 404:
            return ReleaseOutcome.UNKNOWN
        if response.status_code == 409:
            return ReleaseOutcome.COMMITTED
        raise unexpected_answer(INVENTORY_SERVICE, response)

    async def nearby(
        self,
        *,
        lat: float,
        lon: float,
        radius_km: float,
        product_id: uuid.UUID,
        min_quantity: int,
        page_size: int,
    ) -> list[NearbyStock]:
        """Depots with at least `min_quantity` available within the radius, nearest first."""
        response = await self.http.get(
            "/internal/catalog/nearby",
            params={
                "lat": lat,
                "lon": lon,
                "radius_km": radius_km,
                "product_id": str(product_id),
                "min_quantity": min_quantity,
                "page": 1,
                "page_size": page_size,
            },
        )
        return parse_answer(INVENTORY_SERVICE, response, NearbyPage, expect=200).items

    async def product_categories(self, product_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
        """Each product's category (products are platform-wide; unknown ids are left out)."""
        response = await self.http.get(
            "/internal/products", params={"ids": ",".join(str(p) for p in sorted(product_ids))}
        )
        page = parse_answer(INVENTORY_SERVICE, response, _ProductCategories, expect=200)
        return {item.id: item.category for item in page.items}

    async def dispatch_cylinders(
        self, move: CylinderMove, *, lines: Sequence[StockLine], serials: Sequence[str]
    ) -> DispatchedCylinders:
        """Put the named serials in transit on the order. Idempotent per order at
        inventory-service (a repeat with other serials sends the dropped ones back)."""
        response = await self.http.post(
            "/internal/cylinders/dispatch",
            json={**move.body(), "lines": _lines(lines), "serials": list(serials)},
        )
        if response.status_code == 200:
            return parse_answer(INVENTORY_SERVICE, response, DispatchedCylinders)
        refused = _cylinders_refused(response)
        if refused is not None:
            raise refused
        raise unexpected_answer(INVENTORY_SERVICE, response)

    async def deliver_cylinders(
        self,
        move: CylinderMove,
        *,
        returned: Sequence[str],
        deposits: Sequence[LineDeposit],
    ) -> DeliveredCylinders:
        """The order's cylinders in transit go to the hospital, the named empties back to
        the depot. Idempotent per order at inventory-service (a replay moves nothing)."""
        response = await self.http.post(
            "/internal/cylinders/deliver",
            json={
                **move.body(),
                "returned": list(returned),
                "deposits": [
                    {
                        "product_id": str(d.product_id),
                        "deposit_per_unit": str(d.deposit_per_unit.quantize(CENT)),
                        "currency": d.currency,
                    }
                    for d in deposits
                ],
            },
        )
        if response.status_code == 200:
            return parse_answer(INVENTORY_SERVICE, response, DeliveredCylinders)
        refused = _cylinders_refused(response)
        if refused is not None:
            raise refused
        raise unexpected_answer(INVENTORY_SERVICE, response)


class _ProductCategory(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    category: str


class _ProductCategories(BaseModel):
    model_config = ConfigDict(extra="ignore")

    items: list[_ProductCategory]


class PricingClient:
    def __init__(self, http: ServiceClient) -> None:
        self.http = http

    async def quote(
        self,
        *,
        vendor_id: uuid.UUID,
        depot_id: uuid.UUID,
        items: Sequence[StockLine],
        lat: float,
        lon: float,
        priority: str,
    ) -> Quote:
        response = await self.http.post(
            "/internal/quotes",
            json={
                "vendor_id": str(vendor_id),
                "depot_id": str(depot_id),
                "items": _lines(items),
                "delivery": {"lat": lat, "lon": lon},
                "priority": priority,
            },
        )
        if response.status_code in (200, 201):
            return parse_answer(PRICING_SERVICE, response, Quote)
        problem = problem_of(response)
        _refuse_unknown_or_unavailable(
            response, problem, not_found="This vendor has no such depot or product."
        )
        if response.status_code == 409:
            if problem_code(problem) == "no-price":
                raise PriceUnavailable(
                    problem_detail(problem, "The vendor has no price for every product."),
                    extra=problem_extensions(problem),
                )
            raise QuoteRefused(
                problem_detail(problem, "The order could not be priced."),
                extra=problem_extensions(problem),
            )
        if response.status_code == 422 and problem_code(problem) == AmountTooLarge.code:
            # Too many units at that price: the hospital's request, not an upstream fault.
            raise AmountTooLarge(problem_detail(problem, "The order's total is too large."))
        raise unexpected_answer(PRICING_SERVICE, response)


class PaymentClient:
    def __init__(self, http: ServiceClient) -> None:
        self.http = http

    async def hand_over_card_token(self, order_id: uuid.UUID, card_token: str) -> None:
        """Give payment-service the token that order.placed will authorize the card with.
        A PUT, so a timed-out call is safely repeated (payment-service keeps one per order)."""
        await self._hand_over(f"/internal/orders/{order_id}/card-token", card_token)

    async def hand_over_sos_card_token(self, sos_id: uuid.UUID, card_token: str) -> None:
        """The token of a card-paid SOS request, when it opens: its order's id is chosen when a
        vendor accepts, and that order's order.placed names the sos_id it was held for."""
        await self._hand_over(f"/internal/sos/{sos_id}/card-token", card_token)

    async def _hand_over(self, path: str, card_token: str) -> None:
        response = await self.http.put(path, json={"card_token": card_token})
        if response.status_code != 204:
            raise unexpected_answer(PAYMENT_SERVICE, response)


@dataclass
class Upstreams:
    location: LocationClient
    inventory: InventoryClient
    pricing: PricingClient
    payment: PaymentClient

    @classmethod
    def create(
        cls,
        settings: Settings,
        *,
        location_transport: httpx.AsyncBaseTransport | None = None,
        inventory_transport: httpx.AsyncBaseTransport | None = None,
        pricing_transport: httpx.AsyncBaseTransport | None = None,
        payment_transport: httpx.AsyncBaseTransport | None = None,
    ) -> Upstreams:
        return cls(
            location=LocationClient(
                ServiceClient.from_settings(
                    settings,
                    LOCATION_SERVICE,
                    settings.location_service_url,
                    transport=location_transport,
                )
            ),
            inventory=InventoryClient(
                ServiceClient.from_settings(
                    settings,
                    INVENTORY_SERVICE,
                    settings.inventory_service_url,
                    transport=inventory_transport,
                )
            ),
            pricing=PricingClient(
                ServiceClient.from_settings(
                    settings,
                    PRICING_SERVICE,
                    settings.pricing_service_url,
                    transport=pricing_transport,
                )
            ),
            payment=PaymentClient(
                ServiceClient.from_settings(
                    settings,
                    PAYMENT_SERVICE,
                    settings.payment_service_url,
                    transport=payment_transport,
                )
            ),
        )

    async def aclose(self) -> None:
        clients = (self.location.http, self.inventory.http, self.pricing.http, self.payment.http)
        for client in clients:
            await client.aclose()
