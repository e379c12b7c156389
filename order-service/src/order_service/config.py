"""order-service configuration: the shared settings plus its upstreams and order timing."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from flow_shared.config import UpstreamCallerSettings
from flow_shared.fleet_table import FLEET

Priority = Literal["routine", "urgent", "emergency"]

# inventory-service's default RESERVATION_MAX_TTL_SECONDS: no hold may be asked for longer.
INVENTORY_MAX_HOLD_SECONDS = 7 * 24 * 60 * 60


class Settings(UpstreamCallerSettings):
    service_name: str = "order-service"
    db_schema: str | None = "orders"

    location_service_url: str = FLEET["location-service"].local_url
    inventory_service_url: str = FLEET["inventory-service"].local_url
    pricing_service_url: str = FLEET["pricing-service"].local_url
    # Card orders hand their token to payment-service here (never in an event).
    payment_service_url: str = FLEET["payment-service"].local_url

    # How long a vendor has to confirm before the order expires and its stock returns (SPEC).
    confirm_window_emergency_seconds: float = Field(default=15 * 60, gt=0)
    confirm_window_urgent_seconds: float = Field(default=60 * 60, gt=0)
    # ROUTINE_HOLD_MINUTES: routine holds are short (SPEC, fair allocation): a routine
    # order the vendor has not confirmed in this time expires and its stock goes back.
    routine_hold_minutes: float = Field(default=120, gt=0)
    # RESERVATION_HOLD_MARGIN_SECONDS: the inventory hold taken at placement lives for the
    # confirm window plus this margin. Kept short so that a hold orphaned by a crash frees
    # its stock soon; the order sweeper releases unconfirmed orders' holds before that.
    reservation_hold_margin_seconds: int = Field(default=5 * 60, ge=60)
    # CONFIRMED_HOLD_SECONDS: confirming extends the hold to last this long from then on,
    # covering the wait for dispatch and delivery. Inventory refuses more than its
    # RESERVATION_MAX_TTL_SECONDS (7 days by default), hence the same bound here.
    confirmed_hold_seconds: int = Field(
        default=INVENTORY_MAX_HOLD_SECONDS, ge=60, le=INVENTORY_MAX_HOLD_SECONDS
    )

    order_sweep_interval_seconds: float = Field(default=10.0, gt=0)
    order_sweep_batch_size: int = Field(default=100, ge=1, le=1000)
    # A release that failed (inventory down) is tried again after this long.
    release_retry_after_seconds: float = Field(default=30.0, ge=0)

    # Fair allocation (SPEC): a hospital's open units per product are capped. The defaults
    # apply by whether user-service verified the hospital (the `hospitals` projection);
    # platform admins override per hospital and product.
    allocation_cap_unverified: int = Field(default=10, ge=0)
    allocation_cap_verified: int = Field(default=200, ge=0)
    # ALLOCATION_DAYS: the verified cap is at least this many days of the hospital's
    # reported consumption (its sites' runway reports; service/allocation.py, `caps_for`).
    allocation_days: float = Field(default=3, ge=0)
    # ALLOCATION_REPORT_MAX_AGE_HOURS: a site's consumption report older than this no longer
    # raises the cap.
    allocation_report_max_age_hours: float = Field(default=7 * 24, gt=0)

    # Inside an active shortage for a product's category (the shortages projection):
    # SHORTAGE_CAP_FACTOR multiplies the caps (floor, at least 1 when the base cap is), and
    # an unconfirmed order's hold lasts at most SHORTAGE_HOLD_MINUTES.
    shortage_cap_factor: float = Field(default=0.5, gt=0, le=1)
    shortage_hold_minutes: float = Field(default=15, gt=0)

    direct_default_radius_km: float = Field(default=50.0, gt=0, le=500)
    # Direct orders look at this many nearest depots with enough stock.
    direct_max_candidates: int = Field(default=20, ge=1, le=100)

    # SOS broadcast (service/sos.py): the ring sweeper's interval and batch.
    sos_sweep_interval_seconds: float = Field(default=1.0, gt=0)
    sos_sweep_batch_size: int = Field(default=50, ge=1, le=1000)
    # How many depots' stock the SOS asks inventory-service for when building a ring.
    sos_max_candidates: int = Field(default=100, ge=1, le=100)

    @model_validator(mode="after")
    def _needs_database_and_key(self) -> Settings:
        # Without them every order request would fail later and less clearly.
        required = {"DATABASE_URL": self.database_url, "SERVICE_KEY": self.service_key}
        missing = [name for name, value in required.items() if value is None]
        if missing:
            raise ValueError(f"order-service needs {', '.join(missing)}")
        return self

    def confirm_window_seconds(self, priority: Priority) -> float:
        return {
            "emergency": self.confirm_window_emergency_seconds,
            "urgent": self.confirm_window_urgent_seconds,
            "routine": self.routine_hold_minutes * 60,
        }[priority]
