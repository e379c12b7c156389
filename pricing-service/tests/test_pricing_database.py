"""pricing-service's schema: migrations match the models, and the database itself
refuses a quote that does not add up or a price out of range."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from flow_shared.testing.infra import TestInfra, schema_drift
from pricing_service.models import Base


async def test_migrations_create_exactly_what_the_models_declare(infra: TestInfra) -> None:
    assert await schema_drift(infra, "pricing", Base.metadata) == []


async def test_pricing_role_cannot_read_another_services_schema(
    pricing_engine: AsyncEngine,
) -> None:
    async with pricing_engine.connect() as conn:
        with pytest.raises(DBAPIError, match="permission denied"):
            await conn.execute(text("SELECT count(*) FROM users.users"))


async def test_a_quote_whose_parts_do_not_add_up_is_refused_by_the_database(
    pricing_engine: AsyncEngine,
) -> None:
    async with pricing_engine.connect() as conn:
        with pytest.raises(DBAPIError, match="ck_quotes_total_is_sum_of_parts"):
            await conn.execute(
                text(
                    "INSERT INTO pricing.quotes (id, vendor_id, depot_id, priority, delivery_lat,"
                    " delivery_lon, distance_km, subtotal, delivery_fee, surcharge, tax_rate,"
                    " tax, total, currency, source, created_at, expires_at) VALUES"
                    " (gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'routine', 0, 0,"
                    " 1.0, 10.00, 1.00, 0.00, 0.05, 0.55, 11.56, 'USD', 'api', now(), now())"
                )
            )


async def test_a_surcharge_above_100_percent_is_refused_by_the_database(
    pricing_engine: AsyncEngine,
) -> None:
    async with pricing_engine.connect() as conn:
        with pytest.raises(DBAPIError, match="ck_prices_emergency_surcharge_pct_range"):
            await conn.execute(
                text(
                    "INSERT INTO pricing.prices (id, vendor_id, product_id, unit_price, currency,"
                    " delivery_fee_per_km, min_delivery_fee, emergency_surcharge_pct, version,"
                    " valid_from, updated_by) VALUES (gen_random_uuid(), gen_random_uuid(),"
                    " gen_random_uuid(), 1.00, 'USD', 0, 0, 101, 1, now(), gen_random_uuid())"
                )
            )
