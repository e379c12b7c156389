"""SOS broadcast on the real fleet (SPEC "SOS broadcast"), through the gateway.

Every vendor of a ring accepts at the same instant and exactly one order, one reservation
and one payment come of it; order-service is killed mid-ring and, restarted, escalates the
timed-out ring exactly once; a decline opens the next ring at once and the hospital hears
it. order-service runs two worker processes here (conftest), so the first acceptance and
the ring sweeper are raced across processes.

Each test has its own corner of the world, far from every other end-to-end test's points
(Britain, Iceland, northern Norway), so no other test's depot ever enters a ring.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx

from flow_shared.testing.polling import eventually
from tests.e2e.conftest import outbox_events, process_exited

if TYPE_CHECKING:
    from flow_shared.testing.fleet import IsolatedFleet
    from tests.e2e.conftest import Account, Accounts, StockedDepot

ORDER_SERVICE = "order-service"
CATEGORY = "oxygen_cylinder"
ON_HAND = 20
QUANTITY = 3
# About 1.1 km of latitude: depots are placed this far apart, so their distances differ.
KM_OF_LATITUDE = 0.009

SANTIAGO = {"lat": -33.4489, "lon": -70.6693}  # test 1
CHRISTCHURCH = {"lat": -43.5321, "lon": 172.6362}  # test 2
WELLINGTON = {"lat": -41.2865, "lon": 174.7762}  # test 3


def _north_of(point: dict[str, float], km: float) -> dict[str, float]:
    return {"lat": point["lat"] + km * KM_OF_LATITUDE, "lon": point["lon"]}


async def _vendors_around(
    gateway: httpx.AsyncClient,
    accounts: Accounts,
    hospital: Account,
    site: dict[str, float],
    distances_km: list[float],
) -> list[StockedDepot]:
    """One verified vendor per distance, each with a stocked, priced depot that far north
    of the site; returned once the catalogue lists every depot (inventory learns of the
    verification by an event), in the order of `distances_km`."""
    vendors = [
        await accounts.stocked_depot(
            name=f"SOS depot {km:g} km", **_north_of(site, km), category=CATEGORY, on_hand=ON_HAND
        )
        for km in distances_km
    ]
    wanted = {v.depot_id for v in vendors}

    async def all_listed() -> list[StockedDepot] | None:
        nearby = await gateway.get(
            "/api/v1/catalog/nearby",
            headers=hospital.headers,
            params={**site, "radius_km": 30, "product_id": vendors[0].product_id},
        )
        assert nearby.status_code == 200, nearby.text
        listed = {row["depot_id"] for row in nearby.json()["items"]}
        return vendors if wanted <= listed else None

    return await eventually(all_listed, "every SOS depot listed in the catalogue")


async def _hospital_with_site(
    gateway: httpx.AsyncClient, accounts: Accounts, site: dict[str, float]
) -> tuple[Account, str]:
    hospital = await accounts.register("hospital")
    created = await gateway.post(
        "/api/v1/locations/sites", headers=hospital.headers, json={"name": "ICU", **site}
    )
    assert created.status_code == 201, created.text
    return hospital, str(created.json()["id"])


async def _open_sos(
    gateway: httpx.AsyncClient,
    hospital: Account,
    *,
    product_id: str,
    site_id: str,
    **fields: Any,
) -> dict[str, Any]:
    opened = await gateway.post(
        "/api/v1/sos",
        headers={**hospital.headers, "Idempotency-Key": str(uuid.uuid4())},
        json={"product_id": product_id, "quantity": QUANTITY, "site_id": site_id, **fields},
    )
    assert opened.status_code == 201, opened.text
    sos: dict[str, Any] = opened.json()
    assert sos["status"] == "open"
    return sos


async def _get_sos(
    gateway: httpx.AsyncClient, headers: dict[str, str], sos_id: str
) -> httpx.Response:
    return await gateway.get(f"/api/v1/sos/{sos_id}", headers=headers)


def _offered_vendors(ring: dict[str, Any]) -> list[str]:
    return [offer["vendor_id"] for offer in ring["offers"]]


async def _notifications(
    gateway: httpx.AsyncClient, account: Account, event_type: str, sos_id: str
) -> list[dict[str, Any]]:
    """The account's in-app notifications of one type about one SOS."""
    listed = await gateway.get(
        "/api/v1/notifications", params={"page_size": 100}, headers=account.headers
    )
    assert listed.status_code == 200, listed.text
    return [
        note
        for note in listed.json()["items"]
        if note["type"] == event_type and note["data"].get("sos_id") == sos_id
    ]


