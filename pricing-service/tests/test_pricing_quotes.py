"""Quotes: priced by the server from the vendor's list, stored unchanged, expiring,
and refused clearly when the depot, vendor, price or an upstream is wrong."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from conftest import (
        AskQuote,
        InventoryStub,
        LocationStub,
        PricedDepot,
        PricingClientFactory,
        QuoteBody,
        SetPrice,
        StoredQuotes,
    )

MONEY_FIELDS = ("subtotal", "delivery_fee", "surcharge", "tax", "total")


def assert_money(value: Any) -> None:
    assert isinstance(value, str), value
    whole, _, cents = value.partition(".")
    assert whole.isdigit(), value
    assert len(cents) == 2, value
    assert cents.isdigit(), value


async def test_quote_is_priced_from_the_vendor_list_and_adds_up(
    pricing_client: httpx.AsyncClient,
    inventory: InventoryStub,
    set_price: SetPrice,
    ask_quote: AskQuote,
) -> None:
    depot = inventory.add_depot(distance_km=12.3)
    cylinder, regulator = uuid.uuid4(), uuid.uuid4()
    await set_price(depot.vendor_id, cylinder, unit_price="45.55", per_km="1.25", min_fee="10")
    await set_price(depot.vendor_id, regulator, unit_price="19.99", per_km="0.50", min_fee="16")

    response = await ask_quote(pricing_client, depot, [(cylinder, 3), (regulator, 2)])

    assert response.status_code == 201, response.text
    quote = response.json()
    assert quote["vendor_id"] == str(depot.vendor_id)
    assert quote["depot_id"] == str(depot.depot_id)
    assert quote["priority"] == "routine"
    assert quote["distance_km"] == 12.3
    assert quote["currency"] == "USD"
    assert [
        (i["product_id"], i["quantity"], i["unit_price"], i["line_total"]) for i in quote["items"]
    ] == [
        (str(cylinder), 3, "45.55", "136.65"),
        (str(regulator), 2, "19.99", "39.98"),
    ]
    assert quote["subtotal"] == "176.63"
    # max(10, 1.25 x 12.3 = 15.375 → 15.38) vs max(16, 0.5 x 12.3) → the larger, 16.00
    assert quote["delivery_fee"] == "16.00"
    assert quote["surcharge"] == "0.00"
    # 5 % of 192.63 = 9.6315 → 9.63
    assert quote["tax"] == "9.63"
    assert quote["total"] == "202.26"
    for name in MONEY_FIELDS:
        assert_money(quote[name])


async def test_emergency_quote_carries_the_surcharge_and_distance_fee(
    pricing_client: httpx.AsyncClient,
    inventory: InventoryStub,
    set_price: SetPrice,
    ask_quote: AskQuote,
) -> None:
    depot = inventory.add_depot(distance_km=40.0)
    product = uuid.uuid4()
    await set_price(
        depot.vendor_id, product, unit_price="200.00", per_km="2.00", min_fee="15", pct="25"
    )

    routine = await ask_quote(pricing_client, depot, [(product, 1)])
    emergency = await ask_quote(pricing_client, depot, [(product, 1)], priority="emergency")

    assert routine.json()["surcharge"] == "0.00"
    assert routine.json()["delivery_fee"] == "80.00"  # 2.00 x 40 km beats the 15.00 minimum
    assert emergency.json()["surcharge"] == "50.00"
    assert emergency.json()["tax"] == "16.50"  # 5 % of 330.00
    assert emergency.json()["total"] == "346.50"


async def test_quote_is_stored_with_its_expiry_and_a_price_change_never_alters_it(
    pricing_client_for: PricingClientFactory,
    inventory: InventoryStub,
    make_quote_body: QuoteBody,
    vendor_headers: Any,
    make_price_body: Any,
    hospital: dict[str, str],
    service_headers: dict[str, str],
) -> None:
    depot = inventory.add_depot(distance_km=5.0)
    product = uuid.uuid4()
    async with pricing_client_for(quote_ttl_seconds=120) as client:
        put = await client.put(
            f"/api/v1/pricing/prices/{product}",
            json=make_price_body("10.00", per_km="0.50", min_fee="5.00"),
            headers=vendor_headers(depot.vendor_id),
        )
        assert put.status_code == 200
        created = (
            await client.post(
                "/internal/quotes",
                json=make_quote_body(depot, [(product, 4)]),
                headers=service_headers,
            )
        ).json()
        changed = await client.put(
            f"/api/v1/pricing/prices/{product}",
            json=make_price_body("99.00", min_fee="50.00"),
            headers=vendor_headers(depot.vendor_id),
        )
        stored = await client.get(
            f"/internal/quotes/{created['quote_id']}", headers=service_headers
        )
        fresh = await client.post(
            "/internal/quotes", json=make_quote_body(depot, [(product, 4)]), headers=service_headers
        )

    assert changed.json()["version"] == 2
    assert stored.status_code == 200
    assert stored.json() == created
    assert created["items"][0]["unit_price"] == "10.00"
    assert created["delivery_fee"] == "5.00"  # the minimum: 0.50 x 5 km is less
    assert created["total"] == "47.25"  # (40.00 + 5.00) x 1.05
    lifetime = datetime.fromisoformat(created["expires_at"]) - datetime.fromisoformat(
        created["created_at"]
    )
    assert lifetime == timedelta(seconds=120)
    # New quotes use the new price.
    assert fresh.json()["items"][0]["unit_price"] == "99.00"


async def test_unknown_quote_is_404(
    pricing_client: httpx.AsyncClient, service_headers: dict[str, str]
) -> None:
    response = await pricing_client.get(f"/internal/quotes/{uuid.uuid4()}", headers=service_headers)
    assert response.status_code == 404
    assert response.json()["type"].endswith("/quote-not-found")


async def test_a_user_sees_their_own_quote_but_another_hospital_gets_404(
    pricing_client: httpx.AsyncClient,
    hospital: dict[str, str],
    token_issuer: Any,
    vendor_headers: Any,
    priced_depot: PricedDepot,
    ask_quote: AskQuote,
) -> None:
    depot, product = await priced_depot()
    quote = (await ask_quote(pricing_client, depot, [(product, 1)])).json()
    path = f"/api/v1/pricing/quotes/{quote['quote_id']}"

    mine = await pricing_client.get(path, headers=hospital)
    vendors = await pricing_client.get(path, headers=vendor_headers(depot.vendor_id))
    other = await pricing_client.get(path, headers=token_issuer.headers(org_kind="hospital"))

    assert mine.status_code == 200
    assert mine.json() == quote
    assert vendors.status_code == 200
    assert other.status_code == 404


@pytest.mark.parametrize(
    "sneaked",
    [
        {"total": "1.00"},
        {"subtotal": "1.00"},
        {"currency": "USD"},
    ],
)
async def test_client_sent_totals_are_refused(
    pricing_client: httpx.AsyncClient,
    sneaked: dict[str, str],
    priced_depot: PricedDepot,
    ask_quote: AskQuote,
) -> None:
    depot, product = await priced_depot()

    response = await ask_quote(pricing_client, depot, [(product, 1)], **sneaked)

    assert response.status_code == 422


async def test_client_sent_line_prices_are_refused(
    pricing_client: httpx.AsyncClient,
    make_quote_body: QuoteBody,
    hospital: dict[str, str],
    service_headers: dict[str, str],
    priced_depot: PricedDepot,
) -> None:
    depot, product = await priced_depot()
    body = make_quote_body(depot, [(product, 1)])
    body["items"][0]["unit_price"] = "0.01"

    public = await pricing_client.post("/api/v1/pricing/quotes", json=body, headers=hospital)
    internal = await pricing_client.post("/internal/quotes", json=body, headers=service_headers)

    assert public.status_code == 422
    assert internal.status_code == 422
    assert any("unit_price" in e["loc"] for e in public.json()["errors"])


@pytest.mark.parametrize(
    "items",
    [
        [],
        [{"quantity": 1}],
        [{"product_id": "x", "quantity": 1}],
        [{"product_id": "<uuid>", "quantity": 0}],
        [{"product_id": "<uuid>", "quantity": "2"}],
        [{"product_id": "<uuid>", "quantity": 1.5}],
    ],
)
async def test_malformed_items_are_422(
    pricing_client: httpx.AsyncClient,
    inventory: InventoryStub,
    items: list[dict[str, Any]],
    ask_quote: AskQuote,
) -> None:
    depot = inventory.add_depot()
    malformed = [
        {k: str(uuid.uuid4()) if v == "<uuid>" else v for k, v in item.items()} for item in items
    ]

    response = await ask_quote(pricing_client, depot, [], items=malformed)

    assert response.status_code == 422


async def test_depot_of_another_vendor_is_404(
    pricing_client: httpx.AsyncClient,
    inventory: InventoryStub,
    set_price: SetPrice,
    ask_quote: AskQuote,
) -> None:
    depot = inventory.add_depot()
    other_vendor = uuid.uuid4()
    product = uuid.uuid4()
    await set_price(other_vendor, product)

    response = await ask_quote(pricing_client, depot, [(product, 1)], vendor_id=str(other_vendor))

    assert response.status_code == 404
    assert response.json()["type"].endswith("/depot-not-found")
    assert str(other_vendor) in response.json()["detail"]


async def test_unknown_depot_is_404(
    pricing_client: httpx.AsyncClient,
    inventory: InventoryStub,
    ask_quote: AskQuote,
) -> None:
    depot = inventory.add_depot()
    del inventory.depots[depot.depot_id]

    response = await ask_quote(pricing_client, depot, [(uuid.uuid4(), 1)])

    assert response.status_code == 404
    assert str(depot.depot_id) in response.json()["detail"]


async def test_unverified_or_suspended_vendor_is_409_vendor_unavailable(
    pricing_client: httpx.AsyncClient,
    priced_depot: PricedDepot,
    ask_quote: AskQuote,
) -> None:
    depot, product = await priced_depot(vendor_active=False)

    response = await ask_quote(pricing_client, depot, [(product, 1)])

    assert response.status_code == 409
    assert response.json()["type"].endswith("/vendor-unavailable")


async def test_product_without_a_price_is_409_naming_it_and_nothing_is_stored(
    pricing_client: httpx.AsyncClient,
    inventory: InventoryStub,
    set_price: SetPrice,
    ask_quote: AskQuote,
    stored_quotes: StoredQuotes,
) -> None:
    depot = inventory.add_depot()
    priced, unpriced = uuid.uuid4(), uuid.uuid4()
    await set_price(depot.vendor_id, priced)
    # The same product priced by someone else does not count.
    await set_price(uuid.uuid4(), unpriced)

    response = await ask_quote(pricing_client, depot, [(priced, 1), (unpriced, 2)])

    assert response.status_code == 409
    problem = response.json()
    assert problem["type"].endswith("/no-price")
    assert problem["product_ids"] == [str(unpriced)]
    assert str(unpriced) in problem["detail"]
    assert await stored_quotes(depot.depot_id) == 0


async def test_prices_in_two_currencies_cannot_share_a_quote(
    pricing_client: httpx.AsyncClient,
    inventory: InventoryStub,
    set_price: SetPrice,
    ask_quote: AskQuote,
) -> None:
    depot = inventory.add_depot()
    usd, eur = uuid.uuid4(), uuid.uuid4()
    await set_price(depot.vendor_id, usd, currency="USD")
    await set_price(depot.vendor_id, eur, currency="EUR")

    response = await ask_quote(pricing_client, depot, [(usd, 1), (eur, 1)])

    assert response.status_code == 409
    assert response.json()["type"].endswith("/mixed-currency")


async def test_out_of_range_depot_is_quoted_by_distance_unless_configured_otherwise(
    pricing_client_for: PricingClientFactory,
    inventory: InventoryStub,
    make_price_body: Any,
    vendor_headers: Any,
    ask_quote: AskQuote,
) -> None:
    depot = inventory.add_depot(distance_km=80.0)  # service radius is 50 km
    product = uuid.uuid4()

    async with pricing_client_for() as client:
        await client.put(
            f"/api/v1/pricing/prices/{product}",
            json=make_price_body(per_km="1.00"),
            headers=vendor_headers(depot.vendor_id),
        )
        lenient = await ask_quote(client, depot, [(product, 1)])
    async with pricing_client_for(enforce_service_radius=True) as client:
        strict = await ask_quote(client, depot, [(product, 1)])

    assert lenient.status_code == 201
    assert lenient.json()["delivery_fee"] == "80.00"
    assert strict.status_code == 409
    assert strict.json()["type"].endswith("/out-of-delivery-range")


async def test_internal_routes_need_a_trusted_service_key(
    pricing_client: httpx.AsyncClient,
    inventory: InventoryStub,
    make_quote_body: QuoteBody,
    hospital: dict[str, str],
) -> None:
    depot = inventory.add_depot()
    body = make_quote_body(depot, [(uuid.uuid4(), 1)])

    for headers in ({}, {"X-Service-Key": "not-a-trusted-key"}, hospital):
        created = await pricing_client.post("/internal/quotes", json=body, headers=headers)
        read = await pricing_client.get(f"/internal/quotes/{uuid.uuid4()}", headers=headers)
        assert created.status_code == 401, headers
        assert read.status_code == 401, headers
    # Refused before doing anything.
    assert inventory.requests == []


async def test_public_quotes_need_a_token(
    pricing_client: httpx.AsyncClient, inventory: InventoryStub, make_quote_body: QuoteBody
) -> None:
    depot = inventory.add_depot()
    response = await pricing_client.post(
        "/api/v1/pricing/quotes", json=make_quote_body(depot, [(uuid.uuid4(), 1)])
    )
    assert response.status_code == 401


def assert_problem_naming(response: httpx.Response, status: int, upstream: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert upstream in response.json()["detail"]
    assert "Traceback" not in response.text


async def test_inventory_down_is_503_naming_it(
    pricing_client: httpx.AsyncClient,
    inventory: InventoryStub,
    ask_quote: AskQuote,
) -> None:
    depot = inventory.add_depot()
    inventory.failure = httpx.ConnectError

    response = await ask_quote(pricing_client, depot, [(uuid.uuid4(), 1)])

    assert_problem_naming(response, 503, "inventory-service")


async def test_location_down_is_503_naming_it_and_no_quote_is_stored(
    pricing_client: httpx.AsyncClient,
    location: LocationStub,
    make_quote_body: QuoteBody,
    service_headers: dict[str, str],
    priced_depot: PricedDepot,
    stored_quotes: StoredQuotes,
) -> None:
    depot, product = await priced_depot()
    location.failure = httpx.ConnectTimeout

    response = await pricing_client.post(
        "/internal/quotes", json=make_quote_body(depot, [(product, 1)]), headers=service_headers
    )

    assert_problem_naming(response, 503, "location-service")
    assert await stored_quotes(depot.depot_id) == 0


async def test_an_upstream_refusing_our_service_key_is_502_not_401(
    pricing_client_for: PricingClientFactory,
    inventory: InventoryStub,
    ask_quote: AskQuote,
) -> None:
    depot = inventory.add_depot()

    async with pricing_client_for(service_key="a-key-inventory-does-not-trust") as client:
        response = await ask_quote(client, depot, [(uuid.uuid4(), 1)])

    # The hospital's credentials are fine; a 401 would mislead it.
    assert_problem_naming(response, 502, "inventory-service")
