"""A tiny Flow service built with `create_service_app`, to test the shared mechanisms
through HTTP as a real service uses them (real Redis, and PostgreSQL where a test asks);
and scratch schemas, for the tests of the database mechanisms."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Annotated, Any

import asyncpg
import httpx
import pytest
import structlog
from fastapi import APIRouter, Depends, FastAPI, Request
from prometheus_client import REGISTRY
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import BigInteger, Column, Identity, MetaData, String, Table, func, insert, select
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from flow_shared.app import Hook, create_service_app
from flow_shared.auth import (
    CurrentPrincipal,
    PlatformAdmin,
    Principal,
    accepts_callers,
    require_org_kind,
)
from flow_shared.config import BaseServiceSettings
from flow_shared.db import Database, create_engine, service_metadata
from flow_shared.errors import DomainError
from flow_shared.events.envelope import EventEnvelope
from flow_shared.testing.infra import TestInfra, caller_key
from flow_shared.testing.service_app import client_opener
from flow_shared.testing.tokens import TokenIssuer

SHOWCASE_SERVICE = "shared-showcase"
IN_FLIGHT_METRIC = "flow_http_requests_in_flight"
SHOWCASE_CALLER = "order-service"  # the one service its /internal route accepts
TRUSTED_CALLER_KEY = caller_key(SHOWCASE_CALLER)

showcase_log = structlog.get_logger("showcase")


class ShowcaseSettings(BaseServiceSettings):
    service_name: str = SHOWCASE_SERVICE


class ItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    password: str = Field(min_length=20)


class OxygenOnFire(DomainError):
    status, code, title = 409, "oxygen-on-fire", "Oxygen on fire"


class ShowcaseState:
    """What the showcase handlers saw, for tests to inspect."""

    def __init__(self) -> None:
        self.bodies_read: list[int] = []


router = APIRouter()
internal_router = APIRouter(prefix="/internal", dependencies=[accepts_callers(SHOWCASE_CALLER)])


@router.get("/items/{item_id}")
async def get_item(item_id: int) -> dict[str, int]:
    return {"item_id": item_id}


@router.post("/items", status_code=201)
async def create_item(item: ItemIn) -> dict[str, str]:
    return {"name": item.name}


@router.get("/boom")
async def boom() -> None:
    # What an unexpected failure may carry: SQL, a DSN with a password, internal names.
    raise RuntimeError(
        "SELECT * FROM users.secret_table failed on postgresql://flow:db-s3cret@db:5432/flow"
    )


@router.get("/conflict")
async def conflict() -> None:
    raise OxygenOnFire("Depot 7 reports a fire.", headers={"Retry-After": "60"}, extra={"depot": 7})


@router.get("/in-flight")
async def in_flight() -> dict[str, float]:
    value = REGISTRY.get_sample_value(IN_FLIGHT_METRIC, {"service": SHOWCASE_SERVICE})
    return {"in_flight": value if value is not None else -1.0}


@router.post("/upload")
async def upload(request: Request) -> dict[str, int]:
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
    state: ShowcaseState = request.app.state.showcase
    state.bodies_read.append(size)
    return {"size": size}


@router.get("/log")
async def log_secrets() -> dict[str, str]:
    showcase_log.info(
        "login_attempt",
        email="nurse@hospital.test",
        password="hunter2-password",
        refresh_token="refresh-secret-value",
        headers={"Authorization": "Bearer abc.def.ghi-secret"},
        note="client sent Bearer plain-bearer-secret in a note",
        jwt_like="eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzZWNyZXQifQ.c2lnbmF0dXJlLXNlY3JldA",
        dsn="amqp://guest:amqp-s3cret@rabbit:5672/",
    )
    return {"status": "logged"}


@router.get("/whoami")
async def whoami(principal: CurrentPrincipal) -> dict[str, str]:
    return {"user_id": str(principal.user_id), "role": principal.role}


@router.get("/hospital-only")
async def hospital_only(
    principal: Annotated[Principal, Depends(require_org_kind("hospital"))],
) -> dict[str, str]:
    return {"org_kind": principal.org_kind}


@router.get("/admin-only")
async def admin_only(principal: PlatformAdmin) -> dict[str, str]:
    return {"role": principal.role}


@internal_router.get("/ping")
async def internal_ping() -> dict[str, str]:
    return {"status": "pong"}


ShowcaseFactory = Callable[..., FastAPI]
ShowcaseClientFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def showcase_state() -> ShowcaseState:
    return ShowcaseState()


@pytest.fixture
def showcase_app(
    infra: TestInfra, token_issuer: TokenIssuer, showcase_state: ShowcaseState
) -> ShowcaseFactory:
    """Builds the showcase service; keyword arguments override its settings."""

    async def attach_state(app: FastAPI) -> None:
        app.state.showcase = showcase_state

    def build(on_startup: Sequence[Hook] = (), **overrides: Any) -> FastAPI:
        # Two trusted callers, of which its /internal route accepts one.
        callers = {name: caller_key(name) for name in (SHOWCASE_CALLER, "pricing-service")}
        overrides.setdefault("trusted_service_keys", callers)
        settings = ShowcaseSettings(**infra.settings_kwargs(SHOWCASE_SERVICE, **overrides))
        return create_service_app(
            settings,
            title="shared showcase",
            routers=[router],
            internal_routers=[internal_router],
            jwks_fetcher=token_issuer.fetch_jwks,
            on_startup=[attach_state, *on_startup],
        )

    return build


@pytest.fixture
def showcase_client_for(showcase_app: ShowcaseFactory) -> ShowcaseClientFactory:
    """Opens the showcase service in-process (lifespan running) with settings overrides."""
    return client_opener(showcase_app)


@pytest.fixture
async def showcase(showcase_client_for: ShowcaseClientFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with showcase_client_for() as client:
        yield client


# -- scratch schemas ----------------------------------------------------------------------


@dataclass
class ScratchSchema:
    """A schema of its own for one test in the session's database, dropped with all in it after.

    Tables defined on `metadata` are made by `create_tables`; the engines `engine` opens put
    the schema first on their search_path and are disposed of after the test.
    """

    name: str
    dsn: str  # the superuser's on the session's database, in asyncpg's form
    admin: asyncpg.Connection  # on `dsn`, outside any transaction: sees only what is committed
    metadata: MetaData
    engines: list[AsyncEngine] = field(default_factory=list)

    @property
    def url(self) -> str:
        """`dsn` as SQLAlchemy's asyncpg driver takes it (a service's `database_url`)."""
        return self.dsn.replace("postgresql://", "postgresql+asyncpg://", 1)

    def engine(self, application_name: str, *, pool_size: int, max_overflow: int) -> AsyncEngine:
        engine = create_engine(
            self.url,
            schema=self.name,
            application_name=application_name,
            pool_size=pool_size,
            max_overflow=max_overflow,
        )
        self.engines.append(engine)
        return engine

    async def create_tables(self) -> None:
        engine = self.engine("scratch-schema", pool_size=1, max_overflow=0)
        async with engine.begin() as connection:
            await connection.run_sync(self.metadata.create_all)


@pytest.fixture
async def scratch_schema(infra: TestInfra) -> AsyncIterator[ScratchSchema]:
    name = f"scratch_{uuid.uuid4().hex[:10]}"
    dsn = infra.admin_dsn.rsplit("/", 1)[0] + "/" + infra.database
    admin = await asyncpg.connect(dsn)
    await admin.execute(f'CREATE SCHEMA "{name}"')
    scratch = ScratchSchema(name, dsn, admin, service_metadata(name))
    try:
        yield scratch
    finally:
        for engine in scratch.engines:
            await engine.dispose()
        await admin.execute(f'DROP SCHEMA "{name}" CASCADE')
        await admin.close()


@dataclass
class ScratchEffects:
    """`effects` in a scratch schema: a row each time a test's handler applies an event."""

    table: Table

    async def apply(self, session: AsyncSession, envelope: EventEnvelope) -> None:
        await session.execute(insert(self.table).values(event_id=envelope.id, note=envelope.type))

    async def count(self, database: Database, event_id: uuid.UUID) -> int:
        async with database.sessionmaker() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(self.table)
                .where(self.table.c.event_id == event_id)
            )
            return int(count or 0)


@pytest.fixture
def scratch_effects(scratch_schema: ScratchSchema) -> ScratchEffects:
    # No unique key on purpose: a second application of an event must show as a second row.
    table = Table(
        "effects",
        scratch_schema.metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("event_id", UUID(as_uuid=True), nullable=False),
        Column("note", String(100), nullable=False),
    )
    return ScratchEffects(table)


@dataclass
class ScratchNotes:
    """`notes` in a scratch schema, unique only at COMMIT (a deferred constraint)."""

    schema: ScratchSchema

    async def stored(self) -> list[str]:
        """What another connection sees: only what was committed."""
        rows = await self.schema.admin.fetch(
            f'SELECT body FROM "{self.schema.name}".notes ORDER BY 1'  # noqa: S608
        )
        return [row["body"] for row in rows]


@pytest.fixture
async def scratch_notes(scratch_schema: ScratchSchema) -> ScratchNotes:
    await scratch_schema.admin.execute(
        f'CREATE TABLE "{scratch_schema.name}".notes (body text, CONSTRAINT notes_body_unique'
        " UNIQUE (body) DEFERRABLE INITIALLY DEFERRED)"
    )
    return ScratchNotes(scratch_schema)
