"""SPEC "Verified hospitals and licences" on the real fleet, through the gateway: a hospital
registers with its licence, a platform admin verifies it with an expiry, the licence job
warns its org admin 30 days before and suspends it after expiry, the admin reinstates it.

The licence job runs on a day-long interval in the fleet; the test runs one pass itself
(`user_service.service.licences.run_license_pass`) against the fleet's own database and
Redis, as user-service's own role, with the clock moved: the fleet's relay publishes what
the pass wrote, as it would for the job."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from flow_shared.db import Database, create_engine
from flow_shared.testing.fleet import IsolatedFleet
from flow_shared.testing.polling import eventually
from tests.e2e.conftest import E2E_PASSWORD, login_headers
from user_service.config import Settings
from user_service.service.licences import run_license_pass


class LicenceJob:
    """One pass of user-service's licence job on the fleet, at a chosen moment."""

    def __init__(self, fleet: IsolatedFleet) -> None:
        url = fleet.database_url("users").replace("postgresql://", "postgresql+asyncpg://", 1)
        self.settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            database_url=url,
            redis_url=fleet.redis_url,
            redis_key_prefix=fleet.redis_prefix,
        )
        self.database = Database(
            create_engine(url, schema="users", application_name="e2e-licence-job", pool_size=2)
        )
        self.redis = Redis.from_url(fleet.redis_url)

    async def run_at(self, day: date) -> Any:
        now = datetime.combine(day, time(12), tzinfo=UTC)
        return await run_license_pass(self.database, self.redis, self.settings, now=now)

    async def close(self) -> None:
        await self.database.dispose()
        await self.redis.aclose()


@pytest.fixture
async def licence_job(fleet: IsolatedFleet) -> AsyncIterator[LicenceJob]:
    job = LicenceJob(fleet)
    yield job
    await job.close()


async def _login(gateway: httpx.AsyncClient, email: str) -> httpx.Response:
    return await gateway.post("/api/v1/auth/login", json={"email": email, "password": E2E_PASSWORD})


async def _all_orgs(gateway: httpx.AsyncClient, admin: dict[str, str], **params: str) -> list[str]:
    found: list[str] = []
    page = 1
    while True:
        response = await gateway.get(
            "/api/v1/admin/organizations",
            params={**params, "page": page, "page_size": 100},
            headers=admin,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        found += [item["id"] for item in body["items"]]
        if page * 100 >= body["total"]:
            return found
        page += 1


async def test_a_hospital_is_verified_warned_suspended_on_expiry_and_reinstated(
    gateway: httpx.AsyncClient, accounts: Any, licence_job: LicenceJob
) -> None:
    email = f"licensed-{uuid.uuid4().hex[:10]}@e2e.flow.test"
    registration: dict[str, Any] = {
        "email": email,
        "password": E2E_PASSWORD,
        "full_name": "Licensed Hospital Admin",
        "organization": {"name": f"E2E St. Luke {uuid.uuid4().hex[:6]}", "kind": "hospital"},
    }
    without = await gateway.post("/api/v1/auth/register", json=registration)
    assert without.status_code == 422, without.text
    registration["organization"] |= {"license_number": "HOSP-E2E-1", "oxygen_beds": 80}
    registered = await gateway.post("/api/v1/auth/register", json=registration)
    assert registered.status_code == 201, registered.text
    org = registered.json()["organization"]
    org_id = org["id"]
    assert (org["verified"], org["oxygen_beds"], org["license_expires_on"]) == (False, 80, None)

    admin = await accounts.admin()
    assert org_id in await _all_orgs(gateway, admin, kind="hospital", verified="false")
    assert org_id not in await _all_orgs(gateway, admin, kind="vendor")

    # Verified with a licence valid for 31 more days (a short horizon: the pass below
    # suspends every licence of the fleet expiring before its clock).
    expires = datetime.now(UTC).date() + timedelta(days=31)
    verified = await gateway.post(
        f"/api/v1/admin/organizations/{org_id}/verify",
        json={"license_expires_on": expires.isoformat()},
        headers=admin,
    )
    assert verified.status_code == 200, verified.text
    assert verified.json()["license_expires_on"] == expires.isoformat()
    hospital = await login_headers(gateway, email)
    mine = await gateway.get(f"/api/v1/organizations/{org_id}", headers=hospital)
    assert mine.json()["verified"] is True
    assert mine.json()["license_expires_on"] == expires.isoformat()

    # 30 days before expiry: the org admin is warned, once.
    await licence_job.run_at(expires - timedelta(days=30))
    await licence_job.run_at(expires - timedelta(days=29))

    async def warnings() -> list[dict[str, Any]] | None:
        answer = await gateway.get(
            "/api/v1/notifications", params={"page_size": 100}, headers=hospital
        )
        assert answer.status_code == 200, answer.text
        items = [n for n in answer.json()["items"] if n["type"] == "organization.license_expiring"]
        return items or None

    [warning] = await eventually(warnings, "the org admin warned of the licence expiry")
    assert warning["data"]["days_left"] == 30
    assert warning["data"]["license_expires_on"] == expires.isoformat()

    # The day after the last valid day: suspended; the hospital's users are refused.
    await licence_job.run_at(expires + timedelta(days=1))
    assert (await gateway.get("/api/v1/users/me", headers=hospital)).status_code == 401
    refused = await _login(gateway, email)
    assert refused.status_code == 403
    assert refused.json()["type"].endswith("organization-suspended")
    assert org_id in await _all_orgs(gateway, admin, kind="hospital", suspended="true")

    # A platform admin reinstates it: its users log in and act again.
    reinstated = await gateway.post(
        f"/api/v1/admin/organizations/{org_id}/reinstate", headers=admin
    )
    assert reinstated.status_code == 200, reinstated.text
    assert reinstated.json()["suspended"] is False
    again = await login_headers(gateway, email)
    assert (await gateway.get("/api/v1/users/me", headers=again)).status_code == 200

    # Its suspension and reinstatement are in the audit, with the licence job's reason.
    async def audited() -> list[dict[str, Any]] | None:
        answer = await gateway.get("/api/v1/admin/audit", params={"page_size": 100}, headers=admin)
        mine = [
            e
            for e in answer.json()["items"]
            if e["data"].get("org_id") == org_id
            and e["type"] in ("organization.suspended", "organization.reinstated")
        ]
        return mine if len(mine) == 2 else None

    events = {e["type"]: e for e in await eventually(audited, "the audit of both moves")}
    assert events["organization.suspended"]["data"]["reason"] == "license_expired"
