"""Request and response bodies of pricing-service, and the upstream answers it reads.

Money is `Decimal` end to end: inputs are decimal strings (JSON floats are refused),
outputs are strings with exactly two decimals.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
)

from flow_shared.pagination import Page
from flow_shared.validation import Amount, LatitudeValue, LongitudeValue, refuse_float

CENT = Decimal("0.01")
Priority = Literal["routine", "urgent", "emergency"]
MAX_QUANTITY = 100_000
MAX_QUOTE_LINES = 50


def money_str(value: Decimal) -> str:
    return str(value.quantize(CENT, rounding=ROUND_HALF_UP))


def _plain_decimal(value: Decimal) -> str:
    return format(value.normalize(), "f")


MoneyOut = Annotated[Decimal, PlainSerializer(money_str, return_type=str)]
MoneyIn = Amount
PercentIn = Annotated[
    Decimal,
    BeforeValidator(refuse_float),
    Field(ge=0, le=100, decimal_places=2, allow_inf_nan=False),
]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


# ----- prices -----


class PriceInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    unit_price: MoneyIn
    currency: Currency
    delivery_fee_per_km: MoneyIn
    min_delivery_fee: MoneyIn
    emergency_surcharge_pct: PercentIn
    # Refundable, per cylinder delivered; only an oxygen_cylinder product may carry one.
    deposit_per_cylinder: MoneyIn = Decimal("0.00")


class PriceOut(BaseModel):
    vendor_id: uuid.UUID
    product_id: uuid.UUID
    unit_price: MoneyOut
    currency: str
    delivery_fee_per_km: MoneyOut
    min_delivery_fee: MoneyOut
    emergency_surcharge_pct: MoneyOut
    deposit_per_cylinder: MoneyOut
    # Increases on every change; `valid_from` is when this version took effect.
    version: int
    valid_from: datetime
    updated_at: datetime


PricePage = Page[PriceOut]


# ----- quotes -----


class QuoteItemInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_id: uuid.UUID
    quantity: Annotated[int, Field(gt=0, le=MAX_QUANTITY, strict=True)]


class DeliveryPoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lat: LatitudeValue
    lon: LongitudeValue


class QuoteRequest(BaseModel):
    """What a quote is asked for; prices and totals always come from the server."""

    model_config = ConfigDict(extra="forbid")

    vendor_id: uuid.UUID
    depot_id: uuid.UUID
    items: Annotated[list[QuoteItemInput], Field(min_length=1, max_length=MAX_QUOTE_LINES)]
    delivery: DeliveryPoint
    priority: Priority = "routine"


class QuoteItemOut(BaseModel):
    product_id: uuid.UUID
    quantity: int
    unit_price: MoneyOut
    line_total: MoneyOut
    # The price's deposit_per_cylinder (refundable; not in line_total).
    deposit_per_unit: MoneyOut


class QuoteFigures(BaseModel):
    """What a vendor's depot charges for these goods delivered here: the figures of a
    quote. Compare answers with these alone; nothing is stored for them."""

    vendor_id: uuid.UUID
    depot_id: uuid.UUID
    priority: Priority
    # Road distance estimate, km (a measurement, not money: a JSON number).
    distance_km: float
    items: list[QuoteItemOut]
    subtotal: MoneyOut
    delivery_fee: MoneyOut
    surcharge: MoneyOut
    # The rate applied, as a fraction ("0.05" = 5 %).
    tax_rate: Annotated[Decimal, PlainSerializer(_plain_decimal, return_type=str)]
    tax: MoneyOut
    total: MoneyOut
    # sum of quantity * deposit_per_unit, charged next to `total` and refunded on return.
    deposit_total: MoneyOut
    currency: str


class QuoteOut(QuoteFigures):
    """A stored quote: its figures, kept unchanged, and until when it can be ordered."""

    quote_id: uuid.UUID
    created_at: datetime
    expires_at: datetime


# ----- compare -----


class CompareItem(BaseModel):
    vendor_id: uuid.UUID
    vendor_name: str
    depot_id: uuid.UUID
    depot_name: str
    distance_km: float
    available: int
    # The vendor's refundable deposit per cylinder of this product (0: none).
    deposit_per_cylinder: MoneyOut
    stale: bool = Field(
        description="The vendor's stock was not updated for STALE_STOCK_HOURS (inventory): "
        "ranked after every fresh offer."
    )
    # The prices as a quote would have them; ask POST /quotes for one to keep.
    quote: QuoteFigures


class CompareOut(BaseModel):
    items: list[CompareItem]
    product_id: uuid.UUID
    quantity: int
    priority: Priority
    radius_km: float
    # When this answer was computed: it may be served from cache for a few seconds.
    generated_at: datetime


# ----- upstream answers (unknown extra fields are ignored) -----


class UpstreamDepot(BaseModel):
    depot_id: uuid.UUID
    vendor_id: uuid.UUID
    vendor_name: str
    name: str
    lat: float
    lon: float
    service_radius_km: float | None = None
    vendor_active: bool


class UpstreamRoute(BaseModel):
    distance_km: float
    duration_min: float
    source: str


class UpstreamBatchRoute(UpstreamRoute):
    id: str


class UpstreamBatchRoutes(BaseModel):
    routes: list[UpstreamBatchRoute]


class UpstreamNearbyItem(BaseModel):
    depot_id: uuid.UUID
    depot_name: str
    vendor_id: uuid.UUID
    vendor_name: str
    product_id: uuid.UUID
    available: int
    # Not updated for inventory's STALE_STOCK_HOURS (absent from an older inventory).
    stale: bool = False
    distance_km: float
    lat: float
    lon: float


class UpstreamProductCategory(BaseModel):
    id: uuid.UUID
    category: str


class UpstreamProductCategories(BaseModel):
    items: list[UpstreamProductCategory]


class UpstreamNearbyPage(BaseModel):
    items: list[UpstreamNearbyItem]
    page: int
    page_size: int
    total: int
