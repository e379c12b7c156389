"""Shortage declarations (SPEC, shortage readiness): platform admins declare and end them,
anyone signed in asks which cover a point, an expired one ends by itself once, and the
people inside the area are named in shortage.declared."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from admin_service.shortages import ShortageExpiry
from flow_shared.db import Database
from flow_shared.testing.infra import TestInfra
from flow_shared.testing.tokens import TokenIssuer

if TYPE_CHECKING:
    from conftest import AreaStub, Projection

# Pune, and a point 30 km east of it.
PUNE = {"lat": 18.5204, "lon": 73.8567}
FAR_EAST = {"lat": 18.5204, "lon": 74.1410}


def declaration(**changes: Any) -> dict[str, Any]:
    return {
        "area": {**PUNE, "radius_km": 10},
        "categories": ["oxygen_cylinder", "refill"],
        "note": "Plant outage at the city's main supplier",
        **changes,
    }


async def outbox(engine: AsyncEngine, event_type: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT payload FROM admin.outbox WHERE event_type = :t ORDER BY seq"),
            {"t": event_type},
        )
        return [row[0] for row in rows]


async def test_an_admin_declares_a_shortage_and_everyone_inside_is_named(
    admin_client: httpx.AsyncClient,
    platform_admin: dict[str, str],
    platform_admin_id: uuid.UUID,
    area_members: AreaStub,
    admin_engine: AsyncEngine,
    projection: Projection,
) -> None:
    hospital, vendor = str(uuid.uuid4()), str(uuid.uuid4())
    area_members.hospital_org_ids = [hospital]
    area_members.vendor_ids = [vendor]

    response = await admin_client.post(
        "/api/v1/admin/shortages", json=declaration(), headers=platform_admin
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "active"
    assert body["area"] == {**PUNE, "radius_km": 10}
    assert body["categories"] == ["oxygen_cylinder", "refill"]
    assert body["declared_by"] == str(platform_admin_id)
    assert body["ended_at"] is None
    # Both upstreams were asked about this circle.
    asked = {r.url.path: dict(r.url.params) for r in area_members.requests}
    assert asked["/internal/sites/orgs-within"]["radius_km"] == "10.0"
    assert "/internal/depots/vendors-within" in asked
    [event] = await outbox(admin_engine, "shortage.declared")
    data = event["data"]
    assert data["shortage_id"] == body["id"]
    assert sorted(data["recipient_org_ids"]) == sorted([hospital, vendor])
    assert data["declared_by"] == str(platform_admin_id)
    assert data["ends_at"] is None
    # The audit sees admin-service's own events too.
    assert await projection.audit_row(uuid.UUID(event["id"])) is not None


async def test_declaring_replays_with_the_same_idempotency_key(
    admin_client: httpx.AsyncClient,
    platform_admin: dict[str, str],
    admin_engine: AsyncEngine,
) -> None:
    headers = {**platform_admin, "Idempotency-Key": f"declare-{uuid.uuid4()}"}

    first = await admin_client.post("/api/v1/admin/shortages", json=declaration(), headers=headers)
    again = await admin_client.post("/api/v1/admin/shortages", json=declaration(), headers=headers)
    other = await admin_client.post(
        "/api/v1/admin/shortages", json=declaration(note="another"), headers=headers
    )

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    assert other.status_code == 422
    assert len(await outbox(admin_engine, "shortage.declared")) == 1


@pytest.mark.parametrize(
    "body",
    [
        declaration(categories=["oxygen"]),
        declaration(categories=[]),
        declaration(area={**PUNE, "radius_km": 0}),
        declaration(ends_at="2020-01-01T00:00:00Z"),
    ],
)
async def test_a_bad_declaration_is_422(
    admin_client: httpx.AsyncClient, platform_admin: dict[str, str], body: dict[str, Any]
) -> None:
    response = await admin_client.post("/api/v1/admin/shortages", json=body, headers=platform_admin)

    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("down", ["location-service", "inventory-service"])
async def test_with_an_upstream_down_nothing_is_declared(
    admin_client: httpx.AsyncClient,
    platform_admin: dict[str, str],
    area_members: AreaStub,
    admin_engine: AsyncEngine,
    down: str,
) -> None:
    area_members.down = {down}

    response = await admin_client.post(
        "/api/v1/admin/shortages", json=declaration(), headers=platform_admin
    )

    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    listed = await admin_client.get("/api/v1/admin/shortages", headers=platform_admin)
    assert listed.json()["total"] == 0
    assert await outbox(admin_engine, "shortage.declared") == []


@pytest.mark.parametrize(("org_kind", "role"), [("hospital", "org_admin"), ("vendor", "staff")])
async def test_only_platform_admins_declare_end_and_list(
    admin_client: httpx.AsyncClient,
    token_issuer: TokenIssuer,
    area_members: AreaStub,
    org_kind: str,
    role: str,
) -> None:
    headers = token_issuer.headers(org_kind=org_kind, role=role)

    declared = await admin_client.post(
        "/api/v1/admin/shortages", json=declaration(), headers=headers
    )
    ended = await admin_client.post(f"/api/v1/admin/shortages/{uuid.uuid4()}/end", headers=headers)
    listed = await admin_client.get("/api/v1/admin/shortages", headers=headers)

    assert (declared.status_code, ended.status_code, listed.status_code) == (403, 403, 403)
    assert area_members.requests == []


async def test_ending_twice_is_409_and_an_unknown_one_404(
    admin_client: httpx.AsyncClient,
    platform_admin: dict[str, str],
    platform_admin_id: uuid.UUID,
    admin_engine: AsyncEngine,
) -> None:
    declared = await admin_client.post(
        "/api/v1/admin/shortages", json=declaration(), headers=platform_admin
    )
    shortage_id = declared.json()["id"]

    ended = await admin_client.post(
        f"/api/v1/admin/shortages/{shortage_id}/end", headers=platform_admin
    )
    again = await admin_client.post(
        f"/api/v1/admin/shortages/{shortage_id}/end", headers=platform_admin
    )
    unknown = await admin_client.post(
        f"/api/v1/admin/shortages/{uuid.uuid4()}/end", headers=platform_admin
    )

    assert ended.status_code == 200
    assert ended.json()["status"] == "ended"
    assert ended.json()["ended_at"] is not None
    assert again.status_code == 409
    assert again.json()["type"].endswith("/shortage-already-ended")
    assert unknown.status_code == 404
    [event] = await outbox(admin_engine, "shortage.ended")
    assert event["data"]["shortage_id"] == shortage_id
    assert event["data"]["ended_by"] == str(platform_admin_id)
    active = await admin_client.get("/api/v1/admin/shortages?status=active", headers=platform_admin)
    ended_list = await admin_client.get(
        "/api/v1/admin/shortages?status=ended", headers=platform_admin
    )
    assert active.json()["total"] == 0
    assert [s["id"] for s in ended_list.json()["items"]] == [shortage_id]


async def test_any_user_sees_the_active_shortages_covering_a_point(
    admin_client: httpx.AsyncClient,
    platform_admin: dict[str, str],
    token_issuer: TokenIssuer,
) -> None:
    covering = await admin_client.post(
        "/api/v1/admin/shortages", json=declaration(), headers=platform_admin
    )
    ended = await admin_client.post(
        "/api/v1/admin/shortages", json=declaration(), headers=platform_admin
    )
    await admin_client.post(
        f"/api/v1/admin/shortages/{ended.json()['id']}/end", headers=platform_admin
    )
    hospital = token_issuer.headers(org_kind="hospital", role="staff")

    inside = await admin_client.get("/api/v1/shortages", params=PUNE, headers=hospital)
    outside = await admin_client.get("/api/v1/shortages", params=FAR_EAST, headers=hospital)
    anonymous = await admin_client.get("/api/v1/shortages", params=PUNE)

    assert inside.status_code == 200
    assert [s["id"] for s in inside.json()["items"]] == [covering.json()["id"]]
    assert outside.json()["items"] == []
    assert anonymous.status_code == 401


async def _expiry_jobs(infra: TestInfra, count: int, clock: Any) -> list[ShortageExpiry]:
    # Each its own engine and pool: as several admin-service processes would run it.
    return [
        ShortageExpiry(Database(create_async_engine(infra.database_url("admin"))), clock=clock)
        for _ in range(count)
    ]


async def test_a_shortage_past_its_end_ends_by_itself_once_with_two_jobs_running(
    admin_client: httpx.AsyncClient,
    platform_admin: dict[str, str],
    admin_engine: AsyncEngine,
    infra: TestInfra,
) -> None:
    ends_at = datetime.now(UTC) + timedelta(hours=2)
    declared = await admin_client.post(
        "/api/v1/admin/shortages",
        json=declaration(ends_at=ends_at.isoformat()),
        headers=platform_admin,
    )
    shortage_id = declared.json()["id"]
    now = {"at": ends_at - timedelta(minutes=1)}
    jobs = await _expiry_jobs(infra, 2, lambda: now["at"])
    try:
        # Not yet due.
        assert [await job.run_once() for job in jobs] == [0, 0]
        now["at"] = ends_at + timedelta(seconds=1)

        ended = await asyncio.gather(*(job.run_once() for job in jobs))
        again = await asyncio.gather(*(job.run_once() for job in jobs))
    finally:
        for job in jobs:
            await job.database.dispose()

    assert sorted(ended) == [0, 1]
    assert again == [0, 0]
    [event] = await outbox(admin_engine, "shortage.ended")
    assert event["data"]["shortage_id"] == shortage_id
    assert event["data"]["ended_by"] is None
    listed = await admin_client.get("/api/v1/admin/shortages?status=ended", headers=platform_admin)
    assert listed.json()["items"][0]["status"] == "ended"


async def test_stats_count_active_shortages_and_open_sos(
    admin_client: httpx.AsyncClient,
    platform_admin: dict[str, str],
    projection: Projection,
) -> None:
    for _ in range(2):
        await admin_client.post(
            "/api/v1/admin/shortages", json=declaration(), headers=platform_admin
        )
    ended = await admin_client.post(
        "/api/v1/admin/shortages", json=declaration(), headers=platform_admin
    )
    await admin_client.post(
        f"/api/v1/admin/shortages/{ended.json()['id']}/end", headers=platform_admin
    )
    at = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    hospital = str(uuid.uuid4())
    sos = [str(uuid.uuid4()) for _ in range(5)]

    def sos_event(event_type: str, sos_id: str) -> Any:
        return projection.other_event(
            event_type, "order-service", at=at, sos_id=sos_id, hospital_org_id=hospital
        )

    await projection.feed(
        *(sos_event("sos.opened", s) for s in sos),
        sos_event("sos.fulfilled", sos[0]),
        sos_event("sos.unfilled", sos[1]),
        sos_event("sos.cancelled", sos[2]),
        sos_event("sos.escalated", sos[3]),
        # Closed before its opening arrives: it stays closed.
        sos_event("sos.cancelled", "00000000-0000-4000-8000-000000000001"),
        sos_event("sos.opened", "00000000-0000-4000-8000-000000000001"),
    )

    body = (await admin_client.get("/api/v1/admin/stats", headers=platform_admin)).json()

    assert body["active_shortages"] == 2
    assert body["open_sos"] == 2
