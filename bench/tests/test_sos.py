"""Scenario 6 (SOS): the request -> every ring-1 vendor's notification lag, the figures
against their goals, the SOS answers the generator reads, the vendors' acceptances (due
a fixed delay after each SOS's answer, timed from then), and what the smoke refuses."""

from __future__ import annotations

import asyncio
import math
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from flow_bench.api import Account
from flow_bench.loadgen import RunResult, clock, make_session, run_open_loop
from flow_bench.run import sos_problems
from flow_bench.scenarios import RingNotice, latency_figure, ring_one_lags
from flow_bench.seed import Hospital, Product, Site, World, point_at
from flow_bench.traffic import SosTraffic, check_confirmed, read_opened_sos

from flow_shared.json_codec import dumps, loads

OPENED = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
ACCEPT_DELAY_SECONDS = 0.1
ACCEPT_SERVER_DELAY_SECONDS = 0.05


def notice(sos: str, after_ms: float | None) -> RingNotice:
    """One ring-1 vendor's notice of SOS `sos`, `after_ms` after it opened (None: none)."""
    notified = None if after_ms is None else OPENED + timedelta(milliseconds=after_ms)
    return RingNotice(sos, OPENED, notified)


def test_the_lag_of_an_sos_is_its_last_ring_one_notification() -> None:
    lags = ring_one_lags(
        [
            notice("a", 12.0),
            notice("a", 340.0),
            notice("a", 90.0),
            notice("b", 25.0),
            notice("b", 20.0),
        ]
    )
    assert lags.lags_ms == pytest.approx([25.0, 340.0])
    assert lags.incomplete == 0


def test_an_sos_with_a_vendor_not_notified_has_no_lag_and_is_counted() -> None:
    lags = ring_one_lags([notice("a", 12.0), notice("a", None), notice("b", 7.5)])
    assert lags.lags_ms == pytest.approx([7.5])
    assert lags.incomplete == 1
    assert ring_one_lags([]).lags_ms == []


def summary(p99: float, count: int = 120) -> dict[str, float]:
    return {"p50_ms": 40.0, "p99_ms": p99, "max_ms": p99 + 10, "count": count}


def test_a_latency_figure_is_its_p99_against_the_goal() -> None:
    met = latency_figure(
        "6b", "acceptance", summary(180.0), 200.0, what="acceptances", problems="", limited_by=""
    )
    assert (met.value, met.met, met.goal, met.unit) == (180.0, True, "<= 200 ms", "ms")
    assert met.detail == "p50 40.00 ms, p99 180.00 ms, max 190.00 ms over 120 acceptances"
    missed = latency_figure(
        "6b", "acceptance", summary(201.0), 200.0, what="acceptances", problems="", limited_by=""
    )
    assert missed.met is False
    assert missed.verdict() == "**not met**"


def test_failures_without_a_latency_fail_the_figure_and_nothing_measured_is_not_measured() -> None:
    failed = latency_figure(
        "6a", "notify", summary(30.0), 1000.0, what="SOS", problems="2 not notified", limited_by=""
    )
    assert failed.met is False
    assert failed.detail.endswith("; 2 not notified")
    empty = latency_figure(
        "6a", "notify", summary(0.0, count=0), 1000.0, what="SOS", problems="", limited_by=""
    )
    assert empty.value is None
    assert empty.met is None


def sos_answer(sos_id: str, vendors: list[str], status: str = "open") -> dict[str, Any]:
    return {
        "id": sos_id,
        "status": status,
        "rings": [
            {
                "number": 1,
                "offers": [
                    {"vendor_id": v, "depot_id": f"depot-{v}", "eta_min": n + 5}
                    for n, v in enumerate(vendors)
                ],
            }
        ],
    }


def test_an_sos_answer_gives_its_ring_one_offers() -> None:
    sos = read_opened_sos(sos_answer("s1", ["v1", "v2", "v3"]), ring_size=3)
    assert sos.sos_id == "s1"
    assert [(o.vendor_id, o.depot_id, o.eta_min) for o in sos.ring_one] == [
        ("v1", "depot-v1", 5),
        ("v2", "depot-v2", 6),
        ("v3", "depot-v3", 7),
    ]


