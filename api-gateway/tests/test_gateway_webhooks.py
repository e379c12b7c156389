"""Provider webhooks reach payment-service without a token (they are authenticated by their
HMAC signature there), and public routes with a `{name}` segment match exactly one segment
and only that method."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import pytest

from api_gateway.config import DEFAULT_PUBLIC_ROUTES, PublicRoutes, Settings

if TYPE_CHECKING:
    from conftest import Gateway

    OpenGateway = Callable[..., AbstractAsyncContextManager[Gateway]]

WEBHOOK = "/api/v1/payments/webhooks/sandbox"


@pytest.mark.parametrize(
    ("method", "path", "public"),
    [
        ("POST", WEBHOOK, True),
        ("POST", WEBHOOK + "/", True),
        ("POST", "/api/v1/payments/webhooks/another-provider", True),
        ("GET", WEBHOOK, False),
        ("POST", "/api/v1/payments/webhooks", False),
        ("POST", "/api/v1/payments/webhooks//", False),
        ("POST", WEBHOOK + "/extra", False),
        ("POST", "/api/v1/payments/0d5f43/refund", False),
        ("POST", "/api/v1/auth/login", True),
        ("POST", "/api/v1/auth/logout", False),
    ],
)
def test_public_route_templates_match_one_segment_and_the_method(
    method: str, path: str, public: bool
) -> None:
    routes = PublicRoutes.of(Settings.model_validate({}).public_routes)

    assert routes.matches(method, path) is public


def test_webhook_route_is_public_by_default() -> None:
    assert "POST /api/v1/payments/webhooks/{provider}" in DEFAULT_PUBLIC_ROUTES


def test_a_parameter_must_be_a_whole_segment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBLIC_ROUTES", "POST /api/v1/payments/hooks-{provider}")
    with pytest.raises(ValueError, match="whole segments"):
        Settings()


async def test_signed_webhook_passes_without_a_token_with_its_signature_and_exact_body(
    open_gateway: OpenGateway, stub_factory: Any
) -> None:
    payments = await stub_factory("payment-service")
    body = b'{"id": "evt_1", "type": "charge.captured", "charge_id": "sbx_ch_1"}'
    signature = "t=1700000000,v1=" + "ab" * 32
    async with open_gateway(payment_service_url=payments.url) as gw:
        webhook = await gw.client.post(
            WEBHOOK,
            content=body,
            headers={"Content-Type": "application/json", "Flow-Signature": signature},
        )
        # Everything else under /payments still needs a token.
        refund = await gw.client.post("/api/v1/payments/0d5f43/refund", json={"reason": "x"})
        listing = await gw.client.get(WEBHOOK)

    assert webhook.status_code == 200
    assert refund.status_code == 401
    assert listing.status_code == 401
    assert len(payments.requests) == 1
    received = payments.requests[0]
    assert (received.method, received.path) == ("POST", WEBHOOK)
    assert received.headers["flow-signature"] == signature
    # The signature covers the exact bytes: the gateway must not re-encode the body.
    assert hashlib.sha256(received.body).hexdigest() == hashlib.sha256(body).hexdigest()
    assert "authorization" not in received.headers
