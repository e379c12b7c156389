"""Fixtures for admin-service: the app on the real database, Redis and RabbitMQ;
user-service stubbed at its HTTP boundary (`UserServiceStub`), the other services'
readiness endpoints too (`FleetStub`), and the event projection fed and read directly
(`Projection`)."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from admin_service.config import Settings
from admin_service.events import project_event
from admin_service.main import create_app
from admin_service.models import AdminAction, AuditEvent, OrderFact, OrgFact, inbox
from flow_shared.events.envelope import EventEnvelope
from flow_shared.events.relay import build_event_message
from flow_shared.events.topology import declare_events_exchange
from flow_shared.health import HealthRegistry
from flow_shared.health import router as health_router
from flow_shared.testing.infra import TestInfra
from flow_shared.testing.service_app import (
    SettingsFactory,
    client_opener,
    schema_engine_fixture,
    settings_fixture,
)
from flow_shared.testing.tokens import TokenIssuer

USER_SERVICE_URL = "http://user-service.test"
ORG_ACTION = re.compile(r"^/internal/organizations/([^/]+)/(verify|suspend|reinstate)$")
# Every service admin-service watches, each at a host its FleetStub answers for.
FLEET = (
    "api-gateway",
    "user-service",
    "location-service",
    "inventory-service",
    "order-service",
    "pricing-service",
    "payment-service",
    "review-service",
    "notification-service",
)
# Settings fields of the others (user-service's URL is USER_SERVICE_URL, its /internal API).
FLEET_URLS = {
    name.replace("-", "_") + "_url": f"http://{name}.test"
    for name in FLEET
    if name != "user-service"
}
ADMIN_QUEUES = ("admin-service.events", "admin-service.events.retry", "admin-service.events.dlq")


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

    def add_organization(
        self, name: str, *, kind: str = "hospital", verified: bool = False
    ) -> dict[str, Any]:
        """A hospital or vendor in the organisations API's shape (kept with the vendors)."""
        organization = {
            **self.add_vendor(name, verified=verified),
            "kind": kind,
            "phone": None,
            "oxygen_beds": 40 if kind == "hospital" else None,
            "suspension_reason": None,
            "license_expires_on": None,
            "verified_at": None,
            "suspended_at": None,
        }
        self.vendors[organization["id"]] = organization
        return organization

    # Set to make reinstatements answer user-service's 409 (licence expired).
    refuse_reinstatement: bool = False

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.failure is not None:
            raise self.failure("connection refused", request=request)
        if request.headers.get("X-Service-Key") != self.service_key:
            return httpx.Response(401, json={"title": "Unauthorized", "status": 401})
        path = request.url.path
        if request.method == "GET" and path == "/internal/organizations/vendors":
            return self._list(request)
        if request.method == "GET" and path == "/internal/organizations":
            return self._list(request)
        match = ORG_ACTION.match(path)
        if request.method == "POST" and match:
            vendor = self.vendors.get(match.group(1))
            wanted_kind = request.url.params.get("kind")
            if vendor is None or (wanted_kind and vendor.get("kind", "vendor") != wanted_kind):
                return httpx.Response(404, json={"title": "Not found", "status": 404})
            body = json.loads(request.content)
            if match.group(2) == "verify":
                vendor["verified"] = True
                if "license_expires_on" in body:
                    vendor["license_expires_on"] = body["license_expires_on"]
            elif match.group(2) == "suspend":
                vendor["suspended"] = True
                if "suspension_reason" in vendor:
                    vendor["suspension_reason"] = body.get("reason")
            else:
                if self.refuse_reinstatement:
                    return httpx.Response(
                        409,
                        json={"title": "Licence expired", "status": 409, "detail": "Renew first."},
                    )
                vendor["suspended"] = False
            return httpx.Response(200, json=vendor)
        return httpx.Response(404, json={"title": "Not found", "status": 404})

    def _list(self, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        items = list(self.vendors.values())
        if request.url.path.endswith("/vendors"):
            items = [v for v in items if v.get("kind", "vendor") == "vendor"]
        else:
            items = [v for v in items if "kind" in v]
        if "kind" in params:
            items = [v for v in items if v.get("kind") == params["kind"]]
        for flag in ("verified", "suspended"):
            if flag in params:
                wanted = params[flag] == "true"
                items = [v for v in items if v[flag] is wanted]
        page, page_size = int(params["page"]), int(params["page_size"])
        start = (page - 1) * page_size
        body = {
            "items": items[start : start + page_size],
            "page": page,
            "page_size": page_size,
            "total": len(items),
        }
        return httpx.Response(200, json=body)


def readiness_app(**checks: bool) -> FastAPI:
    """A service's real `/health/ready` (flow_shared.health) with checks that pass or fail."""

    async def passing() -> None:
        return None

    async def failing() -> None:
        raise ConnectionError("dependency down")

    app = FastAPI()
    registry = HealthRegistry()
    for name, ok in checks.items():
        registry.add(name, passing if ok else failing)
    app.state.health = registry
    app.include_router(health_router)
    return app


class AreaStub:
    """location- and inventory-service's "who is inside this area" /internal routes: answers
    the hospital orgs and vendor orgs it was given, or fails (`down`) like a dead service."""

    def __init__(self, service_key: str) -> None:
        self.service_key = service_key
        self.hospital_org_ids: list[str] = []
        self.vendor_ids: list[str] = []
        self.down: set[str] = set()
        self.requests: list[httpx.Request] = []

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        service = (request.url.host or "").removesuffix(".test")
        if service in self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if request.headers.get("X-Service-Key") != self.service_key:
            return httpx.Response(401, json={"title": "Unauthorized", "status": 401})
        if request.url.path == "/internal/sites/orgs-within":
            return httpx.Response(200, json={"org_ids": self.hospital_org_ids})
        if request.url.path == "/internal/depots/vendors-within":
            return httpx.Response(200, json={"vendor_ids": self.vendor_ids})
        return httpx.Response(404, json={"title": "Not found", "status": 404})


class FleetStub:
    """The other services' readiness endpoints, at http://<service>.test: ready unless a
    test makes one failing (its own failing check) or down (connection refused)."""

    def __init__(self) -> None:
        # Every service admin-service watches, and the settings that point it at them here.
        self.services = FLEET
        self.url_settings = FLEET_URLS
        self.requests: list[httpx.Request] = []
        self.apps: dict[str, FastAPI] = {}
        self.down: set[str] = set()
        # When set, every answer waits until all parties have asked: only concurrent
        # probing gets through.
        self.barrier: asyncio.Barrier | None = None
        self._ready = readiness_app(database=True, redis=True)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def failing(self, service: str, **checks: bool) -> None:
        self.apps[service] = readiness_app(**checks)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.barrier is not None:
            await self.barrier.wait()
        service = (request.url.host or "").removesuffix(".test")
        if service in self.down:
            raise httpx.ConnectError("connection refused", request=request)
        app = self.apps.get(service, self._ready)
        return await httpx.ASGITransport(app=app).handle_async_request(request)


AdminAppFactory = Callable[..., FastAPI]
AdminClientFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


make_settings = settings_fixture(
    "admin-service", Settings, user_service_url=USER_SERVICE_URL, **FLEET_URLS
)


@pytest.fixture
def admin_settings(make_settings: SettingsFactory[Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def user_service(admin_settings: Settings) -> UserServiceStub:
    assert admin_settings.service_key is not None
    return UserServiceStub(admin_settings.service_key.get_secret_value())


@pytest.fixture
def fleet() -> FleetStub:
    return FleetStub()


@pytest.fixture
def area_members(admin_settings: Settings) -> AreaStub:
    assert admin_settings.service_key is not None
    return AreaStub(admin_settings.service_key.get_secret_value())


@pytest.fixture
def admin_app_for(
    make_settings: SettingsFactory[Settings],
    token_issuer: TokenIssuer,
    user_service: UserServiceStub,
    fleet: FleetStub,
    area_members: AreaStub,
    projection: Projection,
) -> AdminAppFactory:
    """Builds admin-service; settings overrides change its configuration, and
    `real_network=True` lets its health probe use real sockets instead of `fleet`.
    It starts on an empty projection with an empty queue (see `projection`)."""

    def build(*, real_network: bool = False, **overrides: Any) -> FastAPI:
        return create_app(
            make_settings(**overrides),
            jwks_fetcher=token_issuer.fetch_jwks,
            user_service_transport=user_service.transport(),
            health_transport=None if real_network else fleet.transport(),
            location_transport=area_members.transport(),
            inventory_transport=area_members.transport(),
        )

    return build


@pytest.fixture
def admin_client_for(admin_app_for: AdminAppFactory) -> AdminClientFactory:
    """Opens admin-service in-process; settings overrides change its configuration."""
    return client_opener(admin_app_for)


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


admin_engine = schema_engine_fixture("admin", schema_on_search_path=False)


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


class Projection:
    """Feeds envelopes to admin-service's event handler (each in its own committed
    transaction, as the consumer does) and reads what the projection holds."""

    def __init__(self, engine: AsyncEngine, infra: TestInfra) -> None:
        self.engine = engine
        self.infra = infra

    # -- envelopes as their producers publish them ------------------------------------

    @staticmethod
    def order_event(
        status: str,
        order_id: uuid.UUID,
        *,
        at: datetime,
        hospital_org_id: uuid.UUID | None = None,
        vendor_id: uuid.UUID | None = None,
        priority: str = "routine",
        total: str = "100.00",
        currency: str = "USD",
        **extra: Any,
    ) -> EventEnvelope:
        data: dict[str, Any] = {
            "order_id": str(order_id),
            "hospital_org_id": str(hospital_org_id or uuid.uuid4()),
            "vendor_id": str(vendor_id or uuid.uuid4()),
            "depot_id": str(uuid.uuid4()),
            "status": status,
            "priority": priority,
            "payment_method": "invoice",
            "total": total,
            "currency": currency,
            "items": [
                {
                    "product_id": str(uuid.uuid4()),
                    "quantity": 1,
                    "unit_price": total,
                    "line_total": total,
                }
            ],
            "actor_id": str(uuid.uuid4()),
            "at": at.isoformat().replace("+00:00", "Z"),
            **extra,
        }
        # The relay publishes a moment after the change.
        return EventEnvelope(
            type=f"order.{status}",
            producer="order-service",
            occurred_at=at + timedelta(milliseconds=5),
            correlation_id=f"req-{uuid.uuid4().hex[:12]}",
            data=data,
        )

    @staticmethod
    def user_registered(
        org_id: uuid.UUID, kind: str, *, verified: bool, at: datetime, name: str = "Org"
    ) -> EventEnvelope:
        return EventEnvelope(
            type="user.registered",
            producer="user-service",
            occurred_at=at,
            data={
                "user_id": str(uuid.uuid4()),
                "email": f"{uuid.uuid4().hex[:8]}@example.org",
                "full_name": "Someone",
                "role": "org_admin",
                "org_id": str(org_id),
                "org_kind": kind,
                "org_name": name,
                "org_verified": verified,
                "added_by": None,
            },
        )

    @staticmethod
    def organization_event(
        action: str, org_id: uuid.UUID, *, at: datetime, kind: str = "vendor", name: str = "Org"
    ) -> EventEnvelope:
        data: dict[str, Any] = {
            "org_id": str(org_id),
            "name": name,
            "kind": kind,
            "actor_id": str(uuid.uuid4()),
            f"{action}_at": at.isoformat(),
        }
        if action == "suspended":
            data["reason"] = "licence expired"
        return EventEnvelope(
            type=f"organization.{action}", producer="user-service", occurred_at=at, data=data
        )

    @staticmethod
    def other_event(event_type: str, producer: str, *, at: datetime, **data: Any) -> EventEnvelope:
        return EventEnvelope(type=event_type, producer=producer, occurred_at=at, data=data)

    # -- feeding ----------------------------------------------------------------------

    async def feed(self, *envelopes: EventEnvelope) -> None:
        for envelope in envelopes:
            async with AsyncSession(self.engine) as session, session.begin():
                await project_event(session, envelope)

    async def publish(self, envelope: EventEnvelope, exchange_name: str = "flow.events") -> None:
        """Publishes as an outbox relay does, to this session's vhost."""
        connection = await aio_pika.connect(self.infra.amqp_url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await declare_events_exchange(channel, exchange_name)
            message = build_event_message(
                envelope.id, envelope.type, envelope.model_dump(mode="json"), envelope.producer
            )
            await exchange.publish(message, routing_key=envelope.routing_key)

    # -- reading ----------------------------------------------------------------------

    async def order(self, order_id: uuid.UUID) -> OrderFact | None:
        async with AsyncSession(self.engine) as session:
            return await session.get(OrderFact, order_id)

    async def org(self, org_id: uuid.UUID) -> OrgFact | None:
        async with AsyncSession(self.engine) as session:
            return await session.get(OrgFact, org_id)

    async def audit_row(self, event_id: uuid.UUID) -> AuditEvent | None:
        async with AsyncSession(self.engine) as session:
            return await session.get(AuditEvent, event_id)

    async def count(self, table: str) -> int:
        async with self.engine.connect() as conn:
            # `table` is one of our own table names, never input.
            return int(await conn.scalar(text(f"SELECT count(*) FROM admin.{table}")) or 0)  # noqa: S608

    async def audit_count(self, event_id: uuid.UUID) -> int:
        """Audit rows of one event (other tests' events may arrive on the shared vhost)."""
        async with self.engine.connect() as conn:
            count = await conn.scalar(
                select(func.count()).select_from(AuditEvent).where(AuditEvent.event_id == event_id)
            )
        return int(count or 0)

    async def inbox_count(self, event_id: uuid.UUID) -> int:
        async with self.engine.connect() as conn:
            count = await conn.scalar(
                select(func.count()).select_from(inbox).where(inbox.c.event_id == event_id)
            )
        return int(count or 0)

    async def clear(self) -> None:
        """Empties the projection, the inbox and admin-service's queues: the stats a test
        reads are then exactly the events it fed, not those other tests published."""
        connection = await aio_pika.connect(self.infra.amqp_url)
        async with connection:
            channel = await connection.channel()
            for queue in ADMIN_QUEUES:
                await channel.queue_delete(queue)
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    "TRUNCATE admin.events, admin.order_facts, admin.org_facts, admin.inbox,"
                    " admin.shortages, admin.sos_facts, admin.outbox, admin.idempotency_keys"
                )
            )


@pytest.fixture
async def projection(admin_engine: AsyncEngine, infra: TestInfra) -> Projection:
    fresh = Projection(admin_engine, infra)
    await fresh.clear()
    return fresh
