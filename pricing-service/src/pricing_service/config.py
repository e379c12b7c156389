"""pricing-service configuration: the shared settings plus tax, quote lifetime and
retention, compare cache, and where inventory- and location-service live and how they
are called."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field, model_validator

from flow_shared.config import UpstreamCallerSettings
from flow_shared.fleet_table import FLEET


class Settings(UpstreamCallerSettings):
    service_name: str = "pricing-service"
    db_schema: str | None = "pricing"

    # TAX_RATE as a fraction (0.05 = 5 %), applied to subtotal + delivery fee + surcharge.
    tax_rate: Decimal = Field(default=Decimal("0.05"), ge=0, le=1, decimal_places=4)
    # QUOTE_TTL_SECONDS: how long a quote can be ordered against.
    quote_ttl_seconds: int = Field(default=900, ge=30, le=86_400)
    # QUOTE_RETENTION_SECONDS: a stored quote is deleted this long after it expires, by a
    # job every QUOTE_PRUNE_INTERVAL_SECONDS in each process (they share the work).
    quote_retention_seconds: int = Field(default=86_400, ge=0, le=31_536_000)
    quote_prune_interval_seconds: float = Field(default=300.0, gt=0, le=86_400)
    quote_prune_batch_size: int = Field(default=1000, ge=1, le=10_000)
    # When true, a depot farther than its service radius cannot be quoted (409).
    enforce_service_radius: bool = False

    # COMPARE_CACHE_SECONDS: compare answers may be this stale; orders re-check and re-quote.
    compare_cache_seconds: int = Field(default=10, ge=0, le=300)
    # Upper bound on depots one compare looks at (pages of inventory's nearby list).
    compare_max_depots: int = Field(default=100, ge=1, le=500)
    # Page size asked of inventory's nearby list (which allows at most 100).
    compare_nearby_page_size: int = Field(default=100, ge=1, le=100)

    inventory_service_url: str = FLEET["inventory-service"].local_url
    location_service_url: str = FLEET["location-service"].local_url

    @model_validator(mode="after")
    def _needs_database_and_key(self) -> Settings:
        # Without them every request would fail later and less clearly.
        required = {"DATABASE_URL": self.database_url, "SERVICE_KEY": self.service_key}
        missing = [name for name, value in required.items() if value is None]
        if missing:
            raise ValueError(f"pricing-service needs {', '.join(missing)}")
        return self
