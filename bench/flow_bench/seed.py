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

For the SOS scenario, a few depots are added next to every hospital site (one per
vendor, every product in stock) the same way, so that every SOS finds a full ring.

Seeded rows have no `set` movement: their history starts at their first change.
The initial quantity of every stock row is also kept in a `bench` schema (as the
admin), for the conservation check after the order runs.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import random
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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
    # Depots seeded next to the hospital sites for the SOS scenario (seed_sos_depots).
    sos_depots: int = 0
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
    admin = Account(email=fleet.admin_email, password=fleet.admin_password, org_id="")
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
    products = [Product(id=str(p["id"])) for p in catalogue["items"]]
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


# How long inventory-service may take to learn of the verifications.
VERIFIED_VENDORS_WAIT_SECONDS = 60.0


async def _wait_for_verified_vendors(fleet: IsolatedFleet, vendor_ids: list[str]) -> None:
    """inventory-service learns of verifications from events: wait until it has them all."""
    connection = await asyncpg.connect(fleet.database_url("inventory"))
    try:
        deadline = time.monotonic() + VERIFIED_VENDORS_WAIT_SECONDS
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


_DEPOT_COLUMNS = [
    "id",
    "vendor_id",
    "name",
    "address",
    "lat",
    "lon",
    "service_radius_km",
    "created_at",
]
_STOCK_COLUMNS = [
    "depot_id",
    "product_id",
    "on_hand",
    "reserved",
    "low_stock_threshold",
    "low_stock_alerted",
    "updated_at",
]


class _DepotWriter:
    """COPY of depots and their stock as inventory-service's role, each stock row's
    initial quantity kept in the bench schema (as the admin) for the conservation check."""

    def __init__(self, service: asyncpg.Connection, admin: asyncpg.Connection) -> None:
        self.service = service
        self.admin = admin
        self.now = datetime.now(UTC)

    @classmethod
    @asynccontextmanager
    async def open(cls, fleet: IsolatedFleet) -> AsyncIterator[_DepotWriter]:
        service = await asyncpg.connect(fleet.database_url("inventory"))
        admin = await asyncpg.connect(fleet.database_dsn)
        try:
            await admin.execute(
                f"CREATE SCHEMA IF NOT EXISTS {BENCH_SCHEMA};"
                f"CREATE TABLE IF NOT EXISTS {BENCH_SCHEMA}.initial_stock ("
                " depot_id uuid NOT NULL, product_id uuid NOT NULL, on_hand integer NOT NULL,"
                " PRIMARY KEY (depot_id, product_id))"
            )
            yield cls(service, admin)
            await service.execute("ANALYZE inventory.depots; ANALYZE inventory.stock")
            await admin.execute(f"ANALYZE {BENCH_SCHEMA}.initial_stock")
        finally:
            await service.close()
            await admin.close()
        await _bump_catalogue_generation(fleet)

    def depot(
        self,
        rng: random.Random,
        vendor_id: uuid.UUID,
        name: str,
        lat: float,
        lon: float,
        product_ids: list[uuid.UUID],
        depots: list[tuple[object, ...]],
        stock: list[tuple[object, ...]],
        *,
        sample: int | None = None,
    ) -> None:
        """One depot and its stock rows (of `sample` of the products at random, or all),
        appended to the batch. The draws keep their order, so a seed gives the same data."""
        depot_id = uuid.uuid4()
        radius = float(rng.choice((30, 50, 80)))
        depots.append((depot_id, vendor_id, name, None, lat, lon, radius, self.now))
        stocked = product_ids if sample is None else rng.sample(product_ids, sample)
        for product_id in stocked:
            on_hand = rng.randint(500, 5000)
            threshold = rng.randint(5, 50)
            stock.append((depot_id, product_id, on_hand, 0, threshold, False, self.now))

    async def write(
        self, depots: list[tuple[object, ...]], stock: list[tuple[object, ...]]
    ) -> None:
        await self.service.copy_records_to_table(
            "depots", schema_name="inventory", columns=_DEPOT_COLUMNS, records=depots
        )
        await self.service.copy_records_to_table(
            "stock", schema_name="inventory", columns=_STOCK_COLUMNS, records=stock
        )
        await self.admin.copy_records_to_table(
            "initial_stock",
            schema_name=BENCH_SCHEMA,
            columns=["depot_id", "product_id", "on_hand"],
            records=[(row[0], row[1], row[2]) for row in stock],
        )


