"""Scenario 7 (supply runway): the admin's page mix, the list's order check and the pages
it samples, the per-kind figures and their text."""

from __future__ import annotations

import random
from collections import Counter

from flow_bench.api import Account
from flow_bench.checks import runway_check_pages, soonest_first_breaks
from flow_bench.loadgen import KindStats, RunResult
from flow_bench.scenarios import RUNWAY, kind_errors, kind_latency, kind_rate, latency_figure
from flow_bench.traffic import (
    RUNWAY_DEEP_KIND,
    RUNWAY_FIRST_KIND,
    RUNWAY_FIRST_PAGE_SHARE,
    RUNWAY_FIRST_PAGES,
    RUNWAY_SITE_KIND,
    RunwayTraffic,
    runway_mix_text,
    runway_page,
    runway_pages,
)


def test_pages_are_the_first_ones_half_the_time_and_any_one_else() -> None:
    rng = random.Random(7)
    pages = runway_pages(100_000, 20)
    assert pages == 5_000
    drawn = [runway_page(rng, pages) for _ in range(20_000)]
    assert min(drawn) == 1
    assert max(drawn) <= pages
    first = sum(1 for p in drawn if p <= RUNWAY_FIRST_PAGES) / len(drawn)
    # The first pages' share, plus the uniform draws that land there (0.2% of them).
    assert abs(first - RUNWAY_FIRST_PAGE_SHARE) < 0.02
    assert sum(1 for p in drawn if p > pages // 2) > 0.2 * len(drawn)
    assert max(drawn) > pages - 50


def test_a_short_list_keeps_its_pages_in_range() -> None:
    rng = random.Random(1)
    assert runway_pages(0, 20) == 1
    assert runway_pages(301, 20) == 16
    assert {runway_page(rng, 3) for _ in range(200)} == {1, 2, 3}


def test_the_traffic_reads_list_pages_and_single_sites_as_the_admin() -> None:
    admin = Account(email="a@example.org", password="x", org_id="", token="t0k")
    traffic = RunwayTraffic(
        base_url="http://gw",
        admin=admin,
        site_ids=["s1", "s2"],
        sites=100_000,
        page_size=20,
        rng=random.Random(3),
    )
    planned = [traffic.source(i) for i in range(2_000)]
    kinds = Counter(p.kind for p in planned)
    assert set(kinds) == {RUNWAY_FIRST_KIND, RUNWAY_DEEP_KIND, RUNWAY_SITE_KIND}
    assert 0.75 < (kinds[RUNWAY_FIRST_KIND] + kinds[RUNWAY_DEEP_KIND]) / 2_000 < 0.85
    for request in planned:
        assert request.headers["Authorization"] == "Bearer t0k"
        if request.kind == RUNWAY_SITE_KIND:
            assert request.url in {
                "http://gw/api/v1/supply/sites/s1/runway",
                "http://gw/api/v1/supply/sites/s2/runway",
            }
        else:
            assert request.url.startswith("http://gw/api/v1/supply/runway?page=")
            assert request.url.endswith("&page_size=20")
            page = int(request.url.split("page=")[1].split("&")[0])
            assert (page <= RUNWAY_FIRST_PAGES) == (request.kind == RUNWAY_FIRST_KIND)
    assert "80% GET /api/v1/supply/runway" in runway_mix_text()
    assert "20% GET /api/v1/supply/sites/{id}/runway" in runway_mix_text()


def runway(site: str, runs_out_at: str | None) -> dict[str, object]:
    return {"site_id": site, "runs_out_at": runs_out_at}


def test_the_order_check_wants_soonest_first_then_site_then_nulls_last() -> None:
    ordered = [
        runway("b", "2026-12-07T01:00:00Z"),
        runway("a", "2026-12-07T02:00:00+00:00"),
        runway("c", "2026-12-07T02:00:00+00:00"),
        runway("a", None),
        runway("d", None),
    ]
    assert soonest_first_breaks(ordered) == 0
    assert soonest_first_breaks([]) == 0
    assert soonest_first_breaks([ordered[1], ordered[0]]) == 1
    assert soonest_first_breaks([ordered[2], ordered[1]]) == 1  # a tie goes by site id
    assert soonest_first_breaks([ordered[3], ordered[0]]) == 1  # NULLs last
    assert soonest_first_breaks([ordered[4], ordered[3]]) == 1
    assert soonest_first_breaks(list(reversed(ordered))) == 4


def test_the_check_reads_the_start_middle_and_end_of_the_list_once_each() -> None:
    assert runway_check_pages(5_000) == [[1, 2, 3], [2499, 2500, 2501], [4998, 4999, 5000]]
    assert runway_check_pages(4) == [[1, 2, 3], [4]]
    assert runway_check_pages(1) == [[1]]


def result_with(kinds: dict[str, list[float]], errors: dict[str, Counter[str]]) -> RunResult:
    result = RunResult(label="r", offered_rate=10, duration_s=2.0, concurrency=4, planned=20)
    result.wall_s = 2.0
    for kind, seconds in kinds.items():
        stats = KindStats(ok=len(seconds), errors=errors.get(kind, Counter()))
        for value in seconds:
            stats.latency.record_seconds(value)
        result.kinds[kind] = stats
    return result


def test_the_list_figure_merges_its_page_kinds_over_the_runs_and_leaves_sites_out() -> None:
    runs = [
        result_with(
            {RUNWAY_FIRST_KIND: [0.010] * 9, RUNWAY_SITE_KIND: [0.500] * 3},
            {RUNWAY_SITE_KIND: Counter({"status 500": 1})},
        ),
        result_with({RUNWAY_DEEP_KIND: [0.030] * 7}, {}),
    ]
    listed = kind_latency(runs, [RUNWAY_FIRST_KIND, RUNWAY_DEEP_KIND])
    assert listed.count == 16
    assert 29.0 < listed.percentile_ms(99) < 31.0
    assert kind_rate(runs, [RUNWAY_FIRST_KIND, RUNWAY_DEEP_KIND]) == 4.0
    assert kind_errors(runs, [RUNWAY_FIRST_KIND, RUNWAY_DEEP_KIND]) == Counter()
    assert kind_errors(runs, [RUNWAY_SITE_KIND]) == Counter({"status 500": 1})


def test_the_runway_figure_shows_p50_p95_p99_against_its_goal() -> None:
    summary = {"p50_ms": 8.0, "p95_ms": 21.5, "p99_ms": 48.25, "max_ms": 70.0, "count": 1200}
    figure = latency_figure(
        "7a",
        "p99 list",
        summary,
        50.0,
        what="list reads in 3 runs",
        problems="",
        limited_by="cpu",
        scenario=RUNWAY,
        with_p95=True,
    )
    assert figure.scenario == RUNWAY
    assert figure.met is True
    assert figure.goal == "<= 50 ms"
    assert figure.value_text() == "48.25 ms"
    assert figure.detail == (
        "p50 8.00 ms, p95 21.50 ms, p99 48.25 ms, max 70.00 ms over 1,200 list reads in 3 runs"
    )
    slow = latency_figure(
        "7a",
        "p99 list",
        {**summary, "p99_ms": 50.5},
        50.0,
        what="reads",
        problems="",
        limited_by="cpu",
        scenario=RUNWAY,
    )
    assert slow.met is False
    assert "p95" not in slow.detail
