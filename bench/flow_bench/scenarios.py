"""Issue 6's five scenarios, issue 13's SOS and issue 15's supply runway, each producing the
figures the report must show."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from flow_bench import config as goals
from flow_bench.api import TOKEN_RENEW_AFTER_SECONDS, FlowApi
from flow_bench.checks import OrderChecks, check_runway_list
from flow_bench.config import ORDER_SLO, READ_SLO, Profile
from flow_bench.cpu import top_consumers
from flow_bench.loadgen import LatencyHistogram, RunResult
from flow_bench.measure import Config, Knee, Measurement, Runner, Spread
from flow_bench.memory import MemorySeries, sample_rss
from flow_bench.nginx import Nginx
from flow_bench.pgbench import drop_scratch, order_script, prepare_scratch, run_pgbench
from flow_bench.report import Figure, Report
from flow_bench.seed import (
    World,
    check_sos_suppliers,
    choose_order_targets,
    grow_depots,
    seed_runway_sites,
    seed_sos_depots,
)
from flow_bench.traffic import (
    RUNWAY_DEEP_KIND,
    RUNWAY_FIRST_KIND,
    RUNWAY_FIRST_PAGES,
    RUNWAY_SITE_KIND,
    MixedDay,
    OrderTraffic,
    RunwayTraffic,
    SosTraffic,
    VendorTraffic,
    fixed_get,
    nearby_path,
    runway_mix_text,
    scattered_nearby,
)
from flow_shared.testing.fleet import IsolatedFleet

GATEWAY = "1. Gateway overhead"
NEARBY = "2. Catalog nearby"
ORDERS = "3. Orders end to end"
MIXED = "4. Mixed day"
LAG = "5. Event lag"
SOS = "6. SOS"
RUNWAY = "7. Supply runway"
# Where nginx listens, relative to the fleet's port offset (free in services.toml).
NGINX_PORT = 8090


@dataclass
class Bench:
    profile: Profile
    fleet: IsolatedFleet
    api: FlowApi
    runner: Runner
    world: World
    report: Report
    checks: OrderChecks

    async def renew_tokens(self, duration: float) -> None:
        """Tokens must outlive the next run (access tokens live 15 minutes)."""
        await self.api.renew_tokens(
            self.world.accounts,
            older_than=max(30.0, min(TOKEN_RENEW_AFTER_SECONDS, 900.0 - duration - 120.0)),
        )

    def order_knee_rate(self) -> float:
        knee = self.report.scenarios.get(ORDERS, {}).get("knee", {})
        rate = knee.get("knee_rate") if isinstance(knee, dict) else None
        return float(rate) if rate else self.profile.order_start_rate

    def load_basis(self) -> str:
        """What scenarios 4 and 5 take 70% of."""
        if self.report.scenarios.get(ORDERS, {}).get("knee", {}).get("knee_rate"):
            return "70% of the order knee"
        return "70% of the order search's start rate: no order knee was measured"


def _knee_detail(knee: Knee) -> str:
    m = knee.confirmation
    state = "" if knee.confirmed else "; the confirmation runs missed the SLO"
    return f"{m.throughput.text(0)} req/s at {m.rate:g}/s offered, p99 {m.p99.text(2)} ms{state}"


def _knee_limits(knee: Knee) -> str:
    return f"search: {knee.search.limited_by()}; CPU at the knee: {knee.confirmation.limits()}"


# --- 1. gateway overhead -----------------------------------------------------------------


async def gateway_overhead(bench: Bench) -> None:
    profile, fleet, world = bench.profile, bench.fleet, bench.world
    hospital = world.hospitals[0]
    site = hospital.sites[0]
    path = nearby_path(site.lat, site.lon, profile.search_radius_km, world.products[0].id)
    # Fill the cache once: every configuration then serves the same cached page.
    await bench.api.call("GET", path, account=hospital.account, expected=(200,))
    with Nginx(
        listen_port=profile.port_offset + NGINX_PORT,
        upstream_port=fleet.port("inventory-service"),
        workers=profile.nginx_workers,
    ) as nginx:
        configs = [
            Config(
                "a: service directly",
                fixed_get(fleet.url("inventory-service"), path, hospital.account),
            ),
            Config("b: nginx -> service", fixed_get(nginx.url, path, hospital.account)),
            Config("c: Flow gateway", fixed_get(fleet.gateway, path, hospital.account)),
        ]
        knees = await bench.runner.knees(
            GATEWAY,
            configs,
            READ_SLO,
            start_rate=profile.read_start_rate,
            max_rate=profile.read_max_rate,
        )
        # What the same process serves at most: the catalog page's own cost is the gap.
        (health,) = await bench.runner.knees(
            GATEWAY,
            [
                Config(
                    "d: /health/live, directly",
                    fixed_get(fleet.url("inventory-service"), "/health/live", hospital.account),
                )
            ],
            READ_SLO,
            start_rate=profile.read_start_rate,
            max_rate=profile.read_max_rate,
        )
        fixed = await bench.runner.measure(
            GATEWAY, configs, [profile.gateway_p50_rate] * len(configs)
        )
        # Above a knee the p50 is queueing; the gateway's own cost shows below every knee.
        lowest_knee = min(k.search.knee or profile.min_rate for k in knees)
        below: list[Measurement] = []
        if lowest_knee < profile.gateway_p50_rate:
            below_rate = max(profile.min_rate, round(0.5 * lowest_knee, 1))
            below = await bench.runner.measure(GATEWAY, configs, [below_rate] * len(configs))
    direct, proxy, gateway = knees
    bench.report.scenarios[GATEWAY] = {
        "request": f"GET {path} (cached nearby page, authenticated)",
        "nginx_workers": profile.nginx_workers,
        "knees": [k.summary() for k in knees],
        "health_knee": health.summary(),
        "fixed_rate": [m.summary() for m in fixed],
        "below_every_knee": [m.summary() for m in below],
    }
    ratio = (
        gateway.confirmation.throughput.median / proxy.confirmation.throughput.median
        if proxy.found and gateway.found and proxy.confirmation.throughput.median
        else None
    )
    bench.report.add(
        Figure(
            key="1a",
            scenario=GATEWAY,
            name="knee throughput, gateway (c) / nginx (b)",
            value=ratio,
            unit="x",
            goal=f">= {goals.GATEWAY_KNEE_RATIO_GOAL}",
            met=None if ratio is None else ratio >= goals.GATEWAY_KNEE_RATIO_GOAL,
            detail=(
                f"c {_knee_detail(gateway)}; b {_knee_detail(proxy)}; a {_knee_detail(direct)}"
            ),
            limited_by=f"gateway: {_knee_limits(gateway)}",
        )
    )
    page_share = (
        direct.confirmation.throughput.median / health.confirmation.throughput.median
        if direct.found and health.found and health.confirmation.throughput.median
        else None
    )
    bench.report.add(
        share_figure(page_share, page=direct, health=health, goal=goals.CACHED_PAGE_SHARE_GOAL)
    )
    fixed_direct, fixed_proxy, fixed_gateway = fixed
    added = fixed_gateway.p50.median - fixed_direct.p50.median
    above_knee = (
        f"; {profile.gateway_p50_rate:g}/s is above the gateway's knee "
        f"({gateway.search.knee or 0:g}/s), so queueing adds to it"
        if (gateway.search.knee or 0) < profile.gateway_p50_rate
        else ""
    )
    below_text = ""
    if below:
        below_direct, below_proxy, below_gateway = below
        below_text = (
            f"; below every knee, at {below_direct.rate:g} req/s: added p50 "
            f"{below_gateway.p50.median - below_direct.p50.median:.2f} ms (c "
            f"{below_gateway.p50.text(2)} ms, a {below_direct.p50.text(2)} ms, b "
            f"{below_proxy.p50.text(2)} ms)"
        )
    bench.report.add(
        Figure(
            key="1b",
            scenario=GATEWAY,
            name=f"added p50, gateway (c) over direct (a), at {profile.gateway_p50_rate:g} req/s",
            value=added,
            unit="ms",
            goal=f"<= {goals.GATEWAY_ADDED_P50_GOAL_MS} ms",
            met=added <= goals.GATEWAY_ADDED_P50_GOAL_MS,
            detail=(
                f"p50 c {fixed_gateway.p50.text(2)} ms, a {fixed_direct.p50.text(2)} ms, "
                f"b {fixed_proxy.p50.text(2)} ms{below_text}"
            ),
            limited_by=f"CPU in the gateway runs: {fixed_gateway.limits()}{above_knee}",
        )
    )


def share_figure(share: float | None, *, page: Knee, health: Knee, goal: float) -> Figure:
    """Figure 1c. A knee whose search never failed is only a lower bound (the search's
    ceiling passed): the verdict is given only where the bounds still decide it."""
    page_bounded = page.search.lowest_fail is not None
    health_bounded = health.search.lowest_fail is not None
    # A higher health knee could only lower the share; a higher page knee, raise it.
    met: bool | None = None
    if share is not None and share >= goal and health_bounded:
        met = True
    elif share is not None and share < goal and page_bounded:
        met = False
    return Figure(
        key="1c",
        scenario=GATEWAY,
        name="cached catalog page (a) / /health/live (d), knees on the same process",
        value=share,
        unit="x",
        goal=f">= {goal:g}",
        met=met,
        detail=f"a {_knee_detail(page)}; d {_knee_detail(health)}",
        limited_by=f"page: {_knee_limits(page)}; /health/live: {health.search.limited_by()}",
    )


# --- 2. catalog nearby at scale ----------------------------------------------------------


async def catalog_nearby(bench: Bench) -> None:
    profile, fleet, world = bench.profile, bench.fleet, bench.world
    knees: dict[int, Knee] = {}
    fixed: dict[int, Measurement] = {}
    compare_rate: float | None = None
    start_rate = profile.read_start_rate
    for scale in profile.scales:
        seconds = await grow_depots(fleet, world, profile, scale)
        print(f"  [{NEARBY}] seeded {scale:,} depots in {seconds:.1f} s", flush=True)
        source = scattered_nearby(fleet.gateway, world, profile, random.Random(f"nearby:{scale}"))
        config = Config(f"{scale:,} depots", source)
        (knee,) = await bench.runner.knees(
            NEARBY, [config], READ_SLO, start_rate=start_rate, max_rate=profile.read_max_rate
        )
        knees[scale] = knee
        start_rate = min(
            max(knee.search.knee or profile.min_rate, profile.min_rate), profile.read_max_rate
        )
        if compare_rate is None:
            # Half the smallest scale's knee: a load every scale should carry.
            compare_rate = max(
                profile.min_rate, round(0.5 * (knee.search.knee or profile.min_rate), 1)
            )
        (measurement,) = await bench.runner.measure(
            NEARBY, [Config(f"{scale:,} depots, fixed rate", source)], [compare_rate]
        )
        fixed[scale] = measurement
    bench.report.scenarios[NEARBY] = {
        "request": "GET /api/v1/catalog/nearby from a random point of the region, random product, "
        f"radius {profile.search_radius_km:g} km (uncached by construction)",
        "region": profile.region.describe(),
        "seed_seconds": world.seed_seconds,
        "knees": {str(scale): k.summary() for scale, k in knees.items()},
        "fixed_rate": {str(scale): m.summary() for scale, m in fixed.items()},
        "compare_rate": compare_rate,
    }
    goal_scale = goals.NEARBY_KNEE_SCALE
    at_goal = knees.get(goal_scale)
    bench.report.add(
        Figure(
            key="2a",
            scenario=NEARBY,
            name=f"knee throughput at {goal_scale:,} depots (p99 <= 50 ms)",
            value=at_goal.confirmation.throughput.median if at_goal else None,
            unit="req/s",
            goal=f">= {goals.NEARBY_KNEE_GOAL:,.0f} req/s",
            met=(
                at_goal.confirmed
                and at_goal.confirmation.throughput.median >= goals.NEARBY_KNEE_GOAL
                if at_goal
                else None
            ),
            detail=_knee_detail(at_goal) if at_goal else f"scales run: {list(profile.scales)}",
            limited_by=_knee_limits(at_goal) if at_goal else "",
        )
    )
    smallest, largest = min(fixed), max(fixed)
    low, high = fixed[smallest].p99, fixed[largest].p99
    ratio = high.median / low.median if low.median and smallest != largest else None
    bench.report.add(
        Figure(
            key="2b",
            scenario=NEARBY,
            name=f"p99 at {largest:,} / p99 at {smallest:,} depots, same offered rate",
            value=ratio,
            unit="x",
            goal=f"<= {goals.NEARBY_GROWTH_GOAL:g}x",
            met=None if ratio is None else ratio <= goals.NEARBY_GROWTH_GOAL,
            detail=(
                f"at {compare_rate:g} req/s: p99 {high.text(2)} ms vs {low.text(2)} ms; "
                f"knees {', '.join(f'{s:,}: {k.search.knee or 0:g}/s' for s, k in knees.items())}"
            ),
            limited_by=f"CPU at {largest:,} depots: {fixed[largest].limits()}",
        )
    )


# --- 3. orders end to end ----------------------------------------------------------------


async def orders_end_to_end(bench: Bench) -> None:
    profile, fleet, world = bench.profile, bench.fleet, bench.world
    # The depots nearest each site at the scale the data has grown to.
    await choose_order_targets(fleet, world, profile)
    traffic = OrderTraffic(fleet.gateway, world, random.Random("orders"))
    (knee,) = await bench.runner.knees(
        ORDERS,
        [Config("orders via the gateway", traffic.source)],
        ORDER_SLO,
        start_rate=profile.order_start_rate,
        max_rate=profile.order_max_rate,
        after=bench.checks.after_run,
    )
    traffic.take_placed()
    depots = sorted({t.depot_id for targets in world.targets.values() for t in targets})
    first = next(t for targets in world.targets.values() for t in targets)
    keys = await prepare_scratch(fleet.database_dsn, depots)
    script = order_script(
        keys,
        vendor_id=first.vendor_id,
        depot_id=first.depot_id,
        hospital_id=world.hospitals[0].account.org_id,
    )
    try:
        await run_pgbench(
            fleet.database_dsn, script, clients=profile.concurrency, seconds=profile.warmup_s
        )
        pgbench_runs = [
            await run_pgbench(
                fleet.database_dsn, script, clients=profile.concurrency, seconds=profile.run_s
            )
            for _ in range(profile.runs)
        ]
    finally:
        await drop_scratch(fleet.database_dsn)
    for run in pgbench_runs:
        print(f"  [{ORDERS}] pgbench  {run.clients} clients  {run.tps:10.1f} tps", flush=True)
    tps = Spread.of([r.tps for r in pgbench_runs])
    bench.report.scenarios[ORDERS] = {
        "request": "POST /api/v1/orders (1-2 lines from a depot near the hospital's site, "
        "invoice, Idempotency-Key) through the gateway",
        "knee": knee.summary(),
        "pgbench": {
            "clients": profile.concurrency,
            "stock_rows": keys,
            "tps": tps.as_dict(),
            "latency_avg_ms": [r.latency_avg_ms for r in pgbench_runs],
            "statements": "conditional reservation UPDATE of a stock row, order INSERT, "
            "outbox INSERT, in one transaction (-M prepared)",
        },
    }
    throughput = knee.confirmation.throughput.median
    bench.report.add(
        Figure(
            key="3a",
            scenario=ORDERS,
            name="knee throughput of orders (p99 <= 150 ms)",
            value=throughput if knee.found else None,
            unit="orders/s",
            goal=f">= {goals.ORDER_KNEE_GOAL:g} orders/s",
            met=knee.confirmed and throughput >= goals.ORDER_KNEE_GOAL,
            detail=_knee_detail(knee),
            limited_by=_knee_limits(knee),
        )
    )
    ratio = throughput / tps.median if tps.median else None
    bench.report.add(
        Figure(
            key="3b",
            scenario=ORDERS,
            name=f"order knee / pgbench TPS of the same statements ({profile.concurrency} clients)",
            value=ratio,
            unit="x",
            goal=f">= {goals.PGBENCH_RATIO_GOAL:g}x",
            met=None if ratio is None else knee.confirmed and ratio >= goals.PGBENCH_RATIO_GOAL,
            detail=f"pgbench {tps.text(0)} tps",
            limited_by=(
                "an order is about a dozen service calls and statements, pgbench's transaction "
                f"three statements; CPU at the knee: {knee.confirmation.limits()}"
            ),
        )
    )
    cost = knee.confirmation.cpu_ms_per_request()
    bench.report.add(
        Figure(
            key="3c",
            scenario=ORDERS,
            name="machine CPU per order, all processes, at the knee",
            value=cost.machine_ms if cost else None,
            unit="ms",
            goal=f"<= {goals.ORDER_CPU_MS_GOAL:g} ms",
            met=None if cost is None else cost.machine_ms <= goals.ORDER_CPU_MS_GOAL,
            detail=f"ms an order: {cost.top()}" if cost else "",
            limited_by=(
                "an order's internal calls, transactions and event handling in Python "
                f"services; the top consumers above ({knee.confirmation.limits()})"
            ),
        )
    )


# --- 5. event lag --------------------------------------------------------------------------


_LAGS = """
SELECT extract(epoch FROM p.created_at - o.created_at) * 1000 AS payment_ms,
       extract(epoch FROM n.created_at - o.created_at) * 1000 AS notification_ms
