"""The in-app list (paged, own organisation only, unread filter), read and read-all, and
the organisation's preferences."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import NotificationFlow


async def heard(flow: NotificationFlow, vendor: uuid.UUID, count: int) -> list[str]:
    """`count` order.placed notifications for the vendor, oldest first; their ids."""
    ids = []
    for _ in range(count):
        event = flow.events.order("order.placed", vendor_id=vendor, hospital_org_id=uuid.uuid4())
        await flow.handle(event)
        [stored] = await flow.notifications_for_event(event.id)
        ids.append(str(stored.id))
    return ids


async def listing(flow: NotificationFlow, org_id: uuid.UUID, **params: Any) -> dict[str, Any]:
    response = await flow.http.get(
        "/api/v1/notifications", params=params, headers=flow.headers(org_id)
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_list_is_paged_newest_first_and_shows_only_the_own_org(
    flow: NotificationFlow,
) -> None:
    vendor, neighbour = uuid.uuid4(), uuid.uuid4()
    ids = await heard(flow, vendor, 3)
    await heard(flow, neighbour, 1)

    first = await listing(flow, vendor, page_size=2)
    second = await listing(flow, vendor, page_size=2, page=2)

    assert first["total"] == 3
    assert [n["id"] for n in first["items"] + second["items"]] == ids[::-1]
    assert set(first["items"][0]) == {"id", "type", "title", "body", "data", "read", "created_at"}
    assert (first["page"], first["page_size"], second["page"]) == (1, 2, 2)


async def test_read_marks_one_and_the_unread_filter_follows(flow: NotificationFlow) -> None:
    vendor = uuid.uuid4()
    older, newer = await heard(flow, vendor, 2)

    response = await flow.http.post(
        f"/api/v1/notifications/{older}/read", headers=flow.headers(vendor)
    )
    again = await flow.http.post(
        f"/api/v1/notifications/{older}/read", headers=flow.headers(vendor)
    )

    assert response.status_code == 200, response.text
    assert response.json()["id"] == older
    assert response.json()["read"] is True
    assert again.status_code == 200
    unread = await listing(flow, vendor, unread="true")
    read = await listing(flow, vendor, unread="false")
    everything = await listing(flow, vendor)
    assert [n["id"] for n in unread["items"]] == [newer]
    assert [n["id"] for n in read["items"]] == [older]
    assert everything["total"] == 2


async def test_another_orgs_notification_cannot_be_read(flow: NotificationFlow) -> None:
    owner, intruder = uuid.uuid4(), uuid.uuid4()
    [notification_id] = await heard(flow, owner, 1)

    response = await flow.http.post(
        f"/api/v1/notifications/{notification_id}/read", headers=flow.headers(intruder)
    )
    unknown = await flow.http.post(
        f"/api/v1/notifications/{uuid.uuid4()}/read", headers=flow.headers(owner)
    )

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert unknown.status_code == 404
    assert (await listing(flow, owner, unread="true"))["total"] == 1


async def test_read_all_reads_every_unread_of_the_own_org_only(flow: NotificationFlow) -> None:
    vendor, neighbour = uuid.uuid4(), uuid.uuid4()
    first, *_ = await heard(flow, vendor, 3)
    await heard(flow, neighbour, 2)
    await flow.http.post(f"/api/v1/notifications/{first}/read", headers=flow.headers(vendor))

    response = await flow.http.post("/api/v1/notifications/read-all", headers=flow.headers(vendor))

    assert response.status_code == 200, response.text
    assert response.json() == {"updated": 2}
    assert (await listing(flow, vendor, unread="true"))["total"] == 0
    assert (await listing(flow, vendor, unread="false"))["total"] == 3
    assert (await listing(flow, neighbour, unread="true"))["total"] == 2


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/notifications"),
        ("POST", "/api/v1/notifications/read-all"),
        ("GET", "/api/v1/notifications/preferences"),
        ("GET", "/api/v1/notifications/stream"),
    ],
)
async def test_every_route_needs_a_token(flow: NotificationFlow, method: str, path: str) -> None:
    response = await flow.http.request(method, path)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_preferences_default_to_email_and_are_set_per_organisation(
    flow: NotificationFlow,
) -> None:
    org, other = uuid.uuid4(), uuid.uuid4()
    url = "https://hooks.example.com/flow?team=ops"

    before = await flow.http.get("/api/v1/notifications/preferences", headers=flow.headers(org))
    put = await flow.http.put(
        "/api/v1/notifications/preferences",
        json={"email": False, "webhook_url": url},
        headers=flow.headers(org),
    )
    after = await flow.http.get(
        "/api/v1/notifications/preferences", headers=flow.headers(org, role="staff")
    )
    elsewhere = await flow.http.get(
        "/api/v1/notifications/preferences", headers=flow.headers(other)
    )

    assert before.json() == {"email": True, "webhook_url": None}
    assert put.status_code == 200, put.text
    saved = put.json()
    assert saved.pop("webhook_secret").startswith("whsec_")  # the first URL's new secret
    assert saved == {"email": False, "webhook_url": url}
    assert after.json() == {"email": False, "webhook_url": url}
    assert elsewhere.json() == {"email": True, "webhook_url": None}

    cleared = await flow.http.put(
        "/api/v1/notifications/preferences", json={"email": True}, headers=flow.headers(org)
    )
    assert cleared.json() == {"email": True, "webhook_url": None}


async def test_only_org_admins_change_preferences(flow: NotificationFlow) -> None:
    org = uuid.uuid4()

    response = await flow.http.put(
        "/api/v1/notifications/preferences",
        json={"email": False},
        headers=flow.headers(org, role="staff"),
    )

    assert response.status_code == 403
    unchanged = await flow.http.get("/api/v1/notifications/preferences", headers=flow.headers(org))
    assert unchanged.json() == {"email": True, "webhook_url": None}


@pytest.mark.parametrize(
    "body",
    [
        {"email": True, "webhook_url": "ftp://hooks.example.com/flow"},
        {"email": True, "webhook_url": "javascript:alert(1)"},
        {"email": True, "webhook_url": "hooks.example.com/flow"},
        {"email": True, "webhook_url": "https://user:secret@hooks.example.com/flow"},
        {"email": True, "webhook_url": "https://hooks.example.com:99999/flow"},
        {"email": True, "webhook_url": ""},
        {"email": "sometimes"},
        {"email": True, "sms": True},
        {},
    ],
)
async def test_invalid_preferences_are_422(flow: NotificationFlow, body: dict[str, Any]) -> None:
    org = uuid.uuid4()

    response = await flow.http.put(
        "/api/v1/notifications/preferences", json=body, headers=flow.headers(org)
    )

    assert response.status_code == 422, response.text
    unchanged = await flow.http.get("/api/v1/notifications/preferences", headers=flow.headers(org))
    assert unchanged.json() == {"email": True, "webhook_url": None}
