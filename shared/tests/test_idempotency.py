"""Idempotency keys under real concurrency on PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import MetaData, Table
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from flow_shared.idempotency import (
    IdempotencyKeyReused,
    InvalidIdempotencyKey,
    StoredResponse,
    claim_idempotency_key,
    define_idempotency_table,
    request_fingerprint,
    store_idempotent_response,
)
from flow_shared.testing.infra import TestInfra


@pytest.fixture
async def keys(infra: TestInfra) -> AsyncIterator[tuple[AsyncEngine, Table]]:
    schema = "idem_" + uuid.uuid4().hex[:8]
    dsn = infra.admin_dsn.rsplit("/", 1)[0] + "/" + infra.database
    admin = await asyncpg.connect(dsn)
    await admin.execute(f"CREATE SCHEMA {schema}")
    table = define_idempotency_table(MetaData(schema=schema))
    engine = create_async_engine(
        dsn.replace("postgresql://", "postgresql+asyncpg://"), pool_size=12
    )
    async with engine.begin() as conn:
        await conn.run_sync(table.create)
    try:
        yield engine, table
    finally:
        await engine.dispose()
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


async def _request(
    engine: AsyncEngine,
    table: Table,
    key: str,
    body: dict[str, object],
    *,
    work_seconds: float = 0.0,
    fail: bool = False,
) -> StoredResponse | None:
    """One request's transaction: claim, 'work', store the answer, commit (or fail)."""
    from sqlalchemy.ext.asyncio import AsyncSession

    async with AsyncSession(engine) as session, session.begin():
        replay = await claim_idempotency_key(
            session,
            table,
            scope="orders.create:org-1",
            key=key,
            fingerprint=request_fingerprint(body),
        )
        if replay is not None:
            return replay
        await asyncio.sleep(work_seconds)
        if fail:
            raise RuntimeError("the first attempt failed")
        await store_idempotent_response(
            session,
            table,
            scope="orders.create:org-1",
            key=key,
            status_code=201,
            body={"order_id": str(uuid.uuid4())},
        )
        return None


async def test_same_key_and_body_replays_and_another_body_is_refused(
    keys: tuple[AsyncEngine, Table],
) -> None:
    engine, table = keys
    assert await _request(engine, table, "k-1", {"qty": 1}) is None
    replay = await _request(engine, table, "k-1", {"qty": 1})
    assert replay is not None
    assert replay.status_code == 201
    assert "order_id" in replay.body
    again = await _request(engine, table, "k-1", {"qty": 1})
    assert again == replay
    with pytest.raises(IdempotencyKeyReused):
        await _request(engine, table, "k-1", {"qty": 2})


async def test_parallel_requests_with_one_key_do_the_work_once(
    keys: tuple[AsyncEngine, Table],
) -> None:
    engine, table = keys
    results = await asyncio.gather(
        *(_request(engine, table, "k-par", {"qty": 3}, work_seconds=0.3) for _ in range(10))
    )
    owners = [r for r in results if r is None]
    replays = [r for r in results if r is not None]
    assert len(owners) == 1
    assert len(replays) == 9
    assert len({r.body["order_id"] for r in replays}) == 1


async def test_a_failed_owner_releases_the_key_to_the_next_request(
    keys: tuple[AsyncEngine, Table],
) -> None:
    engine, table = keys
    first = asyncio.create_task(
        _request(engine, table, "k-fail", {"qty": 1}, work_seconds=0.3, fail=True)
    )
    await asyncio.sleep(0.1)
    second = asyncio.create_task(_request(engine, table, "k-fail", {"qty": 1}))
    with pytest.raises(RuntimeError):
        await first
    assert await second is None  # it took the key over and did the work itself


def test_fingerprint_is_canonical_and_keys_are_validated() -> None:
    assert request_fingerprint({"a": 1, "b": [1, 2]}) == request_fingerprint({"b": [1, 2], "a": 1})
    assert request_fingerprint({"a": 1}) != request_fingerprint({"a": 2})
    from flow_shared.idempotency import validate_key

    assert validate_key("  abc-123 ") == "abc-123"
    for bad in ("", "   ", "x" * 201, "line\nbreak"):
        with pytest.raises(InvalidIdempotencyKey):
            validate_key(bad)
