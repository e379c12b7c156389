"""What the simulated users send: request sources for the open-loop generator.

Every source is called once per request, at its intended time, and reads the
account's current token (tokens are renewed between runs).
"""

from __future__ import annotations

import asyncio
import random
import urllib.parse
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from flow_bench.api import Account
from flow_bench.config import Profile
from flow_bench.loadgen import LatencyHistogram, PlannedRequest, RequestSource, clock, perform
from flow_bench.seed import Hospital, OrderTarget, Site, World, random_point
from flow_shared.json_codec import dumps, loads

JSON = {"Content-Type": "application/json"}


def nearby_path(lat: float, lon: float, radius_km: float, product_id: str) -> str:
    query = urllib.parse.urlencode(
        {"lat": f"{lat:.6f}", "lon": f"{lon:.6f}", "radius_km": radius_km, "product_id": product_id}
    )
    return f"/api/v1/catalog/nearby?{query}"


def idempotent_create(
    url: str,
    account: Account,
    body: dict[str, Any],
    *,
    kind: str,
    on_response: Callable[[bytes], None],
) -> PlannedRequest:
    """A POST that creates (201), under a fresh Idempotency-Key as the API asks of creates."""
    return PlannedRequest(
        "POST",
        url,
        {**account.headers, **JSON, "Idempotency-Key": uuid.uuid4().hex},
        dumps(body),
        expected=frozenset({201}),
        kind=kind,
        on_response=on_response,
    )


def fixed_get(base_url: str, path: str, account: Account) -> RequestSource:
    """The same GET every time (scenario 1's cached nearby page)."""
    url = base_url + path

    def source(_index: int) -> PlannedRequest:
        return PlannedRequest("GET", url, account.headers, kind="get")

    return source


def scattered_nearby(
    base_url: str, world: World, profile: Profile, rng: random.Random
) -> RequestSource:
    """Nearby searches from random points of the region, for random products: no two
    alike, so each is a database query (the cache never hits), as a worst case."""
    accounts = [h.account for h in world.hospitals]

    def source(index: int) -> PlannedRequest:
        lat, lon = random_point(rng, profile)
        product = rng.choice(world.products)
        path = nearby_path(lat, lon, profile.search_radius_km, product.id)
        return PlannedRequest(
            "GET", base_url + path, accounts[index % len(accounts)].headers, kind="nearby"
        )

    return source


@dataclass
class PlacedOrder:
    order_id: str
    vendor_id: str


@dataclass
class OrderTraffic:
    """Hospitals ordering from depots near their sites, through the gateway."""

    base_url: str
    world: World
    rng: random.Random
    placed: list[PlacedOrder] = field(default_factory=list)

    def _pick(self) -> tuple[Hospital, Site, OrderTarget]:
        hospital = self.rng.choice(self.world.hospitals)
        site = self.rng.choice(hospital.sites)
        return hospital, site, self.rng.choice(self.world.targets[site.id])

    def source(self, _index: int) -> PlannedRequest:
        hospital, site, target = self._pick()
        lines = self.rng.sample(
            target.product_ids, k=min(len(target.product_ids), self.rng.choice((1, 1, 2)))
        )
        body = {
            "vendor_id": target.vendor_id,
            "depot_id": target.depot_id,
            "site_id": site.id,
            "items": [{"product_id": p, "quantity": self.rng.randint(1, 3)} for p in lines],
            "priority": self.rng.choice(("routine", "routine", "urgent")),
            "payment_method": "invoice",
        }

        def remember(answer: bytes) -> None:
            order = loads(answer)
            self.placed.append(PlacedOrder(str(order["id"]), str(order["vendor_id"])))

        return idempotent_create(
            self.base_url + "/api/v1/orders",
            hospital.account,
            body,
            kind="order",
            on_response=remember,
        )

    def take_placed(self) -> list[PlacedOrder]:
        taken, self.placed = self.placed, []
        return taken


# confirm -> dispatch -> deliver: what vendors do with an order, one step per request.
VENDOR_STEPS = ("confirm", "dispatch", "deliver")


