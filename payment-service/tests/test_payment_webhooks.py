"""Provider webhooks (SPEC: "HMAC-signed with a timestamp; a missing or bad signature is
401"): a valid signature is processed; missing, malformed, wrong, tampered or stale ones
are 401 and change nothing; a replayed event id has no second effect."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import pytest

from payment_service.config import Settings

if TYPE_CHECKING:
    from conftest import Order, Payments

    from flow_shared.testing.service_app import SettingsFactory

WEBHOOK_URL = "/api/v1/payments/webhooks/sandbox"


async def _authorized(pay: Payments, total: str = "100.00") -> tuple[Order, str]:
    order = pay.order(total=total)
    await pay.place(order)
    return order, await pay.provider_ref(order)


async def _webhooks_recorded(pay: Payments, event_id: str) -> int:
    return int(
        await pay.scalar("SELECT count(*) FROM webhook_events WHERE event_id = :e", e=event_id)
    )


async def test_signed_charge_captured_is_processed_once_and_a_replay_changes_nothing(
    pay: Payments,
) -> None:
    order, charge_id = await _authorized(pay)
    body = pay.webhook_body(type="charge.captured", charge_id=charge_id)

    first = await pay.webhook(body)
    replay = await pay.webhook(body)  # a fresh signature on the same event

    assert first.status_code == 200, first.text
    assert first.json() == {"id": json.loads(body)["id"], "outcome": "processed"}
    assert replay.status_code == 200
    assert replay.json()["outcome"] == "duplicate"
    payment = await pay.payment_of(order)
    assert payment["status"] == "captured"
    assert payment["captured_amount"] == "100.00"
    assert len(await pay.outbox_events("payment.captured", order)) == 1
    # Delivery afterwards finds the capture done and does not capture again.
    await pay.handle(order.event("delivered"))
    assert len(await pay.outbox_events("payment.captured", order)) == 1


async def test_charge_refunded_reports_cumulative_amounts_and_never_refunds_twice(
    pay: Payments,
) -> None:
    order, charge_id = await _authorized(pay)
    await pay.handle(order.event("delivered"))

    answers = [
        (await pay.webhook(pay.webhook_body(**body))).json()["outcome"]
        for body in (
            {"type": "charge.refunded", "charge_id": charge_id, "amount_refunded": "30.00"},
            # The same total reported again under another event id: nothing new.
            {"type": "charge.refunded", "charge_id": charge_id, "amount_refunded": "30.00"},
            {"type": "charge.refunded", "charge_id": charge_id, "amount_refunded": "100.00"},
        )
    ]

    assert answers == ["processed", "ignored", "processed"]
    payment = await pay.payment_of(order)
    assert payment["status"] == "refunded"
    assert payment["refunded_amount"] == "100.00"
    published = await pay.outbox_events("payment.refunded", order)
    assert [p["data"]["amount"] for p in published] == ["30.00", "70.00"]


async def test_charge_expired_voids_the_authorization(pay: Payments) -> None:
    order, charge_id = await _authorized(pay)

    response = await pay.webhook(pay.webhook_body(type="charge.expired", charge_id=charge_id))

    assert response.json()["outcome"] == "processed"
    assert (await pay.payment_of(order))["status"] == "voided"


async def test_unknown_charges_and_event_types_are_acknowledged_and_ignored(
    pay: Payments,
) -> None:
    order, charge_id = await _authorized(pay)

    unknown_charge = await pay.webhook(pay.webhook_body(charge_id="sbx_ch_nope"))
    unknown_type = await pay.webhook(pay.webhook_body(type="charge.disputed", charge_id=charge_id))

    assert unknown_charge.status_code == unknown_type.status_code == 200
    assert unknown_charge.json()["outcome"] == unknown_type.json()["outcome"] == "ignored"
    assert (await pay.payment_of(order))["status"] == "authorized"


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "v1=00",
        "t=notanumber,v1=00",
        "t={now}",
        "t={now},v1=" + "0" * 64,
    ],
)
async def test_missing_or_bad_signature_is_401_and_changes_nothing(
    pay: Payments, header: str | None
) -> None:
    order, charge_id = await _authorized(pay)
    body = pay.webhook_body(charge_id=charge_id)
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers["Flow-Signature"] = header.format(now=int(time.time()))

    response = await pay.http.post(WEBHOOK_URL, content=body, headers=headers)

    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await _webhooks_recorded(pay, json.loads(body)["id"]) == 0
    assert (await pay.payment_of(order))["status"] == "authorized"


async def test_wrong_secret_tampered_body_and_stale_signatures_are_401(pay: Payments) -> None:
    order, charge_id = await _authorized(pay)
    body = pay.webhook_body(charge_id=charge_id)
    now = int(time.time())
    # A minute's margin past the 300 s tolerance: the clock moves while the requests run,
    # so a signature only 1 s past the edge could fall back inside it by the time it is checked.
    outside = 300 + 60

    wrong_secret = await pay.webhook(body, secret="not-the-webhook-secret")
    stale = await pay.webhook(body, signed_at=now - outside)
    future = await pay.webhook(body, signed_at=now + outside)
    tampered = await pay.webhook(body, sent=body.replace(b"charge.captured", b"charge.expired"))

    assert [r.status_code for r in (wrong_secret, stale, future, tampered)] == [401] * 4
    assert (await pay.payment_of(order))["status"] == "authorized"
    # Within the tolerance the same event is taken.
    assert (await pay.webhook(body, signed_at=now - 200)).json()["outcome"] == "processed"


async def test_a_signed_but_invalid_body_is_422_and_not_recorded(pay: Payments) -> None:
    body = json.dumps({"id": "evt_bad", "type": "charge.captured"}).encode()

    response = await pay.webhook(body)

    assert response.status_code == 422
    assert await _webhooks_recorded(pay, "evt_bad") == 0


async def test_an_unknown_provider_is_404(pay: Payments) -> None:
    response = await pay.http.post(
        "/api/v1/payments/webhooks/acme", content=b"{}", headers={"Flow-Signature": "t=1,v1=0"}
    )

    assert response.status_code == 404


def test_the_webhook_secret_is_required(make_settings: SettingsFactory[Settings]) -> None:
    with pytest.raises(ValueError, match="PAYMENT_WEBHOOK_SECRET"):
        make_settings(payment_webhook_secret=None)
    with pytest.raises(ValueError, match="at least 16"):
        make_settings(payment_webhook_secret="short")
    assert isinstance(make_settings(), Settings)


async def test_the_webhook_body_is_documented_for_the_merged_docs(pay: Payments) -> None:
    document = (await pay.http.get("/openapi.json")).json()

    operation = document["paths"]["/api/v1/payments/webhooks/{provider}"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert {"id", "type", "charge_id"} <= set(schema["required"])
    assert "401" in operation["responses"]
