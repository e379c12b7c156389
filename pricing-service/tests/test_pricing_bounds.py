"""A quote whose total would overflow Numeric(14, 2) is a 422 problem, not a 500 from
the database; amounts past the column are refused when prices are set."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING

import httpx
import pytest

from flow_shared.validation import MAX_AMOUNT, AmountTooLarge
from pricing_service.service.money import LinePrice, compute_quote

if TYPE_CHECKING:
    from conftest import AskQuote, InventoryStub, PriceBody, SetPrice

LARGEST_PRICE = "9999999999.99"


def test_compute_quote_refuses_a_total_past_the_largest_amount() -> None:
    line = LinePrice(
        quantity=100_000,
        unit_price=Decimal(LARGEST_PRICE),
        delivery_fee_per_km=Decimal(0),
        min_delivery_fee=Decimal(0),
        emergency_surcharge_pct=Decimal(0),
    )
    with pytest.raises(AmountTooLarge):
        compute_quote([line], distance_km=Decimal(1), priority="routine", tax_rate=Decimal(0))
    fits = compute_quote(
        [LinePrice(1, MAX_AMOUNT, Decimal(0), Decimal(0), Decimal(0))],
        distance_km=Decimal(1),
        priority="routine",
        tax_rate=Decimal(0),
    )
    assert fits.total == MAX_AMOUNT


async def test_a_quote_too_large_to_store_is_422(
    pricing_client: httpx.AsyncClient,
    inventory: InventoryStub,
    set_price: SetPrice,
    ask_quote: AskQuote,
) -> None:
    depot = inventory.add_depot(distance_km=1.0)
    product = uuid.uuid4()
    await set_price(depot.vendor_id, product, unit_price=LARGEST_PRICE, per_km="0", min_fee="0")

    response = await ask_quote(pricing_client, depot, [(product, 100_000)])

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/amount-too-large")


async def test_a_price_past_the_amount_column_is_422(
    pricing_client: httpx.AsyncClient,
    vendor_headers: Callable[[uuid.UUID], dict[str, str]],
    make_price_body: PriceBody,
) -> None:
    headers = vendor_headers(uuid.uuid4())
    for field, value in (
        ("unit_price", "1000000000000.00"),
        ("delivery_fee_per_km", "1e20"),
        ("min_delivery_fee", "NaN"),
        ("emergency_surcharge_pct", "Infinity"),
    ):
        body = {**make_price_body(), field: value}
        response = await pricing_client.put(
            f"/api/v1/pricing/prices/{uuid.uuid4()}", json=body, headers=headers
        )
        assert response.status_code == 422, (field, response.text)
