"""review-service's schema: the migrations create exactly what the models declare."""

from __future__ import annotations

from flow_shared.testing.infra import TestInfra, schema_drift
from review_service.models import Base


async def test_migrations_create_exactly_what_the_models_declare(infra: TestInfra) -> None:
    assert await schema_drift(infra, "reviews", Base.metadata) == []
