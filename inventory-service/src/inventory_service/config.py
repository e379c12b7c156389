"""inventory-service configuration: the shared settings plus the nearby cache, the
reservation sweeper, the oxygen runway's alert job and the upstreams it calls."""

from __future__ import annotations

from pydantic import Field

from flow_shared.config import UpstreamCallerSettings
from flow_shared.fleet_table import FLEET


class Settings(UpstreamCallerSettings):
    service_name: str = "inventory-service"
    db_schema: str | None = "inventory"

    # NEARBY_CACHE_SECONDS: upper bound on a cached nearby page's life. Freshness does not
    # depend on it: every stock change moves the catalogue generation, which is in the key.
    nearby_cache_seconds: int = Field(default=60, ge=0, le=3600)
    # STALE_STOCK_HOURS: a stock row not updated for this long is `stale` in nearby (and
    # in pricing's compare) and ranked after fresh ones.
    stale_stock_hours: float = Field(default=24.0, gt=0, le=24 * 365)
    # RESERVATION_SWEEP_INTERVAL_SECONDS / _BATCH_SIZE: how often expired holds are
    # released, and how many per transaction.
    reservation_sweep_interval_seconds: float = Field(default=5.0, gt=0, le=3600)
    reservation_sweep_batch_size: int = Field(default=200, ge=1, le=5000)
    # Largest hold a caller may ask for, when reserving or extending (a confirmed order's
    # hold is extended to cover the wait for delivery).
    reservation_max_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=1)
    # EMERGENCY_RESERVE_PCT: the share of a depot's on_hand of each product that routine
    # reservations may not take (SPEC, fair allocation); urgent and emergency ones may.
    emergency_reserve_pct: int = Field(default=20, ge=0, le=100)

    # The oxygen runway: a hospital's report names one of its sites (location-service says
    # whose it is); auto-reorder places orders and opens SOS requests in order-service.
    location_service_url: str = FLEET["location-service"].local_url
    order_service_url: str = FLEET["order-service"].local_url
    # RUNWAY_ALERT_INTERVAL_SECONDS / _BATCH_SIZE: how often the alert job looks for sites
    # whose level has changed with time alone, and how many it evaluates per transaction.
    # Reports and deliveries are evaluated at once; this catches the slow drain.
    runway_alert_interval_seconds: float = Field(default=30.0, gt=0, le=3600)
    runway_alert_batch_size: int = Field(default=500, ge=1, le=5000)
    # AUTO_REORDER_INTERVAL_SECONDS: how often auto-reorders written with an alert are sent
    # to order-service (and ones it could not be reached for are tried again).
    auto_reorder_interval_seconds: float = Field(default=5.0, gt=0, le=3600)

    # CYLINDER_RETURN_DAYS: a cylinder held by a hospital longer than this is overdue
    # for return (the hospital's held list flags it; the vendor's overdue list shows it).
    cylinder_return_days: int = Field(default=30, ge=1, le=3650)
