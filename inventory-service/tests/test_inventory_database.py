"""inventory-service's schema: the migrations create exactly what the models declare
(so a column or index added on one side only, like stock's copies of its depot's
vendor and location and their GiST index, shows up here)."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from flow_shared.testing.infra import TestInfra
from inventory_service.models import Base


async def test_migrations_create_exactly_what_the_models_declare(infra: TestInfra) -> None:
    def diff(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "include_schemas": True,
                "include_name": lambda name, kind, _parent: (
                    name == "inventory" if kind == "schema" else name != "alembic_version"
                ),
            },
        )
        return list(compare_metadata(context, Base.metadata))

    # With "inventory" first on the search_path reflection drops the schema from foreign
    # keys; with only "public" both sides are schema-qualified.
    engine = create_async_engine(
        infra.database_url("inventory"), connect_args={"server_settings": {"search_path": "public"}}
    )
    try:
        async with engine.connect() as conn:
            differences = await conn.run_sync(diff)
    finally:
        await engine.dispose()

    assert differences == []
