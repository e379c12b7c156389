"""Numbers and text PostgreSQL would refuse are refused first: a quantity past the
integer column, a stock level pushed past the largest quantity, NUL in a name, are
4xx problems, never a 500 from the database."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from flow_shared.validation import MAX_UNITS

NEARBY = "/api/v1/catalog/nearby"


async def test_a_min_quantity_beyond_any_stock_is_422(client: httpx.AsyncClient, inv: Any) -> None:
    headers = inv.hospital_headers()
    for huge in (5252014337, MAX_UNITS + 1):
        response = await client.get(
            NEARBY, params={"lat": 1, "lon": 1, "min_quantity": huge}, headers=headers
        )
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
    largest = await client.get(
        NEARBY, params={"lat": 1, "lon": 1, "min_quantity": MAX_UNITS}, headers=headers
    )
    assert largest.status_code == 200, largest.text


async def test_stock_cannot_be_adjusted_past_the_largest_quantity(
    client: httpx.AsyncClient, inv: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    line = await inv.stock_line(product_ids["O2-CYL-5L"])
    url, headers = line.url, line.headers
    assert (await client.put(url, json={"on_hand": MAX_UNITS}, headers=headers)).status_code == 200

    for delta in (3_000_000_000, 3e9):
        too_big = await client.post(
            url + "/adjust", json={"delta": delta, "reason": "x"}, headers=headers
        )
        assert too_big.status_code == 422, too_big.text
    past_maximum = await client.post(
        url + "/adjust", json={"delta": MAX_UNITS, "reason": "delivery"}, headers=headers
    )
    assert past_maximum.status_code == 409, past_maximum.text
    assert past_maximum.json()["type"].endswith("/stock-above-maximum")
    assert await inv.stock_row(line.depot_id, product_ids["O2-CYL-5L"]) == (MAX_UNITS, 0)
    down = await client.post(url + "/adjust", json={"delta": -1, "reason": "x"}, headers=headers)
    assert down.status_code == 200, down.text


async def test_nul_in_text_is_422_on_every_writer(
    client: httpx.AsyncClient, inv: Any, product_ids: dict[str, uuid.UUID]
) -> None:
    vendor = uuid.uuid4()
    headers = inv.vendor_headers(vendor)
    depot_body = {"name": "North\x00", "lat": 1.0, "lon": 1.0, "service_radius_km": 10}
    depot = await client.post("/api/v1/inventory/depots", json=depot_body, headers=headers)
    assert depot.status_code == 422, depot.text

    existing = await inv.depot(vendor)
    url = f"/api/v1/inventory/depots/{existing}/stock/{product_ids['O2-CYL-5L']}/adjust"
    adjust = await client.post(url, json={"delta": 1, "reason": "a\x00b"}, headers=headers)
    assert adjust.status_code == 422, adjust.text
    search = await client.get(
        "/api/v1/catalog/products", params={"q": "oxy\x00"}, headers=inv.hospital_headers()
    )
    assert search.status_code == 422, search.text