@dataclass
class VendorTraffic:
    """Vendors moving their orders along; with nothing to move, a vendor's stock screen
    polls (GET the stock of one of its depots)."""

    base_url: str
    world: World
    rng: random.Random
    work: deque[tuple[PlacedOrder, int]] = field(default_factory=deque)

    def add(self, orders: list[PlacedOrder]) -> None:
        self.work.extend((order, 0) for order in orders)

    def source(self, _index: int) -> PlannedRequest:
        if self.work:
            order, step = self.work.popleft()
            vendor = self.world.vendor(order.vendor_id)
            action = VENDOR_STEPS[step]
            body = dumps({"eta_minutes": 60}) if action == "confirm" else None

            def advance(_answer: bytes) -> None:
                if step + 1 < len(VENDOR_STEPS):
                    self.work.append((order, step + 1))

            return PlannedRequest(
                "POST",
                f"{self.base_url}/api/v1/orders/{order.order_id}/{action}",
                {**vendor.headers, **JSON},
                body,
                kind=f"vendor {action}",
                on_response=advance,
            )
        site_targets = self.rng.choice(list(self.world.targets.values()))
        target = self.rng.choice(site_targets)
        vendor = self.world.vendor(target.vendor_id)
        return PlannedRequest(
            "GET",
            f"{self.base_url}/api/v1/inventory/depots/{target.depot_id}/stock",
            vendor.headers,
            kind="vendor stock screen",
        )


@dataclass
class MixedDay:
    """80% browse (nearby, compare, product pages), 15% orders, 5% vendor updates."""

    base_url: str
    world: World
    profile: Profile
    rng: random.Random
    orders: OrderTraffic
    vendors: VendorTraffic

    def source(self, index: int) -> PlannedRequest:
        # Orders placed so far become the vendors' work.
        if self.orders.placed:
            self.vendors.add(self.orders.take_placed())
        draw = self.rng.random()
        if draw < 0.80:
            return self._browse(draw)
        if draw < 0.95:
            return self.orders.source(index)
        return self.vendors.source(index)

    def _browse(self, draw: float) -> PlannedRequest:
        hospital = self.rng.choice(self.world.hospitals)
        site = self.rng.choice(hospital.sites)
        product = self.rng.choice(self.world.products)
        headers = hospital.account.headers
        if draw < 0.40:
            path = nearby_path(site.lat, site.lon, self.profile.search_radius_km, product.id)
            return PlannedRequest("GET", self.base_url + path, headers, kind="nearby")
        if draw < 0.60:
            query = urllib.parse.urlencode(
                {
                    "product_id": product.id,
                    "quantity": 2,
                    "lat": f"{site.lat:.6f}",
                    "lon": f"{site.lon:.6f}",
                    "radius_km": self.profile.search_radius_km,
                    "priority": "urgent",
                }
            )
            return PlannedRequest(
                "GET", f"{self.base_url}/api/v1/pricing/compare?{query}", headers, kind="compare"
            )
        return PlannedRequest(
            "GET", f"{self.base_url}/api/v1/catalog/products/{product.id}", headers, kind="product"
        )


@dataclass(frozen=True, slots=True)
class SosOffer:
    vendor_id: str
    depot_id: str
    eta_min: int | None


@dataclass(frozen=True, slots=True)
class OpenedSos:
    sos_id: str
    ring_one: tuple[SosOffer, ...]


@dataclass
class SosRunRecord:
    """What one run's SOS traffic did, taken at its end (SosTraffic.take)."""

    opened: list[OpenedSos]
    # Acceptance -> confirmed order, from each acceptance's intended time.
    accept_latency: LatencyHistogram
    accepted: int
    accept_errors: Counter[str]


