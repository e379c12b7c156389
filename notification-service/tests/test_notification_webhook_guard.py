"""Webhooks never reach loopback, link-local, private, multicast or reserved addresses
unless ALLOW_PRIVATE_WEBHOOKS is set (here it is not), checked on the resolved address
at delivery time; and with SMTP_HOST unset no e-mail is queued."""

from __future__ import annotations

import ipaddress
import uuid
from typing import TYPE_CHECKING

import pytest
from sqlalchemy.dialects.postgresql import insert as pg_insert

from notification_service.delivery.guard import (
    IPAddress,
    Resolver,
    WebhookRefused,
    checked_target,
    is_public_address,
)
from notification_service.models import Preference

if TYPE_CHECKING:
    from conftest import NotificationFlow, WebhookReceiver

SETTINGS = {"allow_private_webhooks": False, "smtp_host": None}


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("10.1.2.3", False),
        ("172.16.5.4", False),
        ("192.168.1.10", False),
        ("127.0.0.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),  # noqa: S104  (the unspecified address, as a target)
        ("224.0.0.251", False),  # multicast
        ("240.0.0.1", False),  # reserved
        ("255.255.255.255", False),
        ("::1", False),
        ("fe80::1", False),
        ("fd00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("::ffff:10.0.0.1", False),
        ("::ffff:0:7f00:1", False),  # IPv4-translated (SIIT) loopback: reserved space
        ("::127.0.0.1", False),  # deprecated IPv4-compatible forms, whatever they embed
        ("::8.8.8.8", False),
        # 6to4 (2002::/16) tunnels to the IPv4 address in bits 16-48.
        ("2002:7f00:1::1", False),  # 127.0.0.1
        ("2002:a00:1::", False),  # 10.0.0.1
        ("2002:a9fe:a9fe::1", False),  # 169.254.169.254
        ("2002:c0a8:10a::1", False),  # 192.168.1.10
        # Teredo (2001::/32): server 65.54.227.120, client 127.0.0.1 / 10.0.0.1 (obfuscated).
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", False),
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", False),
        # NAT64 (64:ff9b::/96) translates to the IPv4 address in its low 32 bits.
        ("64:ff9b::7f00:1", False),  # 127.0.0.1
        ("64:ff9b::a00:1", False),  # 10.0.0.1
        ("64:ff9b::a9fe:a9fe", False),  # 169.254.169.254
        ("64:ff9b:1::808:808", False),  # local-use NAT64: where it leads is the operator's
        ("2002:808:808::1", True),  # 6to4 of 8.8.8.8
        ("64:ff9b::808:808", True),  # NAT64 of 8.8.8.8
        ("::ffff:8.8.8.8", True),
        ("93.184.216.34", True),
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
    ],
)
def test_only_public_addresses_are_allowed(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


def resolver_to(*addresses: str) -> Resolver:
    async def resolve(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address(a) for a in addresses]

    return resolve


async def test_a_host_with_any_private_address_is_refused() -> None:
    with pytest.raises(WebhookRefused, match="non-public"):
        await checked_target(
            "https://hooks.example.com/flow",
            allow_private=False,
            resolver=resolver_to("93.184.216.34", "10.0.0.7"),
        )


async def test_a_public_host_is_pinned_to_its_checked_address() -> None:
    target = await checked_target(
        "https://hooks.example.com:8443/flow?x=1",
        allow_private=False,
        resolver=resolver_to("2606:4700:4700::1111"),
    )

    assert target.connect_url == "https://[2606:4700:4700::1111]:8443/flow?x=1"
    assert target.host_header == "hooks.example.com:8443"
    assert target.server_name == "hooks.example.com"


@pytest.mark.parametrize("address", ["2002:7f00:1::1", "64:ff9b::a00:7", "::ffff:10.0.0.7"])
async def test_a_host_resolving_to_an_ipv6_form_of_a_private_address_is_refused(
    address: str,
) -> None:
    with pytest.raises(WebhookRefused, match="non-public"):
        await checked_target(
            "https://hooks.example.com/flow", allow_private=False, resolver=resolver_to(address)
        )


async def test_private_addresses_pass_only_when_configured() -> None:
    allowed = await checked_target(
        "http://receiver.internal/hook", allow_private=True, resolver=resolver_to("10.0.0.7")
    )

    assert allowed.connect_url == "http://10.0.0.7/hook"
    with pytest.raises(WebhookRefused):
        await checked_target(
            "http://receiver.internal/hook", allow_private=False, resolver=resolver_to("10.0.0.7")
        )


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://10.0.0.1/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data",
        "https://192.168.0.10/hook",
        "http://[2002:7f00:1::1]/hook",
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data",
        "http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/hook",
    ],
)
async def test_saving_a_literal_private_address_is_refused(
    flow: NotificationFlow, url: str
) -> None:
    org = uuid.uuid4()

    response = await flow.http.put(
        "/api/v1/notifications/preferences",
        json={"email": True, "webhook_url": url},
        headers=flow.headers(org),
    )

    assert response.status_code == 422
    assert response.json()["type"].endswith("/webhook-not-allowed")


async def test_saving_public_or_named_hosts_is_accepted(flow: NotificationFlow) -> None:
    org = uuid.uuid4()
    for url in ("https://93.184.216.34/hook", "https://hooks.example.com/flow"):
        response = await flow.http.put(
            "/api/v1/notifications/preferences",
            json={"email": True, "webhook_url": url},
            headers=flow.headers(org),
        )
        assert response.status_code == 200, response.text


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
async def test_webhook_to_loopback_is_refused_at_delivery_and_nothing_arrives(
    flow: NotificationFlow, webhook_receiver: WebhookReceiver, host: str
) -> None:
    vendor = uuid.uuid4()
    path = webhook_receiver.new_path()
    port = webhook_receiver.url.rsplit(":", 1)[1]
    url = f"http://{host}:{port}{path}"
    if host == "localhost":
        # A name passes the PUT: only its resolved addresses tell it is loopback.
        saved = await flow.http.put(
            "/api/v1/notifications/preferences",
            json={"email": True, "webhook_url": url},
            headers=flow.headers(vendor),
        )
        assert saved.status_code == 200, saved.text
    else:
        # A literal loopback is refused on PUT: saved as if before the configuration changed.
        async with flow.sessions() as session, session.begin():
            await session.execute(
                pg_insert(Preference).values(org_id=vendor, email=True, webhook_url=url)
            )

    event = flow.events.order("order.placed", vendor_id=vendor, hospital_org_id=uuid.uuid4())
    await flow.publish(event)
    stored = await flow.wait_notification(event.id)
    [delivery] = await flow.wait_deliveries_done(stored.id)

    assert (delivery.channel, delivery.status, delivery.attempts) == ("webhook", "failed", 1)
    assert delivery.last_error is not None
    assert delivery.last_error.startswith("refused")
    assert webhook_receiver.hooks(path) == []


async def test_without_smtp_host_no_email_is_queued(flow: NotificationFlow) -> None:
    vendor = uuid.uuid4()
    await flow.add_member(vendor, "someone@vendor.test")

    event = flow.events.order("order.placed", vendor_id=vendor, hospital_org_id=uuid.uuid4())
    await flow.handle(event)
    [stored] = await flow.notifications_for_event(event.id)

    assert await flow.deliveries(stored.id) == []
