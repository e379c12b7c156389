"""order-service's migrations: they create what the models declare, and the scrub removes
the card tokens that order.placed outbox rows carried before tokens left the events."""

from __future__ import annotations

import importlib.util
import json
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from flow_shared.testing.infra import TestInfra, schema_drift
from order_service.models import Base

SCRUB = Path(__file__).parents[1] / "migrations/versions/20261207_0003_scrub_card_tokens.py"


def _migration(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_migrations_create_exactly_what_the_models_declare(infra: TestInfra) -> None:
    assert await schema_drift(infra, "orders", Base.metadata) == []


async def test_the_scrub_removes_card_tokens_from_existing_outbox_rows_only(
    orders_engine: AsyncEngine,
) -> None:
    order_id = str(uuid.uuid4())
    token = f"tok_{uuid.uuid4().hex}"
    written: dict[str, dict[str, Any]] = {
        # As order-service wrote card orders' order.placed before the fix.
        "card": {"type": "order.placed", "data": {"order_id": order_id, "card_token": token}},
        "invoice": {"type": "order.placed", "data": {"order_id": order_id, "total": "9.00"}},
        "later": {"type": "order.cancelled", "data": {"order_id": order_id, "reason": "x"}},
    }
    ids = {name: uuid.uuid4() for name in written}
    async with orders_engine.begin() as conn:
        for name, payload in written.items():
            # Published already, so no relay running in another test picks them up.
            await conn.execute(
                text(
                    "INSERT INTO orders.outbox (event_id, event_type, payload, published_at) "
                    "VALUES (:id, :type, CAST(:payload AS jsonb), now())"
                ),
                {"id": ids[name], "type": payload["type"], "payload": json.dumps(payload)},
            )

    def scrub(connection: Connection) -> None:
        with Operations.context(MigrationContext.configure(connection)):
            _migration(SCRUB).upgrade()

    async with orders_engine.begin() as conn:
        await conn.run_sync(scrub)

    async with orders_engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT event_id, payload FROM orders.outbox WHERE event_id = ANY(:ids)"),
            {"ids": list(ids.values())},
        )
        after = {row.event_id: row.payload for row in rows}
    assert after[ids["card"]] == {"type": "order.placed", "data": {"order_id": order_id}}
    assert token not in json.dumps(list(after.values()))
    # Everything else is left exactly as it was.
    assert after[ids["invoice"]] == written["invoice"]
    assert after[ids["later"]] == written["later"]
