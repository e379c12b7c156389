"""notification-service's schema: the migrations create exactly what the models declare
(the webhook signing secrets' table and its one-current-secret index included)."""

from __future__ import annotations

from flow_shared.testing.infra import TestInfra, schema_drift
from notification_service.models import Base


async def test_migrations_create_exactly_what_the_models_declare(infra: TestInfra) -> None:
    assert await schema_drift(infra, "notifications", Base.metadata) == []
