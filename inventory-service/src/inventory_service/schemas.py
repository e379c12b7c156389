"""Request and response bodies of inventory-service's API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from flow_shared.validation import (
    DB_INTEGER_MAX,
    MAX_CYLINDERS_PER_MOVE,
    MAX_UNITS,
    CylinderSerial,
    CylinderSerials,
    LatitudeValue,
    LongitudeValue,
    NoNul,
    PositiveUnits,
    Units,
    UnitsDelta,
    refuse_repeated_serials,
)
from inventory_service.models import ProductCategory, ReservationStatus

MAX_QUANTITY = MAX_UNITS
# The categories whose units hold oxygen, so carry gas_liters.
GAS_CATEGORIES = frozenset(
    {ProductCategory.OXYGEN_CYLINDER, ProductCategory.LIQUID_OXYGEN, ProductCategory.REFILL}
)
MAX_RESERVATION_LINES = 100

Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NoNul()
]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- products -------------------------------------------------------------------------


GasLiters = Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=1, allow_inf_nan=False)]


def gas_refusal(category: ProductCategory, gas_liters: Decimal | None) -> str | None:
    """Why `gas_liters` does not fit a product of `category`, if it does not: required for
    what stores oxygen, absent for concentrators (they make it) and accessories."""
    stores_gas = category in GAS_CATEGORIES
    if stores_gas and gas_liters is None:
        return f"gas_liters is required for {category.value} products"
    if not stores_gas and gas_liters is not None:
        return f"{category.value} products hold no gas: omit gas_liters"
    return None


class ProductCreate(_Input):
    # Upper-case letters, digits, dots and dashes: SKUs appear in URLs, logs and invoices.
    sku: Annotated[
        str,
        StringConstraints(
            strip_whitespace=True, min_length=2, max_length=64, pattern=r"^[A-Z0-9][A-Z0-9.\-]*$"
        ),
    ]
    name: Name
    category: ProductCategory
    unit: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32), NoNul()
    ]
    description: Annotated[
        str, StringConstraints(strip_whitespace=True, max_length=2000), NoNul()
    ] = ""
    # Litres of gaseous oxygen one unit delivers: required for what stores oxygen,
    # absent for concentrators (they make it) and accessories (they hold none).
    gas_liters: GasLiters | None = None

    @model_validator(mode="after")
    def _gas_fits_the_category(self) -> ProductCreate:
        refusal = gas_refusal(self.category, self.gas_liters)
        if refusal is not None:
            raise ValueError(refusal)
        return self


class ProductUpdate(_Input):
    """A platform admin's correction of a product: its name, description, or the gas one
    unit holds (a product created before Flow knew it has none, so counts no oxygen)."""

    name: Name | None = None
    description: (
        Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000), NoNul()] | None
    ) = None
    gas_liters: GasLiters | None = None


class ProductOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    sku: str
    name: str
    category: ProductCategory
    unit: str
    description: str
    gas_liters: float | None = Field(
        description="Litres of gaseous oxygen one unit delivers; null when it stores none."
    )


# --- depots and stock -----------------------------------------------------------------


class DepotCreate(_Input):
    name: Name
    lat: LatitudeValue
    lon: LongitudeValue
    address: (
        Annotated[str, StringConstraints(strip_whitespace=True, max_length=500), NoNul()] | None
    ) = None
    service_radius_km: float = Field(gt=0, le=1000)


class DepotOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    vendor_id: uuid.UUID
    name: str
    address: str | None
    lat: float
    lon: float
    service_radius_km: float
    created_at: datetime


class StockSet(_Input):
    on_hand: Units
    # Left out: the row keeps its threshold (0 for a new row).
    low_stock_threshold: Units | None = None


class StockAdjust(_Input):
    delta: UnitsDelta
    reason: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500), NoNul()
    ]

    @field_validator("delta")
    @classmethod
    def _not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("delta must not be zero")
        return value


class StockOut(BaseModel):
    depot_id: uuid.UUID
    product_id: uuid.UUID
    sku: str
    product_name: str
    on_hand: int
    reserved: int
    available: int
    low_stock_threshold: int
    updated_at: datetime


class MovementOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    delta: int
    on_hand_after: int
    reserved_after: int
    reason: str | None
    reference: str | None
    actor: str
    at: datetime


# --- catalogue reads ------------------------------------------------------------------


class NearbyItem(BaseModel):
    depot_id: uuid.UUID
    depot_name: str
    vendor_id: uuid.UUID
    vendor_name: str
    product_id: uuid.UUID
    sku: str
    product_name: str
    available: int
    updated_at: datetime
    reported_at: datetime = Field(
        description="When the vendor last set or adjusted this stock (holds do not count)."
    )
    stale: bool = Field(
        description="Not reported by the vendor for STALE_STOCK_HOURS: ranked after every "
        "fresh row."
    )
    distance_km: float
    lat: float
    lon: float


class AvailabilityProduct(BaseModel):
    product_id: uuid.UUID
    sku: str
    available: int
    updated_at: datetime


class AvailabilityDepot(BaseModel):
    depot_id: uuid.UUID
    name: str
    lat: float
    lon: float
    products: list[AvailabilityProduct]


class VendorAvailability(BaseModel):
    vendor_id: uuid.UUID
    vendor_name: str
    depots: list[AvailabilityDepot]


# --- internal -------------------------------------------------------------------------


class ReservationLine(_Input):
    product_id: uuid.UUID
    quantity: PositiveUnits


class ReservationCreate(_Input):
    order_id: uuid.UUID
    depot_id: uuid.UUID
    items: list[ReservationLine] = Field(min_length=1, max_length=MAX_RESERVATION_LINES)
    ttl_seconds: int = Field(ge=1, le=DB_INTEGER_MAX)
    # A routine hold may not take a depot's stock below its emergency reserve
    # (EMERGENCY_RESERVE_PCT of on_hand); urgent and emergency ones may use all of it.
    # Absent means routine: only a caller that says so reaches the reserve.
    priority: Literal["routine", "urgent", "emergency"] = "routine"


class ReservationExtend(_Input):
    # The upper bound is configuration (RESERVATION_MAX_TTL_SECONDS), checked by the service.
    ttl_seconds: int = Field(ge=1, le=DB_INTEGER_MAX)


class ReservationItemOut(BaseModel):
    product_id: uuid.UUID
    quantity: int


class ReservationOut(BaseModel):
    reservation_id: uuid.UUID
    order_id: uuid.UUID
    depot_id: uuid.UUID
    vendor_id: uuid.UUID
    status: ReservationStatus
    expires_at: datetime
    items: list[ReservationItemOut]


class ReservationStatusOut(BaseModel):
    reservation_id: uuid.UUID
    status: ReservationStatus


class InternalDepotOut(BaseModel):
    depot_id: uuid.UUID
    vendor_id: uuid.UUID
    vendor_name: str | None
    name: str
    lat: float
    lon: float
    service_radius_km: float
    # Verified and not suspended: only then can the depot take reservations.
    vendor_active: bool


# --- oxygen runway --------------------------------------------------------------------

MAX_SUPPLY_LINES = 100
MAX_PATIENT_GROUPS = 100
# Bounds a hospital can reach, kept far from what the arithmetic or the columns overflow:
# a large hospital draws a few thousand L/min; high-flow therapy is 60-70 L/min a patient.
MAX_CONSUMPTION_LPM = Decimal(100_000)
MAX_PATIENT_FLOW_LPM = Decimal(100)
MAX_PATIENTS_PER_GROUP = 100_000
MAX_RUNWAY_HOURS = Decimal(30 * 24)
OrderPriority = Literal["routine", "urgent", "emergency"]
RunwayLevelName = Literal["ok", "low", "critical"]
# The largest order line order-service takes: an auto-reorder it would refuse is refused here.
MAX_ORDER_QUANTITY = 100_000

LitresPerMinute = Annotated[
    Decimal, Field(ge=0, le=MAX_CONSUMPTION_LPM, decimal_places=3, allow_inf_nan=False)
]
RunwayHours = Annotated[
    Decimal, Field(ge=0, le=MAX_RUNWAY_HOURS, decimal_places=2, allow_inf_nan=False)
]


class SupplyStockLine(_Input):
    product_id: uuid.UUID
    full_units: Units


class PatientGroupIn(_Input):
    count: Annotated[int, Field(ge=0, le=MAX_PATIENTS_PER_GROUP)]
    flow_lpm: Annotated[
        Decimal, Field(ge=0, le=MAX_PATIENT_FLOW_LPM, decimal_places=3, allow_inf_nan=False)
    ]


class AutoReorder(_Input):
    """The order Flow places for the site when its runway falls to `alert_hours`; at
    `critical_hours` it opens an SOS for the same product and quantity."""

    product_id: uuid.UUID
    quantity: Annotated[int, Field(ge=1, le=MAX_ORDER_QUANTITY)]
    priority: OrderPriority = "urgent"


class SupplyReport(_Input):
    """A site's oxygen as counted now: full units on hand, and how fast it is used,
    either directly (`consumption_lpm`) or as patients on oxygen."""

    stock: Annotated[list[SupplyStockLine], Field(max_length=MAX_SUPPLY_LINES)]
    consumption_lpm: LitresPerMinute | None = None
    patients: Annotated[list[PatientGroupIn], Field(max_length=MAX_PATIENT_GROUPS)] | None = None
    alert_hours: RunwayHours = Field(default=Decimal(24), gt=0)
    critical_hours: RunwayHours = Decimal(6)
    auto_reorder: AutoReorder | None = None

    @model_validator(mode="after")
    def _consistent(self) -> SupplyReport:
        if (self.consumption_lpm is None) == (self.patients is None):
            raise ValueError("give exactly one of consumption_lpm and patients")
        if self.critical_hours >= self.alert_hours:
            raise ValueError("critical_hours must be below alert_hours")
        product_ids = [line.product_id for line in self.stock]
        if len(set(product_ids)) != len(product_ids):
            raise ValueError("each product may appear once in stock")
        return self


class InboundOut(BaseModel):
    order_id: uuid.UUID
    product_id: uuid.UUID
    quantity: int
    status: str
    eta: datetime | None = Field(
        description="When the order is expected; null until the vendor confirms with an ETA "
        "(such an order is listed but not counted in hours_left_with_inbound)."
    )


class AutoReorderOut(BaseModel):
    product_id: uuid.UUID
    quantity: int
    priority: str


class AutoReorderRequestOut(BaseModel):
    """An order or SOS Flow placed (or is placing) for the site on its own."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: Literal["order", "sos"]
    status: Literal["pending", "open", "closed", "refused"] = Field(
        description="pending: not yet accepted by order-service; open: its order or SOS is "
        "under way; refused: order-service said no (reason says why)."
    )
    product_id: uuid.UUID
    quantity: int
    order_id: uuid.UUID | None
    sos_id: uuid.UUID | None
    reason: str | None
    created_at: datetime


