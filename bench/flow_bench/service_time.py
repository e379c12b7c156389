"""Where the time went inside the fleet: every service's own request-duration metric
(`flow_http_request_duration_seconds` on /metrics), scraped before and after a
scenario, turned into requests and mean time per route. An order's end-to-end time
is then seen split over the internal calls it makes."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import Any

import aiohttp

RouteKey = tuple[str, str, str]  # service, method, route
Totals = dict[RouteKey, tuple[float, float]]  # count, seconds

# Label values hold route templates with braces ("/orders/{order_id}"): the label set
# ends at the last "} " of the line.
_SAMPLE = re.compile(
    r"^flow_http_request_duration_seconds_(?P<kind>sum|count)\{(?P<labels>.*)\} (?P<value>\S+)$"
)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
# Probes and scrapes are not the workload (a scrape of /metrics counts as unmatched).
_IGNORED_ROUTES = {"/health/live", "/health/ready", "/metrics", "<unmatched>"}
# How many routes a scenario's table in the report lists.
TOP_ROUTES = 12


def parse_totals(text: str) -> Totals:
    counts: dict[RouteKey, float] = {}
    sums: dict[RouteKey, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None:
            continue
        labels = dict(_LABEL.findall(match["labels"]))
        route = labels.get("route", "")
        if route in _IGNORED_ROUTES:
            continue
        key = (labels.get("service", ""), labels.get("method", ""), route)
        target = sums if match["kind"] == "sum" else counts
        target[key] = target.get(key, 0.0) + float(match["value"])
    return {key: (counts.get(key, 0.0), sums.get(key, 0.0)) for key in counts}


async def scrape(session: aiohttp.ClientSession, urls: Mapping[str, str]) -> Totals:
    """Every service's totals; a service that does not answer is left out."""

    async def one(url: str) -> Totals:
        try:
            async with session.get(
                url + "/metrics", timeout=aiohttp.ClientTimeout(total=10)
            ) as response:
                return parse_totals(await response.text())
        except (aiohttp.ClientError, TimeoutError):
            return {}

    totals: Totals = {}
    for part in await asyncio.gather(*(one(url) for url in urls.values())):
        totals.update(part)
    return totals


def breakdown(before: Totals, after: Totals) -> list[dict[str, Any]]:
    """The TOP_ROUTES routes with the most time spent in them between the two scrapes,
    largest first."""
    rows: list[dict[str, Any]] = []
    for key, (count, seconds) in after.items():
        count_before, seconds_before = before.get(key, (0.0, 0.0))
        requests = count - count_before
        if requests <= 0:
            continue
        spent = seconds - seconds_before
        service, method, route = key
        rows.append(
            {
                "service": service,
                "route": f"{method} {route}",
                "requests": int(requests),
                "mean_ms": round(spent / requests * 1000, 2),
                "total_s": round(spent, 2),
            }
        )
    rows.sort(key=lambda row: row["total_s"], reverse=True)
    return rows[:TOP_ROUTES]