FROM orders.orders o
JOIN payments.payments p ON p.order_id = o.id
JOIN notifications.notifications n
  ON n.type = 'order.placed' AND (n.data->>'order_id')::uuid = o.id
WHERE o.id = ANY($1::uuid[])
"""


async def event_lag(bench: Bench) -> None:
    profile, fleet, world = bench.profile, bench.fleet, bench.world
    rate = round(goals.LOAD_SHARE_OF_ORDER_KNEE * bench.order_knee_rate(), 1)
    rate = max(rate, profile.min_rate)
    traffic = OrderTraffic(fleet.gateway, world, random.Random("lag"))
    per_run: list[dict[str, Any]] = []

    async def lags_after(result: RunResult) -> None:
        await bench.checks.after_run(result)
        placed = [o.order_id for o in traffic.take_placed()]
        payment, notification = LatencyHistogram(), LatencyHistogram()
        connection = await asyncpg.connect(fleet.database_dsn)
        try:
            for row in await connection.fetch(_LAGS, placed):
                payment.record_seconds(float(row["payment_ms"]) / 1000)
                notification.record_seconds(float(row["notification_ms"]) / 1000)
        finally:
            await connection.close()
        per_run.append(
            {
                "orders": len(placed),
                "payment": payment.summary(),
                "notification": notification.summary(),
            }
        )

    (measurement,) = await bench.runner.measure(
        LAG,
        [Config("orders, lag measured", traffic.source)],
        [rate],
        after=lags_after,
        duration=profile.lag_run_s,
    )
    measured = per_run[1:]  # the first was the warm-up
    payment_p99 = Spread.of([r["payment"]["p99_ms"] for r in measured])
    notification_p99 = Spread.of([r["notification"]["p99_ms"] for r in measured])
    bench.report.scenarios[LAG] = {
        "rate": rate,
        "measured_from": "orders.created_at (set just before the order's COMMIT) to "
        "payments.created_at and notifications.created_at",
        "runs": measured,
        "load": measurement.summary(),
    }
    for key, name, spread in (
        ("5a", "p99 commit -> payment record", payment_p99),
        ("5b", "p99 commit -> vendor notification", notification_p99),
    ):
        bench.report.add(
            Figure(
                key=key,
                scenario=LAG,
                name=f"{name} at {rate:g} orders/s ({bench.load_basis()})",
                value=spread.median,
                unit="ms",
                goal=f"<= {goals.EVENT_LAG_GOAL_MS:g} ms",
                met=spread.median <= goals.EVENT_LAG_GOAL_MS,
                detail=f"{spread.text(1)} ms over {len(measured)} runs",
                limited_by=f"outbox relay and consumers; CPU: {measurement.limits()}",
            )
        )


# --- 4. mixed day --------------------------------------------------------------------------


async def mixed_day(bench: Bench) -> None:
    profile, fleet, world = bench.profile, bench.fleet, bench.world
    rate = max(profile.min_rate, round(goals.LOAD_SHARE_OF_ORDER_KNEE * bench.order_knee_rate(), 1))
    rng = random.Random("mixed")
    orders = OrderTraffic(fleet.gateway, world, rng)
    day = MixedDay(
        fleet.gateway, world, profile, rng, orders, VendorTraffic(fleet.gateway, world, rng)
    )
    await bench.runner.run(
        MIXED,
        "warm-up",
        "mixed day",
        day.source,
        rate,
        profile.warmup_s,
        after=bench.checks.after_run,
    )
    # The processes do not change during the run: look them up once.
    pids = fleet.service_pids()
    series = MemorySeries()
    stop = asyncio.Event()
    sampler = asyncio.create_task(
        sample_rss(lambda: pids, series, interval_s=profile.rss_sample_s, stop=stop)
    )
    try:
        recorded = await bench.runner.run(
            MIXED,
            "run",
            "mixed day",
            day.source,
            rate,
            profile.mixed_duration_s,
            window_seconds=profile.mixed_window_s,
        )
    finally:
        stop.set()
        await sampler
    await bench.checks.after_run(recorded.result)
    result = recorded.result
    windows = {index: h.summary() for index, h in sorted(result.windows.items())}
    first = windows.get(0, {}).get("p99_ms", 0.0)
    later = {index: w["p99_ms"] for index, w in windows.items() if index > 0}
    worst_index, worst = max(later.items(), key=lambda item: item[1], default=(0, first))
    # One window has nothing to drift from (a run shorter than two windows).
    drift = worst / first if first and later else None
    growth = series.growth(profile.mixed_window_s)
    bench.report.scenarios[MIXED] = {
        "rate": rate,
        "mix": "40% nearby, 20% compare, 20% product page, 15% order, 5% vendor "
        "(confirm/dispatch/deliver, else a stock screen poll)",
        "window_s": profile.mixed_window_s,
        "windows": {str(i): w for i, w in windows.items()},
        "memory": growth,
        "memory_samples": series.summary(),
        "load": result.summary(),
        "cores": recorded.cores,
    }
    bench.report.add(
        Figure(
            key="4a",
            scenario=MIXED,
            name=f"worst window p99 / first window p99 at {rate:g} req/s "
            f"({bench.load_basis()}) for {profile.mixed_duration_s:g} s",
            value=drift,
            unit="x",
            goal=f"<= {goals.MIXED_DRIFT_GOAL:g}x",
            met=None if drift is None else drift <= goals.MIXED_DRIFT_GOAL,
            detail=(
                f"first window p99 {first:.1f} ms, worst (window {worst_index}) {worst:.1f} ms; "
                f"errors {result.error_count} of {result.planned}"
            ),
            limited_by=f"CPU: {top_consumers(recorded.cores)}",
        )
    )
    largest = max(growth.items(), key=lambda item: item[1]["growth"], default=None)
    bench.report.add(
        Figure(
            key="4b",
            scenario=MIXED,
            name="largest RSS growth of a service, last window vs first",
            value=largest[1]["growth"] * 100 if largest else None,
            unit="%",
            goal=f"<= {goals.MEMORY_GROWTH_GOAL * 100:g}% (flat)",
            met=None if largest is None else largest[1]["growth"] <= goals.MEMORY_GROWTH_GOAL,
            detail=(
                f"{largest[0]}: {largest[1]['first_mib']} -> {largest[1]['last_mib']} MiB"
                if largest
                else ""
            ),
            limited_by=f"{largest[0]} grew" if largest else "",
        )
    )


# --- 6. SOS --------------------------------------------------------------------------------

# Every ring-1 offer of the SOS requests, and the vendor's sos.request notification if made.
_RING_ONE_NOTICES = """
SELECT s.id AS sos_id, s.created_at AS opened_at, n.created_at AS notified_at
FROM orders.sos_requests s
JOIN orders.sos_offers f ON f.sos_id = s.id AND f.ring_number = 1
LEFT JOIN notifications.notifications n
       ON n.type = 'sos.request' AND n.org_id = f.vendor_id
      AND n.data->>'sos_id' = s.id::text AND n.data->>'ring_number' = '1'
