"""Compare: vendors with the stock nearby, each fully priced, cheapest total first, cached,
and nothing stored (a quote is kept only when one is asked for)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from conftest import (
        AskCompare,
        AskQuote,
        InventoryStub,
        LocationStub,
        PricedDepot,
        PricingClientFactory,
        SetPrice,
        StoredQuotes,
    )


async def test_vendors_are_ranked_by_total_and_those_without_a_price_are_skipped(
    pricing_client: httpx.AsyncClient,
    inventory: InventoryStub,
    set_price: SetPrice,
    service_headers: dict[str, str],
    ask_compare: AskCompare,
) -> None:
    product = uuid.uuid4()
    # Nearest first, inventory lists: no_price (1 km), near (2), mid (5), far (20), short (0.5).
    far = inventory.add_depot(distance_km=20.0, vendor_name="Far Gas")
    mid = inventory.add_depot(distance_km=5.0, vendor_name="Mid Gas")
    near = inventory.add_depot(distance_km=2.0, vendor_name="Near Gas")
    no_price = inventory.add_depot(distance_km=1.0, vendor_name="Unpriced Gas")
    short = inventory.add_depot(distance_km=0.5, available=1, vendor_name="Short Gas")
    await set_price(far.vendor_id, product, unit_price="50.00", per_km="2.00", min_fee="0")
    await set_price(mid.vendor_id, product, unit_price="100.00", per_km="2.00", min_fee="0")
    await set_price(near.vendor_id, product, unit_price="80.00", per_km="2.00", min_fee="0")
    await set_price(short.vendor_id, product, unit_price="1.00", per_km="0", min_fee="0")
    # The unpriced vendor has a price for something else only.
    await set_price(no_price.vendor_id, uuid.uuid4(), unit_price="1.00")

    response = await ask_compare(pricing_client, product, 2)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["product_id"] == str(product)
    assert body["quantity"] == 2
    assert body["priority"] == "routine"
    totals = [(i["vendor_name"], i["quote"]["total"]) for i in body["items"]]
    # far: (100 + 40) x 1.05; near: (160 + 4) x 1.05; mid: (200 + 10) x 1.05
    assert totals == [("Far Gas", "147.00"), ("Near Gas", "172.20"), ("Mid Gas", "220.50")]
    first = body["items"][0]
    assert first["vendor_id"] == str(far.vendor_id)
    assert first["depot_id"] == str(far.depot_id)
    assert first["depot_name"] == far.name
    assert first["distance_km"] == 20.0  # the road distance, as the fee used
    assert first["available"] == 100
    assert first["quote"]["items"] == [
        {
            "product_id": str(product),
            "quantity": 2,
            "unit_price": "50.00",
            "line_total": "100.00",
            "deposit_per_unit": "0.00",
        }
    ]
    # inventory was asked only for depots holding the whole quantity.
    nearby_calls = [r for r in inventory.requests if r.url.path == "/internal/catalog/nearby"]
    assert nearby_calls
    assert nearby_calls[0].url.params["min_quantity"] == "2"
    # The same figures as a stored quote of that depot, without what only storing gives.
    assert "quote_id" not in first["quote"]
    assert "expires_at" not in first["quote"]
    stored = await pricing_client.post(
        "/internal/quotes",
        json={
            "vendor_id": first["vendor_id"],
            "depot_id": first["depot_id"],
            "items": [{"product_id": str(product), "quantity": 2}],
            "delivery": {"lat": 9.5, "lon": 19.5},
        },
        headers=service_headers,
    )
    assert stored.status_code == 201, stored.text
    figures = {k: v for k, v in stored.json().items() if k in first["quote"]}
    assert figures == first["quote"]


async def test_compare_stores_no_quote_and_asking_for_one_stores_exactly_one(
    pricing_client_for: PricingClientFactory,
    inventory: InventoryStub,
    set_price: SetPrice,
    ask_quote: AskQuote,
    stored_quotes: StoredQuotes,
    ask_compare: AskCompare,
) -> None:
    product = uuid.uuid4()
    depots = [inventory.add_depot(distance_km=float(km)) for km in (1, 2, 3)]
    for depot in depots:
        await set_price(depot.vendor_id, product)

    # Uncached, every compare computes afresh: still no row written.
    async with pricing_client_for(compare_cache_seconds=0) as client:
        for _ in range(3):
            response = await ask_compare(client, product)
            assert response.status_code == 200, response.text
            assert len(response.json()["items"]) == 3
        assert await stored_quotes(*(d.depot_id for d in depots)) == 0

        asked = await ask_quote(client, depots[0], [(product, 2)])
        assert asked.status_code == 201, asked.text
    assert await stored_quotes(*(d.depot_id for d in depots)) == 1


async def test_equal_totals_are_ranked_nearest_first(
    pricing_client: httpx.AsyncClient,
    inventory: InventoryStub,
    set_price: SetPrice,
    ask_compare: AskCompare,
) -> None:
    product = uuid.uuid4()
    farther = inventory.add_depot(distance_km=8.0)
    nearer = inventory.add_depot(distance_km=3.0)
    for depot in (farther, nearer):
        # The minimum fee dominates at both distances: identical totals.
        await set_price(depot.vendor_id, product, unit_price="10.00", per_km="1.00", min_fee="30")

    body = (await ask_compare(pricing_client, product, 1)).json()

    assert [i["quote"]["total"] for i in body["items"]] == ["42.00", "42.00"]
    assert [i["depot_id"] for i in body["items"]] == [str(nearer.depot_id), str(farther.depot_id)]


async def test_emergency_compare_includes_each_vendors_surcharge(
    pricing_client: httpx.AsyncClient,
    inventory: InventoryStub,
    set_price: SetPrice,
    ask_compare: AskCompare,
) -> None:
    product = uuid.uuid4()
    cheap_but_steep = inventory.add_depot(distance_km=1.0)
    pricier_flat = inventory.add_depot(distance_km=1.0)
    await set_price(cheap_but_steep.vendor_id, product, unit_price="90.00", min_fee="0", pct="50")
    await set_price(pricier_flat.vendor_id, product, unit_price="100.00", min_fee="0", pct="0")

    body = (await ask_compare(pricing_client, product, 1, priority="emergency")).json()

    assert body["priority"] == "emergency"
    assert [i["depot_id"] for i in body["items"]] == [
        str(pricier_flat.depot_id),
        str(cheap_but_steep.depot_id),
    ]
    assert body["items"][1]["quote"]["surcharge"] == "45.00"


async def test_compare_is_cached_so_a_repeat_does_not_call_upstreams(
    pricing_client: httpx.AsyncClient,
    inventory: InventoryStub,
    location: LocationStub,
    priced_depot: PricedDepot,
    ask_compare: AskCompare,
) -> None:
    _, product = await priced_depot(distance_km=4.0)

    first = await ask_compare(pricing_client, product, 3)
    calls = (len(inventory.requests), len(location.requests))
    # Equivalent coordinates (same to ~1 m) share the entry.
    second = await ask_compare(pricing_client, product, 3, lat="9.500000001")

    assert calls[0] >= 1
    assert calls[1] >= 1
    assert second.status_code == 200
    assert second.json() == first.json()
    assert (len(inventory.requests), len(location.requests)) == calls

    other_quantity = await ask_compare(pricing_client, product, 4)
    assert other_quantity.status_code == 200
    assert len(inventory.requests) > calls[0]


async def test_with_caching_off_every_compare_asks_inventory_again(
    pricing_client_for: PricingClientFactory,
    inventory: InventoryStub,
    priced_depot: PricedDepot,
    ask_compare: AskCompare,
) -> None:
    _, product = await priced_depot()

    async with pricing_client_for(compare_cache_seconds=0) as client:
        for _ in range(2):
            response = await ask_compare(client, product)
            assert response.status_code == 200

    nearby_calls = [r for r in inventory.requests if r.url.path == "/internal/catalog/nearby"]
    assert len(nearby_calls) == 2


async def test_compare_reads_every_page_of_nearby_depots_up_to_the_cap(
    pricing_client_for: PricingClientFactory,
    inventory: InventoryStub,
    set_price: SetPrice,
    ask_compare: AskCompare,
) -> None:
    product = uuid.uuid4()
    depots = [inventory.add_depot(distance_km=float(km)) for km in range(1, 6)]
    for depot in depots:
        await set_price(depot.vendor_id, product, unit_price="10.00")

    async with pricing_client_for(compare_nearby_page_size=2) as client:
        everything = await ask_compare(client, product)
    async with pricing_client_for(compare_nearby_page_size=2, compare_max_depots=3) as client:
        capped = await ask_compare(client, product, 1)

    assert {i["depot_id"] for i in everything.json()["items"]} == {str(d.depot_id) for d in depots}
    # The cap keeps the nearest three.
    assert {i["depot_id"] for i in capped.json()["items"]} == {str(d.depot_id) for d in depots[:3]}


async def test_nothing_nearby_is_an_empty_list(
    pricing_client: httpx.AsyncClient, location: LocationStub, ask_compare: AskCompare
) -> None:
    response = await ask_compare(pricing_client, uuid.uuid4())

    assert response.status_code == 200
    assert response.json()["items"] == []
    assert location.requests == []  # no depots, no routes to ask for


@pytest.mark.parametrize(
    ("org_kind", "role"), [("vendor", "org_admin"), ("platform", "platform_admin")]
)
async def test_compare_is_for_hospitals_only(
    pricing_client: httpx.AsyncClient,
    inventory: InventoryStub,
    token_issuer: Any,
    org_kind: str,
    role: str,
    ask_compare: AskCompare,
) -> None:
    response = await ask_compare(
        pricing_client, uuid.uuid4(), headers=token_issuer.headers(org_kind=org_kind, role=role)
    )

    assert response.status_code == 403
    assert inventory.requests == []


@pytest.mark.parametrize(
    "bad",
    [{"quantity": 0}, {"lat": 91}, {"lon": -181}, {"radius_km": 0}, {"priority": "asap"}],
)
async def test_invalid_compare_parameters_are_422(
    pricing_client: httpx.AsyncClient, bad: dict[str, Any], ask_compare: AskCompare
) -> None:
    response = await ask_compare(pricing_client, uuid.uuid4(), **bad)
    assert response.status_code == 422


async def test_compare_with_inventory_down_is_503_naming_it(
    pricing_client: httpx.AsyncClient, inventory: InventoryStub, ask_compare: AskCompare
) -> None:
    inventory.failure = httpx.ConnectError

    response = await ask_compare(pricing_client, uuid.uuid4())

    assert response.status_code == 503
    assert "inventory-service" in response.json()["detail"]


async def test_compare_with_location_down_is_503_naming_it(
    pricing_client: httpx.AsyncClient,
    location: LocationStub,
    priced_depot: PricedDepot,
    ask_compare: AskCompare,
) -> None:
    _, product = await priced_depot()
    location.failure = httpx.ConnectError

    response = await ask_compare(pricing_client, product)

    assert response.status_code == 503
    assert "location-service" in response.json()["detail"]


async def test_offers_on_fresh_stock_rank_before_stale_ones(
    pricing_client: httpx.AsyncClient,
    inventory: InventoryStub,
    set_price: SetPrice,
    ask_compare: AskCompare,
) -> None:
    """SPEC: compare marks availability not updated for STALE_STOCK_HOURS as `stale` and
    ranks it after fresh, however cheap it is."""
    product = uuid.uuid4()
    cheap_stale = inventory.add_depot(distance_km=1.0, vendor_name="Cheap Stale", stale=True)
    dear_fresh = inventory.add_depot(distance_km=8.0, vendor_name="Dear Fresh")
    cheap_fresh = inventory.add_depot(distance_km=3.0, vendor_name="Cheap Fresh")
    dear_stale = inventory.add_depot(distance_km=2.0, vendor_name="Dear Stale", stale=True)
    for depot, price in (
        (cheap_stale, "10.00"),
        (dear_fresh, "90.00"),
        (cheap_fresh, "20.00"),
        (dear_stale, "80.00"),
    ):
        await set_price(depot.vendor_id, product, unit_price=price, per_km="0", min_fee="0")

    response = await ask_compare(pricing_client, product, 1)

    assert response.status_code == 200, response.text
    ranked = [(i["vendor_name"], i["stale"]) for i in response.json()["items"]]
    assert ranked == [
        ("Cheap Fresh", False),
        ("Dear Fresh", False),
        ("Cheap Stale", True),
        ("Dear Stale", True),
    ]
