"""Isolated slices of the real infrastructure for one test session."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from asgi_lifespan import LifespanManager
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.types import ASGIApp, Receive, Scope, Send

from flow_shared.provisioning import SchemaGrant, drop_database, provision, role_for_schema
from flow_shared.services import load_service_specs

TEST_DB_PASSWORD = "flow-test-password"  # trust auth locally; a real value in CI secrets


def repo_root() -> Path:
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / "services.toml").exists():
            return candidate
    raise RuntimeError("services.toml not found above the working directory")


def service_schemas() -> dict[str, str]:
    """service name -> schema, from services.toml."""
    return {spec.name: spec.schema for spec in load_service_specs(repo_root()) if spec.schema}


def callers_of(service: str) -> list[str]:
    """The services allowed to call `service`'s /internal routes, from services.toml."""
    specs = {spec.name: spec for spec in load_service_specs(repo_root())}
    return specs[service].callers if service in specs else []


def caller_key(service: str) -> str:
    """The service key `service` presents in the service tier (its own `service_key`)."""
    return f"test-key-{service}"


@dataclass
class TestInfra:
    __test__ = False  # a fixture value, not a test class
    admin_dsn: str
    pg_host: str
    pg_port: int
    database: str
    redis_url: str
    redis_prefix: str
    amqp_url: str
    vhost: str

    def database_url(self, schema: str, driver: str = "postgresql+asyncpg") -> str:
        role = role_for_schema(schema)
        return f"{driver}://{role}:{TEST_DB_PASSWORD}@{self.pg_host}:{self.pg_port}/{self.database}"

    def settings_kwargs(self, service: str, **overrides: Any) -> dict[str, Any]:
        """Constructor arguments for a service's Settings pointing at this session's slice."""
        kwargs: dict[str, Any] = {
            "environment": "test",
            "redis_url": self.redis_url,
            "redis_key_prefix": self.redis_prefix,
            "amqp_url": self.amqp_url,
            # The session's one vhost serves every service's tests: the fleet's queues
            # there would collect each test's events for consumers of later tests.
            "events_declare_fleet_topology": False,
            # Earlier tests leave events nobody here consumes: a test that binds a queue for
            # one of their types must not wait out the production back-off behind them.
            "events_unroutable_retry_seconds": 1.0,
            "service_key": caller_key(service),
            # Its callers in services.toml, each with its own key (`caller_key`), as deployed:
            # a test calls an /internal route as a service the route accepts.
            "trusted_service_keys": {caller: caller_key(caller) for caller in callers_of(service)},
        }
        schema = service_schemas().get(service)
        if schema:
            kwargs["database_url"] = self.database_url(schema)
            kwargs["db_schema"] = schema
        kwargs.update(overrides)
        return kwargs


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


def create_vhost(vhost: str) -> None:
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")


def delete_vhost(vhost: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True, timeout=60)


def migrate_all(infra: TestInfra) -> None:
    root = repo_root()
    for service, schema in service_schemas().items():
        env = dict(os.environ, DATABASE_URL=infra.database_url(schema), DB_SCHEMA=schema)
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "alembic",
                "-c",
                str(root / service / "alembic.ini"),
                "upgrade",
                "head",
            ],
            cwd=root / service,
            env=env,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"migrations of {service} failed:\n{result.stderr[-3000:]}")


async def schema_drift(infra: TestInfra, schema: str, metadata: MetaData) -> list[Any]:
    """What differs between the migrated `schema` and the models' `metadata` ([] if nothing).

    Reflected with only "public" on the search_path: with the service's schema first,
    reflection drops the schema from foreign keys, while both sides should name it.
    """

    def compare(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "include_schemas": True,
                "include_name": lambda name, kind, _parent: (
                    name == schema if kind == "schema" else name != "alembic_version"
                ),
            },
        )
        return list(compare_metadata(context, metadata))

    engine = create_async_engine(
        infra.database_url(schema), connect_args={"server_settings": {"search_path": "public"}}
    )
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(compare)
    finally:
        await engine.dispose()


def start_infra(worker: str) -> TestInfra:
    admin_dsn = os.environ.get(
        "FLOW_TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    parsed = urllib.parse.urlparse(admin_dsn)
    suffix = uuid.uuid4().hex[:8]
    vhost = f"flow-test-{worker}-{suffix}"
    amqp_base = os.environ.get("FLOW_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    infra = TestInfra(
        admin_dsn=admin_dsn,
        pg_host=parsed.hostname or "127.0.0.1",
        pg_port=parsed.port or 5432,
        # Unique per session: parallel runs on one machine must not drop each other's database.
        database=f"flow_test_{worker}_{suffix}",
        redis_url=os.environ.get("FLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
        redis_prefix=f"flowtest:{suffix}:",
        amqp_url=amqp_base.rstrip("/") + "/" + urllib.parse.quote(vhost, safe=""),
        vhost=vhost,
    )
    grants = [
        SchemaGrant(schema, role_for_schema(schema), TEST_DB_PASSWORD)
        for schema in service_schemas().values()
    ]
    asyncio.run(drop_database(admin_dsn, infra.database))
    asyncio.run(provision(admin_dsn, infra.database, grants, reset_passwords=False))
    migrate_all(infra)
    create_vhost(vhost)
    # The deploy step's part (services only check that the exchange exists); the fleet's
    # queues stay undeclared here (see settings_kwargs).
    asyncio.run(declare_exchange_at(infra.amqp_url, "flow.events"))
    return infra


async def declare_exchange_at(amqp_url: str, name: str) -> None:
    import aio_pika

    from flow_shared.events.topology import declare_events_exchange

    connection = await aio_pika.connect(amqp_url)
    try:
        await declare_events_exchange(await connection.channel(), name)
    finally:
        await connection.close()


def stop_infra(infra: TestInfra) -> None:
    delete_vhost(infra.vhost)
    asyncio.run(drop_database(infra.admin_dsn, infra.database))

    async def clear_redis() -> None:
        from redis.asyncio import Redis

        redis = Redis.from_url(infra.redis_url)
        async for key in redis.scan_iter(match=infra.redis_prefix + "*", count=500):
            await redis.delete(key)
        await redis.aclose()

    asyncio.run(clear_redis())


def _per_request_state(app: ASGIApp) -> ASGIApp:
    """Give each request its own copy of the lifespan state, as uvicorn does.

    asgi-lifespan hands every request the same dict, so anything a request stores
    in `request.state` (the verified principal, say) would leak into the next one.
    """

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and "state" in scope:
            scope = {**scope, "state": dict(scope["state"])}
        await app(scope, receive, send)

    return wrapped


@asynccontextmanager
async def asgi_client(app: ASGIApp, **kwargs: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to `app` in-process, with its lifespan running."""
    wrapped = _per_request_state(app)  # inside the manager's state injection
    async with LifespanManager(wrapped, startup_timeout=30, shutdown_timeout=30) as manager:
        # Starlette re-raises after sending the 500; the client must see the response.
        transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", **kwargs
        ) as client:
            yield client
