"""review-service configuration: the shared settings; reviews need only the database,
Redis (token revocation) and the broker (order.delivered in, review.created out)."""

from __future__ import annotations

from pydantic import model_validator

from flow_shared.config import BaseServiceSettings


class Settings(BaseServiceSettings):
    service_name: str = "review-service"
    db_schema: str | None = "reviews"

    @model_validator(mode="after")
    def _needs_database(self) -> Settings:
        # Without it every request and every event would fail later and less clearly.
        if self.database_url is None:
            raise ValueError("review-service needs DATABASE_URL")
        return self
