"""Pytest plugin (loaded for every test run): fixtures over the real infrastructure.

- `infra`: this session's own database (migrated with every service's Alembic
  migrations, so migrations are tested too), Redis key prefix and AMQP vhost.
- `token_issuer`: signs JWTs as user-service does and serves the JWKS in-process.
- `db_connection_for(schema)`: a connection as that service's role, in a
  transaction rolled back at the end of the test.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from flow_shared.testing.infra import TestInfra, start_infra, stop_infra
from flow_shared.testing.service_app import schema_engine
from flow_shared.testing.tokens import TokenIssuer


@pytest.fixture(scope="session")
def infra() -> Iterator[TestInfra]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    started = start_infra(worker)
    yield started
    stop_infra(started)


@pytest.fixture(scope="session")
def token_issuer() -> TokenIssuer:
    return TokenIssuer.create()


@pytest.fixture
async def rollback_session(
    request: pytest.FixtureRequest, infra: TestInfra
) -> AsyncIterator[AsyncSession]:
    """A session as the role of the schema named by `@pytest.mark.schema("users")`,
    inside a transaction that is rolled back after the test."""
    marker = request.node.get_closest_marker("schema")
    if marker is None:
        raise pytest.UsageError("rollback_session needs @pytest.mark.schema('<schema>')")
    async with schema_engine(infra, marker.args[0]) as engine, engine.connect() as connection:
        transaction = await connection.begin()
        session = AsyncSession(bind=connection, join_transaction_mode="create_savepoint")
        try:
            yield session
        finally:
            await session.close()
            await transaction.rollback()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "schema(name): the service schema a test's session uses")