async def _heard(
    gateway: httpx.AsyncClient, account: Account, event_type: str, sos_id: str
) -> list[dict[str, Any]]:
    """Polls until the account has at least one such notification, and returns them all."""

    async def some() -> list[dict[str, Any]] | None:
        return await _notifications(gateway, account, event_type, sos_id) or None

    return await eventually(some, f"{event_type} of SOS {sos_id} heard by {account.email}")


async def _stock_row(gateway: httpx.AsyncClient, depot: StockedDepot) -> dict[str, Any]:
    rows = await gateway.get(
        f"/api/v1/inventory/depots/{depot.depot_id}/stock", headers=depot.vendor.headers
    )
    assert rows.status_code == 200, rows.text
    row: dict[str, Any] = next(
        r for r in rows.json()["items"] if r["product_id"] == depot.product_id
    )
    return row


async def _payments(
    gateway: httpx.AsyncClient, hospital: Account, order_id: str
) -> list[dict[str, Any]]:
    answer = await gateway.get(
        "/api/v1/payments", params={"order_id": order_id}, headers=hospital.headers
    )
    assert answer.status_code == 200, answer.text
    return [p for p in answer.json()["items"] if p["order_id"] == order_id]


async def test_every_vendor_accepting_at_once_makes_one_order_one_reservation_one_payment(
    gateway: httpx.AsyncClient, accounts: Accounts, fleet: IsolatedFleet
) -> None:
    hospital, site_id = await _hospital_with_site(gateway, accounts, SANTIAGO)
    vendors = await _vendors_around(gateway, accounts, hospital, SANTIAGO, [1, 2, 3, 4, 5])
    product_id = vendors[0].product_id
    sos = await _open_sos(
        gateway, hospital, product_id=product_id, site_id=site_id, ring_size=len(vendors)
    )
    [ring] = sos["rings"]
    assert sorted(_offered_vendors(ring)) == sorted(v.vendor.org_id for v in vendors)

    # One client (one connection) per vendor, opened and used before the race, so the five
    # acceptances leave together instead of queueing for connections.
    clients = [
        httpx.AsyncClient(base_url=fleet.gateway, timeout=30, headers=v.vendor.headers)
        for v in vendors
    ]
    try:
        for client in clients:
            seen = await client.get(f"/api/v1/sos/{sos['id']}")
            assert seen.status_code == 200, seen.text
        answers = await asyncio.gather(
            *(
                client.post(
                    f"/api/v1/sos/{sos['id']}/accept",
                    json={"depot_id": vendor.depot_id, "eta_minutes": 25},
                )
                for client, vendor in zip(clients, vendors, strict=True)
            )
        )
    finally:
        for client in clients:
            await client.aclose()

    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [201, 409, 409, 409, 409], [a.text for a in answers]
    # A loser's UPDATE ... WHERE status = 'open' waits on the winner's row lock and then
    # finds the SOS fulfilled (sos.accept): sos-closed, never sos-ring-closed, for all.
    losing_types = [a.json()["type"] for a in answers if a.status_code == 409]
    assert all(t.endswith("/sos-closed") for t in losing_types), losing_types
    [won] = [a.json() for a in answers if a.status_code == 201]
    [winner] = [v for v, a in zip(vendors, answers, strict=True) if a.status_code == 201]
    order = won["order"]
    assert won["sos"]["status"] == "fulfilled"
    assert won["sos"]["order_id"] == order["id"]

    # Exactly one order, the winner's, emergency and already confirmed.
    listed = await gateway.get("/api/v1/orders", headers=hospital.headers)
    assert listed.status_code == 200, listed.text
    [only] = listed.json()["items"]
    assert only["id"] == order["id"]
    assert only["status"] == "confirmed"
    assert only["priority"] == "emergency"
    assert only["depot_id"] == winner.depot_id
    assert only["vendor_id"] == winner.vendor.org_id
    assert only["eta_minutes"] == 25

    # Exactly one reservation: only the winner's depot holds the quantity.
    for vendor in vendors:
        row = await _stock_row(gateway, vendor)
        held = QUANTITY if vendor is winner else 0
        assert (row["on_hand"], row["reserved"], row["available"]) == (
            ON_HAND,
            held,
            ON_HAND - held,
        ), (vendor.depot_id, row)

    # The SOS as the hospital reads it afterwards.
    after = await _get_sos(gateway, hospital.headers, sos["id"])
    assert after.status_code == 200, after.text
    assert after.json()["status"] == "fulfilled"
    assert after.json()["order_id"] == order["id"]
    [closed_ring] = after.json()["rings"]
    assert closed_ring["closed_reason"] == "accepted"
    answered = {o["vendor_id"]: o["answer"] for o in closed_ring["offers"]}
    assert answered == {v.vendor.org_id: ("accepted" if v is winner else None) for v in vendors}

    # What order-service published: one order placed, one fulfilment, one closing.
    types = [event["type"] for event in await outbox_events(fleet, "orders", sos_id=sos["id"])]
    assert types.count("order.placed") == 1, types
    assert types.count("sos.fulfilled") == 1, types
    assert types.count("sos.closed") == 1, types

    # Exactly one payment, opened from the one order.placed.
    async def paid() -> list[dict[str, Any]] | None:
        return await _payments(gateway, hospital, order["id"]) or None

    assert len(await eventually(paid, "the SOS order's payment opened", seconds=60)) == 1
    # Every loser hears sos.closed (published after order.placed); by then a second
    # payment, if any were coming, has had its chance: the count stays one.
    for loser in (v for v in vendors if v is not winner):
        [closed] = await _heard(gateway, loser.vendor, "sos.closed", sos["id"])
        assert closed["data"]["reason"] == "fulfilled"
    assert await _notifications(gateway, winner.vendor, "sos.closed", sos["id"]) == []
    assert len(await _payments(gateway, hospital, order["id"])) == 1


