"""Who hears what (SPEC "Notifications"): every heard event, consumed from RabbitMQ,
becomes one notification for exactly the organisation named in the event."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from prometheus_client import REGISTRY
from pydantic import ValidationError

if TYPE_CHECKING:
    from conftest import Events, NotificationFlow, SmtpSink

    DataBuilder = Callable[[Events, uuid.UUID, uuid.UUID], dict[str, Any]]


@dataclass(frozen=True)
class Case:
    """An event, the org that must hear it, and one that must not."""

    event_type: str
    build: DataBuilder  # (events, vendor, hospital) -> data
    hears: str  # "vendor" or "hospital"
    title_has: str


def _order(status: str, **extra: Any) -> DataBuilder:
    return lambda events, vendor, hospital: events.order_data(
        vendor_id=vendor, hospital_org_id=hospital, status=status, **extra
    )


CASES = [
    Case("order.placed", _order("placed"), "vendor", "New order"),
    Case("order.cancelled", _order("cancelled", reason="not needed"), "vendor", "cancelled"),
    Case("inventory.low_stock", lambda ev, v, h: ev.low_stock_data(v), "vendor", "Low stock"),
    Case(
        "organization.verified",
        lambda ev, v, h: ev.organization_verified_data(v),
        "vendor",
        "verified",
    ),
    Case(
        "organization.license_expiring",
        lambda ev, v, h: ev.license_expiring_data(h, days_left=30),
        "hospital",
        "licence expires in 30 days",
    ),
    Case("order.confirmed", _order("confirmed", eta_minutes=45), "hospital", "confirmed"),
    Case("order.rejected", _order("rejected", reason="no driver"), "hospital", "rejected"),
    Case("order.dispatched", _order("dispatched"), "hospital", "dispatched"),
    Case("order.delivered", _order("delivered"), "hospital", "delivered"),
    Case("order.expired", _order("expired"), "hospital", "expired"),
    Case(
        "payment.failed",
        lambda ev, v, h: ev.payment_failed_data(hospital_org_id=h, vendor_id=v),
        "hospital",
        "Payment failed",
    ),
]


def consumed(event_type: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "flow_events_consumed_total",
        {"service": "notification-service", "event_type": event_type, "outcome": outcome},
    )
    return value or 0.0


def test_the_consumer_listens_to_exactly_the_heard_events(flow: NotificationFlow) -> None:
    # Shortage readiness: test_notification_shortage_readiness.py.
    shortage_readiness = {
        "sos.request",
        "sos.escalated",
        "sos.fulfilled",
        "sos.closed",
        "sos.unfilled",
        "shortage.declared",
        "shortage.ended",
        "supply.runway_low",
        "supply.runway_critical",
    }
    assert (
        set(flow.app.state.consumer.handlers)
        == {case.event_type for case in CASES} | {"user.registered"} | shortage_readiness
    )


@pytest.mark.parametrize("case", CASES, ids=[case.event_type for case in CASES])
async def test_event_from_the_broker_notifies_exactly_the_org_in_it(
    flow: NotificationFlow, case: Case
) -> None:
    vendor, hospital = uuid.uuid4(), uuid.uuid4()
    recipient, other = (vendor, hospital) if case.hears == "vendor" else (hospital, vendor)
    event = flow.events.envelope(case.event_type, case.build(flow.events, vendor, hospital))

    await flow.publish(event)
    stored = await flow.wait_notification(event.id)

    assert stored.org_id == recipient
    mine = await flow.http.get(
        "/api/v1/notifications", headers=flow.headers(recipient, org_kind=case.hears)
    )
    assert mine.status_code == 200, mine.text
    [item] = mine.json()["items"]
    assert item["id"] == str(stored.id)
    assert item["type"] == case.event_type
    assert case.title_has in item["title"]
    assert item["body"]
    assert item["read"] is False
    theirs = await flow.http.get("/api/v1/notifications", headers=flow.headers(other))
    assert theirs.json()["total"] == 0
    assert await flow.count_for_org(other) == 0


async def test_order_placed_reads_well_and_keeps_the_card_token_out(
    flow: NotificationFlow,
) -> None:
    vendor, hospital = uuid.uuid4(), uuid.uuid4()
    data = flow.events.order_data(
        vendor_id=vendor, hospital_org_id=hospital, payment_method="card", card_token="tok_visa"
    )
    event = flow.events.envelope("order.placed", data)

    await flow.publish(event)
    stored = await flow.wait_notification(event.id)

    order_id = uuid.UUID(data["order_id"])
    product_id = uuid.UUID(data["items"][0]["product_id"])
    assert stored.body.startswith(
        f"Order {order_id.hex[:8]}… placed: 6 \N{MULTIPLICATION SIGN} product {product_id.hex[:8]}…"
    )
    assert "450.00 INR" in stored.body
    assert "card_token" not in stored.data
    assert "tok_visa" not in str(stored.data)
    assert stored.data["items"] == data["items"]
    assert stored.data["order_id"] == data["order_id"]


async def test_redelivered_envelope_gives_one_notification(flow: NotificationFlow) -> None:
    vendor, hospital = uuid.uuid4(), uuid.uuid4()
    event = flow.events.order("order.placed", vendor_id=vendor, hospital_org_id=hospital)
    duplicates_before = consumed("order.placed", "duplicate")

    await flow.publish(event)
    await flow.wait_notification(event.id)
    await flow.publish(event)

    async def seen_as_duplicate() -> bool:
        return consumed("order.placed", "duplicate") > duplicates_before

    await flow.eventually(seen_as_duplicate, what="the redelivery to be handled")
    assert len(await flow.notifications_for_event(event.id)) == 1
    assert await flow.count_for_org(vendor) == 1


async def test_same_event_handled_twice_past_the_inbox_still_notifies_once(
    flow: NotificationFlow,
) -> None:
    """The unique event_id holds even where the inbox did not (say, a restored inbox)."""
    vendor, hospital = uuid.uuid4(), uuid.uuid4()
    await flow.add_member(vendor, "ops@vendor.test")
    event = flow.events.order("order.placed", vendor_id=vendor, hospital_org_id=hospital)

    await flow.handle(event)
    await flow.handle(event)

    [stored] = await flow.notifications_for_event(event.id)
    assert [d.target for d in await flow.deliveries(stored.id)] == ["ops@vendor.test"]


async def test_event_without_its_recipient_is_refused_not_guessed(flow: NotificationFlow) -> None:
    data = flow.events.order_data(vendor_id=uuid.uuid4(), hospital_org_id=uuid.uuid4())
    del data["vendor_id"]
    event = flow.events.envelope("order.placed", data)

    with pytest.raises(ValidationError):
        await flow.handle(event)

    assert await flow.notifications_for_event(event.id) == []


async def test_user_registered_from_the_broker_keeps_the_member_projection(
    flow: NotificationFlow,
) -> None:
    org_id = uuid.uuid4()
    data = flow.events.user_registered_data(org_id, "first@vendor.test")
    user_id = uuid.UUID(data["user_id"])

    await flow.publish(flow.events.envelope("user.registered", data))

    async def projected() -> Any:
        return await flow.member(user_id)

    member = await flow.eventually(projected, what="the member row")
    assert (member.org_id, member.email, member.full_name) == (
        org_id,
        "first@vendor.test",
        "Test Member",
    )

    await flow.handle(
        flow.events.envelope("user.registered", {**data, "email": "renamed@vendor.test"})
    )
    updated = await flow.member(user_id)
    assert updated is not None
    assert updated.email == "renamed@vendor.test"


async def test_a_hospital_hears_its_own_verification(flow: NotificationFlow) -> None:
    hospital = uuid.uuid4()
    data = {
        **flow.events.organization_verified_data(hospital, "St. Mary"),
        "kind": "hospital",
        "license_expires_on": "2027-12-31",
    }
    event = flow.events.envelope("organization.verified", data)

    await flow.publish(event)
    stored = await flow.wait_notification(event.id)

    assert stored.org_id == hospital
    assert "St. Mary has been verified" in stored.body
    assert "place orders" in stored.body
    assert "2027-12-31" in stored.body


async def test_licence_warning_e_mails_only_the_org_admins(
    flow: NotificationFlow, smtp_sink: SmtpSink
) -> None:
    hospital = uuid.uuid4()
    for address, role in (("admin@hospital.test", "org_admin"), ("ward@hospital.test", "staff")):
        data = {**flow.events.user_registered_data(hospital, address), "role": role}
        await flow.handle(flow.events.envelope("user.registered", data))
    event = flow.events.envelope(
        "organization.license_expiring", flow.events.license_expiring_data(hospital, days_left=7)
    )

    await flow.publish(event)
    stored = await flow.wait_notification(event.id)

    assert stored.title == "Your licence expires in 7 days"
    assert stored.data["days_left"] == 7
    deliveries = await flow.wait_deliveries_done(stored.id)
    assert [(d.channel, d.target) for d in deliveries] == [("email", "admin@hospital.test")]
    [mail] = smtp_sink.for_notification(stored.id)
    assert mail.message["To"] == "admin@hospital.test"
