"""A consumer process dies, or is told to stop, in the middle of handling an event:
the event is neither lost nor applied twice, and nothing half-done remains.

admin-service projects every event in the consumer's transaction, together with its
inbox row. The test holds an exclusive lock on admin's `events` table, so the handler
of a real `user.registered` (a hospital registering through the gateway) is caught
mid-way: its inbox row is written, its audit row waits on the lock. Then the real
admin-service process is killed (SIGKILL) or stopped (SIGTERM), as an orchestrator
would, and the test reads what the database and the broker hold afterwards. For
SIGTERM an HTTP request is in flight too, held by a second lock on `order_facts`
(which the stats read), so the request drain and the consumer's stop are both
exercised, in the order uvicorn runs them.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import aio_pika
import asyncpg
import httpx

from flow_shared.testing.polling import eventually
from tests.e2e.conftest import process_exited

if TYPE_CHECKING:
    from flow_shared.testing.fleet import IsolatedFleet
    from tests.e2e.conftest import Account, Accounts

ADMIN_SERVICE = "admin-service"
ADMIN_ROLE = "flow_admin"
ADMIN_QUEUE = "admin-service.events"


class TableLock:
    """An exclusive lock on one of admin's tables, held by a superuser session."""

    def __init__(self, connection: asyncpg.Connection, table: str) -> None:
        self.connection = connection
        self.table = table
        self.transaction = connection.transaction()
        self.held = False

    async def acquire(self) -> None:
        await self.transaction.start()
        await self.connection.execute(f"LOCK TABLE admin.{self.table} IN ACCESS EXCLUSIVE MODE")
        self.held = True

    async def release(self) -> None:
        if self.held:
            self.held = False
            await self.transaction.rollback()


@asynccontextmanager
async def superuser(fleet: IsolatedFleet) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(host="127.0.0.1", user="postgres", database=fleet.database)
    try:
        yield connection
    finally:
        await connection.close()


async def _admin_sessions_waiting_on_a_lock(db: asyncpg.Connection, database: str) -> int:
    count: int = await db.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = $1 AND usename = $2 AND wait_event_type = 'Lock'",
        database,
        ADMIN_ROLE,
    )
    return count


def _admin_pid(fleet: IsolatedFleet) -> int:
    pid = fleet.main_pid(ADMIN_SERVICE)
    assert pid is not None, "admin-service is not running"
    return pid


async def _projected_registrations(db: asyncpg.Connection, org_id: str) -> list[Any]:
    """admin's audit rows for the org's user.registered, with their inbox rows."""
    rows: list[Any] = await db.fetch(
        "SELECT e.event_id, (SELECT count(*) FROM admin.inbox i"
        "   WHERE i.event_id = e.event_id AND i.consumer = $2) AS inbox_rows"
        " FROM admin.events e WHERE e.type = 'user.registered' AND e.data->>'org_id' = $1",
        org_id,
        ADMIN_SERVICE,
    )
    return rows


async def _org_fact_count(db: asyncpg.Connection, org_id: str) -> int:
    count: int = await db.fetchval(
        "SELECT count(*) FROM admin.org_facts WHERE org_id = $1::uuid", org_id
    )
    return count


async def _register_while_admin_is_stuck(
    fleet: IsolatedFleet, accounts: Accounts, lock: TableLock, db: asyncpg.Connection
) -> Account:
    """A hospital registers; admin-service's handler of its event blocks on the lock."""
    await lock.acquire()
    hospital = await accounts.register("hospital")

    async def stuck() -> bool:
        return await _admin_sessions_waiting_on_a_lock(db, fleet.database) >= 1

    await eventually(stuck, "admin-service's handler waiting on the events table")
    return hospital


async def _audit_lists_once(gateway: httpx.AsyncClient, admin: dict[str, str], org_id: str) -> None:
    listed = await gateway.get(
        "/api/v1/admin/audit", params={"type": "user.registered", "limit": 100}, headers=admin
    )
    assert listed.status_code == 200, listed.text
    mine = [item for item in listed.json()["items"] if item["data"].get("org_id") == org_id]
    assert len(mine) == 1, mine