@dataclass
class SosTraffic:
    """Hospitals broadcasting SOS requests from their sites (the open-loop source), and
    the vendors accepting them: `accept_delay_s` after an SOS's answer, one of its ring-1
    vendors (chosen at random) accepts with its own token. The acceptance is due at that
    moment whatever happens meanwhile, and its latency counts from then (open loop, as
    the generator's); it goes out on the generator's session, outside the run's
    concurrency cap (its pool still bounds it)."""

    base_url: str
    world: World
    rng: random.Random
    session: aiohttp.ClientSession
    accept_delay_s: float
    timeout_s: float
    ring_size: int
    max_distance_km: float
    ring_timeout_s: int
    opened: list[OpenedSos] = field(default_factory=list)
    accept_latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    accepted: int = 0
    accept_errors: Counter[str] = field(default_factory=Counter)
    _accepting: set[asyncio.Task[None]] = field(default_factory=set)

    def source(self, _index: int) -> PlannedRequest:
        hospital = self.rng.choice(self.world.hospitals)
        site = self.rng.choice(hospital.sites)
        body = {
            "product_id": self.rng.choice(self.world.products).id,
            "quantity": self.rng.randint(1, 3),
            "site_id": site.id,
            "ring_size": self.ring_size,
            "max_distance_km": self.max_distance_km,
            "ring_timeout_seconds": self.ring_timeout_s,
            "payment_method": "invoice",
        }
        return idempotent_create(
            self.base_url + "/api/v1/sos",
            hospital.account,
            body,
            kind="sos",
            on_response=self._opened,
        )

    def _opened(self, answer: bytes) -> None:
        sos = read_opened_sos(loads(answer), self.ring_size)
        self.opened.append(sos)
        # The generator can only play the bench's own vendors (it has their tokens).
        ours = {v.org_id for v in self.world.vendors}
        playable = [o for o in sos.ring_one if o.vendor_id in ours]
        if not playable:
            raise ValueError(f"SOS {sos.sos_id}'s ring 1 has none of the bench's vendors")
        offer = self.rng.choice(playable)
        intended = clock() + self.accept_delay_s
        task = asyncio.get_running_loop().create_task(self._accept(sos, offer, intended))
        self._accepting.add(task)
        task.add_done_callback(self._accepting.discard)

    async def _accept(self, sos: OpenedSos, offer: SosOffer, intended: float) -> None:
        await asyncio.sleep(max(0.0, intended - clock()))
        vendor = self.world.vendor(offer.vendor_id)
        body = {"depot_id": offer.depot_id, "eta_minutes": max(1, offer.eta_min or 30)}
        request = PlannedRequest(
            "POST",
            f"{self.base_url}/api/v1/sos/{sos.sos_id}/accept",
            {**vendor.headers, **JSON},
            dumps(body),
            expected=frozenset({201}),
            kind="sos accept",
            on_response=lambda answer: check_confirmed(loads(answer), sos.sos_id),
        )
        outcome = await perform(self.session, request, aiohttp.ClientTimeout(total=self.timeout_s))
        if outcome is not None:
            self.accept_errors[outcome] += 1
            return
        self.accepted += 1
        self.accept_latency.record_seconds(clock() - intended)

    async def settle(self) -> None:
        """Wait for the acceptances still due or in flight (each bounded by its timeout)."""
        while self._accepting:
            await asyncio.wait(set(self._accepting))

    def take(self) -> SosRunRecord:
        record = SosRunRecord(self.opened, self.accept_latency, self.accepted, self.accept_errors)
        self.opened, self.accept_latency = [], LatencyHistogram()
        self.accepted, self.accept_errors = 0, Counter()
        return record


def read_opened_sos(answer: dict[str, Any], ring_size: int) -> OpenedSos:
    """The SOS's id and ring 1's offers; a ring short of `ring_size` vendors is an error
    (the bench seeds enough in range of every site: fewer means the product lost some)."""
    rings = [r for r in answer["rings"] if r["number"] == 1]
    if answer["status"] != "open" or len(rings) != 1:
        raise ValueError(f"SOS {answer['id']} is {answer['status']} with rings {answer['rings']}")
    offers = tuple(
        SosOffer(str(o["vendor_id"]), str(o["depot_id"]), o["eta_min"]) for o in rings[0]["offers"]
    )
    if len({o.vendor_id for o in offers}) != ring_size:
        raise ValueError(f"SOS {answer['id']}'s ring 1 has {len(offers)} vendors, not {ring_size}")
    return OpenedSos(str(answer["id"]), offers)