class RunwayOut(BaseModel):
    site_id: uuid.UUID
    site_name: str | None
    hospital_org_id: uuid.UUID
    gas_liters: float = Field(description="Litres of gaseous oxygen on site at as_of.")
    consumption_lpm: float
    hours_left: float | None = Field(
        description="Hours the gas on site lasts from as_of, rounded down to 0.01; null when "
        "nothing is consumed."
    )
    runs_out_at: datetime | None = Field(
        description="When the gas on site reaches 0 (in the past once it has); null when "
        "nothing is consumed."
    )
    inbound: list[InboundOut]
    hours_left_with_inbound: float | None = Field(
        description="Hours until the gas first reaches 0 when the inbound orders with an ETA "
        "arrive then; null when nothing is consumed."
    )
    level: RunwayLevelName
    alert_hours: float
    critical_hours: float
    auto_reorder: AutoReorderOut | None
    auto_reorders: list[AutoReorderRequestOut] = Field(
        description="Auto-reorders under way, and those refused in the last 24 hours."
    )
    reported_at: datetime
    as_of: datetime = Field(description="The moment these figures are for (now).")


# --- the cylinder ledger ----------------------------------------------------------------

# A date Flow can store and compare (years 1..9999 are Python's, PostgreSQL's are wider).
HydrotestDate = Annotated[date, Field(ge=date(2000, 1, 1), le=date(9999, 12, 30))]


