"""/health/live says the process runs; /health/ready runs named checks and names a failing one."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
from fastapi import FastAPI

from flow_shared import health

if TYPE_CHECKING:
    from conftest import ShowcaseClientFactory

    from flow_shared.testing.infra import TestInfra

UNREACHABLE_DATABASE = "postgresql+asyncpg://flow_admin:pg-s3cret@127.0.0.1:1/flow"


async def failing_check() -> None:
    raise ConnectionError("payments provider at https://user:pw@pay.test is down")


async def add_failing_critical_check(app: FastAPI) -> None:
    app.state.health.add("payments", failing_check)


async def add_failing_optional_check(app: FastAPI) -> None:
    app.state.health.add("broker", failing_check, critical=False)


async def test_live_answers_while_the_process_runs(
    showcase_client_for: ShowcaseClientFactory,
) -> None:
    # Liveness does not depend on dependencies: a dead Redis does not restart the process.
    async with showcase_client_for(redis_url="redis://127.0.0.1:1/0") as client:
        response = await client.get("/health/live")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_checks_redis_and_the_database(
    showcase_client_for: ShowcaseClientFactory, infra: TestInfra
) -> None:
    async with showcase_client_for(database_url=infra.database_url("admin")) as client:
        response = await client.get("/health/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"redis": "ok", "database": "ok"}}


async def test_unreachable_database_makes_ready_503_naming_database(
    showcase_client_for: ShowcaseClientFactory,
) -> None:
    async with showcase_client_for(database_url=UNREACHABLE_DATABASE) as client:
        response = await client.get("/health/ready")

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["failing"] == ["database"]
    assert body["checks"] == {"redis": "ok", "database": "failing"}
    assert "database" in body["detail"]
    assert "pg-s3cret" not in response.text


async def test_unreachable_redis_makes_ready_503_naming_redis(
    showcase_client_for: ShowcaseClientFactory,
) -> None:
    async with showcase_client_for(redis_url="redis://127.0.0.1:1/0") as client:
        response = await client.get("/health/ready")

    assert response.status_code == 503
    assert response.json()["failing"] == ["redis"]


async def test_a_failing_critical_check_is_named_and_its_error_not_shown(
    showcase_client_for: ShowcaseClientFactory,
) -> None:
    async with showcase_client_for(on_startup=[add_failing_critical_check]) as client:
        response = await client.get("/health/ready")

    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["payments"]
    assert body["detail"] == "failing checks: payments"
    assert "pay.test" not in response.text


async def test_a_failing_non_critical_check_degrades_without_503(
    showcase_client_for: ShowcaseClientFactory,
) -> None:
    async with showcase_client_for(on_startup=[add_failing_optional_check]) as client:
        response = await client.get("/health/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "degraded", "checks": {"redis": "ok", "broker": "failing"}}


async def test_a_hanging_check_counts_as_failing_instead_of_hanging_ready(
    showcase_client_for: ShowcaseClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health, "CHECK_TIMEOUT_SECONDS", 0.2)

    async def hangs() -> None:
        await asyncio.Event().wait()

    async def add_hanging_check(app: FastAPI) -> None:
        app.state.health.add("search-index", hangs)

    async with showcase_client_for(on_startup=[add_hanging_check]) as client:
        response = await client.get("/health/ready")

    assert response.status_code == 503
    assert response.json()["failing"] == ["search-index"]
