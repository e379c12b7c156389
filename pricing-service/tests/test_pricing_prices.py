"""Vendor price lists: who may set them, what is valid, and that every version is kept."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from conftest import PriceBody, SetPrice

VendorHeaders = Callable[[uuid.UUID], dict[str, str]]


async def test_vendor_sets_a_price_and_anyone_reads_the_list(
    pricing_client: httpx.AsyncClient,
    vendor_headers: VendorHeaders,
    hospital: dict[str, str],
    make_price_body: PriceBody,
) -> None:
    vendor_id, product_a, product_b = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    response = await pricing_client.put(
        f"/api/v1/pricing/prices/{product_a}",
        json=make_price_body("1250", per_km="1.5", min_fee="0", pct="12.5"),
        headers=vendor_headers(vendor_id),
    )
    await pricing_client.put(
        f"/api/v1/pricing/prices/{product_b}",
        json=make_price_body("80.00", currency="EUR"),
        headers=vendor_headers(vendor_id),
    )

    assert response.status_code == 200, response.text
    price = response.json()
    assert price["vendor_id"] == str(vendor_id)
    assert price["product_id"] == str(product_a)
    # Money comes back as strings with exactly two decimals, never floats.
    assert price["unit_price"] == "1250.00"
    assert price["delivery_fee_per_km"] == "1.50"
    assert price["min_delivery_fee"] == "0.00"
    assert price["emergency_surcharge_pct"] == "12.50"
    assert price["currency"] == "USD"
    assert price["version"] == 1

    listed = await pricing_client.get(
        f"/api/v1/pricing/vendors/{vendor_id}/prices", headers=hospital
    )
    assert listed.status_code == 200
    body = listed.json()
    assert body["total"] == 2
    assert body["page"] == 1
    by_product = {item["product_id"]: item for item in body["items"]}
    assert by_product[str(product_a)]["unit_price"] == "1250.00"
    assert by_product[str(product_b)]["currency"] == "EUR"

    other_vendor = await pricing_client.get(
        f"/api/v1/pricing/vendors/{uuid.uuid4()}/prices", headers=hospital
    )
    assert other_vendor.json()["total"] == 0


async def test_reading_a_price_list_needs_a_token(pricing_client: httpx.AsyncClient) -> None:
    response = await pricing_client.get(f"/api/v1/pricing/vendors/{uuid.uuid4()}/prices")
    assert response.status_code == 401


async def test_hospitals_cannot_set_prices(
    pricing_client: httpx.AsyncClient, hospital: dict[str, str], make_price_body: PriceBody
) -> None:
    response = await pricing_client.put(
        f"/api/v1/pricing/prices/{uuid.uuid4()}", json=make_price_body(), headers=hospital
    )
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("unit_price", "-1.00"),
        ("unit_price", "10.005"),
        ("unit_price", 10.5),  # a JSON float: cents may already be lost
        ("unit_price", "NaN"),
        ("unit_price", "ten"),
        ("currency", "usd"),
        ("currency", "US"),
        ("delivery_fee_per_km", "-0.01"),
        ("min_delivery_fee", "1.234"),
        ("emergency_surcharge_pct", "100.01"),
        ("emergency_surcharge_pct", "-1"),
    ],
)
async def test_invalid_price_fields_are_422(
    pricing_client: httpx.AsyncClient,
    vendor_headers: VendorHeaders,
    make_price_body: PriceBody,
    field: str,
    value: Any,
) -> None:
    body: dict[str, Any] = make_price_body()
    body[field] = value

    response = await pricing_client.put(
        f"/api/v1/pricing/prices/{uuid.uuid4()}", json=body, headers=vendor_headers(uuid.uuid4())
    )

    assert response.status_code == 422
    assert any(field in error["loc"] for error in response.json()["errors"])


async def test_missing_and_unknown_price_fields_are_422(
    pricing_client: httpx.AsyncClient, vendor_headers: VendorHeaders, make_price_body: PriceBody
) -> None:
    missing = make_price_body()
    del missing["min_delivery_fee"]
    extra = {**make_price_body(), "vendor_id": str(uuid.uuid4())}
    headers = vendor_headers(uuid.uuid4())

    for body in (missing, extra):
        response = await pricing_client.put(
            f"/api/v1/pricing/prices/{uuid.uuid4()}", json=body, headers=headers
        )
        assert response.status_code == 422, body


async def test_each_change_is_a_new_version_and_history_keeps_every_one(
    set_price: SetPrice, pricing_engine: AsyncEngine
) -> None:
    vendor_id, product_id = uuid.uuid4(), uuid.uuid4()

    first = await set_price(vendor_id, product_id, unit_price="100.00")
    unchanged = await set_price(vendor_id, product_id, unit_price="100.0")
    second = await set_price(vendor_id, product_id, unit_price="120.00")

    assert first["version"] == 1
    assert unchanged["version"] == 1  # equal amounts are not a change
    assert second["version"] == 2
    assert second["unit_price"] == "120.00"
    async with pricing_engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT version, unit_price, valid_to IS NULL AS current"
                    " FROM pricing.price_history WHERE vendor_id = :v AND product_id = :p"
                    " ORDER BY version"
                ),
                {"v": vendor_id, "p": product_id},
            )
        ).all()
    assert [(r.version, str(r.unit_price), r.current) for r in rows] == [
        (1, "100.00", False),
        (2, "120.00", True),
    ]


async def test_concurrent_first_prices_for_one_product_leave_one_row_and_one_current_version(
    pricing_client: httpx.AsyncClient,
    vendor_headers: VendorHeaders,
    make_price_body: PriceBody,
    pricing_engine: AsyncEngine,
) -> None:
    vendor_id, product_id = uuid.uuid4(), uuid.uuid4()
    headers = vendor_headers(vendor_id)

    responses = await asyncio.gather(
        *(
            pricing_client.put(
                f"/api/v1/pricing/prices/{product_id}",
                json=make_price_body(f"{100 + i}.00"),
                headers=headers,
            )
            for i in range(8)
        )
    )

    assert [r.status_code for r in responses] == [200] * 8
    async with pricing_engine.connect() as conn:
        prices = (
            await conn.execute(
                text("SELECT version FROM pricing.prices WHERE vendor_id = :v AND product_id = :p"),
                {"v": vendor_id, "p": product_id},
            )
        ).all()
        history = (
            await conn.execute(
                text(
                    "SELECT count(*) AS n, count(*) FILTER (WHERE valid_to IS NULL) AS open"
                    " FROM pricing.price_history WHERE vendor_id = :v AND product_id = :p"
                ),
                {"v": vendor_id, "p": product_id},
            )
        ).one()
    assert len(prices) == 1
    assert history.n == prices[0].version == 8
    assert history.open == 1