class CylinderCreate(_Input):
    serial: CylinderSerial
    product_id: uuid.UUID
    depot_id: uuid.UUID
    hydrotest_due: HydrotestDate
    # A cylinder is registered full unless the vendor says it arrives empty.
    status: Literal["full", "empty"] = "full"


class CylinderBulkCreate(_Input):
    cylinders: Annotated[
        list[CylinderCreate], Field(min_length=1, max_length=MAX_CYLINDERS_PER_MOVE)
    ]

    @field_validator("cylinders")
    @classmethod
    def _serials_unique(cls, cylinders: list[CylinderCreate]) -> list[CylinderCreate]:
        refuse_repeated_serials([c.serial for c in cylinders])
        return cylinders


class CylinderOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    vendor_id: uuid.UUID
    serial: str
    product_id: uuid.UUID
    status: str
    depot_id: uuid.UUID
    holder_org_id: uuid.UUID | None
    order_id: uuid.UUID | None
    held_since: datetime | None
    deposit: Decimal
    deposit_currency: str | None
    hydrotest_due: date
    created_at: datetime
    updated_at: datetime


class CylinderBulkOut(BaseModel):
    created: int
    cylinders: list[CylinderOut]


class CylinderMoveOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor_id: uuid.UUID | None
    actor_org_id: uuid.UUID | None
    from_status: str | None
    to_status: str
    from_place: str | None
    to_place: str
    order_id: uuid.UUID | None
    reason: str


