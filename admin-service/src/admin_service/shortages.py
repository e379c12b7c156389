"""Shortage declarations (SPEC, shortage readiness): platform admins declare a shortage for
an area and some product categories, end it, and anyone signed in asks which shortages
cover a point.

- Declaring asks location-service (hospital sites) and inventory-service (vendor depots)
  who is inside the area, before anything is written: with either down the answer is 503
  and no shortage exists. The row, `shortage.declared` (outbox) and the idempotent answer
  commit together.
- Ending is one conditional UPDATE (`WHERE ended_at IS NULL`), by an admin or by the expiry
  job once `ends_at` has passed; whoever wins writes `shortage.ended`, so it is said once
  even with several processes running the job.
- admin-service does not consume its own events: each one it writes goes into its audit
  in the same transaction, so the audit still sees every event of the platform.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import httpx
import structlog
from fastapi import APIRouter, Depends
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from admin_service.config import Settings
from admin_service.errors import ShortageAlreadyEnded, ShortageNotFound
from admin_service.events import SHORTAGE_DECLARED, SHORTAGE_ENDED, record_own_event
from admin_service.models import Shortage, idempotency_keys, outbox
from flow_shared.app_state import app_state
from flow_shared.auth import CurrentPrincipal, PlatformAdmin, Principal
from flow_shared.clock import Clock, Now, utcnow
from flow_shared.db import Database
from flow_shared.errors import DomainError, ServiceUnavailable
from flow_shared.events.outbox import add_event
from flow_shared.http import ServiceClient
from flow_shared.idempotency import IdempotencyKey, IdempotentAnswer, answer_once
from flow_shared.json_codec import ORJSONResponse
from flow_shared.pagination import Page, PageParams, Pagination, fetch_page
from flow_shared.unit_of_work import DbSession, unit_of_work
from flow_shared.upstream import parse_answer
from flow_shared.validation import Latitude, LatitudeValue, Longitude, LongitudeValue, NoNul

PRODUCER = "admin-service"
LOCATION_SERVICE = "location-service"
INVENTORY_SERVICE = "inventory-service"

# SPEC's product categories (inventory-service owns the catalogue; these five are the contract).
ProductCategory = Literal["oxygen_cylinder", "liquid_oxygen", "concentrator", "refill", "accessory"]
ShortageStatus = Literal["active", "ended"]

log = structlog.get_logger("admin_service.shortages")


def rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- request and response bodies --------------------------------------------------------


class Area(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lat: LatitudeValue
    lon: LongitudeValue
    radius_km: float = Field(gt=0, le=2000)


class ShortageCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    area: Area
    categories: list[ProductCategory] = Field(min_length=1, max_length=5)
    note: Annotated[str, Field(max_length=2000), NoNul()] = ""
    ends_at: AwareDatetime | None = None


class ShortageOut(BaseModel):
    id: uuid.UUID
    area: Area
    categories: list[str]
    note: str
    starts_at: datetime
    ends_at: datetime | None
    ended_at: datetime | None
    declared_by: uuid.UUID
    status: ShortageStatus

    @classmethod
    def of(cls, row: Shortage) -> ShortageOut:
        return cls(
            id=row.id,
            area=Area(lat=row.lat, lon=row.lon, radius_km=row.radius_km),
            categories=list(row.categories),
            note=row.note,
            starts_at=row.starts_at,
            ends_at=row.ends_at,
            ended_at=row.ended_at,
            declared_by=row.declared_by,
            status="ended" if row.ended_at is not None else "active",
        )


ShortagePage = Page[ShortageOut]


class ShortageList(BaseModel):
    items: list[ShortageOut]


class EndsAtNotInFuture(DomainError):
    status, code, title = 422, "ends-at-in-past", "ends_at must be in the future"


# --- who is inside an area (location-service, inventory-service) -------------------------


class _OrgIds(BaseModel):
    model_config = ConfigDict(extra="ignore")

    org_ids: list[uuid.UUID]


class _VendorIds(BaseModel):
    model_config = ConfigDict(extra="ignore")

    vendor_ids: list[uuid.UUID]


class AreaMembersClient:
    """Hospital orgs with a site, and vendor orgs with a depot, inside an area."""

    def __init__(
        self,
        settings: Settings,
        *,
        location_transport: httpx.AsyncBaseTransport | None = None,
        inventory_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        def client(
            name: str, url: str | None, transport: httpx.AsyncBaseTransport | None
        ) -> ServiceClient:
            return ServiceClient.from_settings(
                settings, name, url or f"http://{name}.invalid", transport=transport
            )

        self._configured = {
            LOCATION_SERVICE: bool(settings.location_service_url),
            INVENTORY_SERVICE: bool(settings.inventory_service_url),
        }
        self._location = client(LOCATION_SERVICE, settings.location_service_url, location_transport)
        self._inventory = client(
            INVENTORY_SERVICE, settings.inventory_service_url, inventory_transport
        )

    async def recipients(self, area: Area) -> list[uuid.UUID]:
        """Every hospital org with a delivery site and every vendor org with a depot inside
        `area`, sorted; raises ServiceUnavailable (503) when either cannot say."""
        for name, configured in self._configured.items():
            if not configured:
                raise ServiceUnavailable(f"{name} is not configured; no shortage was declared.")
        params = {"lat": area.lat, "lon": area.lon, "radius_km": area.radius_km}
        sites = await self._location.get("/internal/sites/orgs-within", params=params)
        hospitals = parse_answer(LOCATION_SERVICE, sites, _OrgIds, expect=200).org_ids
        depots = await self._inventory.get("/internal/depots/vendors-within", params=params)
        vendors = parse_answer(INVENTORY_SERVICE, depots, _VendorIds, expect=200).vendor_ids
        return sorted(set(hospitals) | set(vendors))

    async def aclose(self) -> None:
        await self._location.aclose()
        await self._inventory.aclose()


# --- the rules ----------------------------------------------------------------------------


def _event_data(row: Shortage) -> dict[str, Any]:
    return {
        "shortage_id": str(row.id),
        "area": {"lat": row.lat, "lon": row.lon, "radius_km": row.radius_km},
        "categories": list(row.categories),
        "recipient_org_ids": [str(org_id) for org_id in row.recipient_org_ids],
    }


async def _emit(session: AsyncSession, event_type: str, data: dict[str, Any]) -> None:
    envelope = await add_event(session, outbox, event_type=event_type, producer=PRODUCER, data=data)
    await record_own_event(session, envelope)


async def declare(
    session: AsyncSession,
    members: AreaMembersClient,
    admin_id: uuid.UUID,
    body: ShortageCreate,
    *,
    now: datetime,
) -> ShortageOut:
    """Create an active shortage and say so (`shortage.declared`) to everyone inside it."""
    if body.ends_at is not None and body.ends_at <= now:
        raise EndsAtNotInFuture("ends_at must be a time in the future.")
    # Asked before anything is written: with an upstream down nothing is left behind.
    recipients = await members.recipients(body.area)
    row = Shortage(
        id=uuid.uuid4(),
        lat=body.area.lat,
        lon=body.area.lon,
        radius_km=body.area.radius_km,
        categories=sorted(set(body.categories)),
        note=body.note,
        starts_at=now,
        ends_at=body.ends_at,
        ended_at=None,
        declared_by=admin_id,
        ended_by=None,
        recipient_org_ids=recipients,
    )
    session.add(row)
    await session.flush()
    await _emit(
        session,
        SHORTAGE_DECLARED,
        {
            **_event_data(row),
            "note": row.note,
            "starts_at": rfc3339(row.starts_at),
            "ends_at": rfc3339(row.ends_at) if row.ends_at else None,
            "declared_by": str(admin_id),
        },
    )
    log.info(
        "shortage_declared",
        shortage_id=str(row.id),
        categories=row.categories,
        recipients=len(recipients),
    )
    return ShortageOut.of(row)


async def declare_once(
    session: AsyncSession,
    members: AreaMembersClient,
    admin: Principal,
    body: ShortageCreate,
    *,
    idempotency_key: str | None,
    now: datetime,
) -> IdempotentAnswer:
    """`declare`, once per Idempotency-Key of the admin's organisation: a retry replays the
    first answer (201, the shortage)."""

    async def produce() -> dict[str, Any]:
        shortage = await declare(session, members, admin.user_id, body, now=now)
        return shortage.model_dump(mode="json")

    return await answer_once(
        session,
        idempotency_keys,
        scope=f"shortages.declare:{admin.org_id}",
        key=idempotency_key,
        request_body=body.model_dump(mode="json"),
        status_code=201,
        produce=produce,
    )


async def _end_where(
    session: AsyncSession, shortage_id: uuid.UUID, *, now: datetime, ended_by: uuid.UUID | None
) -> Shortage | None:
    """End it if still active (the one conditional UPDATE that decides who ends it)."""
    row = await session.scalar(
        update(Shortage)
        .where(Shortage.id == shortage_id, Shortage.ended_at.is_(None))
        .values(ended_at=now, ended_by=ended_by)
        .returning(Shortage)
        .execution_options(synchronize_session=False)
    )
    if row is None:
        return None
    await _emit(
        session,
        SHORTAGE_ENDED,
        {
            **_event_data(row),
            "ended_at": rfc3339(now),
            "ended_by": str(ended_by) if ended_by else None,
        },
    )
    log.info("shortage_ended", shortage_id=str(row.id), by_expiry=ended_by is None)
    return row


async def end(
    session: AsyncSession, shortage_id: uuid.UUID, admin_id: uuid.UUID, *, now: datetime
) -> ShortageOut:
    """An admin ends a shortage: 404 unknown, 409 when it has already ended."""
    row = await _end_where(session, shortage_id, now=now, ended_by=admin_id)
    if row is not None:
        return ShortageOut.of(row)
    if await session.get(Shortage, shortage_id) is None:
        raise ShortageNotFound("No shortage has this id.")
    raise ShortageAlreadyEnded("This shortage has already ended.")


async def end_expired(session: AsyncSession, *, now: datetime, limit: int = 100) -> int:
    """End every active shortage whose ends_at has passed; returns how many this call ended.

    Candidates are claimed with SKIP LOCKED and ended by the conditional UPDATE, so two
    processes running this at once end (and announce) each shortage once."""
    due = (
        await session.scalars(
            select(Shortage.id)
            .where(Shortage.ended_at.is_(None), Shortage.ends_at <= now)
            .order_by(Shortage.ends_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    ended = 0
    for shortage_id in due:
        if await _end_where(session, shortage_id, now=now, ended_by=None) is not None:
            ended += 1
    return ended


class ShortageExpiry:
    """The periodic job: one transaction per run, on the clock it is given."""

    def __init__(self, database: Database, *, clock: Clock = utcnow) -> None:
        self.database = database
        self.clock = clock

    async def run_once(self) -> int:
        async with unit_of_work(self.database) as uow:
            return await end_expired(uow.session, now=self.clock())


async def list_shortages(
    session: AsyncSession, *, status: ShortageStatus | None, params: PageParams
) -> ShortagePage:
    statement = select(Shortage)
    if status == "active":
        statement = statement.where(Shortage.ended_at.is_(None))
    elif status == "ended":
        statement = statement.where(Shortage.ended_at.is_not(None))
    rows, total = await fetch_page(
        session, statement.order_by(Shortage.starts_at.desc(), Shortage.id), params
    )
    return ShortagePage.of([ShortageOut.of(row) for row in rows], params, total)


async def active_covering(
    session: AsyncSession, *, lat: float, lon: float, now: datetime
) -> list[ShortageOut]:
    """Active shortages whose circle contains the point (ST_DWithin on geography, sphere
    distance as inventory's nearby search), newest first. One whose ends_at has passed
    no longer counts, even before the expiry job has ended it."""
    covers = text(
        "ST_DWithin(shortages.center,"
        " ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography,"
        " shortages.radius_km * 1000.0, false)"
    ).bindparams(lon=lon, lat=lat)
    rows = await session.scalars(
        select(Shortage)
        .where(
            Shortage.ended_at.is_(None),
            (Shortage.ends_at.is_(None)) | (Shortage.ends_at > now),
            covers,
        )
        .order_by(Shortage.starts_at.desc(), Shortage.id)
    )
    return [ShortageOut.of(row) for row in rows]


# --- HTTP --------------------------------------------------------------------------------


AreaMembers = Annotated[AreaMembersClient, Depends(app_state("area_members", AreaMembersClient))]

admin_router = APIRouter(prefix="/api/v1/admin/shortages", tags=["admin"])
# admin-service's other routes are for platform admins; this one is for every signed-in user.
public_router = APIRouter(prefix="/api/v1/shortages", tags=["shortages"])


@admin_router.post(
    "",
    status_code=201,
    response_model=ShortageOut,
    responses={
        422: {"description": "Unknown category, ends_at not in the future, or key reused"},
        503: {"description": "location- or inventory-service is down; nothing was declared"},
    },
)
async def declare_shortage(
    body: ShortageCreate,
    admin: PlatformAdmin,
    members: AreaMembers,
    session: DbSession,
    now: Now,
    idempotency_key: IdempotencyKey = None,
) -> ORJSONResponse:
    answer = await declare_once(
        session, members, admin, body, idempotency_key=idempotency_key, now=now
    )
    return answer.response(f"/api/v1/admin/shortages/{answer.body['id']}")


@admin_router.post(
    "/{shortage_id}/end",
    responses={404: {"description": "Unknown shortage"}, 409: {"description": "Already ended"}},
)
async def end_shortage(
    shortage_id: uuid.UUID, admin: PlatformAdmin, session: DbSession, now: Now
) -> ShortageOut:
    return await end(session, shortage_id, admin.user_id, now=now)


@admin_router.get("")
async def list_declared_shortages(
    _admin: PlatformAdmin,
    session: DbSession,
    pagination: Pagination,
    status: ShortageStatus | None = None,
) -> ShortagePage:
    return await list_shortages(session, status=status, params=pagination)


@public_router.get("", description="The active shortages covering a point (any signed-in user).")
async def shortages_covering(
    _user: CurrentPrincipal,
    session: DbSession,
    now: Now,
    lat: Latitude,
    lon: Longitude,
) -> ShortageList:
    return ShortageList(items=await active_covering(session, lat=lat, lon=lon, now=now))


ROUTERS: Sequence[APIRouter] = (admin_router, public_router)
