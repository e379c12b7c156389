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


# --- hospital sites' oxygen runways (scenario 7) -------------------------------------------

# The site's thresholds (SPEC's defaults), and one site in RUNWAY_IDLE_EVERY using no gas.
RUNWAY_ALERT_HOURS = 24
RUNWAY_CRITICAL_HOURS = 6
RUNWAY_IDLE_EVERY = 20
# One order on its way per this many sites (100,000 sites: 3,333 orders).
RUNWAY_SITES_PER_OPEN_ORDER = 30

# N sites in one statement, as a report would leave them (service/supply.py `report` and
# `_settle`): `stock` as reported (full units of one oxygen product) and its gas, a rate of
# 2 to 600 L/min (skewed low, like wards; every RUNWAY_IDLE_EVERY-th site 0), the units
# enough for 16 h to 15 days at that rate (skewed short: a shortage), a report 0 to 24 h
# old; so about 1.5% have run out, 2.5% are critical and 10% low. `level`, `runs_out_at`
# and `next_check_at` follow from that state at $3 as the service computes them, so the
# alert job finds nothing overdue. Random draws follow the session's setseed.
_SEED_SITE_SUPPLY = f"""
WITH gas AS (
    SELECT array_agg(id ORDER BY id) AS ids, array_agg(gas_liters ORDER BY id) AS liters
    FROM inventory.products WHERE gas_liters IS NOT NULL
), drawn AS (
    SELECT n,
           md5('bench-runway:' || $1::text || ':' || n)::uuid AS site_id,
           ($2::uuid[])[1 + n % cardinality($2::uuid[])] AS hospital_org_id,
           1 + floor(random() * cardinality(g.ids))::int AS product_index,
           CASE WHEN n % {RUNWAY_IDLE_EVERY} = 0 THEN 0::numeric
                ELSE round((2 + 598 * random() ^ 2)::numeric, 1) END AS consumption_lpm,
           (16 + 344 * random() ^ 1.5)::numeric AS hours_stocked,
           $3::timestamptz - random() * interval '24 hours' AS as_of,
           g.ids, g.liters
    FROM generate_series(1, $4::int) AS n CROSS JOIN gas AS g
), counted AS (
    SELECT d.*, d.ids[d.product_index] AS product_id,
           CASE WHEN d.consumption_lpm = 0 THEN 1 + floor(random() * 120)::int
                ELSE greatest(1, ceil(
                    d.hours_stocked * d.consumption_lpm * 60 / d.liters[d.product_index]
                ))::int END AS full_units
    FROM drawn AS d
), stated AS (
    SELECT c.*, c.full_units * c.liters[c.product_index] AS gas_liters,
           CASE WHEN c.consumption_lpm > 0
                THEN c.full_units * c.liters[c.product_index] / (c.consumption_lpm * 60)
           END AS hours_of_gas
    FROM counted AS c
), leveled AS (
    SELECT s.*,
           CASE WHEN s.hours_of_gas IS NULL
                  OR s.hours_of_gas - extract(epoch FROM $3::timestamptz - s.as_of) / 3600
                     > {RUNWAY_ALERT_HOURS} THEN 'ok'
                WHEN s.hours_of_gas - extract(epoch FROM $3::timestamptz - s.as_of) / 3600
                     > {RUNWAY_CRITICAL_HOURS} THEN 'low'
                ELSE 'critical' END AS level
    FROM stated AS s
)
INSERT INTO inventory.site_supply (
    site_id, hospital_org_id, site_name, gas_liters, consumption_lpm, as_of, stock, patients,
    reported_at, reported_by, alert_hours, critical_hours, level, runs_out_at, next_check_at,
    updated_at
)
SELECT site_id, hospital_org_id, 'Bench runway site ' || n, gas_liters, consumption_lpm, as_of,
       jsonb_build_array(
           jsonb_build_object('product_id', product_id::text, 'full_units', full_units)
       ),
       NULL, as_of, $5::uuid, {RUNWAY_ALERT_HOURS}, {RUNWAY_CRITICAL_HOURS}, level,
       as_of + make_interval(secs => (hours_of_gas * 3600)::float8),
       CASE WHEN hours_of_gas IS NULL OR level = 'critical' THEN NULL
            WHEN level = 'ok' THEN as_of + make_interval(
                secs => ((hours_of_gas - {RUNWAY_ALERT_HOURS}) * 3600)::float8)
            ELSE as_of + make_interval(
                secs => ((hours_of_gas - {RUNWAY_CRITICAL_HOURS}) * 3600)::float8)
       END,
       $3::timestamptz
FROM leveled
"""  # noqa: S608 - built from constants only

