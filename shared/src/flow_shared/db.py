"""Async SQLAlchemy: one engine per service, bound to the service's own schema.

A request, an event handler or a job gets one session in one transaction, its
unit of work (flow_shared.unit_of_work); business functions only flush.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request
from sqlalchemy import MetaData, Table, event, text
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

# Named constraints keep Alembic diffs stable and make violations readable.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def service_metadata(schema: str) -> MetaData:
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


def create_engine(
    url: str,
    *,
    schema: str | None,
    application_name: str,
    pool_size: int = 10,
    max_overflow: int = 10,
    **kwargs: Any,
) -> AsyncEngine:
    server_settings = {"application_name": application_name}
    if schema:
        # The role can only use its own schema; public stays for PostGIS types.
        server_settings["search_path"] = f"{schema},public"
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        # Not pool_pre_ping: with asyncpg it costs three round trips (BEGIN, ping, ROLLBACK)
        # on every checkout, measured at a third of a short transaction's client CPU.
        # `_discard_closed_connection` covers what it was for at no cost (bench/README.md).
        connect_args={"server_settings": server_settings},
        **kwargs,
    )
    event.listen(engine.sync_engine, "checkout", _discard_closed_connection)
    return engine


def _discard_closed_connection(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Never hand out a pooled connection the server has closed.

    A restarted or failed-over PostgreSQL, or an administrator's
    pg_terminate_backend, closes the socket; asyncpg sees that while the
    connection idles in the pool. Raising DisconnectionError here makes the
    pool drop it and check out (or open) another, so the request never sees it.
    """
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


async def scan_on_one_core(session: AsyncSession) -> None:
    """Keep this transaction's queries to one core: for background scans, such as gauges.

    PostgreSQL would run an aggregate over a large table with parallel workers, taking
    every core of a small machine for its duration and stalling the requests being
    served (seen in the bench as a p99 spike every refresh); one core, a little longer,
    leaves the rest to them.
    """
    await session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))


class Database:
    """The engine and session factory of one service, and the relays of this process to
    wake when a unit of work that wrote to their outbox commits."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessionmaker = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
        self._relay_wakers: dict[Table, list[Callable[[], None]]] = {}

    def wake_relays_on_commit(self, outbox: Table, wake: Callable[[], None]) -> Callable[[], None]:
        """Call `wake` after each commit that wrote events into `outbox`; returns the undo.
        The relay's poll stays, for rows committed by other processes."""
        wakers = self._relay_wakers.setdefault(outbox, [])
        wakers.append(wake)

        def forget() -> None:
            if wake in wakers:
                wakers.remove(wake)

        return forget

    def wake_relays(self, outbox: Table) -> None:
        for wake in list(self._relay_wakers.get(outbox, ())):
            wake()

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


def app_database(request: Request) -> Database:
    database: Database | None = getattr(request.app.state, "database", None)
    if database is None:
        raise RuntimeError("this service has no database configured")
    return database


# Dependencies are `async def` even when they only read app state: FastAPI runs a plain
# `def` dependency in its thread pool, a thread hand-off on every request.
async def get_database(request: Request) -> Database:
    return app_database(request)
