"""The three fixtures every service's tests/conftest.py has, each made by one call here:

    make_settings = settings_fixture("review-service", Settings, log_level="WARNING")
    service_app, app, client = in_process_app_fixtures(create_app)
    reviews_db = schema_engine_fixture("reviews")

- `make_settings(**overrides)`: the service's Settings on this session's slice of the
  infrastructure (`settings_factory`, for a conftest whose defaults need other fixtures);
- `service_app`, `app`, `client`: its app running in-process with a client talking to it
  (`running_app`; `client_opener` for a conftest that builds the app per test);
- an engine on its schema as its own role, to set up and read what requests committed
  (`schema_engine`).

pytest registers a fixture under the name the conftest assigns it to.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, TypeVar

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from flow_shared.config import BaseServiceSettings
from flow_shared.testing.infra import TestInfra, asgi_client
from flow_shared.testing.tokens import TokenIssuer

SettingsT = TypeVar("SettingsT", bound=BaseServiceSettings)
# `make(**overrides)`: a service's Settings with some settings changed for one test.
SettingsFactory: TypeAlias = Callable[..., SettingsT]
# `open(**overrides)`: an in-process client of an app built with those settings overrides.
ClientOpener: TypeAlias = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]
FixtureScope: TypeAlias = Literal["session", "package", "module", "function"]


# -- settings ------------------------------------------------------------------------------


def settings_factory(
    infra: TestInfra, service: str, settings_class: type[SettingsT], **defaults: Any
) -> SettingsFactory[SettingsT]:
    """Builds `service`'s Settings on `infra` (`TestInfra.settings_kwargs`): these test
    defaults over the session's, and each call's overrides over both."""

    def make(**overrides: Any) -> SettingsT:
        return settings_class(**infra.settings_kwargs(service, **{**defaults, **overrides}))

    return make


def settings_fixture(
    service: str,
    settings_class: type[SettingsT],
    *,
    scope: FixtureScope = "session",
    **defaults: Any,
) -> Any:
    """A `make_settings` fixture: `settings_factory` on the session's `infra`."""

    @pytest.fixture(scope=scope)
    def make_settings(infra: TestInfra) -> SettingsFactory[SettingsT]:
        return settings_factory(infra, service, settings_class, **defaults)

    return make_settings


# -- the app and its client ----------------------------------------------------------------


@dataclass(frozen=True)
class ServiceApp:
    """A service's app running in-process (lifespan started), and a client talking to it."""

    app: FastAPI
    client: httpx.AsyncClient


@asynccontextmanager
async def running_app(app: FastAPI) -> AsyncIterator[ServiceApp]:
    """`app` with its lifespan running and an in-process client (`asgi_client`)."""
    async with asgi_client(app) as client:
        yield ServiceApp(app, client)


def in_process_app_fixtures(
    create_app: Callable[..., FastAPI], *, scope: FixtureScope = "session"
) -> tuple[Any, Any, Any]:
    """The fixtures `service_app` (the app `create_app(make_settings(), jwks_fetcher=...)`
    running for `scope`, tokens from `token_issuer`), and `app` and `client` from it for
    each test. Needs the conftest's `make_settings`."""

    @pytest.fixture(scope=scope)
    async def service_app(
        make_settings: SettingsFactory[Any], token_issuer: TokenIssuer
    ) -> AsyncIterator[ServiceApp]:
        app = create_app(make_settings(), jwks_fetcher=token_issuer.fetch_jwks)
        async with running_app(app) as running:
            yield running

    @pytest.fixture
    def app(service_app: ServiceApp) -> FastAPI:
        return service_app.app

    @pytest.fixture
    def client(service_app: ServiceApp) -> httpx.AsyncClient:
        return service_app.client

    return service_app, app, client


def client_opener(build_app: Callable[..., FastAPI]) -> ClientOpener:
    """`open(...)`: a client of the app `build_app(...)` builds from the same arguments
    (settings overrides, say), in-process, its lifespan running while the client is open."""

    @asynccontextmanager
    async def open_client(*args: Any, **kwargs: Any) -> AsyncIterator[httpx.AsyncClient]:
        async with asgi_client(build_app(*args, **kwargs)) as client:
            yield client

    return open_client


# -- the database --------------------------------------------------------------------------


@asynccontextmanager
async def schema_engine(
    infra: TestInfra, schema: str, *, schema_on_search_path: bool = True
) -> AsyncIterator[AsyncEngine]:
    """An engine connecting as `schema`'s own role (the service's), disposed at the end.

    With `schema_on_search_path` unqualified table names resolve to the schema; without,
    SQL names its tables with their schema, and reflection keeps the schema in names."""
    connect_args: dict[str, Any] = {}
    if schema_on_search_path:
        connect_args["server_settings"] = {"search_path": f"{schema},public"}
    engine = create_async_engine(infra.database_url(schema), connect_args=connect_args)
    try:
        yield engine
    finally:
        await engine.dispose()


def schema_engine_fixture(
    schema: str, *, scope: FixtureScope = "session", schema_on_search_path: bool = True
) -> Any:
    """A fixture holding a `schema_engine` for `scope`: the service's tables as its own
    role, to set up a test and to read what its requests committed."""

    @pytest.fixture(scope=scope)
    async def engine(infra: TestInfra) -> AsyncIterator[AsyncEngine]:
        async with schema_engine(
            infra, schema, schema_on_search_path=schema_on_search_path
        ) as opened:
            yield opened

    return engine
