"""SPEC Identity: the first platform admin comes from BOOTSTRAP_ADMIN_* at start-up
(once, even with concurrent starts) or from the documented command."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import jwt
import pydantic
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from user_service.main import create_app


async def _count(users_db: AsyncEngine, sql: str, **params: Any) -> int:
    async with users_db.connect() as conn:
        return int(await conn.scalar(text(sql), params) or 0)


async def test_bootstrap_admin_is_created_once(
    make_settings: Any, accounts: Any, users_db: AsyncEngine
) -> None:
    email = accounts.unique_email("root")
    settings = make_settings(
        bootstrap_admin_email=email, bootstrap_admin_password=accounts.password
    )
    for _ in range(2):
        async with accounts.serve(create_app(settings)) as http:
            tokens = await accounts.login(http, email, accounts.password)
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert (claims["org_kind"], claims["role"]) == ("platform", "platform_admin")
    assert await _count(users_db, "SELECT count(*) FROM users WHERE email = :e", e=email) == 1
    assert await _count(users_db, "SELECT count(*) FROM organizations WHERE kind = 'platform'") == 1
    platform_name = await _count(
        users_db,
        "SELECT count(*) FROM organizations WHERE kind = 'platform' AND name = 'Flow Platform' "
        "AND verified",
    )
    assert platform_name == 1
    events = await _count(
        users_db,
        "SELECT count(*) FROM outbox WHERE event_type = 'user.registered' "
        "AND payload->'data'->>'email' = :e",
        e=email,
    )
    assert events == 1


async def test_concurrent_starts_create_one_admin(
    make_settings: Any, accounts: Any, users_db: AsyncEngine
) -> None:
    email = accounts.unique_email("race")
    settings = make_settings(
        bootstrap_admin_email=email, bootstrap_admin_password=accounts.password
    )

    async def start() -> None:
        async with accounts.serve(create_app(settings)):
            pass

    await asyncio.gather(*(start() for _ in range(3)))
    assert await _count(users_db, "SELECT count(*) FROM users WHERE email = :e", e=email) == 1
    assert await _count(users_db, "SELECT count(*) FROM organizations WHERE kind = 'platform'") == 1


def test_bootstrap_settings_are_checked_at_start_up(make_settings: Any) -> None:
    with pytest.raises(pydantic.ValidationError, match="BOOTSTRAP_ADMIN_PASSWORD"):
        make_settings(bootstrap_admin_email="root@example.org")
    with pytest.raises(pydantic.ValidationError, match="at least 12"):
        make_settings(bootstrap_admin_email="root@example.org", bootstrap_admin_password="short")


async def test_bootstrap_command(
    make_settings: Any, accounts: Any, users_db: AsyncEngine, infra: Any
) -> None:
    email = accounts.unique_email("cli")
    env = {
        **os.environ,
        "DATABASE_URL": infra.database_url("users"),
        "BOOTSTRAP_ADMIN_PASSWORD": accounts.password,
        "ARGON2_TIME_COST": "1",
        "ARGON2_MEMORY_COST": "1024",
        "ARGON2_PARALLELISM": "1",
    }
    command = [sys.executable, "-m", "user_service.bootstrap", "--email", email]

    def run(extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, env={**env, **(extra_env or {})}, capture_output=True, text=True, timeout=60
        )

    first = await asyncio.to_thread(run)
    assert first.returncode == 0, first.stderr
    assert "created" in first.stdout
    second = await asyncio.to_thread(run)
    assert second.returncode == 0, second.stderr
    assert "already exists" in second.stdout
    too_short = await asyncio.to_thread(run, {"BOOTSTRAP_ADMIN_PASSWORD": "short"})
    assert too_short.returncode != 0

    assert await _count(users_db, "SELECT count(*) FROM users WHERE email = :e", e=email) == 1
    async with accounts.serve(create_app(make_settings())) as http:
        tokens = await accounts.login(http, email, accounts.password)
    assert jwt.decode(tokens["access_token"], options={"verify_signature": False})["role"] == (
        "platform_admin"
    )
