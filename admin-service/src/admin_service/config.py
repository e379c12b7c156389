"""admin-service configuration: the shared settings plus where the other services live."""

from __future__ import annotations

from pydantic import Field, model_validator

from flow_shared.config import BaseServiceSettings


class Settings(BaseServiceSettings):
    service_name: str = "admin-service"
    db_schema: str | None = "admin"

    # USER_SERVICE_URL: admin actions on organisations go through user-service's /internal API.
    user_service_url: str = "http://127.0.0.1:8001"
    user_service_connect_timeout_seconds: float = 1.0
    user_service_read_timeout_seconds: float = 5.0
    user_service_attempts: int = 3

    # <SERVICE>_URL of every other service, for GET /api/v1/admin/health (flowctl sets
    # them all; one left unset is reported as "not configured").
    api_gateway_url: str | None = None
    location_service_url: str | None = None
    inventory_service_url: str | None = None
    order_service_url: str | None = None
    pricing_service_url: str | None = None
    payment_service_url: str | None = None
    review_service_url: str | None = None
    notification_service_url: str | None = None
    # Above a service's own 2 s readiness checks, so a slow check shows as "failing"
    # (with the check named) rather than as "unreachable".
    health_check_timeout_seconds: float = Field(default=3.0, gt=0, le=30)

    # SHORTAGE_EXPIRY_INTERVAL_SECONDS: how often a shortage whose ends_at has passed is
    # ended (shortage.ended with ended_by null). Declaring a shortage also needs
    # LOCATION_SERVICE_URL and INVENTORY_SERVICE_URL (who is inside its area).
    shortage_expiry_interval_seconds: float = Field(default=60.0, gt=0)

    def fleet_urls(self) -> dict[str, str | None]:
        """Every other service's base URL by name; None when it is not configured."""
        urls = {
            "api-gateway": self.api_gateway_url,
            "user-service": self.user_service_url,
            "location-service": self.location_service_url,
            "inventory-service": self.inventory_service_url,
            "order-service": self.order_service_url,
            "pricing-service": self.pricing_service_url,
            "payment-service": self.payment_service_url,
            "review-service": self.review_service_url,
            "notification-service": self.notification_service_url,
        }
        # An empty variable (`ORDER_SERVICE_URL=`) means unset, not "call the empty URL".
        return {name: url or None for name, url in urls.items()}

    @model_validator(mode="after")
    def _needs_database_and_key(self) -> Settings:
        # Without them every admin request would fail later and less clearly.
        required = {"DATABASE_URL": self.database_url, "SERVICE_KEY": self.service_key}
        missing = [name for name, value in required.items() if value is None]
        if missing:
            raise ValueError(f"admin-service needs {', '.join(missing)}")
        return self