def _kill_order_service(fleet: IsolatedFleet) -> list[int]:
    """SIGKILL order-service's uvicorn process and every worker, as a crash would: the
    supervisor first, so no worker is respawned in between. Returns the pids killed."""
    master = fleet.main_pid(ORDER_SERVICE)
    assert master is not None, "order-service is not running"
    processes = fleet.service_pids()[ORDER_SERVICE]
    assert processes[0] == master, processes
    assert len(processes) >= 3, processes  # the master and its two workers at least
    for pid in processes:
        os.kill(pid, signal.SIGKILL)
    return processes


class _RingHold:
    """Keeps an SOS's current ring from timing out, without blocking its acceptance.

    Ring 2 lasts 5 s like ring 1, and after it nobody is left (unfilled); on a loaded
    machine flowctl's readiness wait alone can take that long. So a superuser session
    takes FOR KEY SHARE on the SOS row the moment ring 2 opens: the sweeper's
    FOR UPDATE SKIP LOCKED passes the row by, while an acceptance's UPDATE (FOR NO KEY
    UPDATE: no key column changes) is compatible with it and goes through."""

    def __init__(self, fleet: IsolatedFleet, sos_id: str) -> None:
        self.fleet = fleet
        self.sos_id = uuid.UUID(sos_id)
        self.held: Any = None  # the open asyncpg transaction holding the lock

    async def __aenter__(self) -> _RingHold:
        self.db = await asyncpg.connect(self.fleet.database_dsn)
        return self

    async def once_ring(self, number: int) -> int:
        """Polls until the SOS is at ring `number`, and holds it there."""

        async def locked_at_ring() -> int | None:
            transaction = self.db.transaction()
            await transaction.start()
            ring = await self.db.fetchval(
                "SELECT current_ring FROM orders.sos_requests WHERE id = $1 FOR KEY SHARE",
                self.sos_id,
            )
            if ring == number:
                self.held = transaction
                return number
            await transaction.rollback()
            assert ring < number, f"the SOS went past ring {number}: ring {ring}"
            return None

        return await eventually(locked_at_ring, f"ring {number} opened", seconds=120, interval=0.05)

    async def __aexit__(self, *_: object) -> None:
        try:
            if self.held is not None:
                await self.held.rollback()
        finally:
            await self.db.close()