class CylinderDetailOut(CylinderOut):
    moves: list[CylinderMoveOut]


class HeldCylinderOut(BaseModel):
    serial: str
    product_id: uuid.UUID
    vendor_id: uuid.UUID
    order_id: uuid.UUID | None
    since: datetime
    deposit: Decimal
    currency: str | None
    return_due: datetime
    overdue: bool


class OverdueCylinderOut(BaseModel):
    serial: str
    product_id: uuid.UUID
    depot_id: uuid.UUID
    holder_org_id: uuid.UUID
    order_id: uuid.UUID | None
    since: datetime
    days_held: int
    deposit: Decimal
    currency: str | None


class HydrotestResult(_Input):
    passed: bool
    next_due: HydrotestDate | None = None

    @model_validator(mode="after")
    def _next_due_when_passed(self) -> HydrotestResult:
        if self.passed and self.next_due is None:
            raise ValueError("a passed hydrotest needs next_due")
        return self


class CylinderRetire(_Input):
    reason: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=400), NoNul()
    ]


class CylinderCollection(_Input):
    depot_id: uuid.UUID
    serials: Annotated[CylinderSerials, Field(min_length=1)]


class CylinderCollectionOut(BaseModel):
    depot_id: uuid.UUID
    returned: list[CylinderOut]


class CylinderLine(_Input):
    product_id: uuid.UUID
    quantity: Annotated[int, Field(ge=1, le=MAX_UNITS)]


class CylinderDispatch(_Input):
    order_id: uuid.UUID
    vendor_id: uuid.UUID
    depot_id: uuid.UUID
    hospital_org_id: uuid.UUID
    lines: Annotated[list[CylinderLine], Field(max_length=MAX_RESERVATION_LINES)]
    serials: CylinderSerials
    actor_id: uuid.UUID | None = None


class CylinderDeposit(_Input):
    product_id: uuid.UUID
    deposit_per_unit: Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)]
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class CylinderDeliver(_Input):
    order_id: uuid.UUID
    vendor_id: uuid.UUID
    depot_id: uuid.UUID
    hospital_org_id: uuid.UUID
    returned: CylinderSerials = []
    deposits: Annotated[list[CylinderDeposit], Field(max_length=MAX_RESERVATION_LINES)] = []
    actor_id: uuid.UUID | None = None


class SerialProduct(BaseModel):
    serial: str
    product_id: uuid.UUID


class DispatchOut(BaseModel):
    order_id: uuid.UUID
    cylinders: list[SerialProduct]


class DeliverOut(BaseModel):
    order_id: uuid.UUID
    delivered: list[SerialProduct]
    returned: list[SerialProduct]