@pytest.mark.parametrize(
    "answer",
    [
        sos_answer("s1", ["v1", "v2"]),  # a ring short of vendors
        sos_answer("s1", ["v1", "v1", "v2"]),  # one vendor twice
        sos_answer("s1", ["v1", "v2", "v3"], status="unfilled"),
    ],
)
def test_an_sos_without_a_full_open_ring_is_refused(answer: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="s1"):
        read_opened_sos(answer, ring_size=3)


def accepted_answer(sos_id: str, order_status: str = "confirmed") -> dict[str, Any]:
    return {
        "sos": {"id": sos_id, "status": "fulfilled", "order_id": "o1"},
        "order": {"id": "o1", "status": order_status, "priority": "emergency"},
    }


def test_an_acceptance_must_give_the_confirmed_order_of_that_sos() -> None:
    check_confirmed(accepted_answer("s1"), "s1")
    with pytest.raises(ValueError, match="placed"):
        check_confirmed(accepted_answer("s1", order_status="placed"), "s1")
    with pytest.raises(ValueError, match="s2"):
        check_confirmed(accepted_answer("s1"), "s2")


@pytest.mark.parametrize("bearing_deg", [0, 90, 225])
def test_sos_depots_lie_at_the_distance_asked(bearing_deg: float) -> None:
    lat, lon = 51.5, -0.12
    to_lat, to_lon = point_at(lat, lon, 12.0, math.radians(bearing_deg))
    # Haversine distance back to the site.
    p1, p2 = math.radians(lat), math.radians(to_lat)
    dp, dl = p2 - p1, math.radians(to_lon - lon)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    assert 2 * 6371.0 * math.asin(math.sqrt(a)) == pytest.approx(12.0, rel=0.01)


# --- the vendors' acceptances, against a stand-in for the gateway ---------------------------


def account(name: str) -> Account:
    return Account(f"{name}@bench", "pw", org_id=name, token=f"token-{name}")


VENDORS = [account(f"vendor-{n}") for n in range(4)]


def world() -> World:
    hospital = Hospital(account("hospital"), [Site("site-1", 51.5, -0.12)])
    return World(
        admin=account("admin"),
        vendors=VENDORS,
        hospitals=[hospital],
        products=[Product(str(uuid.uuid4()))],
    )


@dataclass
class FakeSosApi:
    """Opens every SOS with a ring of three vendors; answers an acceptance after a delay
    (or with 409 when `refuse`), noting who accepted and when."""

    ring: list[str] = field(default_factory=lambda: [v.org_id for v in VENDORS[:3]])
    answered_at: dict[str, float] = field(default_factory=dict)
    accepts: list[tuple[str, str, dict[str, Any], float]] = field(default_factory=list)
    refuse: bool = False
    bodies: list[dict[str, Any]] = field(default_factory=list)

    async def open(self, request: web.Request) -> web.Response:
        self.bodies.append(loads(await request.read()))
        sos_id = str(uuid.uuid4())
        self.answered_at[sos_id] = clock()
        return web.Response(status=201, body=dumps(sos_answer(sos_id, self.ring)))

    async def accept(self, request: web.Request) -> web.Response:
        sos_id = request.match_info["sos_id"]
        token = request.headers["Authorization"].removeprefix("Bearer token-")
        self.accepts.append((sos_id, token, loads(await request.read()), clock()))
        if self.refuse:
            return web.Response(status=409)
        await asyncio.sleep(ACCEPT_SERVER_DELAY_SECONDS)
        return web.Response(status=201, body=dumps(accepted_answer(sos_id)))


@pytest.fixture
async def sos_api() -> AsyncIterator[tuple[str, FakeSosApi]]:
    api = FakeSosApi()
    app = web.Application()
    app.router.add_post("/api/v1/sos", api.open)
    app.router.add_post("/api/v1/sos/{sos_id}/accept", api.accept)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", api
    await runner.cleanup()