async def test_order_service_killed_mid_ring_escalates_the_timed_out_ring_exactly_once(
    gateway: httpx.AsyncClient, accounts: Accounts, fleet: IsolatedFleet
) -> None:
    hospital, site_id = await _hospital_with_site(gateway, accounts, CHRISTCHURCH)
    near, far = await _vendors_around(gateway, accounts, hospital, CHRISTCHURCH, [2, 8])
    sos = await _open_sos(
        gateway,
        hospital,
        product_id=near.product_id,
        site_id=site_id,
        ring_size=1,
        ring_timeout_seconds=5,
    )
    [ring_1] = sos["rings"]
    assert _offered_vendors(ring_1) == [near.vendor.org_id]
    ring_1_expires = datetime.fromisoformat(ring_1["expires_at"])
    # Ring 1 is out (its request published and heard) before the crash.
    assert [
        n["data"]["ring_number"]
        for n in await _heard(gateway, near.vendor, "sos.request", sos["id"])
    ] == [1]

    killed = _kill_order_service(fleet)
    restart: asyncio.Task[None] | None = None
    try:
        async with _RingHold(fleet, sos["id"]) as hold:
            await eventually(
                lambda: all(process_exited(pid) for pid in killed), "order-service to die"
            )
            # Nothing can escalate ring 1 while order-service is down; let its time pass.
            await eventually(
                lambda: datetime.now(UTC) > ring_1_expires,
                "ring 1's expires_at to pass with order-service down",
                interval=0.2,
            )
            assert fleet.main_pid(ORDER_SERVICE) is None
            # Started in a thread: the hold must be taken the moment ring 2 opens, while
            # flowctl still waits for readiness.
            restart = asyncio.create_task(
                asyncio.to_thread(fleet.flowctl, "start", ORDER_SERVICE, quiet=True)
            )
            # Both restarted workers sweep at once; ring 1 must escalate once.
            await hold.once_ring(2)
            await restart
            seen = await _get_sos(gateway, hospital.headers, sos["id"])
            assert seen.status_code == 200, seen.text
            escalated: dict[str, Any] = seen.json()
            accepted = await gateway.post(
                f"/api/v1/sos/{sos['id']}/accept",
                headers=far.vendor.headers,
                json={"depot_id": far.depot_id, "eta_minutes": 40},
            )
    finally:
        # The fleet goes on to the next tests: order-service must run again, whatever failed.
        if restart is None:
            fleet.flowctl("start", ORDER_SERVICE, quiet=True)
        elif not restart.done():
            await asyncio.wait([restart])

    assert escalated["status"] == "open"
    assert [r["number"] for r in escalated["rings"]] == [1, 2]
    assert escalated["rings"][0]["closed_reason"] == "timed_out"
    assert escalated["rings"][1]["closed_reason"] is None
    assert _offered_vendors(escalated["rings"][1]) == [far.vendor.org_id]
    # The restarted service works: the far vendor's acceptance is the order.
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["sos"]["status"] == "fulfilled"
    assert accepted.json()["order"]["depot_id"] == far.depot_id
    assert accepted.json()["order"]["status"] == "confirmed"

    final = (await _get_sos(gateway, hospital.headers, sos["id"])).json()
    assert [(r["number"], r["closed_reason"]) for r in final["rings"]] == [
        (1, "timed_out"),
        (2, "accepted"),
    ]
    events = await outbox_events(fleet, "orders", sos_id=sos["id"])
    escalations = [e["data"] for e in events if e["type"] == "sos.escalated"]
    assert len(escalations) == 1, escalations
    assert (escalations[0]["from_ring"], escalations[0]["to_ring"]) == (1, 2)
    assert escalations[0]["reason"] == "timed_out"
    requests = [e["data"]["ring_number"] for e in events if e["type"] == "sos.request"]
    assert requests == [1, 2]

    # Who heard what. The hospital's sos.fulfilled is published after every request and
    # escalation of this SOS: once it is heard, a duplicate would have been heard too.
    await _heard(gateway, hospital, "sos.fulfilled", sos["id"])
    [to_far] = await _notifications(gateway, far.vendor, "sos.request", sos["id"])
    assert to_far["data"]["ring_number"] == 2
    to_near = await _notifications(gateway, near.vendor, "sos.request", sos["id"])
    assert [n["data"]["ring_number"] for n in to_near] == [1]
    [told] = await _notifications(gateway, hospital, "sos.escalated", sos["id"])
    assert (told["data"]["from_ring"], told["data"]["to_ring"]) == (1, 2)


