"""No oversell with real concurrency across two inventory-service processes: 60
concurrent one-unit reservations against stock 20, split over two uvicorn processes
on the same database, hold exactly 20; the books balance after release and commit."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flow_shared.config import join_caller_keys
from flow_shared.testing.infra import TestInfra
from flow_shared.testing.ports import free_port

PROCESSES = 2


def _environment(infra: TestInfra) -> dict[str, str]:
    settings = infra.settings_kwargs("inventory-service")
    env = dict(os.environ)
    env.update(
        {
            "ENVIRONMENT": "test",
            "LOG_LEVEL": "WARNING",
            "DATABASE_URL": settings["database_url"],
            "DB_SCHEMA": settings["db_schema"],
            "DB_POOL_SIZE": "5",
            "DB_MAX_OVERFLOW": "5",
            "REDIS_URL": settings["redis_url"],
            "REDIS_KEY_PREFIX": settings["redis_key_prefix"],
            "AMQP_URL": settings["amqp_url"],
            "SERVICE_KEY": settings["service_key"],
            "TRUSTED_SERVICE_KEYS": join_caller_keys(settings["trusted_service_keys"]),
            # Only /internal routes are called: no token is ever verified.
            "JWKS_URL": "http://127.0.0.1:9/.well-known/jwks.json",
            "RESERVATION_SWEEP_INTERVAL_SECONDS": "3600",
        }
    )
    return env


async def _wait_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(timeout=2) as http:
        while True:
            if process.poll() is not None:
                pytest.fail(f"inventory-service exited early:\n{log.read_text()[-3000:]}")
            try:
                if (await http.get(url + "/health/ready")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"inventory-service never became ready:\n{log.read_text()[-3000:]}")
            await asyncio.sleep(0.2)


@pytest.fixture
async def inventory_processes(infra: TestInfra, tmp_path: Path) -> AsyncIterator[list[str]]:
    """Base URLs of two real uvicorn processes of inventory-service."""
    env = _environment(infra)
    started: list[tuple[subprocess.Popen[bytes], str, Path]] = []
    try:
        for index in range(PROCESSES):
            port = free_port()
            log = tmp_path / f"inventory-{index}.log"
            with log.open("wb") as output:
                process = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "uvicorn",
                        "--factory",
                        "inventory_service.main:create_app",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--log-level",
                        "warning",
                    ],
                    env=env,
                    cwd=tmp_path,  # no stray .env is read
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            started.append((process, f"http://127.0.0.1:{port}", log))
        for process, url, log in started:
            await _wait_ready(process, url, log)
        yield [url for _, url, _ in started]
    finally:
        for process, _, _ in started:
            process.terminate()
        for process, _, _ in started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def test_no_oversell_across_two_processes(
    inventory_processes: list[str], inv: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    product = product_ids["O2-CYL-46.7L"]
    vendor = await inv.vendor()
    depot = await inv.depot(vendor)
    initial = 20
    await inv.set_stock(vendor, depot, product, initial)

    async with httpx.AsyncClient(timeout=60, headers=inv.internal_headers) as http:

        async def reserve(index: int) -> httpx.Response:
            url = inventory_processes[index % PROCESSES] + "/internal/reservations"
            return await http.post(url, json=inv.reservation_body(depot, [(product, 1)]))

        answers = await asyncio.gather(*(reserve(i) for i in range(60)))
        statuses = [r.status_code for r in answers]
        assert statuses.count(201) == 20, sorted(set(statuses))
        assert statuses.count(409) == 40
        for refused in (r for r in answers if r.status_code == 409):
            assert refused.json()["short_items"] == [
                {"product_id": str(product), "requested": 1, "available": 0}
            ]
        assert await inv.stock_row(depot, product) == (initial, 20)

        held = [r.json()["reservation_id"] for r in answers if r.status_code == 201]
        to_release, to_commit = held[:5], held[5:]

        async def act(index: int, reservation_id: str, action: str) -> httpx.Response:
            url = inventory_processes[index % PROCESSES]
            return await http.post(f"{url}/internal/reservations/{reservation_id}/{action}")

        outcomes = await asyncio.gather(
            *(act(i, rid, "release") for i, rid in enumerate(to_release)),
            *(act(i, rid, "commit") for i, rid in enumerate(to_commit)),
        )
    assert [o.status_code for o in outcomes] == [200] * 20
    assert [o.json()["status"] for o in outcomes] == ["released"] * 5 + ["committed"] * 15
    assert await inv.stock_row(depot, product) == (initial - 15, 0)
