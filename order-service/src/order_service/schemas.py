"""Request and response bodies of the public order API."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    model_validator,
)

from flow_shared.validation import CylinderSerials, LatitudeValue, LongitudeValue, NoNul
from order_service.models import Order, SosRequest

Priority = Literal["routine", "urgent", "emergency"]
PaymentMethod = Literal["invoice", "card", "cash_on_delivery"]
# Decimal end to end; on the wire a string such as "1250.00", never a float.
Money = Annotated[Decimal, PlainSerializer(str, return_type=str, when_used="json")]
Quantity = Annotated[int, Field(strict=True, gt=0, le=100_000)]
Address = Annotated[str, StringConstraints(min_length=1, max_length=500), NoNul()]
Notes = Annotated[str, StringConstraints(max_length=1000), NoNul()]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=500), NoNul()]

MAX_ORDER_LINES = 20
# A cylinder's serial (unique per vendor at inventory-service), and how many one move names.


class DeliveryPoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lat: LatitudeValue
    lon: LongitudeValue
    address: Address | None = None


class OrderLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_id: uuid.UUID
    quantity: Quantity


class DeliveryAndPayment(BaseModel):
    """Where to deliver (a saved site XOR coordinates) and how the hospital will pay."""

    model_config = ConfigDict(extra="forbid")

    site_id: uuid.UUID | None = None
    delivery: DeliveryPoint | None = None
    payment_method: PaymentMethod
    # Checked for presence only: payments come later and no card data is stored.
    # A provider token, never a card number: the pattern refuses digits-only input.
    card_token: str | None = Field(default=None, pattern=r"^tok_[a-z0-9_]+$", max_length=100)
    notes: Notes | None = None

    @model_validator(mode="after")
    def _one_destination_and_card_token_iff_card(self) -> Self:
        if (self.site_id is None) == (self.delivery is None):
            raise ValueError("give exactly one of site_id or delivery")
        if self.payment_method == "card" and self.card_token is None:
            raise ValueError("card_token is required when payment_method is card")
        if self.payment_method != "card" and self.card_token is not None:
            raise ValueError("card_token is only accepted when payment_method is card")
        return self


class OrderCreate(DeliveryAndPayment):
    """Prices are never sent by the client (extra fields are refused): the server quotes."""

    vendor_id: uuid.UUID
    depot_id: uuid.UUID
    items: list[OrderLineIn] = Field(min_length=1, max_length=MAX_ORDER_LINES)
    priority: Priority


class DirectOrderCreate(DeliveryAndPayment):
    product_id: uuid.UUID
    quantity: Quantity
    priority: Priority = "emergency"
    max_distance_km: float | None = Field(default=None, gt=0, le=500, allow_inf_nan=False)
    payment_method: PaymentMethod = "invoice"


class ConfirmRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    eta_minutes: int | None = Field(default=None, ge=1, le=7 * 24 * 60)


class RejectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason | None = None


class DispatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The serials of the order's oxygen-cylinder lines, each line's quantity of them;
    # required when the order took deposits.
    cylinders: CylinderSerials | None = None


class DeliverRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Empty cylinders the hospital hands back on this delivery (its deposits are credited).
    returned_cylinders: CylinderSerials | None = None


class StatusChange(BaseModel):
    status: str
    at: datetime
    # The user who made the move, or "system" (expiry).
    actor: str


class DeliveryOut(BaseModel):
    lat: float
    lon: float
    address: str | None


class OrderItemOut(BaseModel):
    product_id: uuid.UUID
    quantity: int
    unit_price: Money
    line_total: Money
    # Refundable deposit per unit (0: none); not part of line_total.
    deposit_per_unit: Money


class OrderOut(BaseModel):
    id: uuid.UUID
    status: str
    hospital_org_id: uuid.UUID
    # null: Flow placed it for the hospital (auto-reorder on a low oxygen runway).
    placed_by: uuid.UUID | None
    vendor_id: uuid.UUID
    depot_id: uuid.UUID
    site_id: uuid.UUID | None
    delivery: DeliveryOut
    priority: str
    payment_method: str
    items: list[OrderItemOut]
    subtotal: Money
    delivery_fee: Money
    surcharge: Money
    tax: Money
    total: Money
    # Refundable cylinder deposits, charged next to `total`.
    deposit_total: Money
    # What the hospital is charged: total + deposit_total.
    amount_due: Money
    # The cylinders were named by serial at dispatch (inventory-service tracks them).
    cylinders_tracked: bool
    currency: str
    quote_id: uuid.UUID
    reservation_id: uuid.UUID
    distance_km: float | None
    eta_minutes: int | None
    notes: str | None
    reason: str | None
    status_history: list[StatusChange]
    expires_at: datetime
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, order: Order) -> OrderOut:
        return cls(
            id=order.id,
            status=order.status,
            hospital_org_id=order.hospital_org_id,
            placed_by=order.placed_by,
            vendor_id=order.vendor_id,
            depot_id=order.depot_id,
            site_id=order.site_id,
            delivery=DeliveryOut(
                lat=order.delivery_lat, lon=order.delivery_lon, address=order.delivery_address
            ),
            priority=order.priority,
            payment_method=order.payment_method,
            items=[
                OrderItemOut(
                    product_id=item.product_id,
                    quantity=item.quantity,
                    unit_price=item.unit_price,
                    line_total=item.line_total,
                    deposit_per_unit=item.deposit_per_unit,
                )
                for item in order.items
            ],
            subtotal=order.subtotal,
            delivery_fee=order.delivery_fee,
            surcharge=order.surcharge,
            tax=order.tax,
            total=order.total,
            deposit_total=order.deposit_total,
            amount_due=order.total + order.deposit_total,
            cylinders_tracked=order.cylinders_tracked,
            currency=order.currency,
            quote_id=order.quote_id,
            reservation_id=order.reservation_id,
            distance_km=order.distance_km,
            eta_minutes=order.eta_minutes,
            notes=order.notes,
            reason=order.reason,
            status_history=[StatusChange.model_validate(entry) for entry in order.status_history],
            expires_at=order.expires_at,
            created_at=order.created_at,
            updated_at=order.updated_at,
        )


class Selection(BaseModel):
    """Why a direct order went where it went."""

    vendor_id: uuid.UUID
    depot_id: uuid.UUID
    distance_km: float
    # None when location-service could not estimate routes (ranked by straight distance).
    eta_min: int | None
    candidates_considered: int


class DirectOrderOut(BaseModel):
    order: OrderOut
    selection: Selection


# --- fair allocation ---------------------------------------------------------------------

# consumption: a verified hospital's default raised to ALLOCATION_DAYS of its reported use.
CapSource = Literal["default_unverified", "default_verified", "consumption", "override"]
CapUnits = Annotated[int, Field(strict=True, ge=0, le=1_000_000)]
MAX_CAP_OVERRIDES = 100


class AllocationItem(BaseModel):
    product_id: uuid.UUID
    cap: int
    open_units: int
    source: CapSource


class AllocationOut(BaseModel):
    items: list[AllocationItem]
    # With ?site_id: the caps for deliveries there, and the active shortages that tighten them.
    site_id: uuid.UUID | None = None
    shortage_ids: list[uuid.UUID] = Field(default_factory=list)


class CapOverride(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_id: uuid.UUID
    # null removes the override: the default applies again.
    units: CapUnits | None


class AllocationOverrides(BaseModel):
    """PUT /internal/allocation/{org_id}: admin-service forwards a platform admin's caps."""

    model_config = ConfigDict(extra="forbid")

    caps: list[CapOverride] = Field(min_length=1, max_length=MAX_CAP_OVERRIDES)
    actor_id: uuid.UUID | None = None

    @model_validator(mode="after")
    def _one_entry_per_product(self) -> Self:
        products = [cap.product_id for cap in self.caps]
        if len(set(products)) != len(products):
            raise ValueError("each product may appear once in caps")
        return self