async def test_sigkill_mid_handling_redelivers_and_applies_once(
    fleet: IsolatedFleet, accounts: Accounts, gateway: httpx.AsyncClient
) -> None:
    admin = await accounts.admin()
    async with superuser(fleet) as db, superuser(fleet) as locker:
        lock = TableLock(locker, "events")
        try:
            hospital = await _register_while_admin_is_stuck(fleet, accounts, lock, db)

            pid = _admin_pid(fleet)
            os.kill(pid, signal.SIGKILL)
            await eventually(lambda: process_exited(pid), "admin-service to die")
        finally:
            await lock.release()

        # The killed handler's transaction rolls back: no audit row, no inbox row, no
        # org fact — nothing half-done — once its orphaned session has noticed.
        async def orphan_gone() -> bool:
            return await _admin_sessions_waiting_on_a_lock(db, fleet.database) == 0

        await eventually(orphan_gone, "the killed handler's session to end")
        assert await _projected_registrations(db, hospital.org_id) == []
        assert await _org_fact_count(db, hospital.org_id) == 0

        # The broker kept the unacked event; the restarted consumer gets it again.
        fleet.flowctl("start", ADMIN_SERVICE)

        async def projected() -> list[Any] | None:
            return await _projected_registrations(db, hospital.org_id) or None

        rows = await eventually(projected, "the redelivered event to be projected")
        assert len(rows) == 1
        assert rows[0]["inbox_rows"] == 1
        assert await _org_fact_count(db, hospital.org_id) == 1
    await _audit_lists_once(gateway, admin, hospital.org_id)


async def test_sigterm_mid_handling_finishes_the_request_then_the_handler(
    fleet: IsolatedFleet, accounts: Accounts, gateway: httpx.AsyncClient
) -> None:
    admin = await accounts.admin()
    async with (
        superuser(fleet) as db,
        superuser(fleet) as events_locker,
        superuser(fleet) as facts_locker,
        httpx.AsyncClient(base_url=fleet.admin_service, timeout=60) as direct,
    ):
        events_lock = TableLock(events_locker, "events")
        facts_lock = TableLock(facts_locker, "order_facts")
        try:
            hospital = await _register_while_admin_is_stuck(fleet, accounts, events_lock, db)
            # An in-flight request, blocked on the other lock.
            await facts_lock.acquire()
            request = asyncio.create_task(direct.get("/api/v1/admin/stats", headers=admin))

            async def both_stuck() -> bool:
                return await _admin_sessions_waiting_on_a_lock(db, fleet.database) >= 2

            await eventually(both_stuck, "the stats request waiting on order_facts")

            pid = _admin_pid(fleet)
            os.kill(pid, signal.SIGTERM)
            await asyncio.sleep(1.0)
            assert not process_exited(pid), "admin-service exited with a request in flight"

            # uvicorn drains the request first: it is answered, not cut off.
            await facts_lock.release()
            answered = await request
            assert answered.status_code == 200, answered.text

            # Then the lifespan stops the consumer, which waits for its handler.
            await asyncio.sleep(1.0)
            assert not process_exited(pid), "admin-service exited with a handler in flight"
        finally:
            await facts_lock.release()
            await events_lock.release()

        await eventually(lambda: process_exited(pid), "admin-service to finish stopping")

        # The handler finished before the process exited: its effect is committed ...
        rows = await _projected_registrations(db, hospital.org_id)
        assert len(rows) == 1
        assert rows[0]["inbox_rows"] == 1
        assert await _org_fact_count(db, hospital.org_id) == 1
        # ... and acknowledged: the broker holds no copy of it to deliver again.
        assert rows[0]["event_id"] not in await _events_waiting_in_queue(fleet)

    fleet.flowctl("start", ADMIN_SERVICE)
    await _audit_lists_once(gateway, admin, hospital.org_id)


async def _events_waiting_in_queue(fleet: IsolatedFleet) -> set[uuid.UUID]:
    """The ids of every event in admin-service's queue, put back untouched afterwards."""
    connection = await aio_pika.connect(fleet.amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(ADMIN_QUEUE, passive=True)
        waiting: set[uuid.UUID] = set()
        while (message := await queue.get(no_ack=False, fail=False)) is not None:
            # Not acked: closing the channel returns every message to the queue.
            waiting.add(uuid.UUID(json.loads(message.body)["id"]))
        await channel.close()
        return waiting
    finally:
        await connection.close()