async def run_sos_traffic(
    base_url: str, *, rate: float, duration: float, concurrency: int
) -> tuple[RunResult, SosTraffic]:
    """One open-loop run of SOS traffic against the stand-in, its acceptances settled."""
    async with make_session(concurrency) as session:
        traffic = SosTraffic(
            base_url=base_url,
            world=world(),
            rng=random.Random(1),
            session=session,
            accept_delay_s=ACCEPT_DELAY_SECONDS,
            timeout_s=10.0,
            ring_size=3,
            max_distance_km=50.0,
            ring_timeout_s=180,
        )
        result = await run_open_loop(
            session,
            traffic.source,
            label="sos",
            rate=rate,
            duration=duration,
            concurrency=concurrency,
            request_timeout=10,
        )
        await traffic.settle()
    return result, traffic


async def test_each_sos_is_accepted_by_a_ring_one_vendor_after_the_delay(
    sos_api: tuple[str, FakeSosApi],
) -> None:
    base_url, api = sos_api
    result, traffic = await run_sos_traffic(base_url, rate=20, duration=0.2, concurrency=4)
    record = traffic.take()
    assert result.ok == result.planned == 4
    assert [b["ring_size"] for b in api.bodies] == [3] * 4
    assert {b["site_id"] for b in api.bodies} == {"site-1"}
    assert len(record.opened) == 4
    assert record.accepted == 4
    assert not record.accept_errors
    assert sorted(a[0] for a in api.accepts) == sorted(o.sos_id for o in record.opened)
    for sos_id, vendor, body, arrived in api.accepts:
        # By one of the ring's vendors, with its own token and its offer's depot...
        assert vendor in api.ring
        assert body == {"depot_id": f"depot-{vendor}", "eta_minutes": api.ring.index(vendor) + 5}
        # ... not before the delay after the SOS's answer.
        assert arrived - api.answered_at[sos_id] >= ACCEPT_DELAY_SECONDS
    # Timed from the acceptance's intended time: the server's delay is in every latency.
    assert record.accept_latency.count == 4
    assert record.accept_latency.percentile_ms(0) >= ACCEPT_SERVER_DELAY_SECONDS * 1000
    # Taken: the next run starts from nothing.
    assert traffic.take().opened == []


async def test_a_refused_acceptance_is_an_error_with_no_latency(
    sos_api: tuple[str, FakeSosApi],
) -> None:
    base_url, api = sos_api
    api.refuse = True
    _result, traffic = await run_sos_traffic(base_url, rate=10, duration=0.1, concurrency=1)
    record = traffic.take()
    assert record.accepted == 0
    assert record.accept_errors == {"status 409": 1}
    assert record.accept_latency.count == 0


def sos_summary(**changes: Any) -> dict[str, Any]:
    sos: dict[str, Any] = {
        "accept_errors": {},
        "open_errors": {"timeout": 1},
        "acceptance": {"count": 6},
        "notification": {"count": 6},
        "ring_one_incomplete": 0,
    }
    sos.update(changes)
    return sos


def test_the_smoke_refuses_failed_acceptances_short_rings_and_missing_notifications() -> None:
    assert sos_problems(sos_summary()) == []
    assert sos_problems(None) == []
    assert sos_problems(sos_summary(accept_errors={"status 409": 1})) == [
        "6. SOS: acceptances failed: {'status 409': 1}"
    ]
    assert sos_problems(sos_summary(open_errors={"unreadable answer: ValueError": 2})) == [
        "6. SOS: SOS answers refused: {'unreadable answer: ValueError': 2}"
    ]
    assert sos_problems(sos_summary(ring_one_incomplete=2)) == [
        "6. SOS: 2 SOS with a ring-1 vendor not notified"
    ]
    problems = sos_problems(sos_summary(acceptance={"count": 0}, notification={"count": 0}))
    assert problems == ["6. SOS: no SOS accepted", "6. SOS: no SOS notification lag measured"]


async def test_a_ring_of_vendors_the_bench_cannot_play_is_an_error(
    sos_api: tuple[str, FakeSosApi],
) -> None:
    base_url, api = sos_api
    api.ring = ["someone-1", "someone-2", "someone-3"]
    result, _traffic = await run_sos_traffic(base_url, rate=10, duration=0.1, concurrency=1)
    assert result.ok == 0
    assert result.errors == {"unreadable answer: ValueError": 1}
    assert api.accepts == []
