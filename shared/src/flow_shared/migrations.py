"""Alembic helpers: every service's `migrations/env.py` is a call to `run_migrations`."""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy import MetaData, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine


def _migrate(connection: Connection, metadata: MetaData, schema: str) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table_schema=schema,
        include_schemas=False,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online(url: str, metadata: MetaData, schema: str) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.execute(text(f'SET search_path TO "{schema}", public'))
        await connection.run_sync(_migrate, metadata, schema)
        await connection.commit()
    await engine.dispose()


def run_migrations(metadata: MetaData, schema: str) -> None:
    """Run from env.py. The URL is the service's own role: `DATABASE_URL`.

    The schema itself is created by provisioning (scripts/provision.py), owned by
    that role, so migrations never need superuser rights.
    """
    url = context.config.get_main_option("sqlalchemy.url") or os.environ.get("DATABASE_URL")
    if not url:
        raise SystemExit("DATABASE_URL is not set: migrations need the service's database role")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, version_table_schema=schema)
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_online(url, metadata, schema))
