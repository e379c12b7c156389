"""A tiny Flow service built with `create_service_app`, to test the shared mechanisms
through HTTP as a real service uses them (real Redis, and PostgreSQL where a test asks)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any

import httpx
import pytest
import structlog
from fastapi import APIRouter, Depends, FastAPI, Request
from prometheus_client import REGISTRY
from pydantic import BaseModel, ConfigDict, Field

from flow_shared.app import Hook, create_service_app
from flow_shared.auth import (
    CurrentPrincipal,
    PlatformAdmin,
    Principal,
    accepts_callers,
    require_org_kind,
)
from flow_shared.config import BaseServiceSettings
from flow_shared.errors import DomainError
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