# Orders on their way to some of those sites (the projection of order-service's events):
# a third placed (no ETA yet), the rest confirmed or dispatched, due in 1 to 48 h, of
# 1 to 20 units of the product the site reported.
_SEED_SUPPLY_ORDERS = """
INSERT INTO inventory.supply_orders (
    order_id, site_id, hospital_org_id, status, eta, items, delivered_at, updated_at
)
SELECT md5('bench-runway-order:' || $1::text || ':' || k)::uuid, s.site_id, s.hospital_org_id,
       (ARRAY['placed', 'confirmed', 'dispatched'])[1 + k % 3],
       CASE WHEN k % 3 = 0 THEN NULL
            ELSE $2::timestamptz + make_interval(secs => 3600 + random() * 47 * 3600) END,
       jsonb_build_array(jsonb_build_object(
           'product_id', s.stock -> 0 ->> 'product_id',
           'quantity', 1 + floor(random() * 20)::int
       )),
       NULL, $2::timestamptz
FROM generate_series(1, $3::int) AS k
JOIN inventory.site_supply AS s
  ON s.site_id = md5('bench-runway:' || $1::text || ':' || (1 + (k * 7919) % $4::int))::uuid
"""


_RUNWAY_SPREAD = """
SELECT count(*) FILTER (WHERE level = 'ok') AS ok,
       count(*) FILTER (WHERE level = 'low') AS low,
       count(*) FILTER (WHERE level = 'critical') AS critical,
       count(*) FILTER (WHERE runs_out_at IS NULL) AS using_nothing,
       count(*) FILTER (WHERE runs_out_at <= $1) AS already_out,
       count(*) FILTER (WHERE runs_out_at > $1 + interval '30 days') AS beyond_30_days
FROM inventory.site_supply
"""


@dataclass(frozen=True, slots=True)
class RunwaySites:
    """What seed_runway_sites wrote: the sites now in site_supply (seeded or not), the
    ones seeded, and the sites and orders inbound among them."""

    total: int
    seeded: int
    open_orders: int
    sites_with_inbound: int
    seconds: float
    site_ids: list[str]
    # Sites per level at seeding, and those using no gas (runs_out_at NULL) or already out.
    spread: dict[str, int]


async def seed_runway_sites(fleet: IsolatedFleet, world: World, profile: Profile) -> RunwaySites:
    """`profile.runway_sites` hospital sites with a runway, and open orders to some, each
    in one set-based statement as inventory-service's role (its CHECKs hold: amounts >= 0,
    critical < alert hours, a known level, no auto-reorder configured), then VACUUM ANALYZE."""
    started = time.monotonic()
    hospitals = [uuid.UUID(h.account.org_id) for h in world.hospitals]
    # Who reported: any user id will do for the column (it names no one elsewhere).
    reporter = uuid.UUID(int=profile.seed)
    orders = max(1, profile.runway_sites // RUNWAY_SITES_PER_OPEN_ORDER)
    connection = await asyncpg.connect(fleet.database_url("inventory"))
    try:
        now = datetime.now(UTC)
        async with connection.transaction():
            await connection.execute("SELECT setseed(0.15)")
            await connection.execute(
                _SEED_SITE_SUPPLY, str(profile.seed), hospitals, now, profile.runway_sites, reporter
            )
            await connection.execute(
                _SEED_SUPPLY_ORDERS, str(profile.seed), now, orders, profile.runway_sites
            )
        # As autovacuum would have left a live table: statistics, and a visibility map so the
        # list's page of ids comes from the index alone. One statement each (VACUUM runs
        # outside any transaction block).
        for table in ("inventory.site_supply", "inventory.supply_orders"):
            await connection.execute(f"VACUUM (ANALYZE) {table}")
        total = int(await connection.fetchval("SELECT count(*) FROM inventory.site_supply"))
        with_inbound = int(
            await connection.fetchval(
                "SELECT count(DISTINCT site_id) FROM inventory.supply_orders "
                "WHERE status IN ('placed', 'confirmed', 'dispatched')"
            )
        )
        spread_row = await connection.fetchrow(_RUNWAY_SPREAD, now)
        site_ids = [
            str(row["site_id"])
            for row in await connection.fetch(
                "SELECT site_id FROM inventory.site_supply WHERE site_name LIKE 'Bench runway %'"
            )
        ]
    finally:
        await connection.close()
    return RunwaySites(
        total=total,
        seeded=profile.runway_sites,
        open_orders=orders,
        sites_with_inbound=with_inbound,
        seconds=round(time.monotonic() - started, 2),
        site_ids=site_ids,
        spread={key: int(value) for key, value in spread_row.items()},
    )