WHERE s.id = ANY($1::uuid[])
"""

# An SOS opens ring 1 with this many units at most (SosTraffic asks for 1 to 3).
SOS_MAX_QUANTITY = 3


@dataclass(frozen=True, slots=True)
class RingNotice:
    """One ring-1 vendor of one SOS, and when its notification was made (None: not yet)."""

    sos_id: str
    opened_at: datetime
    notified_at: datetime | None


@dataclass(frozen=True, slots=True)
class RingLags:
    # Per SOS whose every ring-1 vendor was notified: the last notification's lag, in ms.
    lags_ms: list[float]
    # SOS with a ring-1 vendor never notified (no lag can be given for them).
    incomplete: int


def ring_one_lags(notices: Iterable[RingNotice]) -> RingLags:
    """Request -> every ring-1 vendor's notification, per SOS: the latest of its ring-1
    vendors' notifications minus the SOS's creation."""
    by_sos: dict[str, list[RingNotice]] = {}
    for notice in notices:
        by_sos.setdefault(notice.sos_id, []).append(notice)
    lags: list[float] = []
    incomplete = 0
    for ring in by_sos.values():
        times = [n.notified_at for n in ring]
        if any(t is None for t in times):
            incomplete += 1
            continue
        last = max(t for t in times if t is not None)
        lags.append((last - ring[0].opened_at).total_seconds() * 1000.0)
    return RingLags(sorted(lags), incomplete)


def latency_figure(
    key: str,
    name: str,
    summary: dict[str, float],
    goal_ms: float,
    *,
    what: str,
    problems: str,
    limited_by: str,
    scenario: str = SOS,
    with_p95: bool = False,
) -> Figure:
    """A p99 latency against its goal, with p50, max and the count it was taken over;
    `problems` (failures that give no latency) fail the figure even when the p99 is met."""
    count = int(summary.get("count", 0))
    p99 = summary.get("p99_ms", 0.0)
    p95 = f"p95 {summary.get('p95_ms', 0.0):.2f} ms, " if with_p95 else ""
    detail = (
        f"p50 {summary.get('p50_ms', 0.0):.2f} ms, {p95}p99 {p99:.2f} ms, "
        f"max {summary.get('max_ms', 0.0):.2f} ms over {count:,} {what}"
    )
    if problems:
        detail += f"; {problems}"
    return Figure(
        key=key,
        scenario=scenario,
        name=name,
        value=p99 if count else None,
        unit="ms",
        goal=f"<= {goal_ms:g} ms",
        met=(p99 <= goal_ms and not problems) if count else None,
        detail=detail,
        limited_by=limited_by,
    )


def _errors_text(errors: Counter[str]) -> str:
    return ", ".join(f"{count} {error}" for error, count in sorted(errors.items()))


async def sos_broadcast(bench: Bench) -> None:
    profile, fleet, world = bench.profile, bench.fleet, bench.world
    added = await seed_sos_depots(fleet, world, profile, vendors_per_site=goals.SOS_RING_SIZE + 1)
    fewest = await check_sos_suppliers(
        fleet,
        world,
        radius_km=goals.SOS_MAX_DISTANCE_KM,
        quantity=SOS_MAX_QUANTITY,
        needed=goals.SOS_RING_SIZE,
    )
    print(
        f"  [{SOS}] seeded {added} depots next to the sites; every site has at least "
        f"{fewest} verified vendors in range for every product",
        flush=True,
    )
    traffic = SosTraffic(
        base_url=fleet.gateway,
        world=world,
        rng=random.Random("sos"),
        session=bench.runner.session,
        accept_delay_s=profile.sos_accept_delay_s,
        timeout_s=profile.timeout_s,
        ring_size=goals.SOS_RING_SIZE,
        max_distance_km=goals.SOS_MAX_DISTANCE_KM,
        ring_timeout_s=goals.SOS_RING_TIMEOUT_S,
    )
    per_run: list[dict[str, Any]] = []
    notify_runs: list[LatencyHistogram] = []
    confirm_runs: list[LatencyHistogram] = []
    problems: list[tuple[Counter[str], int]] = []

    async def after_sos_run(result: RunResult) -> None:
        await traffic.settle()
        await bench.checks.after_run(result)
        record = traffic.take()
        connection = await asyncpg.connect(fleet.database_dsn)
        try:
            rows = await connection.fetch(_RING_ONE_NOTICES, [o.sos_id for o in record.opened])
        finally:
            await connection.close()
        lags = ring_one_lags(
            RingNotice(str(r["sos_id"]), r["opened_at"], r["notified_at"]) for r in rows
        )
        notify = LatencyHistogram()
        for lag_ms in lags.lags_ms:
            notify.record_seconds(lag_ms / 1000)
        notify_runs.append(notify)
        confirm_runs.append(record.accept_latency)
        problems.append((record.accept_errors, lags.incomplete))
        print(
            f"  [{SOS}] ring 1 notified p99 {notify.percentile_ms(99):8.2f} ms "
            f"({notify.count} SOS, {lags.incomplete} incomplete); accepted p99 "
            f"{record.accept_latency.percentile_ms(99):8.2f} ms ({record.accepted}, "
            f"errors {dict(record.accept_errors)})",
            flush=True,
        )
        per_run.append(
            {
                "opened": len(record.opened),
                "open_errors": dict(result.errors),
                "accepted": record.accepted,
                "accept_errors": dict(record.accept_errors),
                "ring_one_incomplete": lags.incomplete,
                "notification": notify.summary(),
                "acceptance": record.accept_latency.summary(),
            }
        )

    rate = profile.sos_rate
    (measurement,) = await bench.runner.measure(
        SOS,
        [Config("SOS, vendors accepting", traffic.source)],
        [rate],
        after=after_sos_run,
        duration=profile.sos_run_s,
    )
    # The first run was the warm-up.
    notify_all, confirm_all = LatencyHistogram(), LatencyHistogram()
    for histogram in notify_runs[1:]:
        notify_all.add(histogram)
    for histogram in confirm_runs[1:]:
        confirm_all.add(histogram)
    accept_errors: Counter[str] = Counter()
    incomplete = 0
    for errors, missing in problems[1:]:
        accept_errors.update(errors)
        incomplete += missing
    open_errors: Counter[str] = Counter()
    for run in measurement.results:
        open_errors.update(run.errors)
    measured = per_run[1:]
    bench.report.scenarios[SOS] = {
        "rate": rate,
        "request": f"POST /api/v1/sos (ring_size {goals.SOS_RING_SIZE}, "
        f"{goals.SOS_MAX_DISTANCE_KM:g} km, 1-3 units of a random product, from a random "
        "bench hospital site, invoice, Idempotency-Key) through the gateway; "
        f"{profile.sos_accept_delay_s:g} s after its answer one of its ring-1 vendors "
        "(at random) POSTs /api/v1/sos/{id}/accept with its own token",
        "notification_measured_from": "orders.sos_requests.created_at (taken as order-service "
        "starts opening the SOS, before its site and candidate look-ups) to the latest "
        "notifications.created_at of the SOS's ring-1 vendors (sos.request, ring 1)",
        "acceptance_measured_from": "the acceptance's intended time to its 201 answer (the "
        "order committed and confirmed), by the generator; order.confirmed's own timestamp "
        "is taken when order-service starts the acceptance, so it would show about 0",
        "sos_depots_seeded": added,
        "fewest_vendors_in_range": fewest,
        "runs": measured,
        "notification": notify_all.summary(),
        "acceptance": confirm_all.summary(),
        "accept_errors": dict(accept_errors),
        "open_errors": dict(open_errors),
        "ring_one_incomplete": incomplete,
        "load": measurement.summary(),
    }
    runs = len(measured)
    open_text = f"SOS opening p99 {measurement.p99.text(1)} ms (client, from intended time)" + (
        f"; opening errors: {_errors_text(open_errors)}" if open_errors else ""
    )
    cpu = f"CPU: {measurement.limits()}"
    bench.report.add(
        latency_figure(
            "6a",
            f"p99 SOS request -> every ring-1 vendor's notification at {rate:g} SOS/s",
            notify_all.summary(),
            goals.SOS_NOTIFY_GOAL_MS,
            what=f"SOS in {runs} runs",
            problems=(f"{incomplete} SOS with a ring-1 vendor not notified" if incomplete else ""),
            limited_by=f"{open_text}; outbox relay and notification consumer; {cpu}",
        )
    )
    bench.report.add(
        latency_figure(
            "6b",
            f"p99 acceptance -> confirmed order at {rate:g} SOS/s",
            confirm_all.summary(),
            goals.SOS_CONFIRM_GOAL_MS,
            what=f"acceptances in {runs} runs",
            problems=(f"acceptance errors: {_errors_text(accept_errors)}" if accept_errors else ""),
            limited_by=f"an acceptance reserves, places and confirms an order in one call; {cpu}",
        )
    )


# --- 7. supply runway ----------------------------------------------------------------------


def kind_latency(results: Iterable[RunResult], kinds: Iterable[str]) -> LatencyHistogram:
    """The latencies of requests of `kinds` over `results`, in one histogram."""
    wanted = set(kinds)
    merged = LatencyHistogram()
    for result in results:
        for kind, stats in result.kinds.items():
            if kind in wanted:
                merged.add(stats.latency)
    return merged


def kind_errors(results: Iterable[RunResult], kinds: Iterable[str]) -> Counter[str]:
    wanted = set(kinds)
    errors: Counter[str] = Counter()
    for result in results:
        for kind, stats in result.kinds.items():
            if kind in wanted:
                errors.update(stats.errors)
    return errors


def kind_rate(results: Iterable[RunResult], kinds: Iterable[str]) -> float:
    """Successful answers of `kinds` per second of the runs' schedules (or longer walls)."""
    wanted = set(kinds)
    answered = seconds = 0.0
    for result in results:
        answered += sum(s.ok for k, s in result.kinds.items() if k in wanted)
        seconds += max(result.duration_s, result.wall_s)
    return answered / seconds if seconds else 0.0


