"""admin-service configuration: the shared settings plus where user-service lives."""

from __future__ import annotations

from pydantic import model_validator

from flow_shared.config import BaseServiceSettings


class Settings(BaseServiceSettings):
    service_name: str = "admin-service"
    db_schema: str | None = "admin"

    # USER_SERVICE_URL: admin actions on organisations go through user-service's /internal API.
    user_service_url: str = "http://127.0.0.1:8001"
    user_service_connect_timeout_seconds: float = 1.0
    user_service_read_timeout_seconds: float = 5.0
    user_service_attempts: int = 3

    @model_validator(mode="after")
    def _needs_database_and_key(self) -> Settings:
        # Without them every admin request would fail later and less clearly.
        required = {"DATABASE_URL": self.database_url, "SERVICE_KEY": self.service_key}
        missing = [name for name, value in required.items() if value is None]
        if missing:
            raise ValueError(f"admin-service needs {', '.join(missing)}")
        return self