# --- SOS broadcast -----------------------------------------------------------------------

# The smallest ring time-out is small enough for tests that wait for a real one (e2e).
MIN_RING_TIMEOUT_SECONDS = 5
MAX_RING_TIMEOUT_SECONDS = 3600
MAX_RING_SIZE = 20
SosAnswer = Literal["declined", "accepted"]


class SosCreate(DeliveryAndPayment):
    """POST /api/v1/sos. `payment_method` invoice unless the hospital chooses otherwise; a
    card's token goes to payment-service when the SOS opens (never stored here), and a
    declined card never cancels the SOS order."""

    product_id: uuid.UUID
    quantity: Quantity
    max_distance_km: float = Field(default=50.0, gt=0, le=500, allow_inf_nan=False)
    ring_size: int = Field(default=3, ge=1, le=MAX_RING_SIZE)
    ring_timeout_seconds: int = Field(
        default=180, ge=MIN_RING_TIMEOUT_SECONDS, le=MAX_RING_TIMEOUT_SECONDS
    )
    payment_method: PaymentMethod = "invoice"


class SosAccept(BaseModel):
    model_config = ConfigDict(extra="forbid")

    depot_id: uuid.UUID
    eta_minutes: int = Field(ge=1, le=7 * 24 * 60)


class SosDecline(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason


class SosOfferOut(BaseModel):
    vendor_id: uuid.UUID
    depot_id: uuid.UUID
    distance_km: float
    eta_min: int | None
    answer: SosAnswer | None


class SosRingOut(BaseModel):
    number: int
    opened_at: datetime
    expires_at: datetime
    # null while the ring is open; else accepted, declined, timed_out, cancelled.
    closed_reason: str | None
    offers: list[SosOfferOut]


class SosOut(BaseModel):
    id: uuid.UUID
    status: str
    hospital_org_id: uuid.UUID
    product_id: uuid.UUID
    quantity: int
    site_id: uuid.UUID | None
    delivery: DeliveryOut
    max_distance_km: float
    ring_size: int
    ring_timeout_seconds: int
    payment_method: str
    notes: str | None
    current_ring: int
    rings: list[SosRingOut]
    order_id: uuid.UUID | None
    closed_reason: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, sos: SosRequest, *, vendor_id: uuid.UUID | None = None) -> SosOut:
        """`vendor_id`: a vendor's view, its own offers only (and the rings holding them)."""
        rings = []
        for ring in sos.rings:
            offers = [
                SosOfferOut(
                    vendor_id=offer.vendor_id,
                    depot_id=offer.depot_id,
                    distance_km=offer.distance_km,
                    eta_min=offer.eta_min,
                    answer=offer.answer,
                )
                for offer in sos.offers
                if offer.ring_number == ring.number
                and (vendor_id is None or offer.vendor_id == vendor_id)
            ]
            if vendor_id is not None and not offers:
                continue
            rings.append(
                SosRingOut(
                    number=ring.number,
                    opened_at=ring.opened_at,
                    expires_at=ring.expires_at,
                    closed_reason=ring.closed_reason,
                    offers=offers,
                )
            )
        return cls(
            id=sos.id,
            status=sos.status,
            hospital_org_id=sos.hospital_org_id,
            product_id=sos.product_id,
            quantity=sos.quantity,
            site_id=sos.site_id,
            delivery=DeliveryOut(
                lat=sos.delivery_lat, lon=sos.delivery_lon, address=sos.delivery_address
            ),
            max_distance_km=sos.max_distance_km,
            ring_size=sos.ring_size,
            ring_timeout_seconds=sos.ring_timeout_seconds,
            payment_method=sos.payment_method,
            notes=sos.notes,
            current_ring=sos.current_ring,
            rings=rings,
            order_id=sos.order_id,
            closed_reason=sos.closed_reason,
            created_at=sos.created_at,
            updated_at=sos.updated_at,
        )


class SosAcceptOut(BaseModel):
    sos: SosOut
    order: OrderOut


# --- auto-reorder (inventory-service, on a site's oxygen runway) ----------------------------

AutoNote = Annotated[str, StringConstraints(max_length=500), NoNul()]


class AutoOrderCreate(BaseModel):
    """POST /internal/auto-orders: the order a hospital configured for a site's low runway.
    No depot: Flow picks the nearest by ETA that has the stock."""

    model_config = ConfigDict(extra="forbid")

    hospital_org_id: uuid.UUID
    site_id: uuid.UUID
    product_id: uuid.UUID
    quantity: Quantity
    priority: Priority
    note: AutoNote | None = None


class AutoSosCreate(BaseModel):
    """POST /internal/sos: the SOS for a site's critical runway (SPEC defaults for the rest)."""

    model_config = ConfigDict(extra="forbid")

    hospital_org_id: uuid.UUID
    site_id: uuid.UUID
    product_id: uuid.UUID
    quantity: Quantity
    note: AutoNote | None = None


class AutoOrderOut(BaseModel):
    order: OrderOut


class AutoSosOut(BaseModel):
    sos: SosOut
