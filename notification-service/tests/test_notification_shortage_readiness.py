"""Shortage readiness (SPEC "Who hears what (added)"): SOS, shortage and oxygen runway
events notify exactly the organisations they name, each once, on every channel it chose;
the licence warning reaches the org admins only; an unfilled SOS reaches the platform
admins too.

Envelopes are built to the event contracts (order-service's sos.*, admin-service's
shortage.*, inventory-service's supply.runway_*), as the other notification tests build
theirs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from notification_service import service
from notification_service.audience import Audience

if TYPE_CHECKING:
    from conftest import NotificationFlow, SmtpSink, WebhookReceiver

    from flow_shared.events.envelope import EventEnvelope


def _rfc3339(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def sos_request(
    hospital: uuid.UUID, offers: list[tuple[uuid.UUID, float]], **extra: Any
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "sos_id": str(uuid.uuid4()),
        "hospital_org_id": str(hospital),
        "product_id": str(uuid.uuid4()),
        "quantity": 40,
        "delivery": {"lat": 12.97, "lon": 77.59, "address": "Ward 3, St. Mary"},
        "ring_number": 1,
        "expires_at": _rfc3339(datetime(2026, 12, 7, 10, 42, tzinfo=UTC)),
        "offers": [
            {
                "vendor_id": str(vendor),
                "depot_id": str(uuid.uuid4()),
                "distance_km": distance,
                "eta_min": 25,
            }
            for vendor, distance in offers
        ],
    }
    data.update(extra)
    return data


def shortage(recipients: list[uuid.UUID], **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "shortage_id": str(uuid.uuid4()),
        "area": {"lat": 12.97, "lon": 77.59, "radius_km": 25.0},
        "categories": ["liquid_oxygen"],
        "note": "Plant outage in the district",
        "starts_at": _rfc3339(datetime.now(UTC)),
        "ends_at": None,
        "declared_by": str(uuid.uuid4()),
        "recipient_org_ids": [str(org) for org in recipients],
    }
    data.update(extra)
    return data


async def listed(
    flow: NotificationFlow, org: uuid.UUID, *, role: str = "org_admin", **claims: Any
) -> list[dict[str, Any]]:
    response = await flow.http.get(
        "/api/v1/notifications", headers=flow.tokens.headers(org_id=org, role=role, **claims)
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def handled_twice(flow: NotificationFlow, event: EventEnvelope) -> None:
    """Through the broker, then once more straight past the inbox: still one each."""
    await flow.publish(event)
    await flow.wait_notification(event.id)
    await flow.handle(event)


async def test_sos_request_reaches_every_vendor_of_the_ring_once_and_no_one_else(
    flow: NotificationFlow, smtp_sink: SmtpSink, webhook_receiver: WebhookReceiver
) -> None:
    hospital, near, far, outsider = (uuid.uuid4() for _ in range(4))
    for vendor in (near, far, outsider):
        await flow.add_member(vendor, f"ops-{vendor.hex[:6]}@vendor.test")
    path = webhook_receiver.new_path()
    await flow.save_preferences(near, email=True, webhook_url=webhook_receiver.url + path)
    data = sos_request(hospital, [(near, 12.34), (far, 31.0)])
    event = flow.events.envelope("sos.request", data)

    await handled_twice(flow, event)

    stored = {n.org_id: n for n in await flow.notifications_for_event(event.id)}
    assert set(stored) == {near, far}
    mine = stored[near]
    product = uuid.UUID(data["product_id"]).hex[:8]
    assert mine.title == (
        f"SOS: 40 \N{MULTIPLICATION SIGN} product {product}… needed 12.3 km away "
        "\N{EM DASH} answer by 10:42 UTC"
    )
    assert "Ward 3, St. Mary" in mine.body
    # Its own offer only, never who else was asked.
    assert [o["vendor_id"] for o in mine.data["offers"]] == [str(near)]
    assert str(far) not in str(mine.data)
    assert mine.data["sos_id"] == data["sos_id"]
    # Every channel the vendor chose, each once.
    deliveries = await flow.wait_deliveries_done(mine.id)
    assert sorted(d.channel for d in deliveries) == ["email", "webhook"]
    assert len(smtp_sink.for_notification(mine.id)) == 1
    assert len(webhook_receiver.hooks(path)) == 1
    [far_mail] = [d.target for d in await flow.wait_deliveries_done(stored[far].id)]
    assert far_mail == f"ops-{far.hex[:6]}@vendor.test"
    # The vendor's list; nobody else's.
    assert [item["id"] for item in await listed(flow, near, org_kind="vendor")] == [str(mine.id)]
    assert await flow.count_for_org(outsider) == 0
    assert await flow.count_for_org(hospital) == 0


async def test_sos_stream_tells_each_vendor_its_own_once(flow: NotificationFlow) -> None:
    hospital, vendor, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    event = flow.events.envelope("sos.request", sos_request(hospital, [(vendor, 4.0)]))
    async with (
        flow.open_stream(vendor) as (_, vendor_stream),
        flow.open_stream(other) as (_, other_stream),
    ):
        await vendor_stream.block()
        await other_stream.block()
        await flow.publish(event)
        message = await vendor_stream.message()
        await flow.handle(event)  # a redelivery past the inbox: nothing new to stream
        closed = flow.events.envelope(
            "sos.closed",
            {
                "sos_id": str(uuid.uuid4()),
                "hospital_org_id": str(hospital),
                "vendor_ids": [str(other)],
                "reason": "fulfilled",
            },
        )
        await flow.publish(closed)
        other_message = await other_stream.message()
        await flow.publish(
            flow.events.envelope("sos.request", sos_request(hospital, [(vendor, 9.0)]))
        )
        following = await vendor_stream.message()

    [stored] = await flow.notifications_for_event(event.id)
    assert message.id == str(stored.id)
    assert message.event == "sos.request"
    # The next message on the vendor's stream is the next SOS, not the redelivery again.
    assert following.id != message.id
    assert following.event == "sos.request"
    assert other_message.event == "sos.closed"


async def test_sos_closed_tells_the_other_vendors_and_not_the_winner(
    flow: NotificationFlow,
) -> None:
    hospital, winner, loser_a, loser_b = (uuid.uuid4() for _ in range(4))
    data = {
        "sos_id": str(uuid.uuid4()),
        "hospital_org_id": str(hospital),
        # a vendor offered in two rings is named twice: still one notification
        "vendor_ids": [str(loser_a), str(loser_b), str(loser_a)],
        "reason": "fulfilled",
    }
    event = flow.events.envelope("sos.closed", data)

    await handled_twice(flow, event)

    stored = await flow.notifications_for_event(event.id)
    assert sorted(n.org_id for n in stored) == sorted([loser_a, loser_b])
    for notification in stored:
        assert "another vendor" in notification.title
        assert notification.data == {
            "sos_id": data["sos_id"],
            "hospital_org_id": str(hospital),
            "reason": "fulfilled",
        }
    assert await flow.count_for_org(winner) == 0
    assert await flow.count_for_org(hospital) == 0


async def test_hospital_hears_escalation_and_fulfilment_and_only_it(
    flow: NotificationFlow, smtp_sink: SmtpSink
) -> None:
    hospital, other_hospital, vendor = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await flow.add_member(hospital, "officer@hospital.test")
    sos_id, order_id, depot = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    escalated = flow.events.envelope(
        "sos.escalated",
        {
            "sos_id": sos_id,
            "hospital_org_id": str(hospital),
            "from_ring": 1,
            "to_ring": 2,
            "reason": "timed_out",
        },
    )
    fulfilled = flow.events.envelope(
        "sos.fulfilled",
        {
            "sos_id": sos_id,
            "hospital_org_id": str(hospital),
            "order_id": order_id,
            "vendor_id": str(vendor),
            "depot_id": depot,
            "eta_minutes": 25,
        },
    )

    for event in (escalated, fulfilled):
        await handled_twice(flow, event)

    [up] = await flow.notifications_for_event(escalated.id)
    [done] = await flow.notifications_for_event(fulfilled.id)
    assert up.org_id == done.org_id == hospital
    assert "ring 2" in up.title
    assert "no vendor answered in time" in up.body
    assert done.title == f"SOS fulfilled by vendor {vendor.hex[:8]}…: ETA 25 min"
    assert done.data["order_id"] == order_id
    assert done.data["sos_id"] == sos_id
    for notification in (up, done):
        [delivery] = await flow.wait_deliveries_done(notification.id)
        assert (delivery.channel, delivery.target) == ("email", "officer@hospital.test")
        assert len(smtp_sink.for_notification(notification.id)) == 1
    titles = [item["title"] for item in await listed(flow, hospital, org_kind="hospital")]
    assert titles == [done.title, up.title]
    assert await flow.count_for_org(other_hospital) == 0
    assert await flow.count_for_org(vendor) == 0


async def test_sos_unfilled_reaches_the_hospital_and_the_platform_admins_only(
    flow: NotificationFlow, smtp_sink: SmtpSink
) -> None:
    hospital, platform = uuid.uuid4(), uuid.uuid4()
    admin = flow.events.user_registered_data(platform, "admin@flow.test")
    admin.update(role="platform_admin", org_kind="platform", org_name="Flow")
    await flow.handle(flow.events.envelope("user.registered", admin))
    await flow.add_member(hospital, "officer@st-mary.test")
    event = flow.events.envelope(
        "sos.unfilled",
        {
            "sos_id": str(uuid.uuid4()),
            "hospital_org_id": str(hospital),
            "product_id": str(uuid.uuid4()),
            "quantity": 40,
            "rings_tried": 3,
        },
    )

    await handled_twice(flow, event)

    stored = {n.org_id: n for n in await flow.notifications_for_event(event.id)}
    assert set(stored) == {hospital, platform}
    assert stored[platform].audience_role == "platform_admin"
    assert stored[hospital].audience_role is None
    assert "unfilled" in stored[hospital].title
    assert "3 rings" in stored[hospital].body
    platform_items = await listed(
        flow, platform, role="platform_admin", org_kind="platform", sub=admin["user_id"]
    )
    assert [item["id"] for item in platform_items] == [str(stored[platform].id)]
    [delivery] = await flow.wait_deliveries_done(stored[platform].id)
    assert (delivery.channel, delivery.target) == ("email", "admin@flow.test")
    assert len(smtp_sink.for_notification(stored[platform].id)) == 1


async def test_shortage_declared_and_ended_reach_every_org_in_the_area_once(
    flow: NotificationFlow, webhook_receiver: WebhookReceiver
) -> None:
    hospital, vendor, outside = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    path = webhook_receiver.new_path()
    await flow.save_preferences(hospital, email=False, webhook_url=webhook_receiver.url + path)
    declared_data = shortage([hospital, vendor])
    declared = flow.events.envelope("shortage.declared", declared_data)
    ended = flow.events.envelope(
        "shortage.ended",
        {
            "shortage_id": declared_data["shortage_id"],
            "area": declared_data["area"],
            "categories": declared_data["categories"],
            "ended_at": _rfc3339(datetime.now(UTC) + timedelta(hours=6)),
            "ended_by": None,
            "recipient_org_ids": declared_data["recipient_org_ids"],
        },
    )

    for event in (declared, ended):
        await handled_twice(flow, event)

    on = {n.org_id: n for n in await flow.notifications_for_event(declared.id)}
    off = {n.org_id: n for n in await flow.notifications_for_event(ended.id)}
    assert set(on) == set(off) == {hospital, vendor}
    assert on[vendor].title == "Shortage declared around you: liquid_oxygen routine orders paused"
    assert "Plant outage in the district" in on[vendor].body
    assert on[vendor].data["shortage_id"] == declared_data["shortage_id"]
    assert "recipient_org_ids" not in on[vendor].data
    assert "declared_by" not in on[vendor].data
    assert off[hospital].title == "Shortage over: liquid_oxygen routine orders resume"
    assert "its end time passed" in off[hospital].body
    # The hospital chose the webhook only: one per notification, no e-mail.
    for notification in (on[hospital], off[hospital]):
        [delivery] = await flow.wait_deliveries_done(notification.id)
        assert delivery.channel == "webhook"
    assert len(webhook_receiver.hooks(path)) == 2
    assert await flow.count_for_org(outside) == 0


def runway(hospital: uuid.UUID, level: str, **extra: Any) -> dict[str, Any]:
    """inventory-service's supply.runway_<level> data (its event contract)."""
    data: dict[str, Any] = {
        "site_id": str(uuid.uuid4()),
        "hospital_org_id": str(hospital),
        "site_name": "Main theatre",
        "level": level,
        "hours_left": 18.46,
        "runs_out_at": _rfc3339(datetime(2026, 12, 8, 14, 30, 12, tzinfo=UTC)),
        "gas_liters": 18838.0,
        "consumption_lpm": 17.0,
        "alert_hours": 24.0,
        "critical_hours": 6.0,
        "as_of": _rfc3339(datetime(2026, 12, 7, 20, 2, 36, tzinfo=UTC)),
    }
    data.update(extra)
    return data


