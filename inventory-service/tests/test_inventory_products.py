"""SPEC Catalog: platform-wide products seeded by migration with stable SKUs; paged
with category and q filters; platform admins add products (409 on a taken SKU)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

CATEGORIES = {"oxygen_cylinder", "liquid_oxygen", "concentrator", "refill", "accessory"}


async def _all_products(
    client: httpx.AsyncClient, headers: dict[str, str], **params: Any
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        response = await client.get(
            "/api/v1/catalog/products",
            params={**params, "page": page, "page_size": 10},
            headers=headers,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["items"]
        if page * 10 >= body["total"]:
            assert len(items) == body["total"]
            return items
        page += 1


async def test_seeded_catalogue_has_stable_skus_in_every_category(
    client: httpx.AsyncClient, inv: Any
) -> None:
    products = await _all_products(client, inv.hospital_headers())
    by_sku = {p["sku"]: p for p in products}
    for sku in (
        "O2-CYL-1L",
        "O2-CYL-2L",
        "O2-CYL-5L",
        "O2-CYL-10L",
        "O2-CYL-40L",
        "O2-CYL-46.7L",
        "LOX-100KG",
        "LOX-1000KG",
        "CONC-5LPM",
        "CONC-10LPM",
        "REG-CGA870",
        "FLOW-0-15LPM",
        "REFILL-10L",
    ):
        assert sku in by_sku, sku
    assert {p["category"] for p in products} == CATEGORIES
    cylinder = by_sku["O2-CYL-10L"]
    assert cylinder["category"] == "oxygen_cylinder"
    assert cylinder["unit"]
    assert "10 L water capacity" in cylinder["description"]
    assert by_sku["LOX-1000KG"]["category"] == "liquid_oxygen"
    assert by_sku["CONC-5LPM"]["category"] == "concentrator"
    assert by_sku["REFILL-10L"]["category"] == "refill"
    assert by_sku["FLOW-0-15LPM"]["category"] == "accessory"
    # Stable ids too: uuid5 of the SKU, the same in every environment.
    assert cylinder["id"] == str(
        uuid.uuid5(uuid.UUID("6f1c0b52-3d4e-4c1a-9a57-2f0e7f3b8d11"), "O2-CYL-10L")
    )
    assert set(cylinder) == {"id", "sku", "name", "category", "unit", "description", "gas_liters"}


async def test_every_seeded_oxygen_product_knows_its_gas_and_nothing_else_claims_any(
    client: httpx.AsyncClient, inv: Any
) -> None:
    by_sku = {p["sku"]: p for p in await _all_products(client, inv.hospital_headers())}
    # Water capacity x fill pressure for cylinders and their refills; ~700 L per kg of LOX.
    assert by_sku["O2-CYL-10L"]["gas_liters"] == 1_500  # 10 L x 150 bar
    assert by_sku["O2-CYL-1L"]["gas_liters"] == 200  # 1 L x 200 bar
    assert by_sku["REFILL-46.7L"]["gas_liters"] == 7_000  # 46.7 L x 150 bar
    assert by_sku["LOX-100KG"]["gas_liters"] == 70_000  # 100 kg x 700 L/kg
    assert by_sku["LOX-5000KG"]["gas_liters"] == 3_500_000
    seeded = [p for p in by_sku.values() if not p["sku"].startswith(("O2-CYL-TEST-", "X-"))]
    for product in seeded:
        stores_gas = product["category"] in {"oxygen_cylinder", "liquid_oxygen", "refill"}
        assert (product["gas_liters"] is not None) == stores_gas, product["sku"]
        if stores_gas:
            assert product["gas_liters"] > 0


async def test_gas_liters_must_fit_the_category(client: httpx.AsyncClient, inv: Any) -> None:
    base = {"sku": "GAS-1", "name": "n", "unit": "cylinder"}
    for bad in (
        {**base, "category": "oxygen_cylinder"},  # a cylinder must say what it holds
        {**base, "category": "liquid_oxygen", "gas_liters": 0},
        {**base, "category": "refill", "gas_liters": -5},
        {**base, "category": "oxygen_cylinder", "gas_liters": 1500.25},  # 0.1 L at most
        {**base, "category": "accessory", "gas_liters": 10},  # holds none
        {**base, "category": "concentrator", "gas_liters": 10},  # makes it, stores none
    ):
        response = await client.post(
            "/api/v1/catalog/products", json=bad, headers=inv.admin_headers()
        )
        assert response.status_code == 422, bad
        assert response.headers["content-type"].startswith("application/problem+json")
    listed = await client.get(
        "/api/v1/catalog/products", params={"q": "GAS-1"}, headers=inv.admin_headers()
    )
    assert listed.json()["total"] == 0


async def test_products_filter_by_category_and_text(client: httpx.AsyncClient, inv: Any) -> None:
    headers = inv.hospital_headers()
    concentrators = await _all_products(client, headers, category="concentrator")
    assert concentrators
    assert {p["category"] for p in concentrators} == {"concentrator"}

    by_name = await _all_products(client, headers, q="cylinder REFILL 10 l")
    assert [p["sku"] for p in by_name] == ["REFILL-10L"]
    by_sku = await _all_products(client, headers, q="refill-10l")
    assert [p["sku"] for p in by_sku] == ["REFILL-10L"]
    # LIKE wildcards in q are literal characters.
    assert await _all_products(client, headers, q="_") == []

    response = await client.get(
        "/api/v1/catalog/products", params={"category": "plutonium"}, headers=headers
    )
    assert response.status_code == 422


async def test_products_are_paged(client: httpx.AsyncClient, inv: Any) -> None:
    response = await client.get(
        "/api/v1/catalog/products",
        params={"page": 2, "page_size": 5},
        headers=inv.hospital_headers(),
    )
    assert response.status_code == 200
    body = response.json()
    assert body["page"] == 2
    assert body["page_size"] == 5
    assert len(body["items"]) == 5
    assert body["total"] >= 25


async def test_products_need_a_user(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/catalog/products")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_platform_admin_adds_a_product_and_a_taken_sku_is_409(
    client: httpx.AsyncClient, inv: Any
) -> None:
    sku = f"O2-CYL-TEST-{uuid.uuid4().hex[:8].upper()}"
    body = {
        "sku": sku,
        "name": "Medical oxygen cylinder 3 L",
        "category": "oxygen_cylinder",
        "unit": "cylinder",
        "description": "3 L water capacity, 200 bar.",
        "gas_liters": 600,
    }
    created = await client.post("/api/v1/catalog/products", json=body, headers=inv.admin_headers())
    assert created.status_code == 201, created.text
    product = created.json()
    assert product["sku"] == sku
    assert product["gas_liters"] == 600
    assert uuid.UUID(product["id"])

    again = await client.post("/api/v1/catalog/products", json=body, headers=inv.admin_headers())
    assert again.status_code == 409
    assert again.json()["type"].endswith("/duplicate-sku")

    fetched = await client.get(
        f"/api/v1/catalog/products/{product['id']}", headers=inv.hospital_headers()
    )
    assert fetched.status_code == 200
    assert fetched.json() == product


async def test_only_platform_admins_add_products(client: httpx.AsyncClient, inv: Any) -> None:
    body = {
        "sku": f"X-{uuid.uuid4().hex[:8].upper()}",
        "name": "Something",
        "category": "accessory",
        "unit": "unit",
    }
    vendor = await client.post(
        "/api/v1/catalog/products", json=body, headers=inv.vendor_headers(uuid.uuid4())
    )
    hospital = await client.post(
        "/api/v1/catalog/products", json=body, headers=inv.hospital_headers()
    )
    # A platform role claimed outside the platform org is not an admin.
    fake_admin = await client.post(
        "/api/v1/catalog/products",
        json=body,
        headers=inv.tokens.headers(org_kind="vendor", role="platform_admin"),
    )
    assert vendor.status_code == hospital.status_code == fake_admin.status_code == 403
    listed = await client.get(
        "/api/v1/catalog/products", params={"q": body["sku"]}, headers=inv.admin_headers()
    )
    assert listed.json()["total"] == 0


async def test_product_input_is_validated(client: httpx.AsyncClient, inv: Any) -> None:
    base = {"sku": "OK-1", "name": "n", "category": "accessory", "unit": "unit"}
    for bad in (
        {**base, "sku": "lower-case"},
        {**base, "category": "nope"},
        {**base, "extra": 1},
        {k: v for k, v in base.items() if k != "name"},
    ):
        response = await client.post(
            "/api/v1/catalog/products", json=bad, headers=inv.admin_headers()
        )
        assert response.status_code == 422, bad