async def grow_depots(fleet: IsolatedFleet, world: World, profile: Profile, target: int) -> float:
    """Add depots (and their stock) until there are `target`; returns the seconds it took."""
    if target <= world.depots:
        return 0.0
    started = time.monotonic()
    # A different stream per step, so growing to 10k after 1k adds new random depots.
    rng = random.Random(f"{profile.seed}:{world.depots}:{target}")
    product_ids = [uuid.UUID(p.id) for p in world.products]
    vendor_ids = [uuid.UUID(v.org_id) for v in world.vendors]
    async with _DepotWriter.open(fleet) as writer:
        number = world.depots
        while number < target:
            batch = min(COPY_BATCH_DEPOTS, target - number)
            depots: list[tuple[object, ...]] = []
            stock: list[tuple[object, ...]] = []
            for _ in range(batch):
                lat, lon = random_point(rng, profile)
                writer.depot(
                    rng,
                    vendor_ids[number % len(vendor_ids)],
                    f"Bench depot {number}",
                    lat,
                    lon,
                    product_ids,
                    depots,
                    stock,
                    sample=profile.products_per_depot,
                )
                number += 1
            await writer.write(depots, stock)
    world.depots = target
    seconds = time.monotonic() - started
    world.seed_seconds[target] = round(seconds, 2)
    return seconds


# SOS depots lie this far from their site (km): well inside SOS_MAX_DISTANCE_KM.
SOS_DEPOT_DISTANCE_KM = (3.0, 15.0)
KM_PER_DEGREE_LAT = 111.32


def point_at(lat: float, lon: float, distance_km: float, bearing_rad: float) -> tuple[float, float]:
    """A point `distance_km` from (lat, lon) on a bearing (flat-earth: fine at tens of km)."""
    north = distance_km * math.cos(bearing_rad) / KM_PER_DEGREE_LAT
    east = distance_km * math.sin(bearing_rad) / (KM_PER_DEGREE_LAT * math.cos(math.radians(lat)))
    return round(lat + north, 6), round(lon + east, 6)


async def seed_sos_depots(
    fleet: IsolatedFleet, world: World, profile: Profile, *, vendors_per_site: int
) -> int:
    """Near every hospital site, one depot for each of `vendors_per_site` vendors (taken in
    turn, so sites get different vendors), stocking every product: an SOS from any site,
    for any product, finds that many vendors in range whatever the uniform spread gave.
    Done once; returns the depots added."""
    if world.sos_depots:
        return 0
    rng = random.Random(f"{profile.seed}:sos")
    product_ids = [uuid.UUID(p.id) for p in world.products]
    vendor_ids = [uuid.UUID(v.org_id) for v in world.vendors]
    count = min(vendors_per_site, len(vendor_ids))
    depots: list[tuple[object, ...]] = []
    stock: list[tuple[object, ...]] = []
    async with _DepotWriter.open(fleet) as writer:
        sites = [site for hospital in world.hospitals for site in hospital.sites]
        for number, site in enumerate(sites):
            for turn in range(count):
                vendor_id = vendor_ids[(number + turn) % len(vendor_ids)]
                lat, lon = point_at(
                    site.lat,
                    site.lon,
                    rng.uniform(*SOS_DEPOT_DISTANCE_KM),
                    rng.uniform(0.0, 2 * math.pi),
                )
                writer.depot(
                    rng,
                    vendor_id,
                    f"Bench SOS depot {number}.{turn}",
                    lat,
                    lon,
                    product_ids,
                    depots,
                    stock,
                )
        await writer.write(depots, stock)
    world.sos_depots = len(depots)
    return len(depots)


_VENDORS_IN_RANGE = """
SELECT p.product_id, count(DISTINCT v.vendor_id) AS vendors
FROM unnest($3::uuid[]) AS p(product_id)
LEFT JOIN inventory.stock s
       ON s.product_id = p.product_id
      AND s.on_hand - s.reserved >= $5
      AND ST_DWithin(s.location, ST_SetSRID(ST_MakePoint($2, $1), 4326)::geography, $4, false)
LEFT JOIN inventory.vendors v ON v.vendor_id = s.vendor_id AND v.verified AND NOT v.suspended
GROUP BY p.product_id
"""


async def check_sos_suppliers(
    fleet: IsolatedFleet, world: World, *, radius_km: float, quantity: int, needed: int
) -> int:
    """Every site has at least `needed` verified vendors with `quantity` of every product in
    range (inventory's own rule for SOS candidates); returns the fewest any site has."""
    fewest: int | None = None
    connection = await asyncpg.connect(fleet.database_url("inventory"))
    try:
        for hospital in world.hospitals:
            for site in hospital.sites:
                rows = await connection.fetch(
                    _VENDORS_IN_RANGE,
                    site.lat,
                    site.lon,
                    [uuid.UUID(p.id) for p in world.products],
                    radius_km * 1000.0,
                    quantity,
                )
                for row in rows:
                    if row["vendors"] < needed:
                        raise RuntimeError(
                            f"site {site.id} has {row['vendors']} verified vendors with "
                            f"{quantity} of product {row['product_id']} within {radius_km:g} km, "
                            f"fewer than {needed}"
                        )
                    vendors = int(row["vendors"])
                    fewest = vendors if fewest is None else min(fewest, vendors)
    finally:
        await connection.close()
    return fewest or 0


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