async def test_runway_low_and_critical_reach_the_hospital_once_on_its_channels(
    flow: NotificationFlow, smtp_sink: SmtpSink, webhook_receiver: WebhookReceiver
) -> None:
    hospital, other_hospital = uuid.uuid4(), uuid.uuid4()
    await flow.add_member(hospital, "biomed@st-mary.test")
    await flow.add_member(other_hospital, "biomed@elsewhere.test")
    path = webhook_receiver.new_path()
    await flow.save_preferences(hospital, email=True, webhook_url=webhook_receiver.url + path)
    low_data = runway(hospital, "low")
    low = flow.events.envelope("supply.runway_low", low_data)
    critical = flow.events.envelope(
        "supply.runway_critical",
        runway(
            hospital,
            "critical",
            site_id=low_data["site_id"],
            hours_left=4.2,
            gas_liters=4284.0,
            runs_out_at=_rfc3339(datetime(2026, 12, 8, 0, 14, tzinfo=UTC)),
        ),
    )

    for event in (low, critical):
        await handled_twice(flow, event)

    [warned] = await flow.notifications_for_event(low.id)
    [alarmed] = await flow.notifications_for_event(critical.id)
    assert warned.org_id == alarmed.org_id == hospital
    assert warned.audience_role is None  # every member of the hospital, as for SOS news
    assert warned.title == (
        "Oxygen low at Main theatre: about 18.5 hours left (runs out 2026-12-08 14:30 UTC)"
    )
    assert "18,838 L" in warned.body
    assert "17 L/min" in warned.body
    assert "alert level of 24 hours" in warned.body
    assert alarmed.title == (
        "Oxygen CRITICAL at Main theatre: about 4.2 hours left (runs out 2026-12-08 00:14 UTC)"
    )
    assert "critical level of 6 hours" in alarmed.body
    assert "SOS" in alarmed.body
    assert warned.data["site_id"] == low_data["site_id"]
    assert warned.data["hours_left"] == 18.46
    # Every channel the hospital chose, each once per notification.
    for notification in (warned, alarmed):
        deliveries = await flow.wait_deliveries_done(notification.id)
        assert sorted(d.channel for d in deliveries) == ["email", "webhook"]
        assert len(smtp_sink.for_notification(notification.id)) == 1
    assert len(webhook_receiver.hooks(path)) == 2
    titles = [item["title"] for item in await listed(flow, hospital, org_kind="hospital")]
    assert titles == [alarmed.title, warned.title]
    assert await flow.count_for_org(other_hospital) == 0


