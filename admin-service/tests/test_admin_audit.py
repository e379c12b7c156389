"""GET /api/v1/admin/audit?type=&page=: every domain event seen, newest first, paged."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx

from flow_shared.events.envelope import EventEnvelope

if TYPE_CHECKING:
    from conftest import Projection

AUDIT = "/api/v1/admin/audit"
T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def as_item(envelope: EventEnvelope) -> dict[str, Any]:
    return {
        "id": str(envelope.id),
        "type": envelope.type,
        "producer": envelope.producer,
        "occurred_at": envelope.occurred_at.isoformat().replace("+00:00", "Z"),
        "correlation_id": envelope.correlation_id,
        "data": envelope.data,
    }


def newest_first(envelopes: list[EventEnvelope]) -> list[EventEnvelope]:
    return sorted(envelopes, key=lambda e: e.occurred_at, reverse=True)


async def audit(
    client: httpx.AsyncClient, headers: dict[str, str], **params: Any
) -> dict[str, Any]:
    response = await client.get(AUDIT, params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def fed_mix(projection: Projection) -> list[EventEnvelope]:
    """Seven events of four types, fed in an order unlike their times."""
    minutes = iter([7, 2, 30, 11, 4, 25, 19])

    def at() -> datetime:
        return T0 + timedelta(minutes=next(minutes))

    vendor = uuid.uuid4()
    events = [
        projection.order_event("placed", uuid.uuid4(), at=at()),
        projection.user_registered(vendor, "vendor", verified=False, at=at()),
        projection.order_event("placed", uuid.uuid4(), at=at()),
        projection.organization_event("verified", vendor, at=at()),
        projection.other_event(
            "review.created", "review-service", at=at(), review_id=str(uuid.uuid4()), rating=5
        ),
        projection.order_event("placed", uuid.uuid4(), at=at()),
        projection.order_event("confirmed", uuid.uuid4(), at=at(), eta_minutes=30),
    ]
    await projection.feed(*events)
    return events


async def test_audit_lists_every_event_newest_first_in_pages(
    admin_client: httpx.AsyncClient, platform_admin: dict[str, str], projection: Projection
) -> None:
    events = newest_first(await fed_mix(projection))

    first = await audit(admin_client, platform_admin, page=1, page_size=3)
    second = await audit(admin_client, platform_admin, page=2, page_size=3)
    last = await audit(admin_client, platform_admin, page=3, page_size=3)
    beyond = await audit(admin_client, platform_admin, page=4, page_size=3)

    assert first == {
        "items": [as_item(e) for e in events[:3]],
        "page": 1,
        "page_size": 3,
        "total": 7,
    }
    assert second["items"] == [as_item(e) for e in events[3:6]]
    assert last["items"] == [as_item(e) for e in events[6:]]
    assert (beyond["items"], beyond["total"]) == ([], 7)


async def test_audit_defaults_to_the_first_page_of_twenty(
    admin_client: httpx.AsyncClient, platform_admin: dict[str, str], projection: Projection
) -> None:
    events = newest_first(await fed_mix(projection))

    body = await audit(admin_client, platform_admin)

    assert (body["page"], body["page_size"], body["total"]) == (1, 20, 7)
    assert [item["id"] for item in body["items"]] == [str(e.id) for e in events]


async def test_audit_filters_by_exact_type(
    admin_client: httpx.AsyncClient, platform_admin: dict[str, str], projection: Projection
) -> None:
    events = await fed_mix(projection)
    placed = newest_first([e for e in events if e.type == "order.placed"])

    body = await audit(admin_client, platform_admin, type="order.placed", page_size=2)
    rest = await audit(admin_client, platform_admin, type="order.placed", page=2, page_size=2)

    assert body["total"] == 3
    assert body["items"] == [as_item(e) for e in placed[:2]]
    assert rest["items"] == [as_item(placed[2])]
    # Exact: a prefix or an unknown type matches nothing.
    for other in ("order", "order.", "ORDER.PLACED", "order.shipped"):
        empty = await audit(admin_client, platform_admin, type=other)
        assert (empty["items"], empty["total"]) == ([], 0), other


async def test_audit_refuses_bad_paging_and_filters(
    admin_client: httpx.AsyncClient, platform_admin: dict[str, str], projection: Projection
) -> None:
    for params, field in (
        ({"page_size": 101}, "page_size"),
        ({"page": 0}, "page"),
        ({"type": "x" * 101}, "type"),
    ):
        response = await admin_client.get(AUDIT, params=params, headers=platform_admin)

        assert response.status_code == 422, params
        assert response.headers["content-type"].startswith("application/problem+json")
        assert [e["loc"] for e in response.json()["errors"]] == [["query", field]]
