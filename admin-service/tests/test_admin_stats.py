"""GET /api/v1/admin/stats: SPEC's figures, computed from the events admin-service heard."""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

import httpx

from flow_shared.events.envelope import EventEnvelope

if TYPE_CHECKING:
    from conftest import Projection

STATS = "/api/v1/admin/stats"
ALL_STATUSES = (
    "placed",
    "confirmed",
    "dispatched",
    "delivered",
    "rejected",
    "cancelled",
    "expired",
    "failed",
)


@dataclass
class OrderStory:
    """One order's events: placed at `placed_at`, then each status `minutes` later."""

    projection: Projection
    placed_at: datetime
    priority: str = "routine"
    total: str = "100.00"
    currency: str = "EUR"
    order_id: uuid.UUID = field(default_factory=uuid.uuid4)
    events: list[EventEnvelope] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.then("placed", 0)

    def then(self, status: str, minutes: float) -> OrderStory:
        self.events.append(
            self.projection.order_event(
                status,
                self.order_id,
                at=self.placed_at + timedelta(minutes=minutes),
                priority=self.priority,
                total=self.total,
                currency=self.currency,
            )
        )
        return self


async def stats(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get(STATS, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def away_from_midnight() -> datetime:
    """`now`, at least a minute before midnight UTC, so "today" cannot change mid-test."""
    now = datetime.now(UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), time.min, tzinfo=UTC)
    if midnight - now < timedelta(minutes=1):
        await asyncio.sleep((midnight - now).total_seconds() + 1)
        now = datetime.now(UTC)
    return now


async def test_with_no_events_every_figure_is_zero_and_averages_are_null(
    admin_client: httpx.AsyncClient, platform_admin: dict[str, str], projection: Projection
) -> None:
    assert await stats(admin_client, platform_admin) == {
        "orders_by_status": dict.fromkeys(ALL_STATUSES, 0),
        "orders_today": 0,
        "gmv": {},
        "avg_confirm_minutes": None,
        "avg_delivery_minutes": None,
        "open_emergency_orders": 0,
        "active_vendors": 0,
        "active_hospitals": 0,
        "active_shortages": 0,
        "open_sos": 0,
    }


async def test_stats_of_a_hand_built_set_of_events(
    admin_client: httpx.AsyncClient, platform_admin: dict[str, str], projection: Projection
) -> None:
    now = await away_from_midnight()
    today = now
    yesterday = datetime.combine(now.date(), time.min, tzinfo=UTC) - timedelta(hours=3)

    def order(placed_at: datetime, **kwargs: Any) -> OrderStory:
        return OrderStory(projection, placed_at, **kwargs)

    stories = [
        # Delivered: GMV per currency, confirm and delivery times.
        order(today, priority="emergency", total="1250.00")
        .then("confirmed", 4)
        .then("dispatched", 10)
        .then("delivered", 30),
        order(yesterday, total="99.99")
        .then("confirmed", 6)
        .then("dispatched", 9)
        .then("delivered", 50),
        order(today, total="0.20", currency="USD")
        .then("confirmed", 5)
        .then("dispatched", 20)
        .then("delivered", 41 + 1 / 3),
        order(yesterday, total="0.10", currency="USD")
        .then("confirmed", 3)
        .then("dispatched", 30)
        .then("delivered", 60),
        # Open emergencies: placed, confirmed, dispatched.
        order(today, priority="emergency"),
        order(today, priority="emergency", total="500.00").then("confirmed", 2 + 35 / 60),
        order(yesterday, priority="emergency").then("confirmed", 1).then("dispatched", 15),
        # Closed without delivery: no GMV, however large.
        order(today, priority="emergency", total="9999.00").then("cancelled", 1),
        order(today, priority="urgent").then("rejected", 2),
        order(yesterday).then("expired", 1440),
        order(today, total="42.00").then("failed", 0.5),
    ]
    events = [envelope for story in stories for envelope in story.events]
    # Events that are audited but change no figure.
    events.append(
        projection.other_event(
            "payment.captured", "payment-service", at=today, amount="1250.00", currency="EUR"
        )
    )
    # Consumers see events in any order; the figures must not depend on it.
    random.Random(20261124).shuffle(events)

    await projection.feed(*events)

    assert await stats(admin_client, platform_admin) == {
        "orders_by_status": {
            "placed": 1,
            "confirmed": 1,
            "dispatched": 1,
            "delivered": 4,
            "rejected": 1,
            "cancelled": 1,
            "expired": 1,
            "failed": 1,
        },
        "orders_today": 7,
        # Exact decimals: 0.20 + 0.10 is 0.30, never 0.30000000000000004.
        "gmv": {"EUR": "1349.99", "USD": "0.30"},
        # (4 + 6 + 5 + 3 + 2.583 + 1) / 6 = 3.597
        "avg_confirm_minutes": 3.6,
        # (30 + 50 + 41.333 + 60) / 4 = 45.333
        "avg_delivery_minutes": 45.3,
        "open_emergency_orders": 3,
        "active_vendors": 0,
        "active_hospitals": 0,
        "active_shortages": 0,
        "open_sos": 0,
    }


async def test_a_redelivered_event_is_not_counted_twice(
    admin_client: httpx.AsyncClient, platform_admin: dict[str, str], projection: Projection
) -> None:
    now = await away_from_midnight()
    story = OrderStory(projection, now, total="10.00").then("confirmed", 2).then("dispatched", 3)
    story.then("delivered", 12)

    await projection.feed(*story.events)
    await projection.feed(*story.events)

    body = await stats(admin_client, platform_admin)
    assert body["orders_by_status"]["delivered"] == 1
    assert body["orders_today"] == 1
    assert body["gmv"] == {"EUR": "10.00"}
    assert (body["avg_confirm_minutes"], body["avg_delivery_minutes"]) == (2.0, 12.0)


async def test_active_organisations_follow_verification_and_suspension(
    admin_client: httpx.AsyncClient, platform_admin: dict[str, str], projection: Projection
) -> None:
    at = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    vendors = [uuid.uuid4() for _ in range(3)]
    hospitals = [uuid.uuid4() for _ in range(2)]

    async def active() -> tuple[int, int]:
        body = await stats(admin_client, platform_admin)
        return body["active_vendors"], body["active_hospitals"]

    await projection.feed(
        *(projection.user_registered(v, "vendor", verified=False, at=at) for v in vendors),
        *(projection.user_registered(h, "hospital", verified=True, at=at) for h in hospitals),
        projection.user_registered(uuid.uuid4(), "platform", verified=True, at=at),
    )
    # Vendors wait for verification; hospitals need none; the platform org is neither.
    assert await active() == (0, 2)

    later = at + timedelta(hours=1)
    verifications = [projection.organization_event("verified", v, at=later) for v in vendors]
    await projection.feed(*verifications)
    assert await active() == (3, 2)

    await projection.feed(
        projection.organization_event("suspended", vendors[0], at=later + timedelta(hours=1))
    )
    assert await active() == (2, 2)

    # A second member joining a verified vendor keeps it verified and counted once.
    await projection.feed(
        projection.user_registered(vendors[1], "vendor", verified=True, at=later),
        projection.user_registered(vendors[0], "vendor", verified=True, at=later),
    )
    assert await active() == (2, 2)
