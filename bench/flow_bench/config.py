"""What a bench run does: the full profile (`make bench`) and the smoke profile
(`make bench-smoke`), and the environment the bench fleet runs with."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from flow_bench.knee import Slo

READ_SLO = Slo(p99_ms=50.0)
ORDER_SLO = Slo(p99_ms=150.0)
# The goals, in one place so the report and the checks agree.
GATEWAY_KNEE_RATIO_GOAL = 0.95
GATEWAY_ADDED_P50_GOAL_MS = 0.3
# Issue 16: a cached catalog page costs the service at most twice a /health/live.
CACHED_PAGE_SHARE_GOAL = 0.5
NEARBY_KNEE_GOAL = 2000.0
NEARBY_KNEE_SCALE = 10_000
NEARBY_GROWTH_GOAL = 2.0
ORDER_KNEE_GOAL = 500.0
PGBENCH_RATIO_GOAL = 0.1
# Issue 16: what the work of an order needs in machine CPU, all processes together.
ORDER_CPU_MS_GOAL = 8.0
MIXED_DRIFT_GOAL = 1.5
# "Memory flat": the last window's RSS at most this much above the first window's.
MEMORY_GROWTH_GOAL = 0.10
EVENT_LAG_GOAL_MS = 1000.0
LOAD_SHARE_OF_ORDER_KNEE = 0.7
# Issue 13: an SOS reaches every ring-1 vendor within 1 s; an acceptance is a confirmed
# order within 200 ms.
SOS_NOTIFY_GOAL_MS = 1000.0
SOS_CONFIRM_GOAL_MS = 200.0
SOS_RING_SIZE = 3
SOS_MAX_DISTANCE_KM = 50.0
# The default ring time-out: acceptances come long before it, so no ring escalates.
SOS_RING_TIMEOUT_S = 180
# Issue 15: the platform admin's runway list, soonest first, fast at 100,000 sites.
RUNWAY_LIST_GOAL_MS = 50.0
RUNWAY_PAGE_SIZE = 20


@dataclass(frozen=True, slots=True)
class Region:
    """Where depots and hospital sites are spread (uniformly), in degrees."""

    lat_min: float
    lat_max: float
    lon_min: float
    lon_max: float

    def describe(self) -> str:
        return f"lat {self.lat_min:g}..{self.lat_max:g}, lon {self.lon_min:g}..{self.lon_max:g}"


# Great Britain's bounding box, roughly: about 610 km x 400 km of land and sea.
GREAT_BRITAIN = Region(lat_min=50.3, lat_max=55.8, lon_min=-4.5, lon_max=1.3)


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    # Depot counts scenario 2 runs at, ascending; the bench grows the data to each in turn.
    scales: tuple[int, ...]
    products_per_depot: int
    vendors: int
    hospitals: int
    sites_per_hospital: int
    # Order targets per hospital site: its nearest depots.
    depots_per_site: int
    region: Region
    search_radius_km: float
    # The generator's budget, identical for every configuration compared.
    concurrency: int
    timeout_s: float
    warmup_s: float
    run_s: float
    runs: int
    probe_s: float
    max_probes: int
    read_start_rate: float
    read_max_rate: float
    order_start_rate: float
    order_max_rate: float
    min_rate: float
    # Scenario 1's fixed rate for the added-latency figure (the issue's 1,000 req/s).
    gateway_p50_rate: float
    mixed_duration_s: float
    mixed_window_s: float
    rss_sample_s: float
    lag_run_s: float
    # Scenario 6: SOS requests per second (a fixed rate the machine holds), the length
    # of each run, and how long after its SOS's answer a vendor accepts.
    sos_rate: float
    sos_run_s: float
    sos_accept_delay_s: float
    # Scenario 7: hospital sites seeded with a runway, and the fixed rate of the admin's
    # runway reads (about scenario 2b's: half the nearby knee at 1,000 depots).
    runway_sites: int
    runway_rate: float
    # How long the events of a run may take to be consumed before the checks fail.
    drain_timeout_s: float
    port_offset: int
    # uvicorn workers: WEB_CONCURRENCY for every service, and per-service overrides
    # (keyed like WEB_CONCURRENCY_<SHORT>, e.g. {"INVENTORY": 2}).
    web_concurrency: int = 1
    workers: dict[str, int] = field(default_factory=dict)
    nginx_workers: int = 1
    seed: int = 20261124

    def with_overrides(self, **changes: Any) -> Profile:
        return replace(self, **changes)

    @property
    def is_smoke(self) -> bool:
        return self.name == "smoke"


FULL = Profile(
    name="full",
    scales=(1_000, 10_000, 100_000),
    products_per_depot=10,
    vendors=20,
    hospitals=20,
    sites_per_hospital=2,
    depots_per_site=25,
    region=GREAT_BRITAIN,
    search_radius_km=25.0,
    concurrency=64,
    timeout_s=10.0,
    warmup_s=5.0,
    run_s=10.0,
    runs=3,
    probe_s=6.0,
    max_probes=7,
    read_start_rate=200.0,
    read_max_rate=6400.0,
    order_start_rate=20.0,
    order_max_rate=1280.0,
    min_rate=1.0,
    gateway_p50_rate=1000.0,
    mixed_duration_s=300.0,
    mixed_window_s=60.0,
    rss_sample_s=5.0,
    lag_run_s=20.0,
    sos_rate=2.0,
    sos_run_s=30.0,
    sos_accept_delay_s=0.5,
    runway_sites=100_000,
    runway_rate=40.0,
    drain_timeout_s=300.0,
    port_offset=21000,
)

# The full profile at a tiny scale, for seconds; the same products per depot, region,
# request time-out, number of runs and SOS acceptance delay.
SMOKE = replace(
    FULL,
    name="smoke",
    scales=(20, 50),
    # A ring of SOS_RING_SIZE vendors, chosen from more than that many.
    vendors=4,
    hospitals=2,
    sites_per_hospital=1,
    depots_per_site=5,
    search_radius_km=100.0,
    concurrency=16,
    warmup_s=0.5,
    run_s=1.0,
    probe_s=1.0,
    max_probes=2,
    read_start_rate=10.0,
    read_max_rate=20.0,
    order_start_rate=3.0,
    order_max_rate=6.0,
    gateway_p50_rate=10.0,
    mixed_duration_s=4.0,
    mixed_window_s=2.0,
    rss_sample_s=0.5,
    lag_run_s=1.0,
    sos_rate=1.0,
    sos_run_s=2.0,
    runway_sites=300,
    runway_rate=5.0,
    drain_timeout_s=90.0,
    port_offset=22000,
)

PROFILES = {"full": FULL, "smoke": SMOKE}

# Far above any rate this machine reaches (about 170,000 per second), and small enough
# for the limiter's GCRA arithmetic: at 1e9 per minute its emission interval vanishes
# beside Redis's clock in milliseconds and the SET gets an expiry of 0 (an error).
UNLIMITED = 10_000_000


def fleet_overrides(profile: Profile) -> dict[str, str]:
    """The bench fleet's settings over .env.example.

    The gateway's per-user and login limits are lifted so that a few accounts can carry
    the whole load; the limiter itself still runs (a Redis round trip per request) as it
    does in production. Everything else keeps the local defaults.
    """
    rate_limits: dict[str, Any] = {
        name: {
            "per": "user",
            "roles": [role],
            "requests": UNLIMITED,
            "per_seconds": 60,
            "burst": UNLIMITED,
        }
        for name, role in (
            ("user-staff", "staff"),
            ("user-org-admin", "org_admin"),
            ("user-platform-admin", "platform_admin"),
        )
    }
    # Every request counts against its address before authentication; the load comes from
    # one address.
    rate_limits["ip"] = {
        "per": "ip",
        "requests": UNLIMITED,
        "per_seconds": 60,
        "burst": UNLIMITED,
    }
    credentials = (("auth-login", "/api/v1/auth/login"), ("auth-register", "/api/v1/auth/register"))
    for name, path in credentials:
        rate_limits[name] = {
            "per": "ip",
            "path_prefix": path,
            "methods": ["POST"],
            "requests": 10_000,
            "per_seconds": 60,
            "fail_closed": True,
        }
    overrides = {
        "WEB_CONCURRENCY": str(profile.web_concurrency),
        "RATE_LIMITS": json.dumps(rate_limits),
    }
    for short, count in profile.workers.items():
        overrides[f"WEB_CONCURRENCY_{short.upper()}"] = str(count)
    return overrides
