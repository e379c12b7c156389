"""inventory-service's schema: the migrations create exactly what the models declare
(so a column or index added on one side only, like stock's copies of its depot's
vendor and location and their GiST index, shows up here)."""

from __future__ import annotations

from flow_shared.testing.infra import TestInfra, schema_drift
from inventory_service.models import Base


async def test_migrations_create_exactly_what_the_models_declare(infra: TestInfra) -> None:
    assert await schema_drift(infra, "inventory", Base.metadata) == []