async def supply_runway(bench: Bench) -> None:
    profile, fleet, world = bench.profile, bench.fleet, bench.world
    seeded = await seed_runway_sites(fleet, world, profile)
    print(
        f"  [{RUNWAY}] seeded {seeded.seeded:,} sites ({seeded.total:,} in site_supply) and "
        f"{seeded.open_orders:,} open orders to {seeded.sites_with_inbound:,} of them in "
        f"{seeded.seconds:.1f} s; {seeded.spread}",
        flush=True,
    )
    page_size = goals.RUNWAY_PAGE_SIZE
    traffic = RunwayTraffic(
        base_url=fleet.gateway,
        admin=world.admin,
        site_ids=seeded.site_ids,
        sites=seeded.total,
        page_size=page_size,
        rng=random.Random("runway"),
    )
    rate = profile.runway_rate
    (measurement,) = await bench.runner.measure(
        RUNWAY, [Config("admin runway reads", traffic.source)], [rate]
    )
    record = await check_runway_list(
        bench.api,
        world.admin,
        expected_total=seeded.total,
        seeded=seeded.seeded,
        page_size=page_size,
    )
    bench.checks.records.append(record)
    results = measurement.results
    list_kinds = (RUNWAY_FIRST_KIND, RUNWAY_DEEP_KIND)
    listed = kind_latency(results, list_kinds)
    first, deep = (kind_latency(results, [kind]) for kind in list_kinds)
    single = kind_latency(results, [RUNWAY_SITE_KIND])
    list_errors = kind_errors(results, list_kinds)
    site_errors = kind_errors(results, [RUNWAY_SITE_KIND])
    achieved = measurement.throughput
    what = (
        f"list reads in {len(results)} runs of {profile.run_s:g} s; {seeded.total:,} sites, "
        f"page_size {page_size}, {rate:g} req/s offered ({achieved.text(1)} answered/s, "
        f"{kind_rate(results, list_kinds):.1f}/s of them list pages); pages 1-"
        f"{RUNWAY_FIRST_PAGES}: p99 {first.percentile_ms(99):.2f} ms over {first.count:,}, "
        f"deeper: p99 {deep.percentile_ms(99):.2f} ms over {deep.count:,}"
    )
    bench.report.scenarios[RUNWAY] = {
        "rate": rate,
        "sites": seeded.total,
        "seeded_sites": seeded.seeded,
        "open_orders": seeded.open_orders,
        "sites_with_inbound": seeded.sites_with_inbound,
        "spread_at_seeding": seeded.spread,
        "seed_seconds": seeded.seconds,
        "page_size": page_size,
        "mix": runway_mix_text(),
        "list": listed.summary(),
        "list_first_pages": first.summary(),
        "list_deep_pages": deep.summary(),
        "site": single.summary(),
        "list_errors": dict(list_errors),
        "site_errors": dict(site_errors),
        "load": measurement.summary(),
    }
    cpu = f"CPU: {measurement.limits()}"
    bench.report.add(
        latency_figure(
            "7a",
            f"p99 GET /api/v1/supply/runway (platform admin, {seeded.total:,} sites) "
            f"at {rate:g} req/s",
            listed.summary(),
            goals.RUNWAY_LIST_GOAL_MS,
            what=what,
            problems=(f"errors: {_errors_text(list_errors)}" if list_errors else ""),
            limited_by=f"a page is an index-only OFFSET walk for its 20 ids, the 20 rows and "
            f"three look-ups (inbound, gas, auto-reorders); {cpu}",
            scenario=RUNWAY,
            with_p95=True,
        )
    )
    bench.report.add(
        latency_figure(
            "7b",
            f"p99 GET /api/v1/supply/sites/{{id}}/runway (random site of {seeded.total:,}) "
            f"at {rate:g} req/s",
            single.summary(),
            READ_SLO.p99_ms,
            what=f"site reads in the same runs ({kind_rate(results, [RUNWAY_SITE_KIND]):.1f}/s)",
            problems=(f"errors: {_errors_text(site_errors)}" if site_errors else ""),
            limited_by=cpu,
            scenario=RUNWAY,
            with_p95=True,
        )
    )