async def test_runway_of_an_unnamed_site_under_an_hour_reads_in_minutes(
    flow: NotificationFlow,
) -> None:
    hospital = uuid.uuid4()
    # Decimals as strings, as flow_shared.json_codec writes them.
    data = runway(
        hospital,
        "critical",
        site_name=None,
        hours_left="0.42",
        gas_liters="428.4",
        consumption_lpm="17.0",
        alert_hours="24",
        critical_hours="6",
        runs_out_at=_rfc3339(datetime(2026, 12, 7, 20, 27, 48, tzinfo=UTC)),
    )
    event = flow.events.envelope("supply.runway_critical", data)

    await flow.handle(event)

    [alarmed] = await flow.notifications_for_event(event.id)
    site = uuid.UUID(data["site_id"]).hex[:8]
    assert alarmed.title == (
        f"Oxygen CRITICAL at site {site}…: about 25 minutes left (runs out 2026-12-07 20:27 UTC)"
    )
    assert "about 428 L of oxygen on site, used at 17 L/min" in alarmed.body
    assert "critical level of 6 hours" in alarmed.body


async def test_licence_warning_is_for_the_org_admins_not_the_staff(
    flow: NotificationFlow,
) -> None:
    hospital = uuid.uuid4()
    admin, staff = uuid.uuid4(), uuid.uuid4()
    event = flow.events.envelope(
        "organization.license_expiring", flow.events.license_expiring_data(hospital, days_left=7)
    )
    admin_headers = flow.tokens.headers(
        org_id=hospital, org_kind="hospital", role="org_admin", sub=str(admin)
    )
    staff_headers = flow.tokens.headers(
        org_id=hospital, org_kind="hospital", role="staff", sub=str(staff)
    )
    async with (
        flow.open_stream(headers=admin_headers) as (_, admin_stream),
        flow.open_stream(headers=staff_headers) as (_, staff_stream),
    ):
        await admin_stream.block()
        await staff_stream.block()
        await flow.publish(event)
        warning = await admin_stream.message()
        # Then something for the whole org: the staff stream's first message is this one.
        placed = flow.events.order(
            "order.confirmed", vendor_id=uuid.uuid4(), hospital_org_id=hospital
        )
        await flow.publish(placed)
        staff_first = await staff_stream.message()

    [stored] = await flow.notifications_for_event(event.id)
    assert warning.id == str(stored.id)
    assert staff_first.event == "order.confirmed"
    staff_items = await listed(flow, hospital, role="staff", sub=str(staff))
    assert [item["type"] for item in staff_items] == ["order.confirmed"]
    admin_items = await listed(flow, hospital, role="org_admin", sub=str(admin))
    assert {item["type"] for item in admin_items} == {
        "order.confirmed",
        "organization.license_expiring",
    }
    # Staff can neither read it nor count it; read-all leaves it unread for the admins.
    read = await flow.http.post(f"/api/v1/notifications/{stored.id}/read", headers=staff_headers)
    assert read.status_code == 404
    unread = await flow.http.get("/api/v1/notifications?unread=true", headers=staff_headers)
    assert unread.json()["total"] == 1
    all_read = await flow.http.post("/api/v1/notifications/read-all", headers=staff_headers)
    assert all_read.json() == {"updated": 1}
    admin_unread = await flow.http.get("/api/v1/notifications?unread=true", headers=admin_headers)
    assert [item["id"] for item in admin_unread.json()["items"]] == [str(stored.id)]
    # Nor replay it from the stream's Last-Event-ID.
    async with flow.open_stream(headers=staff_headers, last_event_id=str(stored.id)) as (
        _,
        replay,
    ):
        await replay.block()
        later = flow.events.order(
            "order.dispatched", vendor_id=uuid.uuid4(), hospital_org_id=hospital
        )
        await flow.publish(later)
        assert (await replay.message()).event == "order.dispatched"


