"""admin-service's schema: migrations match the models, and its role stays inside "admin"."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from admin_service.models import Base


async def test_admin_role_cannot_read_the_users_schema(admin_engine: AsyncEngine) -> None:
    async with admin_engine.connect() as conn:
        with pytest.raises(DBAPIError, match="permission denied"):
            await conn.execute(text("SELECT count(*) FROM users.users"))


async def test_admin_role_reads_its_own_schema(admin_engine: AsyncEngine) -> None:
    async with admin_engine.connect() as conn:
        count = await conn.scalar(text("SELECT count(*) FROM admin.admin_actions"))
    assert count is not None


async def test_migrations_create_exactly_what_the_models_declare(
    admin_engine: AsyncEngine,
) -> None:
    def diff(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                # PostGIS's table in public is visible through the search path but is not ours.
                "include_name": lambda name, kind, _parent: (
                    (kind, name) != ("table", "spatial_ref_sys")
                ),
            },
        )
        return list(compare_metadata(context, Base.metadata))

    async with admin_engine.connect() as conn:
        differences = await conn.run_sync(diff)

    assert differences == []


async def test_the_audit_table_refuses_unknown_actions(admin_engine: AsyncEngine) -> None:
    async with admin_engine.connect() as conn:
        with pytest.raises(DBAPIError, match="ck_admin_actions_action"):
            await conn.execute(
                text(
                    "INSERT INTO admin.admin_actions (id, actor_id, action, org_id) "
                    "VALUES (gen_random_uuid(), gen_random_uuid(), 'delete', gen_random_uuid())"
                )
            )
        await conn.rollback()
