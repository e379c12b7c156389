"""Data isolation (the users role cannot touch another schema) and readiness."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import create_async_engine

from flow_shared.testing.ports import free_port
from user_service.main import create_app


async def test_users_role_cannot_reach_the_admin_schema(infra: Any) -> None:
    engine = create_async_engine(infra.database_url("users"))
    try:
        async with engine.connect() as conn:
            exists = await conn.scalar(
                text("SELECT count(*) FROM pg_namespace WHERE nspname = 'admin'")
            )
            assert exists == 1  # provisioned, whether or not admin-service has tables yet
        for statement in (
            "SELECT * FROM admin.alembic_version",
            "CREATE TABLE admin.intruder (id int)",
        ):
            async with engine.connect() as conn:
                with pytest.raises(ProgrammingError, match="permission denied for schema admin"):
                    await conn.execute(text(statement))
        async with engine.connect() as conn:
            with pytest.raises(ProgrammingError, match="permission denied for schema public"):
                await conn.execute(text("CREATE TABLE public.intruder (id int)"))
    finally:
        await engine.dispose()


async def test_admin_role_cannot_read_users(infra: Any) -> None:
    engine = create_async_engine(infra.database_url("admin"))
    try:
        async with engine.connect() as conn:
            with pytest.raises(ProgrammingError, match="permission denied for schema users"):
                await conn.execute(text("SELECT email, password_hash FROM users.users"))
    finally:
        await engine.dispose()


async def test_ready_when_dependencies_answer(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200, response.text
    assert response.json()["checks"]["database"] == "ok"
    assert response.json()["checks"]["redis"] == "ok"


async def test_ready_is_503_naming_the_database_when_it_is_unreachable(
    make_settings: Any, accounts: Any, infra: Any
) -> None:
    unreachable = f"postgresql+asyncpg://flow_users:x@127.0.0.1:{free_port()}/{infra.database}"
    settings = make_settings(
        database_url=unreachable,
        bootstrap_admin_email=accounts.unique_email("later"),
        bootstrap_admin_password=accounts.password,
    )
    # The service still starts (start-up work is retried in the background)...
    async with accounts.serve(create_app(settings)) as http:
        assert (await http.get("/health/live")).status_code == 200
        ready = await http.get("/health/ready")
    # ...and says plainly what is missing.
    assert ready.status_code == 503
    assert ready.headers["content-type"].startswith("application/problem+json")
    assert ready.json()["failing"] == ["database"]
    assert "database" in ready.json()["detail"]
