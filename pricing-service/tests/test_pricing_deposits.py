"""Cylinder deposits: a vendor prices a refundable deposit per oxygen cylinder (and only
on those), quotes carry it per line and in `deposit_total`, never inside `total`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from conftest import AskCompare, AskQuote, InventoryStub, PriceBody, SetPrice

VendorHeaders = Callable[[uuid.UUID], dict[str, str]]
CYLINDER = "oxygen_cylinder"


def price_path(product_id: uuid.UUID) -> str:
    return f"/api/v1/pricing/prices/{product_id}"


def product_calls(inventory: InventoryStub) -> list[httpx.Request]:
    return [r for r in inventory.requests if r.url.path == "/internal/products"]


async def history_of(
    engine: AsyncEngine, vendor_id: uuid.UUID, product_id: uuid.UUID
) -> list[tuple[int, str, bool]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT version, deposit_per_cylinder, valid_to IS NULL AS current"
                " FROM pricing.price_history WHERE vendor_id = :v AND product_id = :p"
                " ORDER BY version"
            ),
            {"v": vendor_id, "p": product_id},
        )
        return [(r.version, str(r.deposit_per_cylinder), r.current) for r in rows]


async def test_a_cylinder_price_carries_its_deposit_and_a_change_is_a_new_version(
    pricing_client: httpx.AsyncClient,
    inventory: InventoryStub,
    vendor_headers: VendorHeaders,
    make_price_body: PriceBody,
    hospital: dict[str, str],
    pricing_engine: AsyncEngine,
) -> None:
    vendor_id, product_id = uuid.uuid4(), uuid.uuid4()
    inventory.categories[product_id] = CYLINDER
    headers = vendor_headers(vendor_id)

    first = await pricing_client.put(
        price_path(product_id), json=make_price_body(deposit="12.5"), headers=headers
    )
    same = await pricing_client.put(
        price_path(product_id), json=make_price_body(deposit="12.50"), headers=headers
    )
    changed = await pricing_client.put(
        price_path(product_id), json=make_price_body(deposit="20"), headers=headers
    )

    assert first.status_code == 200, first.text
    assert first.json()["deposit_per_cylinder"] == "12.50"
    assert (first.json()["version"], same.json()["version"]) == (1, 1)
    assert changed.json()["version"] == 2
    assert changed.json()["deposit_per_cylinder"] == "20.00"
    # inventory-service was asked which category the product is, by its id.
    assert product_calls(inventory)[0].url.params["ids"] == str(product_id)
    assert await history_of(pricing_engine, vendor_id, product_id) == [
        (1, "12.50", False),
        (2, "20.00", True),
    ]
    listed = await pricing_client.get(
        f"/api/v1/pricing/vendors/{vendor_id}/prices", headers=hospital
    )
    assert listed.json()["items"][0]["deposit_per_cylinder"] == "20.00"


async def test_without_a_deposit_the_price_reads_zero_and_inventory_is_not_asked(
    pricing_client: httpx.AsyncClient,
    inventory: InventoryStub,
    vendor_headers: VendorHeaders,
    make_price_body: PriceBody,
) -> None:
    # Inventory down: a price without a deposit must not depend on it.
    inventory.failure = httpx.ConnectError
    for deposit in (None, "0.00"):
        response = await pricing_client.put(
            price_path(uuid.uuid4()),
            json=make_price_body(deposit=deposit),
            headers=vendor_headers(uuid.uuid4()),
        )
        assert response.status_code == 200, response.text
        assert response.json()["deposit_per_cylinder"] == "0.00"
    assert product_calls(inventory) == []


@pytest.mark.parametrize("category", ["liquid_oxygen", None])
async def test_a_deposit_on_a_product_that_is_not_a_cylinder_is_422_and_nothing_is_stored(
    pricing_client: httpx.AsyncClient,
    inventory: InventoryStub,
    vendor_headers: VendorHeaders,
    make_price_body: PriceBody,
    pricing_engine: AsyncEngine,
    category: str | None,
) -> None:
    vendor_id, product_id = uuid.uuid4(), uuid.uuid4()
    if category is not None:
        inventory.categories[product_id] = category  # None: inventory does not know it

    response = await pricing_client.put(
        price_path(product_id),
        json=make_price_body(deposit="5.00"),
        headers=vendor_headers(vendor_id),
    )

    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"].endswith("/deposit-not-allowed")
    assert response.json()["category"] == category
    assert await history_of(pricing_engine, vendor_id, product_id) == []


async def test_an_existing_price_keeps_its_deposit_when_a_refused_change_comes(
    pricing_client: httpx.AsyncClient,
    inventory: InventoryStub,
    vendor_headers: VendorHeaders,
    make_price_body: PriceBody,
    pricing_engine: AsyncEngine,
) -> None:
    vendor_id, product_id = uuid.uuid4(), uuid.uuid4()
    inventory.categories[product_id] = CYLINDER
    headers = vendor_headers(vendor_id)
    await pricing_client.put(
        price_path(product_id), json=make_price_body(deposit="9.00"), headers=headers
    )
    inventory.failure = httpx.ConnectError

    down = await pricing_client.put(
        price_path(product_id), json=make_price_body("150.00", deposit="10.00"), headers=headers
    )

    assert down.status_code == 503, down.text
    assert "inventory-service" in down.json()["detail"]
    assert await history_of(pricing_engine, vendor_id, product_id) == [(1, "9.00", True)]


@pytest.mark.parametrize("value", ["-0.01", "1.005", 12.5, "NaN", "1000000000000.00", "twelve"])
async def test_invalid_deposits_are_422(
    pricing_client: httpx.AsyncClient,
    vendor_headers: VendorHeaders,
    make_price_body: PriceBody,
    value: Any,
) -> None:
    body: dict[str, Any] = make_price_body()
    body["deposit_per_cylinder"] = value

    response = await pricing_client.put(
        price_path(uuid.uuid4()), json=body, headers=vendor_headers(uuid.uuid4())
    )

    assert response.status_code == 422
    assert any("deposit_per_cylinder" in error["loc"] for error in response.json()["errors"])


async def test_concurrent_deposit_changes_leave_one_current_version_matching_the_price(
    pricing_client: httpx.AsyncClient,
    inventory: InventoryStub,
    vendor_headers: VendorHeaders,
    make_price_body: PriceBody,
    pricing_engine: AsyncEngine,
) -> None:
    vendor_id, product_id = uuid.uuid4(), uuid.uuid4()
    inventory.categories[product_id] = CYLINDER
    headers = vendor_headers(vendor_id)

    responses = await asyncio.gather(
        *(
            pricing_client.put(
                price_path(product_id),
                json=make_price_body(deposit=f"{10 + i}.00"),
                headers=headers,
            )
            for i in range(2)
        )
    )

    assert [r.status_code for r in responses] == [200, 200]
    async with pricing_engine.connect() as conn:
        current = await conn.scalar(
            text(
                "SELECT deposit_per_cylinder FROM pricing.prices"
                " WHERE vendor_id = :v AND product_id = :p"
            ),
            {"v": vendor_id, "p": product_id},
        )
    history = await history_of(pricing_engine, vendor_id, product_id)
    assert [version for version, _, _ in history] == [1, 2]
    assert [(deposit, True) for _, deposit, is_current in history if is_current] == [
        (str(current), True)
    ]


async def test_a_quote_carries_each_lines_deposit_and_a_deposit_total_outside_total(
    pricing_client: httpx.AsyncClient,
    inventory: InventoryStub,
    set_price: SetPrice,
    ask_quote: AskQuote,
    hospital: dict[str, str],
    pricing_engine: AsyncEngine,
) -> None:
    depot = inventory.add_depot(distance_km=5.0)
    cylinder, regulator = uuid.uuid4(), uuid.uuid4()
    inventory.categories[cylinder] = CYLINDER
    await set_price(depot.vendor_id, cylinder, unit_price="45.55", deposit="12.50")
    await set_price(depot.vendor_id, regulator, unit_price="19.99")

    response = await ask_quote(pricing_client, depot, [(cylinder, 3), (regulator, 2)])

    assert response.status_code == 201, response.text
    quote = response.json()
    assert [(i["product_id"], i["deposit_per_unit"]) for i in quote["items"]] == [
        (str(cylinder), "12.50"),
        (str(regulator), "0.00"),
    ]
    assert quote["deposit_total"] == "37.50"
    parts = ("subtotal", "delivery_fee", "surcharge", "tax")
    assert Decimal(quote["total"]) == sum((Decimal(quote[p]) for p in parts), Decimal(0))
    assert quote["subtotal"] == "176.63"  # 3 x 45.55 + 2 x 19.99: no deposit in it

    # Stored as quoted: a later deposit change never alters it.
    await set_price(depot.vendor_id, cylinder, unit_price="45.55", deposit="30.00")
    again = await pricing_client.get(
        f"/api/v1/pricing/quotes/{quote['quote_id']}", headers=hospital
    )
    assert again.json()["deposit_total"] == "37.50"
    assert again.json()["items"][0]["deposit_per_unit"] == "12.50"
    async with pricing_engine.connect() as conn:
        stored = await conn.scalar(
            text("SELECT deposit_total FROM pricing.quotes WHERE id = :id"),
            {"id": uuid.UUID(quote["quote_id"])},
        )
    assert str(stored) == "37.50"


async def test_a_quote_without_deposits_has_a_zero_deposit_total(
    pricing_client: httpx.AsyncClient,
    inventory: InventoryStub,
    set_price: SetPrice,
    ask_quote: AskQuote,
) -> None:
    depot = inventory.add_depot()
    product = uuid.uuid4()
    await set_price(depot.vendor_id, product)

    quote = (await ask_quote(pricing_client, depot, [(product, 4)])).json()

    assert quote["deposit_total"] == "0.00"
    assert quote["items"][0]["deposit_per_unit"] == "0.00"


async def test_a_deposit_total_that_cannot_be_charged_is_422(
    pricing_client: httpx.AsyncClient,
    inventory: InventoryStub,
    set_price: SetPrice,
    ask_quote: AskQuote,
) -> None:
    depot = inventory.add_depot()
    cylinder = uuid.uuid4()
    inventory.categories[cylinder] = CYLINDER
    await set_price(depot.vendor_id, cylinder, unit_price="1.00", deposit="999999999999.00")

    response = await ask_quote(pricing_client, depot, [(cylinder, 2)])

    assert response.status_code == 422, response.text
    assert response.json()["type"].endswith("/amount-too-large")


async def test_compare_shows_each_vendors_deposit(
    pricing_client: httpx.AsyncClient,
    inventory: InventoryStub,
    set_price: SetPrice,
    ask_compare: AskCompare,
) -> None:
    cylinder = uuid.uuid4()
    inventory.categories[cylinder] = CYLINDER
    with_deposit = inventory.add_depot(distance_km=5.0)
    without = inventory.add_depot(distance_km=6.0)
    await set_price(with_deposit.vendor_id, cylinder, deposit="15.00")
    await set_price(without.vendor_id, cylinder)

    response = await ask_compare(pricing_client, cylinder, 2)

    assert response.status_code == 200, response.text
    by_vendor = {item["vendor_id"]: item for item in response.json()["items"]}
    offered = by_vendor[str(with_deposit.vendor_id)]
    assert offered["deposit_per_cylinder"] == "15.00"
    assert offered["quote"]["deposit_total"] == "30.00"
    assert by_vendor[str(without.vendor_id)]["deposit_per_cylinder"] == "0.00"
    assert by_vendor[str(without.vendor_id)]["quote"]["deposit_total"] == "0.00"


async def test_rows_written_before_deposits_existed_read_zero(
    pricing_engine: AsyncEngine,
) -> None:
    async with pricing_engine.connect() as conn:
        deposit = await conn.scalar(
            text(
                "INSERT INTO pricing.prices (id, vendor_id, product_id, unit_price, currency,"
                " delivery_fee_per_km, min_delivery_fee, emergency_surcharge_pct, version,"
                " valid_from, updated_by) VALUES (gen_random_uuid(), gen_random_uuid(),"
                " gen_random_uuid(), 1.00, 'USD', 0, 0, 0, 1, now(), gen_random_uuid())"
                " RETURNING deposit_per_cylinder"
            )
        )
        await conn.rollback()
    assert str(deposit) == "0.00"
