"""The cylinder ledger under random sequences (seeded, so a failure replays): register,
dispatch (some refused), deliver with returns (some refused), collections, fills and
order cancellations, through the app and the order.* consumer on real PostgreSQL.

After every step: each cylinder is where a simple model says it is, its moves form a
chain (each from where the previous one left it, the last one to where it is), and the
deposits balance: what deliveries charged = what is still held + what the
cylinder.returned events gave back.
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from flow_shared.events.envelope import EventEnvelope
from flow_shared.testing.infra import caller_key
from flow_shared.testing.outbox import outbox_events
from flow_shared.testing.tokens import TokenIssuer
from inventory_service.consumers import event_handlers

ORDERS = {"X-Service-Key": caller_key("order-service")}
DEPOSITS = {"O2-CYL-46.7L": Decimal("12.50"), "O2-CYL-10L": Decimal("3.25")}
STEPS = 60


@dataclass
class Model:
    """What the ledger should say: serial -> (status, holder, order), and the orders."""

    cylinders: dict[str, tuple[str, uuid.UUID | None, uuid.UUID | None]] = field(
        default_factory=dict
    )
    product: dict[str, str] = field(default_factory=dict)
    orders: dict[uuid.UUID, tuple[uuid.UUID, str]] = field(default_factory=dict)
    charged: Decimal = Decimal("0.00")
    # Steps that moved something, by kind ("returned" counts returns on deliveries).
    done: Counter[str] = field(default_factory=Counter)

    def serials(self, status: str) -> list[str]:
        return sorted(s for s, (st, _, _) in self.cylinders.items() if st == status)


class Run:
    def __init__(
        self,
        http: httpx.AsyncClient,
        engine: AsyncEngine,
        tokens: TokenIssuer,
        products: dict[str, uuid.UUID],
        seed: int,
    ) -> None:
        self.http, self.engine, self.products = http, engine, products
        self.rng = random.Random(seed)
        self.vendor_id = uuid.uuid4()
        self.headers = tokens.headers(org_kind="vendor", role="org_admin", org_id=self.vendor_id)
        self.hospitals = [uuid.uuid4(), uuid.uuid4()]
        self.model = Model()
        self.depot_id = uuid.UUID(int=0)
        self.next_serial = 0

    async def setup(self) -> None:
        response = await self.http.post(
            "/api/v1/inventory/depots",
            json={"name": "Depot", "lat": 12.97, "lon": 77.59, "service_radius_km": 30},
            headers=self.headers,
        )
        assert response.status_code == 201, response.text
        self.depot_id = uuid.UUID(response.json()["id"])

    def _ids(self, order_id: uuid.UUID, hospital_id: uuid.UUID) -> dict[str, str]:
        return {
            "order_id": str(order_id),
            "vendor_id": str(self.vendor_id),
            "depot_id": str(self.depot_id),
            "hospital_org_id": str(hospital_id),
        }

    # -- the steps -----------------------------------------------------------------------

    async def register(self) -> None:
        bodies = []
        for _ in range(self.rng.randint(1, 4)):
            self.next_serial += 1
            serial, sku = f"P{self.next_serial:03}", self.rng.choice(sorted(DEPOSITS))
            status = self.rng.choice(["full", "full", "empty"])
            bodies.append(
                {
                    "serial": serial,
                    "product_id": str(self.products[sku]),
                    "depot_id": str(self.depot_id),
                    "hydrotest_due": "2099-01-01",
                    "status": status,
                }
            )
            self.model.cylinders[serial] = (status, None, None)
            self.model.product[serial] = sku
        response = await self.http.post(
            "/api/v1/cylinders/bulk", json={"cylinders": bodies}, headers=self.headers
        )
        assert response.status_code == 201, response.text

    async def dispatch(self) -> None:
        open_orders = [o for o, (_, state) in self.model.orders.items() if state == "dispatched"]
        if open_orders and self.rng.random() < 0.3:
            order_id = self.rng.choice(open_orders)
            hospital_id = self.model.orders[order_id][0]
        else:
            order_id, hospital_id = uuid.uuid4(), self.rng.choice(self.hospitals)
        # Mostly full ones (a dispatch that can succeed), sometimes any (most refused).
        full = self.model.serials("full")
        pool = full if full and self.rng.random() < 0.7 else sorted(self.model.cylinders)
        if not pool:
            return
        named = self.rng.sample(pool, self.rng.randint(1, min(3, len(pool))))
        counts: dict[str, int] = {}
        for serial in named:
            counts[self.model.product[serial]] = counts.get(self.model.product[serial], 0) + 1
        lines = [{"product_id": str(self.products[k]), "quantity": n} for k, n in counts.items()]
        response = await self.http.post(
            "/internal/cylinders/dispatch",
            json={**self._ids(order_id, hospital_id), "lines": lines, "serials": named},
            headers=ORDERS,
        )
        movable = all(
            self.model.cylinders[s][0] == "full"
            or (
                self.model.cylinders[s][0] == "in_transit"
                and self.model.cylinders[s][2] == order_id
            )
            for s in named
        )
        if not movable:
            assert response.status_code == 409, response.text
            return
        assert response.status_code == 200, response.text
        for serial, (status, _, order) in list(self.model.cylinders.items()):
            if status == "in_transit" and order == order_id and serial not in named:
                self.model.cylinders[serial] = ("full", None, None)
        self.model.done["dispatch"] += 1
        for serial in named:
            self.model.cylinders[serial] = ("in_transit", None, order_id)
        self.model.orders[order_id] = (hospital_id, "dispatched")

    async def deliver(self) -> None:
        open_orders = [o for o, (_, state) in self.model.orders.items() if state == "dispatched"]
        if not open_orders:
            return
        order_id = self.rng.choice(open_orders)
        hospital_id = self.model.orders[order_id][0]
        held_here = [
            s
            for s, (st, holder, _) in self.model.cylinders.items()
            if st == "at_hospital" and holder == hospital_id
        ]
        returned = self.rng.sample(held_here, self.rng.randint(0, len(held_here)))
        wrong = self.rng.random() < 0.2 and self.model.serials("full")
        if wrong:
            returned.append(self.rng.choice(self.model.serials("full")))
        deposits = [
            {"product_id": str(self.products[k]), "deposit_per_unit": str(v), "currency": "INR"}
            for k, v in DEPOSITS.items()
        ]
        response = await self.http.post(
            "/internal/cylinders/deliver",
            json={**self._ids(order_id, hospital_id), "returned": returned, "deposits": deposits},
            headers=ORDERS,
        )
        if wrong:
            assert response.status_code == 409, response.text
            return
        assert response.status_code == 200, response.text
        for serial, (status, _, order) in list(self.model.cylinders.items()):
            if status == "in_transit" and order == order_id:
                self.model.cylinders[serial] = ("at_hospital", hospital_id, order_id)
                self.model.charged += DEPOSITS[self.model.product[serial]]
        self.model.done["deliver"] += 1
        self.model.done["returned"] += len(returned)
        for serial in returned:
            self.model.cylinders[serial] = ("empty", None, None)
        self.model.orders[order_id] = (hospital_id, "delivered")

    async def collect(self) -> None:
        held = self.model.serials("at_hospital")
        if not held:
            return
        serials = self.rng.sample(held, self.rng.randint(1, len(held)))
        response = await self.http.post(
            "/api/v1/cylinders/returns",
            json={"depot_id": str(self.depot_id), "serials": serials},
            headers=self.headers,
        )
        assert response.status_code == 200, response.text
        for serial in serials:
            self.model.cylinders[serial] = ("empty", None, None)

    async def fill(self) -> None:
        empties = self.model.serials("empty")
        if not empties:
            return
        serial = self.rng.choice(empties)
        response = await self.http.post(f"/api/v1/cylinders/{serial}/fill", headers=self.headers)
        assert response.status_code == 200, response.text
        self.model.cylinders[serial] = ("full", None, None)

    async def cancel(self) -> None:
        open_orders = [o for o, (_, state) in self.model.orders.items() if state == "dispatched"]
        if not open_orders:
            return
        order_id = self.rng.choice(open_orders)
        hospital_id = self.model.orders[order_id][0]
        envelope = EventEnvelope(
            type="order.cancelled",
            producer="order-service",
            data={
                "order_id": str(order_id),
                "hospital_org_id": str(hospital_id),
                "status": "cancelled",
                "site_id": None,
                "items": [],
            },
        )
        async with async_sessionmaker(self.engine)() as session, session.begin():
            await event_handlers()[envelope.type](session, envelope)
        for serial, (status, _, order) in list(self.model.cylinders.items()):
            if status == "in_transit" and order == order_id:
                self.model.cylinders[serial] = ("full", None, None)
        self.model.orders[order_id] = (hospital_id, "cancelled")

    async def step(self) -> str:
        name = self.rng.choices(
            ["register", "dispatch", "deliver", "collect", "fill", "cancel"],
            weights=[2, 5, 4, 1, 3, 1],
        )[0]
        await getattr(self, name)()
        return name

    # -- the checks ---------------------------------------------------------------------

    async def check(self) -> None:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT id, serial, status, depot_id, holder_org_id, order_id, deposit"
                        " FROM cylinders WHERE vendor_id = :v"
                    ),
                    {"v": self.vendor_id},
                )
            ).all()
            moves = (
                await conn.execute(
                    text(
                        "SELECT m.cylinder_id, m.from_status, m.from_place, m.to_status,"
                        " m.to_place FROM cylinder_moves m JOIN cylinders c"
                        " ON c.id = m.cylinder_id WHERE c.vendor_id = :v ORDER BY m.id"
                    ),
                    {"v": self.vendor_id},
                )
            ).all()
        chains: dict[uuid.UUID, list[Any]] = {}
        for move in moves:
            chains.setdefault(move.cylinder_id, []).append(move)
        held_deposits = Decimal("0.00")
        assert {row.serial for row in rows} == set(self.model.cylinders)
        for row in rows:
            status, holder, order = self.model.cylinders[row.serial]
            assert (row.status, row.holder_org_id) == (status, holder), row.serial
            if status in ("in_transit", "at_hospital"):
                assert row.order_id == order, row.serial
            if status == "at_hospital":
                where = f"hospital:{row.holder_org_id}"
                held_deposits += row.deposit
            elif status == "in_transit":
                where = f"order:{row.order_id}"
            else:
                where = f"depot:{row.depot_id}"
            chain = chains[row.id]
            assert (chain[0].from_status, chain[0].from_place) == (None, None)
            for before, after in itertools.pairwise(chain):
                assert (after.from_status, after.from_place) == (
                    before.to_status,
                    before.to_place,
                ), row.serial
            assert (chain[-1].to_status, chain[-1].to_place) == (row.status, where), row.serial
        events = await outbox_events(
            self.engine, "cylinder.returned", vendor_id=str(self.vendor_id)
        )
        returned_deposits = sum((Decimal(e["data"]["deposit"]) for e in events), Decimal("0"))
        assert self.model.charged == held_deposits + returned_deposits


@pytest.mark.parametrize("seed", range(8))
async def test_random_ledger_sequences_keep_places_chains_and_deposits(
    seed: int,
    client: httpx.AsyncClient,
    inventory_db: AsyncEngine,
    token_issuer: TokenIssuer,
    product_ids: dict[str, uuid.UUID],
) -> None:
    run = Run(client, inventory_db, token_issuer, product_ids, seed)
    await run.setup()
    await run.register()
    for _ in range(STEPS):
        await run.step()
        await run.check()
    # The sequence did move cylinders through the ledger, not only register them.
    assert run.model.done["dispatch"] > 0, run.model.done
    assert run.model.done["deliver"] > 0, run.model.done
