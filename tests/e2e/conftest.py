"""The end-to-end tier: the real fleet, started by scripts/flowctl.py exactly as
`make up` starts it, on its own ports, database, Redis prefix and AMQP vhost.
Tests talk only to the gateway (plus a few deliberate probes of a service's port)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from flow_shared.provisioning import drop_database
from flow_shared.testing.infra import create_vhost, delete_vhost, repo_root

PORT_OFFSET = int(os.environ.get("FLOW_E2E_PORT_OFFSET", "20000"))


@dataclass(frozen=True)
class RunningFleet:
    gateway: str
    user_service: str
    admin_service: str
    log_dir: Path
    keys_dir: Path
    amqp_url: str
    redis_prefix: str
    admin_email: str
    admin_password: str
    env_file: Path
    port_offset: int = PORT_OFFSET

    def flowctl(self, *args: str) -> None:
        subprocess.run(
            [
                sys.executable,
                str(repo_root() / "scripts" / "flowctl.py"),
                *args,
                "--env-file",
                str(self.env_file),
                "--port-offset",
                str(PORT_OFFSET),
            ],
            check=True,
            cwd=repo_root(),
        )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e" in str(item.path):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningFleet]:
    root = repo_root()
    work = tmp_path_factory.mktemp("fleet")
    suffix = uuid.uuid4().hex[:8]
    vhost = f"flow-e2e-{suffix}"
    create_vhost(vhost)
    amqp_url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    admin_password = "e2e-admin-" + secrets.token_urlsafe(12)
    overrides = {
        "ENVIRONMENT": "test",
        "POSTGRES_DB": f"flow_e2e_{suffix}",
        "AMQP_URL": amqp_url,
        "REDIS_KEY_PREFIX": f"flowe2e:{suffix}:",
        "JWT_KEYS_DIR": str(work / "keys"),
        "FLOW_RUN_DIR": str(work / "run"),
        "FLOW_LOG_DIR": str(work / "log"),
        "BOOTSTRAP_ADMIN_EMAIL": "admin@flow.local",
        "BOOTSTRAP_ADMIN_PASSWORD": admin_password,
        # Two inventory processes, so the no-oversell test races across processes.
        "WEB_CONCURRENCY_INVENTORY": "2",
        # Every test reaches the gateway from 127.0.0.1: give login and register room;
        # auth-token keeps its default so the limit itself is tested.
        "RATE_LIMITS": json.dumps(
            {
                name: {
                    "per": "ip",
                    "path_prefix": path,
                    "methods": ["POST"],
                    "requests": 300,
                    "per_seconds": 60,
                    "fail_closed": True,
                }
                for name, path in (
                    ("auth-login", "/api/v1/auth/login"),
                    ("auth-register", "/api/v1/auth/register"),
                )
            }
        ),
    }
    lines = []
    for raw in (root / ".env.example").read_text().splitlines():
        key = raw.partition("=")[0].strip()
        if key in overrides:
            continue
        lines.append(raw)
    lines += [f"{k}={v}" for k, v in overrides.items()]
    env_file = work / "e2e.env"
    env_file.write_text("\n".join(lines) + "\n")

    running = RunningFleet(
        gateway=f"http://127.0.0.1:{8000 + PORT_OFFSET}",
        user_service=f"http://127.0.0.1:{8001 + PORT_OFFSET}",
        admin_service=f"http://127.0.0.1:{8011 + PORT_OFFSET}",
        log_dir=work / "log",
        keys_dir=work / "keys",
        amqp_url=amqp_url,
        redis_prefix=overrides["REDIS_KEY_PREFIX"],
        admin_email="admin@flow.local",
        admin_password=admin_password,
        env_file=env_file,
    )
    try:
        running.flowctl("up")
        yield running
    finally:
        running.flowctl("down")
        for log in sorted((work / "log").glob("*.log")):
            # Keep the evidence of a failed run in the CI output.
            if os.environ.get("CI"):
                print(f"--- tail of {log.name} ---")
                print("\n".join(log.read_text(errors="replace").splitlines()[-30:]))
        delete_vhost(vhost)
        asyncio.run(
            drop_database("postgresql://postgres@127.0.0.1:5432/postgres", overrides["POSTGRES_DB"])
        )


@pytest.fixture
async def gateway(fleet: RunningFleet) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fleet.gateway, timeout=15) as client:
        yield client


E2E_PASSWORD = "correct horse battery staple"


@dataclass
class Account:
    email: str
    user_id: str
    org_id: str
    headers: dict[str, str]


class Accounts:
    """Creates users through the gateway, as a client would."""

    def __init__(self, gateway: httpx.AsyncClient, fleet: RunningFleet) -> None:
        self.gateway = gateway
        self.fleet = fleet

    async def login(self, email: str, password: str = E2E_PASSWORD) -> dict[str, str]:
        response = await self.gateway.post(
            "/api/v1/auth/login", json={"email": email, "password": password}
        )
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    async def register(self, kind: str) -> Account:
        email = f"{kind}-{uuid.uuid4().hex[:10]}@e2e.flow.test"
        response = await self.gateway.post(
            "/api/v1/auth/register",
            json={
                "email": email,
                "password": E2E_PASSWORD,
                "full_name": f"E2E {kind}",
                "organization": {
                    "name": f"E2E {kind} {uuid.uuid4().hex[:6]}",
                    "kind": kind,
                    "license_number": "LIC-42" if kind == "vendor" else None,
                },
            },
        )
        assert response.status_code == 201, response.text
        body = response.json()
        return Account(
            email, body["user"]["id"], body["organization"]["id"], await self.login(email)
        )

    async def admin(self) -> dict[str, str]:
        return await self.login(self.fleet.admin_email, self.fleet.admin_password)

    async def verified_vendor(self) -> Account:
        vendor = await self.register("vendor")
        verified = await self.gateway.post(
            f"/api/v1/admin/vendors/{vendor.org_id}/verify", headers=await self.admin()
        )
        assert verified.status_code == 200, verified.text
        return vendor


@pytest.fixture
def accounts(gateway: httpx.AsyncClient, fleet: RunningFleet) -> Accounts:
    return Accounts(gateway, fleet)
