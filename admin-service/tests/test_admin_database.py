"""admin-service's schema: migrations match the models, and its role stays inside "admin"."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from admin_service.models import Base
from flow_shared.testing.infra import TestInfra, schema_drift


async def test_admin_role_cannot_read_the_users_schema(admin_engine: AsyncEngine) -> None:
    async with admin_engine.connect() as conn:
        with pytest.raises(DBAPIError, match="permission denied"):
            await conn.execute(text("SELECT count(*) FROM users.users"))


async def test_admin_role_reads_its_own_schema(admin_engine: AsyncEngine) -> None:
    async with admin_engine.connect() as conn:
        count = await conn.scalar(text("SELECT count(*) FROM admin.admin_actions"))
    assert count is not None


async def test_migrations_create_exactly_what_the_models_declare(infra: TestInfra) -> None:
    assert await schema_drift(infra, "admin", Base.metadata) == []


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
