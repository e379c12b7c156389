"""review-service tests: the app in-process on the session's real PostgreSQL, Redis and
RabbitMQ slice (the `infra` fixture; its consumer and relay run against the session's
vhost), tokens from `token_issuer`.

`reviews` (a `Reviews` helper) records deliveries through the projection's real event
handler, writes reviews through the API and reads the database as review-service's own
role, so tests read as the promise they check.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from flow_shared.events.envelope import EventEnvelope
from flow_shared.testing.outbox import outbox_events
from flow_shared.testing.service_app import (
    in_process_app_fixtures,
    schema_engine_fixture,
    settings_fixture,
)
from flow_shared.testing.tokens import TokenIssuer
from review_service.config import Settings
from review_service.events import event_handlers
from review_service.main import create_app

make_settings = settings_fixture("review-service", Settings, log_level="WARNING")
service_app, app, client = in_process_app_fixtures(create_app)
reviews_db = schema_engine_fixture("reviews")


def order_delivered(
    order_id: uuid.UUID,
    hospital_org_id: uuid.UUID,
    vendor_id: uuid.UUID,
    *,
    at: datetime | None = None,
) -> EventEnvelope:
    """An order.delivered event exactly as order-service publishes it (every field)."""
    return order_event("delivered", order_id, hospital_org_id, vendor_id, at=at)


def order_placed(
    order_id: uuid.UUID,
    hospital_org_id: uuid.UUID,
    vendor_id: uuid.UUID,
    *,
    at: datetime | None = None,
) -> EventEnvelope:
    """An order.placed event exactly as order-service publishes it (every field)."""
    return order_event("placed", order_id, hospital_org_id, vendor_id, at=at)


def order_event(
    status: str,
    order_id: uuid.UUID,
    hospital_org_id: uuid.UUID,
    vendor_id: uuid.UUID,
    *,
    at: datetime | None = None,
) -> EventEnvelope:
    at = at or datetime.now(UTC)
    return EventEnvelope(
        type=f"order.{status}",
        producer="order-service",
        occurred_at=at,
        correlation_id=uuid.uuid4().hex,
        data={
            "order_id": str(order_id),
            "hospital_org_id": str(hospital_org_id),
            "vendor_id": str(vendor_id),
            "depot_id": str(uuid.uuid4()),
            "status": status,
            "priority": "routine",
            "payment_method": "invoice",
            "total": "125.50",
            "currency": "NGN",
            "items": [
                {
                    "product_id": str(uuid.uuid4()),
                    "quantity": 2,
                    "unit_price": "62.75",
                    "line_total": "125.50",
                }
            ],
            "actor_id": str(uuid.uuid4()),
            "at": at.isoformat().replace("+00:00", "Z"),
        },
    )


@dataclass(frozen=True)
class Hospital:
    org_id: uuid.UUID = field(default_factory=uuid.uuid4)
    user_id: uuid.UUID = field(default_factory=uuid.uuid4)


class Reviews:
    """Setting up and reading review state for a test."""

    order_delivered = staticmethod(order_delivered)
    order_placed = staticmethod(order_placed)

    @staticmethod
    def hospital() -> Hospital:
        """A new hospital organisation with one user."""
        return Hospital()

    @staticmethod
    def colleague(hospital: Hospital) -> Hospital:
        """Another user of the same hospital organisation."""
        return Hospital(org_id=hospital.org_id)

    @staticmethod
    def expected_summary(vendor_id: uuid.UUID, ratings: list[int]) -> dict[str, Any]:
        return expected_summary(vendor_id, ratings)

    def __init__(self, http: httpx.AsyncClient, engine: AsyncEngine, tokens: TokenIssuer) -> None:
        self.http = http
        self.engine = engine
        self.tokens = tokens
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)

    # -- identities ------------------------------------------------------------------

    def hospital_headers(self, hospital: Hospital, role: str = "staff") -> dict[str, str]:
        return self.tokens.headers(
            org_kind="hospital", role=role, org_id=hospital.org_id, user_id=hospital.user_id
        )

    def vendor_headers(self, vendor_id: uuid.UUID) -> dict[str, str]:
        return self.tokens.headers(org_kind="vendor", role="org_admin", org_id=vendor_id)

    def admin_headers(self) -> dict[str, str]:
        return self.tokens.headers(org_kind="platform", role="platform_admin")

    def any_user_headers(self) -> dict[str, str]:
        return self.tokens.headers(org_kind="hospital", role="staff")

    # -- the placed- and delivered-orders projections --------------------------------

    async def handle(self, envelope: EventEnvelope) -> None:
        """Run the projection's handler for this event type in its own committed
        transaction, as the consumer does (minus the inbox)."""
        async with self.sessions() as session, session.begin():
            await event_handlers()[envelope.type](session, envelope)

    async def place(
        self, hospital: Hospital, vendor_id: uuid.UUID, order_id: uuid.UUID | None = None
    ) -> uuid.UUID:
        order_id = order_id or uuid.uuid4()
        await self.handle(order_placed(order_id, hospital.org_id, vendor_id))
        return order_id

    async def deliver(
        self, hospital: Hospital, vendor_id: uuid.UUID, order_id: uuid.UUID | None = None
    ) -> uuid.UUID:
        order_id = order_id or uuid.uuid4()
        await self.handle(order_delivered(order_id, hospital.org_id, vendor_id))
        return order_id

    async def delivered_rows(self, order_id: uuid.UUID) -> list[Any]:
        async with self.engine.connect() as conn:
            result = await conn.execute(
                text(
                    "SELECT order_id, hospital_org_id, vendor_id, delivered_at "
                    "FROM delivered_orders WHERE order_id = :o"
                ),
                {"o": order_id},
            )
            return list(result.all())

    async def inbox_count(self, event_id: uuid.UUID) -> int:
        async with self.engine.connect() as conn:
            count = await conn.scalar(
                text("SELECT count(*) FROM inbox WHERE event_id = :e"), {"e": event_id}
            )
        return int(count or 0)

    # -- reviews through the API -----------------------------------------------------

    async def post_review(
        self,
        hospital: Hospital,
        order_id: uuid.UUID,
        rating: Any = 5,
        *,
        comment: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> httpx.Response:
        body: dict[str, Any] = {"order_id": str(order_id), "rating": rating, **extra}
        if comment is not None:
            body["comment"] = comment
        return await self.http.post(
            "/api/v1/reviews",
            json=body,
            headers=headers if headers is not None else self.hospital_headers(hospital),
        )

    async def review(
        self, vendor_id: uuid.UUID, rating: int = 5, *, comment: str | None = None
    ) -> dict[str, Any]:
        """A new hospital, a delivered order from this vendor, and its review."""
        hospital = Hospital()
        order_id = await self.deliver(hospital, vendor_id)
        response = await self.post_review(hospital, order_id, rating, comment=comment)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def summary(self, vendor_id: uuid.UUID) -> dict[str, Any]:
        response = await self.http.get(
            f"/api/v1/reviews/vendors/{vendor_id}/summary", headers=self.any_user_headers()
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def listed(
        self, vendor_id: uuid.UUID, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        response = await self.http.get(
            "/api/v1/reviews",
            params={"vendor_id": str(vendor_id), "page_size": 100},
            headers=headers or self.any_user_headers(),
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def hide(self, review_id: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.http.post(
            f"/api/v1/reviews/{review_id}/hide", headers=headers or self.admin_headers()
        )

    async def outbox_events(self, event_type: str, **data: str) -> list[dict[str, Any]]:
        """This service's outbox rows of one type whose data has these values."""
        return await outbox_events(self.engine, event_type, **data)


def expected_summary(vendor_id: uuid.UUID, ratings: list[int]) -> dict[str, Any]:
    """What the summary must say about these visible ratings, computed independently."""
    distribution = {str(star): ratings.count(star) for star in range(1, 6)}
    average = None
    if ratings:
        # Half up on the exact quotient: floor(mean * 100 + 1/2) hundredths.
        cents = math.floor(Fraction(sum(ratings) * 100, len(ratings)) + Fraction(1, 2))
        average = f"{cents // 100}.{cents % 100:02d}"
    return {
        "vendor_id": str(vendor_id),
        "average": average,
        "count": len(ratings),
        "distribution": distribution,
    }


@pytest.fixture
def reviews(
    client: httpx.AsyncClient, reviews_db: AsyncEngine, token_issuer: TokenIssuer
) -> Reviews:
    return Reviews(client, reviews_db, token_issuer)
