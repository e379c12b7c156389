"""admin-service configuration: the shared settings plus where the other services live."""

from __future__ import annotations

from pydantic import Field, model_validator

from flow_shared.config import UpstreamCallerSettings
from flow_shared.fleet_table import FLEET, FleetUrlSettings

SERVICE_NAME = "admin-service"


class Settings(FleetUrlSettings, UpstreamCallerSettings):
    service_name: str = SERVICE_NAME
    db_schema: str | None = "admin"

    # USER_SERVICE_URL: admin actions on organisations go through user-service's /internal API;
    # unset, the user-service of this machine.
    user_service_url: str = FLEET["user-service"].local_url

    # Above a service's own 2 s readiness checks, so a slow check shows as "failing"
    # (with the check named) rather than as "unreachable".
    health_check_timeout_seconds: float = Field(default=3.0, gt=0, le=30)

    # SHORTAGE_EXPIRY_INTERVAL_SECONDS: how often a shortage whose ends_at has passed is
    # ended (shortage.ended with ended_by null). Declaring a shortage also needs
    # LOCATION_SERVICE_URL and INVENTORY_SERVICE_URL (who is inside its area).
    shortage_expiry_interval_seconds: float = Field(default=60.0, gt=0)

    def fleet_urls(self) -> dict[str, str | None]:
        """Every other service's base URL by name, in services.toml's order, for GET
        /api/v1/admin/health: its <SERVICE>_URL (FleetUrlSettings; flowctl sets them all),
        None when it is not configured."""
        # An empty variable (`ORDER_SERVICE_URL=`) means unset, not "call the empty URL".
        return {
            name: getattr(self, spec.url_field) or None
            for name, spec in FLEET.items()
            if name != SERVICE_NAME
        }

    @model_validator(mode="after")
    def _needs_database_and_key(self) -> Settings:
        # Without them every admin request would fail later and less clearly.
        required = {"DATABASE_URL": self.database_url, "SERVICE_KEY": self.service_key}
        missing = [name for name, value in required.items() if value is None]
        if missing:
            raise ValueError(f"admin-service needs {', '.join(missing)}")
        return self
