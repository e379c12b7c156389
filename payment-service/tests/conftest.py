"""payment-service tests: the app in-process on the session's real PostgreSQL, Redis and
RabbitMQ slice (the `infra` fixture; its consumer and relay run against the session's
vhost), the built-in sandbox provider on the same database, tokens from `token_issuer`.

`pay` (a `Payments` helper) feeds order events to the service's real handlers (as the
consumer does, in one transaction), calls the API, signs webhooks and reads the payments
schema as payment-service's own role, so tests read as the promise they check.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from flow_shared.events.consumer import EventHandler
from flow_shared.events.envelope import EventEnvelope
from flow_shared.testing.infra import caller_key
from flow_shared.testing.outbox import outbox_events
from flow_shared.testing.service_app import (
    in_process_app_fixtures,
    schema_engine_fixture,
    settings_fixture,
)
from flow_shared.testing.tokens import TokenIssuer
from payment_service.config import Settings
from payment_service.main import create_app
from payment_service.service.webhooks import SIGNATURE_HEADER, signature_header

WEBHOOK_SECRET = "test-webhook-secret-5f1c0a9e"
# Short, so that tests of the lost-answer token do not wait long.
PROVIDER_TIMEOUT_SECONDS = 0.3
WEBHOOK_URL = "/api/v1/payments/webhooks/sandbox"
# The key the test app trusts for /internal (flow_shared.testing's settings).
CALLER_KEY = caller_key("order-service")


make_settings = settings_fixture(
    "payment-service",
    Settings,
    log_level="WARNING",
    payment_webhook_secret=WEBHOOK_SECRET,
    provider_timeout_seconds=PROVIDER_TIMEOUT_SECONDS,
)


# Module scope: the consumer stops with the last payment test instead of handling other
# services' test events for the rest of the session.
service_app, app, client = in_process_app_fixtures(create_app, scope="module")
payments_db = schema_engine_fixture("payments")


@dataclass
class Order:
    """An order as order-service's events describe it."""

    method: str = "card"
    total: str = "100.00"
    currency: str = "NGN"
    # Handed over by order-service's internal call (Payments.hand_over), never in an event.
    card_token: str | None = "tok_visa"
    order_id: uuid.UUID = field(default_factory=uuid.uuid4)
    hospital_org_id: uuid.UUID = field(default_factory=uuid.uuid4)
    vendor_id: uuid.UUID = field(default_factory=uuid.uuid4)
    # An SOS order: its token was handed over for the SOS request when it opened.
    sos_id: uuid.UUID | None = None
    # Its cylinder deposits, charged with the total (None: an event written before them).
    deposit_total: str | None = None

    def event(self, status: str, *, reason: str | None = None) -> EventEnvelope:
        """An `order.<status>` event with every field order-service publishes."""
        data: dict[str, Any] = {
            "order_id": str(self.order_id),
            "hospital_org_id": str(self.hospital_org_id),
            "vendor_id": str(self.vendor_id),
            "depot_id": str(uuid.uuid4()),
            "status": status,
            "priority": "urgent",
            "payment_method": self.method,
            "total": self.total,
            "currency": self.currency,
            "items": [
                {
                    "product_id": str(uuid.uuid4()),
                    "quantity": 2,
                    "unit_price": "50.00",
                    "line_total": self.total,
                }
            ],
            "actor_id": str(uuid.uuid4()),
            "at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        if status in ("rejected", "cancelled"):
            data["reason"] = reason or "changed plans"
        if self.sos_id is not None:
            data["sos_id"] = str(self.sos_id)
        if self.deposit_total is not None:
            data["deposit_total"] = self.deposit_total
        return EventEnvelope(type=f"order.{status}", producer="order-service", data=data)

    def returned(
        self,
        *,
        deposit: str = "12.50",
        currency: str | None = None,
        serial: str | None = None,
        return_id: uuid.UUID | None = None,
        hospital_org_id: uuid.UUID | None = None,
    ) -> EventEnvelope:
        """A `cylinder.returned` of a cylinder delivered (and its deposit charged) on this
        order, with every field inventory-service publishes; taken back by a collection."""
        data: dict[str, Any] = {
            "return_id": str(return_id or uuid.uuid4()),
            "cylinder_id": str(uuid.uuid4()),
            "serial": serial or f"CYL-{uuid.uuid4().hex[:8]}",
            "vendor_id": str(self.vendor_id),
            "product_id": str(uuid.uuid4()),
            "hospital_org_id": str(hospital_org_id or self.hospital_org_id),
            "depot_id": str(uuid.uuid4()),
            "deposit_order_id": str(self.order_id),
            "returned_order_id": None,
            "deposit": deposit,
            "currency": currency or self.currency,
            "returned_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        return EventEnvelope(type="cylinder.returned", producer="inventory-service", data=data)


class Payments:
    """Driving and reading payment-service for a test."""

    def __init__(
        self, app: FastAPI, http: httpx.AsyncClient, engine: AsyncEngine, tokens: TokenIssuer
    ) -> None:
        self.app = app
        self.http = http
        self.engine = engine
        self.tokens = tokens
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)

    @staticmethod
    def order(**fields: Any) -> Order:
        """A new order (test modules cannot import conftest under importlib mode)."""
        return Order(**fields)

    # -- identities ------------------------------------------------------------------

    def hospital(self, order: Order, role: str = "staff") -> dict[str, str]:
        return self.tokens.headers(org_kind="hospital", role=role, org_id=order.hospital_org_id)

    def vendor(self, order: Order, role: str = "org_admin") -> dict[str, str]:
        return self.tokens.headers(org_kind="vendor", role=role, org_id=order.vendor_id)

    def admin(self) -> dict[str, str]:
        return self.tokens.headers(org_kind="platform", role="platform_admin")

    def stranger(self, org_kind: str) -> dict[str, str]:
        return self.tokens.headers(org_kind=org_kind, role="org_admin")

    # -- events, as the consumer hands them over -------------------------------------

    async def handle(self, envelope: EventEnvelope) -> None:
        """Run the service's own handler for `envelope` in one transaction."""
        handler: EventHandler = self.app.state.events.handlers[envelope.type]
        async with self.sessions() as session, session.begin():
            await handler(session, envelope)

    async def hand_over(
        self, order: Order, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """What order-service does before committing a card order (or opening a card-paid
        SOS request): hand its token over."""
        held_for = f"orders/{order.order_id}" if order.sos_id is None else f"sos/{order.sos_id}"
        return await self.http.put(
            f"/internal/{held_for}/card-token",
            json={"card_token": order.card_token},
            headers=headers if headers is not None else {"X-Service-Key": CALLER_KEY},
        )

    async def place(self, order: Order) -> dict[str, Any]:
        """The order's token handed over (a card order with one), then its order.placed."""
        if order.method == "card" and order.card_token is not None:
            await self.hand_over(order)
        await self.handle(order.event("placed"))
        return await self.payment_of(order)

    # -- the API -----------------------------------------------------------------------

    async def payment_of(self, order: Order) -> dict[str, Any]:
        """The order's payment, as a platform admin sees it through the API."""
        response = await self.http.get(
            "/api/v1/payments", params={"order_id": str(order.order_id)}, headers=self.admin()
        )
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        assert len(items) == 1, items
        return items[0]

    async def refund(
        self,
        payment_id: str,
        headers: dict[str, str],
        *,
        amount: str | None = None,
        reason: str = "damaged cylinder",
        idempotency_key: str | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> httpx.Response:
        body: dict[str, Any] = {"reason": reason}
        if amount is not None:
            body["amount"] = amount
        if idempotency_key is not None:
            headers = {**headers, "Idempotency-Key": idempotency_key}
        return await (http or self.http).post(
            f"/api/v1/payments/{payment_id}/refund", json=body, headers=headers
        )

    # -- webhooks ------------------------------------------------------------------------

    @staticmethod
    def webhook_body(**fields: Any) -> bytes:
        body = {"id": f"evt_{uuid.uuid4().hex}", "type": "charge.captured", **fields}
        return json.dumps(body).encode()

    async def webhook(
        self,
        body: bytes,
        *,
        signed_at: int | None = None,
        secret: str = WEBHOOK_SECRET,
        sent: bytes | None = None,
    ) -> httpx.Response:
        """POST `body` signed as the sandbox signs (or `sent` instead, under body's signature)."""
        timestamp = int(time.time()) if signed_at is None else signed_at
        header = signature_header(secret.encode(), timestamp, body)
        return await self.http.post(
            WEBHOOK_URL,
            content=body if sent is None else sent,
            headers={"Content-Type": "application/json", SIGNATURE_HEADER: header},
        )

    # -- the database, as payment-service's role ---------------------------------------

    async def scalar(self, sql: str, **params: Any) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(text(sql), params)).scalar_one()

    async def count_payments(self, order: Order) -> int:
        return int(
            await self.scalar("SELECT count(*) FROM payments WHERE order_id = :o", o=order.order_id)
        )

    async def outbox_events(self, event_type: str, order: Order) -> list[dict[str, Any]]:
        """This service's outbox rows of one type for the order, oldest first."""
        return await outbox_events(self.engine, event_type, order_id=str(order.order_id))

    async def sandbox_authorizations(self, order: Order) -> int:
        """Authorizations the sandbox provider performed for the order (its own books)."""
        return int(
            await self.scalar(
                "SELECT count(*) FROM sandbox_requests r JOIN sandbox_charges c "
                "ON c.ref = r.charge_ref WHERE r.idempotency_key = :k",
                k=f"authorize:{order.order_id}",
            )
        )

    async def deposit_credits(self, order: Order) -> list[dict[str, Any]]:
        """The deposit credits of the order's returned cylinders, oldest first."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT * FROM deposit_credits WHERE order_id = :o ORDER BY created_at, id"
                    ),
                    {"o": order.order_id},
                )
            ).all()
        return [dict(row._mapping) for row in rows]

    async def sandbox_refunds(self, idempotency_key: str) -> int:
        """Refunds the sandbox provider performed under this key (its own books)."""
        return int(
            await self.scalar(
                "SELECT count(*) FROM sandbox_requests "
                "WHERE idempotency_key = :k AND operation = 'refund'",
                k=idempotency_key,
            )
        )

    async def sandbox_charge(self, provider_ref: str) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    text("SELECT * FROM sandbox_charges WHERE ref = :r"), {"r": provider_ref}
                )
            ).one()
        return dict(row._mapping)

    async def provider_ref(self, order: Order) -> str:
        ref: str = await self.scalar(
            "SELECT provider_ref FROM payments WHERE order_id = :o", o=order.order_id
        )
        return ref


@pytest.fixture
def pay(
    app: FastAPI, client: httpx.AsyncClient, payments_db: AsyncEngine, token_issuer: TokenIssuer
) -> Payments:
    return Payments(app, client, payments_db, token_issuer)
