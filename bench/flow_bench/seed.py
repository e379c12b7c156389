"""Seeding a realistic world at scale.

A handful of accounts through the public API (vendors verified by the platform
admin, hospitals with delivery sites, every vendor's price list), then the bulk
(depots spread over a region, about ten products in stock at each) written
straight into inventory-service's tables with COPY, as inventory-service's own
role, keeping what the service relies on:

- every depot belongs to a vendor that inventory's projection knows as verified;
- `location` is the database's own generated column (from lat/lon), the GiST index
  is maintained by PostgreSQL, and the tables are ANALYZEd after each load;
- stock rows satisfy `0 <= reserved <= on_hand` with `low_stock_alerted` matching
  `available < low_stock_threshold` (false: every seeded row starts above it);
- the nearby cache's catalogue generation is bumped after each load, as a stock
  change would, so no cached page survives the new data.

Seeded rows have no `set` movement: their history starts at their first change.
The initial quantity of every stock row is also kept in a `bench` schema (as the
admin), for the conservation check after the order runs.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
from redis.asyncio import Redis

from flow_bench.api import Account, FlowApi, gather_bounded
from flow_bench.config import Profile
from flow_shared.testing.fleet import IsolatedFleet

COPY_BATCH_DEPOTS = 10_000
BENCH_SCHEMA = "bench"


@dataclass(frozen=True, slots=True)
class Product:
    id: str
    sku: str


@dataclass(frozen=True, slots=True)
class Site:
    id: str
    lat: float
    lon: float


@dataclass
class Hospital:
    account: Account
    sites: list[Site]


@dataclass(frozen=True, slots=True)
class OrderTarget:
    """A depot a hospital site may order from, and what it stocks."""

    depot_id: str
    vendor_id: str
    product_ids: tuple[str, ...]


@dataclass
class World:
    admin: Account
    vendors: list[Account]
    hospitals: list[Hospital]
    products: list[Product]
    depots: int = 0
    # site id -> its nearest depots with stock
    targets: dict[str, list[OrderTarget]] = field(default_factory=dict)
    seed_seconds: dict[int, float] = field(default_factory=dict)

    @property
    def accounts(self) -> list[Account]:
        return [self.admin, *self.vendors, *(h.account for h in self.hospitals)]

    def vendor(self, org_id: str) -> Account:
        return next(v for v in self.vendors if v.org_id == org_id)


def random_point(rng: random.Random, profile: Profile) -> tuple[float, float]:
    region = profile.region
    return (
        round(rng.uniform(region.lat_min, region.lat_max), 6),
        round(rng.uniform(region.lon_min, region.lon_max), 6),
    )


async def seed_accounts(api: FlowApi, fleet: IsolatedFleet, profile: Profile) -> World:
    rng = random.Random(profile.seed)
    admin = Account(email=fleet.admin_email, password=fleet.admin_password, user_id="", org_id="")
    await api.login(admin)
    vendors: list[Account] = await gather_bounded(
        [api.register("vendor", f"Bench Oxygen {n}") for n in range(profile.vendors)], limit=4
    )
    for vendor in vendors:
        await api.call("POST", f"/api/v1/admin/vendors/{vendor.org_id}/verify", account=admin)
    hospital_accounts: list[Account] = await gather_bounded(
        [api.register("hospital", f"Bench Hospital {n}") for n in range(profile.hospitals)],
        limit=4,
    )
    licence_valid_until = (dt.date.today() + dt.timedelta(days=365)).isoformat()
    for account in hospital_accounts:
        await api.call(
            "POST",
            f"/api/v1/admin/organizations/{account.org_id}/verify",
            account=admin,
            body={"license_expires_on": licence_valid_until},
        )
    hospitals: list[Hospital] = []
    for number, account in enumerate(hospital_accounts):
        sites: list[Site] = []
        for site_number in range(profile.sites_per_hospital):
            lat, lon = random_point(rng, profile)
            answer = await api.call(
                "POST",
                "/api/v1/locations/sites",
                account=account,
                body={"name": f"Site {number}.{site_number}", "lat": lat, "lon": lon},
                expected=(201,),
            )
            sites.append(Site(id=str(answer["id"]), lat=lat, lon=lon))
        hospitals.append(Hospital(account=account, sites=sites))
    catalogue = await api.call(
        "GET", "/api/v1/catalog/products?page_size=100", account=hospital_accounts[0]
    )
    products = [Product(id=str(p["id"]), sku=str(p["sku"])) for p in catalogue["items"]]
    if len(products) < profile.products_per_depot:
        raise RuntimeError(
            f"the catalogue has {len(products)} products, fewer than the "
            f"{profile.products_per_depot} per depot asked for"
        )
    world = World(admin=admin, vendors=vendors, hospitals=hospitals, products=products)
    await _lift_allocation_caps(api, world)
    await _set_prices(api, world, rng)
    await _wait_for_verified_vendors(fleet, [v.org_id for v in vendors])
    return world


# The bench measures ordering, not fair allocation: its few hospitals place far more
# orders than a cap would let one hospital hold open, so their caps are lifted.
BENCH_ALLOCATION_CAP = 1_000_000  # the most an override may be


async def _lift_allocation_caps(api: FlowApi, world: World) -> None:
    caps = [{"product_id": p.id, "units": BENCH_ALLOCATION_CAP} for p in world.products]
    for hospital in world.hospitals:
        await api.call(
            "PUT",
            f"/api/v1/admin/organizations/{hospital.account.org_id}/allocation",
            account=world.admin,
            body={"caps": caps},
        )


async def _set_prices(api: FlowApi, world: World, rng: random.Random) -> None:
    """Every vendor prices every product (a few hundred calls: through the API)."""
    calls = []
    for vendor in world.vendors:
        for product in world.products:
            body = {
                "unit_price": f"{rng.uniform(20, 900):.2f}",
                "currency": "GBP",
                "delivery_fee_per_km": f"{rng.uniform(0.5, 3):.2f}",
                "min_delivery_fee": f"{rng.uniform(10, 40):.2f}",
                "emergency_surcharge_pct": str(rng.choice((0, 10, 15, 20, 25))),
            }
            calls.append(
                api.call("PUT", f"/api/v1/pricing/prices/{product.id}", account=vendor, body=body)
            )
    await gather_bounded(calls, limit=8)


async def _wait_for_verified_vendors(
    fleet: IsolatedFleet, vendor_ids: list[str], wait_seconds: float = 60.0
) -> None:
    """inventory-service learns of verifications from events: wait until it has them all."""
    connection = await asyncpg.connect(fleet.database_url("inventory"))
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            known = await connection.fetchval(
                "SELECT count(*) FROM inventory.vendors "
                "WHERE vendor_id = ANY($1::uuid[]) AND verified AND NOT suspended",
                vendor_ids,
            )
            if known == len(vendor_ids):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"inventory-service knows {known} of {len(vendor_ids)} vendors as verified"
                )
            await asyncio.sleep(0.2)
    finally:
        await connection.close()


async def grow_depots(fleet: IsolatedFleet, world: World, profile: Profile, target: int) -> float:
    """Add depots (and their stock) until there are `target`; returns the seconds it took."""
    if target <= world.depots:
        return 0.0
    started = time.monotonic()
    # A different stream per step, so growing to 10k after 1k adds new random depots.
    rng = random.Random(f"{profile.seed}:{world.depots}:{target}")
    product_ids = [uuid.UUID(p.id) for p in world.products]
    vendor_ids = [uuid.UUID(v.org_id) for v in world.vendors]
    service = await asyncpg.connect(fleet.database_url("inventory"))
    admin = await asyncpg.connect(fleet.database_dsn)
    try:
        await admin.execute(
            f"CREATE SCHEMA IF NOT EXISTS {BENCH_SCHEMA};"
            f"CREATE TABLE IF NOT EXISTS {BENCH_SCHEMA}.initial_stock ("
            " depot_id uuid NOT NULL, product_id uuid NOT NULL, on_hand integer NOT NULL,"
            " PRIMARY KEY (depot_id, product_id))"
        )
        now = datetime.now(UTC)
        number = world.depots
        while number < target:
            batch = min(COPY_BATCH_DEPOTS, target - number)
            depots: list[tuple[object, ...]] = []
            stock: list[tuple[object, ...]] = []
            for _ in range(batch):
                depot_id = uuid.uuid4()
                lat, lon = random_point(rng, profile)
                vendor_id = vendor_ids[number % len(vendor_ids)]
                depots.append(
                    (
                        depot_id,
                        vendor_id,
                        f"Bench depot {number}",
                        None,
                        lat,
                        lon,
                        float(rng.choice((30, 50, 80))),
                        now,
                    )
                )
                for product_id in rng.sample(product_ids, profile.products_per_depot):
                    on_hand = rng.randint(500, 5000)
                    threshold = rng.randint(5, 50)
                    stock.append((depot_id, product_id, on_hand, 0, threshold, False, now))
                number += 1
            await service.copy_records_to_table(
                "depots",
                schema_name="inventory",
                columns=[
                    "id",
                    "vendor_id",
                    "name",
                    "address",
                    "lat",
                    "lon",
                    "service_radius_km",
                    "created_at",
                ],
                records=depots,
            )
            await service.copy_records_to_table(
                "stock",
                schema_name="inventory",
                columns=[
                    "depot_id",
                    "product_id",
                    "on_hand",
                    "reserved",
                    "low_stock_threshold",
                    "low_stock_alerted",
                    "updated_at",
                ],
                records=stock,
            )
            await admin.copy_records_to_table(
                "initial_stock",
                schema_name=BENCH_SCHEMA,
                columns=["depot_id", "product_id", "on_hand"],
                records=[(row[0], row[1], row[2]) for row in stock],
            )
        await service.execute("ANALYZE inventory.depots; ANALYZE inventory.stock")
        await admin.execute(f"ANALYZE {BENCH_SCHEMA}.initial_stock")
    finally:
        await service.close()
        await admin.close()
    await _bump_catalogue_generation(fleet)
    world.depots = target
    seconds = time.monotonic() - started
    world.seed_seconds[target] = round(seconds, 2)
    return seconds


async def _bump_catalogue_generation(fleet: IsolatedFleet) -> None:
    """What inventory-service does after a committed stock change (see its cache.py)."""
    redis = Redis.from_url(fleet.redis_url)
    try:
        await redis.incr(f"{fleet.redis_prefix}inventory:catalog-generation")
    finally:
        await redis.aclose()


async def choose_order_targets(fleet: IsolatedFleet, world: World, profile: Profile) -> None:
    """For every hospital site, its nearest depots (a KNN walk of the GiST index)."""
    connection = await asyncpg.connect(fleet.database_url("inventory"))
    try:
        for hospital in world.hospitals:
            for site in hospital.sites:
                rows = await connection.fetch(
                    """
                    SELECT d.id, d.vendor_id,
                           array_agg(s.product_id ORDER BY s.product_id) AS products
                    FROM (
                        SELECT id, vendor_id FROM inventory.depots
                        ORDER BY location <-> ST_SetSRID(ST_MakePoint($2, $1), 4326)::geography
                        LIMIT $3
                    ) AS d
                    JOIN inventory.stock s ON s.depot_id = d.id
                    GROUP BY d.id, d.vendor_id
                    """,
                    site.lat,
                    site.lon,
                    profile.depots_per_site,
                )
                world.targets[site.id] = [
                    OrderTarget(
                        depot_id=str(row["id"]),
                        vendor_id=str(row["vendor_id"]),
                        product_ids=tuple(str(p) for p in row["products"]),
                    )
                    for row in rows
                ]
    finally:
        await connection.close()
