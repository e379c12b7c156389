"""SPEC "Verified hospitals and licences", user-service's part: hospitals register with a
licence number and start unverified; admin-service lists, verifies (with a licence
expiry), suspends and reinstates organisations through /internal; the licence job warns
30 and 7 days before expiry, once each, and suspends after it, on a clock the tests move."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from flow_shared.auth import suspended_org_key
from flow_shared.testing.outbox import outbox_events
from user_service.errors import LicenseExpired
from user_service.main import create_app
from user_service.service.licences import run_license_pass
from user_service.service.suspension import reinstate_organization

ORGS = "/internal/organizations"


def _today() -> date:
    return datetime.now(UTC).date()


def _at(day: date) -> datetime:
    """Noon UTC of `day`: the controlled clock of a licence pass."""
    return datetime.combine(day, time(12), tzinfo=UTC)


def _registration(kind: str, **organization: Any) -> dict[str, Any]:
    return {
        "email": f"{kind}-{uuid.uuid4().hex[:12]}@example.org",
        "password": "correct horse battery staple",
        "full_name": "Test Person",
        "organization": {"name": f"{kind} {uuid.uuid4().hex[:6]}", "kind": kind, **organization},
    }


@pytest.fixture
def app(make_settings: Any, mailbox: Any) -> FastAPI:
    """The app; served by `http`, whose lifespan gives it its database and Redis."""
    return create_app(make_settings(), notification_transport=mailbox.transport)


@pytest.fixture
async def http(app: FastAPI, accounts: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with accounts.serve(app) as client:
        yield client


async def _verify(
    http: httpx.AsyncClient, accounts: Any, org_id: str, expires: date, **params: str
) -> httpx.Response:
    return await http.post(
        f"{ORGS}/{org_id}/verify",
        headers=accounts.internal_headers,
        params=params,
        json={"actor_id": str(uuid.uuid4()), "license_expires_on": expires.isoformat()},
    )


async def _pass(app: FastAPI, now: datetime) -> Any:
    return await run_license_pass(app.state.database, app.state.redis, app.state.settings, now=now)


# --- registration --------------------------------------------------------------------------


async def test_hospitals_register_with_a_licence_and_start_unverified(
    client: httpx.AsyncClient,
) -> None:
    without = await client.post("/api/v1/auth/register", json=_registration("hospital"))
    assert without.status_code == 422
    assert without.headers["content-type"].startswith("application/problem+json")
    for beds in (-1, 100_001, "many"):
        bad_beds = await client.post(
            "/api/v1/auth/register",
            json=_registration("hospital", license_number="H-9", oxygen_beds=beds),
        )
        assert bad_beds.status_code == 422, beds

    created = await client.post(
        "/api/v1/auth/register",
        json=_registration("hospital", license_number="HOSP-77", oxygen_beds=120),
    )
    assert created.status_code == 201, created.text
    org = created.json()["organization"]
    assert org["verified"] is False
    assert org["verified_at"] is None
    assert org["license_number"] == "HOSP-77"
    assert org["oxygen_beds"] == 120
    assert org["license_expires_on"] is None

    # Vendors keep their rule: a licence number is optional, and they have no beds.
    vendor = await client.post("/api/v1/auth/register", json=_registration("vendor"))
    assert vendor.status_code == 201
    assert vendor.json()["organization"]["verified"] is False
    beds = await client.post("/api/v1/auth/register", json=_registration("vendor", oxygen_beds=3))
    assert beds.status_code == 422


# --- /internal: list, verify, suspend, reinstate ---------------------------------------------


async def test_list_organizations_by_kind_verified_and_suspended(
    http: httpx.AsyncClient, accounts: Any
) -> None:
    hospital = await accounts.register(http, log_in=False)
    vendor = await accounts.register(http, kind="vendor", log_in=False)
    other = await accounts.register(http, log_in=False)
    suspended = await http.post(
        f"{ORGS}/{other.organization['id']}/suspend",
        headers=accounts.internal_headers,
        json={"actor_id": str(uuid.uuid4()), "reason": "fraud"},
    )
    assert suspended.status_code == 200

    async def ids(**params: str) -> list[str]:
        found: list[str] = []
        page = 1
        while True:
            response = await http.get(
                ORGS,
                headers=accounts.internal_headers,
                params={**params, "page": page, "page_size": 100},
            )
            assert response.status_code == 200, response.text
            body = response.json()
            found += [item["id"] for item in body["items"]]
            if page * 100 >= body["total"]:
                return found
            page += 1

    waiting = await ids(kind="hospital", verified="false", suspended="false")
    assert hospital.organization["id"] in waiting
    assert vendor.organization["id"] not in waiting
    assert other.organization["id"] not in waiting
    assert other.organization["id"] in await ids(kind="hospital", suspended="true")
    everyone = await ids()
    assert {hospital.organization["id"], vendor.organization["id"]} <= set(everyone)

    listed = await http.get(
        ORGS, headers=accounts.internal_headers, params={"kind": "hospital", "page_size": 1}
    )
    item = listed.json()["items"][0]
    assert {"kind", "oxygen_beds", "license_expires_on", "suspension_reason"} <= set(item)
    platform = await http.get(ORGS, headers=accounts.internal_headers, params={"kind": "platform"})
    assert platform.status_code == 422
    assert (await http.get(ORGS, params={"kind": "hospital"})).status_code == 401


async def test_verify_a_hospital_with_a_future_licence_date(
    http: httpx.AsyncClient, accounts: Any, users_db: AsyncEngine
) -> None:
    hospital = await accounts.register(http, log_in=False)
    org_id = hospital.organization["id"]
    for past_or_today in (_today() - timedelta(days=1), _today()):
        refused = await _verify(http, accounts, org_id, past_or_today)
        assert refused.status_code == 422, past_or_today
    missing_actor = await http.post(
        f"{ORGS}/{org_id}/verify",
        headers=accounts.internal_headers,
        json={"license_expires_on": (_today() + timedelta(days=90)).isoformat()},
    )
    assert missing_actor.status_code == 422

    expires = _today() + timedelta(days=365)
    verified = await _verify(http, accounts, org_id, expires)
    assert verified.status_code == 200, verified.text
    body = verified.json()
    assert body["verified"] is True
    assert body["kind"] == "hospital"
    assert body["license_expires_on"] == expires.isoformat()
    again = await _verify(http, accounts, org_id, expires)
    assert again.json() == body
    [event] = await outbox_events(users_db, "organization.verified", org_id=org_id)
    assert event["data"]["kind"] == "hospital"
    assert event["data"]["license_expires_on"] == expires.isoformat()

    # A new date is a renewal: stored and announced again.
    renewed = await _verify(http, accounts, org_id, expires + timedelta(days=365))
    assert renewed.json()["license_expires_on"] == (expires + timedelta(days=365)).isoformat()
    assert len(await outbox_events(users_db, "organization.verified", org_id=org_id)) == 2


async def test_reinstate_undoes_a_suspension(
    http: httpx.AsyncClient, accounts: Any, users_db: AsyncEngine, redis: Redis, infra: Any
) -> None:
    hospital = await accounts.register(http)
    org_id = hospital.organization["id"]
    actor = str(uuid.uuid4())
    not_suspended = await http.post(
        f"{ORGS}/{org_id}/reinstate", headers=accounts.internal_headers, json={"actor_id": actor}
    )
    assert not_suspended.status_code == 200
    assert await outbox_events(users_db, "organization.reinstated", org_id=org_id) == []

    suspended = await http.post(
        f"{ORGS}/{org_id}/suspend",
        headers=accounts.internal_headers,
        json={"actor_id": actor, "reason": "audit"},
    )
    assert suspended.json()["suspension_reason"] == "audit"
    assert (await http.get("/api/v1/users/me", headers=hospital.headers)).status_code == 401
    credentials = {"email": hospital.email, "password": hospital.password}
    assert (await http.post("/api/v1/auth/login", json=credentials)).status_code == 403

    reinstated = await http.post(
        f"{ORGS}/{org_id}/reinstate", headers=accounts.internal_headers, json={"actor_id": actor}
    )
    assert reinstated.status_code == 200, reinstated.text
    assert reinstated.json()["suspended"] is False
    assert reinstated.json()["suspension_reason"] is None
    assert await redis.get(suspended_org_key(infra.redis_prefix, org_id)) is None
    again = await http.post(
        f"{ORGS}/{org_id}/reinstate", headers=accounts.internal_headers, json={"actor_id": actor}
    )
    assert again.status_code == 200
    [event] = await outbox_events(users_db, "organization.reinstated", org_id=org_id)
    assert event["data"]["actor_id"] == actor
    assert event["data"]["kind"] == "hospital"

    # The members log in and act again; the sessions the suspension ended stay ended.
    login = await http.post("/api/v1/auth/login", json=credentials)
    assert login.status_code == 200, login.text
    fresh = accounts.bearer(login.json()["access_token"])
    assert (await http.get("/api/v1/users/me", headers=fresh)).status_code == 200
    assert (await http.get("/api/v1/users/me", headers=hospital.headers)).status_code == 401


# --- the licence job -----------------------------------------------------------------------


async def test_licence_job_warns_at_30_and_7_days_once_then_suspends(
    app: FastAPI, http: httpx.AsyncClient, accounts: Any, users_db: AsyncEngine
) -> None:
    hospital = await accounts.register(http)
    org_id = hospital.organization["id"]
    expires = _today() + timedelta(days=45)
    assert (await _verify(http, accounts, org_id, expires)).status_code == 200

    async def warnings() -> list[int]:
        return [
            e["data"]["days_left"]
            for e in await outbox_events(users_db, "organization.license_expiring", org_id=org_id)
        ]

    await _pass(app, _at(expires - timedelta(days=31)))
    assert await warnings() == []
    for _ in range(2):  # a re-run sends nothing new
        await _pass(app, _at(expires - timedelta(days=30)))
    await _pass(app, _at(expires - timedelta(days=20)))
    assert await warnings() == [30]
    [warning] = await outbox_events(users_db, "organization.license_expiring", org_id=org_id)
    assert warning["data"] == {
        "org_id": org_id,
        "name": hospital.organization["name"],
        "kind": "hospital",
        "license_expires_on": expires.isoformat(),
        "days_left": 30,
    }
    # A restart (a new app on the same database) does not repeat it either.
    async with accounts.serve(create_app(app.state.settings)):
        pass
    await _pass(app, _at(expires - timedelta(days=7)))
    await _pass(app, _at(expires - timedelta(days=1)))
    await _pass(app, _at(expires))
    assert await warnings() == [30, 7]
    assert await outbox_events(users_db, "organization.suspended", org_id=org_id) == []

    # The day after the last valid day: suspended, as an admin would suspend it.
    result = await _pass(app, _at(expires + timedelta(days=1)))
    assert result.suspended >= 1
    [suspension] = await outbox_events(users_db, "organization.suspended", org_id=org_id)
    assert suspension["data"]["reason"] == "license_expired"
    assert suspension["data"]["actor_id"] is None
    assert (await http.get("/api/v1/users/me", headers=hospital.headers)).status_code == 401
    credentials = {"email": hospital.email, "password": hospital.password}
    assert (await http.post("/api/v1/auth/login", json=credentials)).status_code == 403
    await _pass(app, _at(expires + timedelta(days=2)))
    assert len(await outbox_events(users_db, "organization.suspended", org_id=org_id)) == 1

    # Reinstating needs a renewed licence first (on that day's clock); the renewal's
    # warnings start afresh.
    with pytest.raises(LicenseExpired):
        async with app.state.database.sessionmaker() as session, session.begin():
            await reinstate_organization(
                session,
                uuid.UUID(org_id),
                redis=app.state.redis,
                settings=app.state.settings,
                actor_id=uuid.uuid4(),
                today=expires + timedelta(days=2),
            )
    reinstate = f"{ORGS}/{org_id}/reinstate"
    body = {"actor_id": str(uuid.uuid4())}
    renewed_until = _today() + timedelta(days=400)
    assert (await _verify(http, accounts, org_id, renewed_until)).status_code == 200
    assert (
        await http.post(reinstate, headers=accounts.internal_headers, json=body)
    ).status_code == 200
    assert (await http.post("/api/v1/auth/login", json=credentials)).status_code == 200
    await _pass(app, _at(renewed_until - timedelta(days=30)))
    assert await warnings() == [30, 7, 30]


async def test_concurrent_licence_passes_warn_once(
    app: FastAPI, http: httpx.AsyncClient, accounts: Any, users_db: AsyncEngine
) -> None:
    expires = _today() + timedelta(days=500)
    orgs = [await accounts.register(http, log_in=False) for _ in range(5)]
    for org in orgs:
        assert (await _verify(http, accounts, org.organization["id"], expires)).status_code == 200
    # A second process: its own app, database pool and Redis client.
    other = create_app(app.state.settings)
    async with accounts.serve(other):
        await asyncio.gather(
            *(_pass(a, _at(expires - timedelta(days=10))) for a in (app, other, app, other))
        )
    for org in orgs:
        warned = await outbox_events(
            users_db, "organization.license_expiring", org_id=org.organization["id"]
        )
        assert [w["data"]["days_left"] for w in warned] == [10]
        async with users_db.connect() as conn:
            rows = await conn.scalar(
                text("SELECT count(*) FROM license_warnings WHERE org_id = :o"),
                {"o": org.organization["id"]},
            )
        assert rows == 1