async def test_a_ring_all_declined_opens_the_next_at_once_and_the_hospital_hears_it(
    gateway: httpx.AsyncClient, accounts: Accounts
) -> None:
    hospital, site_id = await _hospital_with_site(gateway, accounts, WELLINGTON)
    near, far = await _vendors_around(gateway, accounts, hospital, WELLINGTON, [1, 6])
    # The default ring time-out (180 s): only the decline can move this SOS on.
    sos = await _open_sos(
        gateway, hospital, product_id=near.product_id, site_id=site_id, ring_size=1
    )
    assert _offered_vendors(sos["rings"][0]) == [near.vendor.org_id]

    declined = await gateway.post(
        f"/api/v1/sos/{sos['id']}/decline",
        headers=near.vendor.headers,
        json={"reason": "No driver free"},
    )
    assert declined.status_code == 200, declined.text
    # The decliner's own view: its ring closed as declined, its competitors unseen.
    [its_ring] = declined.json()["rings"]
    assert its_ring["closed_reason"] == "declined"
    assert [o["answer"] for o in its_ring["offers"]] == ["declined"]

    seen = (await _get_sos(gateway, hospital.headers, sos["id"])).json()
    assert seen["status"] == "open"
    assert [(r["number"], r["closed_reason"]) for r in seen["rings"]] == [
        (1, "declined"),
        (2, None),
    ]
    assert _offered_vendors(seen["rings"][1]) == [far.vendor.org_id]

    [told] = await _heard(gateway, hospital, "sos.escalated", sos["id"])
    assert (told["data"]["from_ring"], told["data"]["to_ring"]) == (1, 2)
    assert told["data"]["reason"] == "declined"
    [asked] = await _heard(gateway, far.vendor, "sos.request", sos["id"])
    assert asked["data"]["ring_number"] == 2

    # The decliner can no longer take it; the next ring's vendor can.
    too_late = await gateway.post(
        f"/api/v1/sos/{sos['id']}/accept",
        headers=near.vendor.headers,
        json={"depot_id": near.depot_id, "eta_minutes": 10},
    )
    assert too_late.status_code == 409, too_late.text
    assert too_late.json()["type"].endswith("/sos-ring-closed")
    accepted = await gateway.post(
        f"/api/v1/sos/{sos['id']}/accept",
        headers=far.vendor.headers,
        json={"depot_id": far.depot_id, "eta_minutes": 30},
    )
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["order"]["depot_id"] == far.depot_id