def check_confirmed(answer: dict[str, Any], sos_id: str) -> None:
    """An acceptance's answer carries the SOS fulfilled and its order already confirmed."""
    order, sos = answer["order"], answer["sos"]
    if order["status"] != "confirmed" or order["priority"] != "emergency":
        raise ValueError(
            f"the acceptance of SOS {sos_id} gave a {order['priority']} {order['status']} order"
        )
    fulfilled = sos["status"] == "fulfilled" and str(sos["order_id"]) == str(order["id"])
    if str(sos["id"]) != sos_id or not fulfilled:
        raise ValueError(f"SOS {sos_id} is {sos['status']} after its acceptance")


# --- the admin's runway list (scenario 7) --------------------------------------------------

RUNWAY_LIST_PATH = "/api/v1/supply/runway"
# The admin's reads: mostly the list, the rest one site's runway.
RUNWAY_LIST_SHARE = 0.8
# Pages of the list: this share from its first pages (where an admin looks first), the
# rest from anywhere in it, so deep OFFSETs are measured too.
RUNWAY_FIRST_PAGES = 10
RUNWAY_FIRST_PAGE_SHARE = 0.5
# The generator's kinds: list pages among the first, list pages deeper, single sites.
RUNWAY_FIRST_KIND = "runway-list-first-pages"
RUNWAY_DEEP_KIND = "runway-list-deep-pages"
RUNWAY_SITE_KIND = "runway-site"


def runway_pages(sites: int, page_size: int) -> int:
    return max(1, -(-sites // page_size))


def runway_page(rng: random.Random, pages: int) -> int:
    """A page of a list of `pages` pages: one of the first RUNWAY_FIRST_PAGES in
    RUNWAY_FIRST_PAGE_SHARE of draws, else any page, the last included."""
    if rng.random() < RUNWAY_FIRST_PAGE_SHARE:
        return rng.randint(1, min(pages, RUNWAY_FIRST_PAGES))
    return rng.randint(1, pages)


def runway_mix_text() -> str:
    first = RUNWAY_FIRST_PAGE_SHARE * RUNWAY_LIST_SHARE * 100
    return (
        f"{RUNWAY_LIST_SHARE * 100:g}% GET {RUNWAY_LIST_PATH}?page=P&page_size=N "
        f"({first:g}% of all reads on pages 1-{RUNWAY_FIRST_PAGES}, "
        f"{RUNWAY_LIST_SHARE * 100 - first:g}% on any page uniformly, deep ones included), "
        f"{100 - RUNWAY_LIST_SHARE * 100:g}% GET /api/v1/supply/sites/{{id}}/runway of a "
        "random seeded site"
    )


@dataclass
class RunwayTraffic:
    """The platform admin reading runways through the gateway: list pages (among the
    first RUNWAY_FIRST_PAGES or deeper, each its kind) and single sites."""

    base_url: str
    admin: Account
    site_ids: list[str]
    sites: int
    page_size: int
    rng: random.Random

    def source(self, _index: int) -> PlannedRequest:
        if self.rng.random() < RUNWAY_LIST_SHARE or not self.site_ids:
            page = runway_page(self.rng, runway_pages(self.sites, self.page_size))
            query = urllib.parse.urlencode({"page": page, "page_size": self.page_size})
            return PlannedRequest(
                "GET",
                f"{self.base_url}{RUNWAY_LIST_PATH}?{query}",
                self.admin.headers,
                kind=RUNWAY_FIRST_KIND if page <= RUNWAY_FIRST_PAGES else RUNWAY_DEEP_KIND,
            )
        site_id = self.rng.choice(self.site_ids)
        return PlannedRequest(
            "GET",
            f"{self.base_url}/api/v1/supply/sites/{site_id}/runway",
            self.admin.headers,
            kind=RUNWAY_SITE_KIND,
        )
