"""Idempotency keys under real concurrency on PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from flow_shared.idempotency import (
    IdempotencyKeyReused,
    IdempotentAnswer,
    InvalidIdempotencyKey,
    StoredResponse,
    answer_once,
    claim_idempotency_key,
    define_idempotency_table,
    request_fingerprint,
    store_idempotent_response,
)

if TYPE_CHECKING:
    from conftest import ScratchSchema


@pytest.fixture
async def keys(scratch_schema: ScratchSchema) -> tuple[AsyncEngine, Table]:
    table = define_idempotency_table(scratch_schema.metadata)
    await scratch_schema.create_tables()
    engine = scratch_schema.engine("idempotency-test", pool_size=12, max_overflow=10)
    return engine, table


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


class CreateRequests:
    """Requests through `answer_once` as a create route runs them: one transaction each,
    `produce` doing the work (counted) and answering the new resource."""

    def __init__(self, engine: AsyncEngine, table: Table) -> None:
        self.engine = engine
        self.table = table
        self.produced = 0

    async def send(
        self, key: str | None, body: dict[str, object], *, work_seconds: float = 0.0
    ) -> IdempotentAnswer:
        async def produce() -> dict[str, object]:
            self.produced += 1
            await asyncio.sleep(work_seconds)
            return {"id": str(uuid.uuid4()), **body}

        async with AsyncSession(self.engine) as session, session.begin():
            return await answer_once(
                session,
                self.table,
                scope="refunds:org-1",
                key=key,
                request_body=body,
                status_code=200,
                produce=produce,
            )


async def test_answer_once_answers_first_and_then_replays_the_same_answer(
    keys: tuple[AsyncEngine, Table],
) -> None:
    requests = CreateRequests(*keys)

    first = await requests.send("a-1", {"amount": "5.00"})
    again = await requests.send("a-1", {"amount": "5.00"})

    assert first.replayed is False
    assert (first.status_code, first.body["amount"]) == (200, "5.00")
    assert again == IdempotentAnswer(200, first.body, replayed=True)
    assert requests.produced == 1
    with pytest.raises(IdempotencyKeyReused):
        await requests.send("a-1", {"amount": "6.00"})
    assert requests.produced == 1


async def test_answer_once_without_a_key_does_the_work_every_time(
    keys: tuple[AsyncEngine, Table],
) -> None:
    requests = CreateRequests(*keys)

    answers = [await requests.send(None, {"amount": "5.00"}) for _ in range(2)]

    assert [a.replayed for a in answers] == [False, False]
    assert answers[0].body["id"] != answers[1].body["id"]
    assert requests.produced == 2


async def test_answer_once_under_parallel_retries_does_the_work_once(
    keys: tuple[AsyncEngine, Table],
) -> None:
    requests = CreateRequests(*keys)

    answers = await asyncio.gather(
        *(requests.send("a-par", {"amount": "1.00"}, work_seconds=0.2) for _ in range(6))
    )

    assert requests.produced == 1
    assert sorted(a.replayed for a in answers) == [False] + [True] * 5
    assert len({a.body["id"] for a in answers}) == 1