async def test_licence_e_mail_goes_to_an_unknown_role_only_if_first_member(
    flow: NotificationFlow,
) -> None:
    hospital = uuid.uuid4()
    for address in ("founder@hospital.test", "later@hospital.test"):
        data = {**flow.events.user_registered_data(hospital, address), "role": None}
        await flow.handle(flow.events.envelope("user.registered", data))
    event = flow.events.envelope(
        "organization.license_expiring", flow.events.license_expiring_data(hospital, days_left=30)
    )

    await flow.handle(event)

    [stored] = await flow.notifications_for_event(event.id)
    assert [d.target for d in await flow.deliveries(stored.id)] == ["founder@hospital.test"]


async def test_a_notification_for_one_user_is_shown_to_that_user_only(
    flow: NotificationFlow,
) -> None:
    org, user, colleague = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    event_id = uuid.uuid4()
    async with flow.sessions() as session, session.begin():
        for _ in range(2):  # the second is a redelivery: nothing new
            await service.record_notification(
                session,
                flow.settings,
                event_id=event_id,
                audience=Audience(org, user_id=user),
                event_type="test.personal",
                title="For you",
                body="Only you.",
                data={},
            )

    assert len(await flow.notifications_for_event(event_id)) == 1
    assert [i["title"] for i in await listed(flow, org, sub=str(user))] == ["For you"]
    assert await listed(flow, org, sub=str(colleague)) == []
