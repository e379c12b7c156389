"""Fixtures for admin-service: the app on the real database and Redis, user-service stubbed
at its HTTP boundary (`UserServiceStub`)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from admin_service.config import Settings
from admin_service.main import create_app
from admin_service.models import AdminAction
from flow_shared.testing.infra import TestInfra, asgi_client
from flow_shared.testing.tokens import TokenIssuer

USER_SERVICE_URL = "http://user-service.test"
ORG_ACTION = re.compile(r"^/internal/organizations/([^/]+)/(verify|suspend)$")


class UserServiceStub:
    """Answers like user-service's /internal API and records every request it receives."""

    def __init__(self, service_key: str) -> None:
        self.service_key = service_key
        self.requests: list[httpx.Request] = []
        self.vendors: dict[str, dict[str, Any]] = {}
        # Set to make every call fail at the transport level (user-service down).
        self.failure: type[httpx.TransportError] | None = None

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def add_vendor(self, name: str, *, verified: bool = False) -> dict[str, Any]:
        created = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(minutes=len(self.vendors))
        vendor = {
            "id": str(uuid.uuid4()),
            "name": name,
            "license_number": f"LIC-{len(self.vendors):04d}",
            "verified": verified,
            "suspended": False,
            "created_at": created.isoformat().replace("+00:00", "Z"),
        }
        self.vendors[vendor["id"]] = vendor
        return vendor

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.failure is not None:
            raise self.failure("connection refused", request=request)
        if request.headers.get("X-Service-Key") != self.service_key:
            return httpx.Response(401, json={"title": "Unauthorized", "status": 401})
        path = request.url.path
        if request.method == "GET" and path == "/internal/organizations/vendors":
            return self._list(request)
        match = ORG_ACTION.match(path)
        if request.method == "POST" and match:
            vendor = self.vendors.get(match.group(1))
            if vendor is None:
                return httpx.Response(404, json={"title": "Not found", "status": 404})
            if match.group(2) == "verify":
                vendor["verified"] = True
            else:
                vendor["suspended"] = True
            return httpx.Response(200, json=vendor)
        return httpx.Response(404, json={"title": "Not found", "status": 404})

    def _list(self, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        items = list(self.vendors.values())
        if "verified" in params:
            wanted = params["verified"] == "true"
            items = [v for v in items if v["verified"] is wanted]
        page, page_size = int(params["page"]), int(params["page_size"])
        start = (page - 1) * page_size
        body = {
            "items": items[start : start + page_size],
            "page": page,
            "page_size": page_size,
            "total": len(items),
        }
        return httpx.Response(200, json=body)


AdminClientFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def admin_settings(infra: TestInfra) -> Settings:
    return Settings(**infra.settings_kwargs("admin-service", user_service_url=USER_SERVICE_URL))


@pytest.fixture
def user_service(admin_settings: Settings) -> UserServiceStub:
    assert admin_settings.service_key is not None
    return UserServiceStub(admin_settings.service_key.get_secret_value())


@pytest.fixture
def admin_client_for(
    infra: TestInfra, token_issuer: TokenIssuer, user_service: UserServiceStub
) -> AdminClientFactory:
    """Opens admin-service in-process; settings overrides change its configuration."""

    @asynccontextmanager
    async def open_client(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        settings = Settings(
            **infra.settings_kwargs("admin-service", user_service_url=USER_SERVICE_URL, **overrides)
        )
        app = create_app(
            settings,
            jwks_fetcher=token_issuer.fetch_jwks,
            user_service_transport=user_service.transport(),
        )
        async with asgi_client(app) as client:
            yield client

    return open_client


@pytest.fixture
async def admin_client(admin_client_for: AdminClientFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with admin_client_for() as client:
        yield client


@pytest.fixture
def platform_admin_id() -> uuid.UUID:
    return uuid.uuid4()


@pytest.fixture
def platform_admin(token_issuer: TokenIssuer, platform_admin_id: uuid.UUID) -> dict[str, str]:
    return token_issuer.headers(
        org_kind="platform", role="platform_admin", user_id=platform_admin_id
    )


@pytest.fixture(scope="session")
async def admin_engine(infra: TestInfra) -> AsyncIterator[AsyncEngine]:
    """Connected as admin-service's own role, to read what a request committed."""
    engine = create_async_engine(infra.database_url("admin"))
    yield engine
    await engine.dispose()


AuditRows = Callable[[str], Awaitable[list[AdminAction]]]


@pytest.fixture
def audit_rows(admin_engine: AsyncEngine) -> AuditRows:
    """The committed admin_actions rows about one organisation, oldest first."""

    async def rows_for(org_id: str) -> list[AdminAction]:
        async with AsyncSession(admin_engine) as session:
            result = await session.scalars(
                select(AdminAction)
                .where(AdminAction.org_id == uuid.UUID(org_id))
                .order_by(AdminAction.created_at)
            )
            return list(result)

    return rows_for
