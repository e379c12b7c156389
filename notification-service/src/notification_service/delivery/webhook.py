"""Webhooks: a notification POSTed as JSON, signed so the receiver can trust it.

`X-Flow-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}.{body}")>` with
the recipient organisation's own secret. During a rotation's grace period the header
carries one `v1=` per valid secret, the current one first
(`t=...,v1=<new>,v1=<old>`), as Stripe does: the receiver accepts the delivery when any
`v1` matches a secret it knows, compared in constant time, and rejects timestamps too
far from its clock (replays).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence

import httpx

from notification_service.delivery.guard import Resolver, checked_target, resolve_host

SIGNATURE_HEADER = "X-Flow-Signature"
USER_AGENT = "Flow-Notifications/1.0"


class DeliveryFailed(Exception):
    """A send that did not succeed. `permanent`: trying again cannot help."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


def sign(secrets: Sequence[str], body: bytes, timestamp: int) -> str:
    """The X-Flow-Signature value: one `v1=` per secret, in the order given."""
    signed = f"{timestamp}.".encode() + body
    macs = (hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest() for secret in secrets)
    return ",".join([f"t={timestamp}", *(f"v1={mac}" for mac in macs)])


def _retryable_status(status: int) -> bool:
    # Server trouble and "slow down" are worth another try; other refusals are final.
    return status >= 500 or status in (408, 425, 429)


class WebhookSender:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        allow_private: bool,
        resolver: Resolver = resolve_host,
    ) -> None:
        self.http = http
        self.allow_private = allow_private
        self.resolver = resolver

    async def send(
        self,
        url: str,
        body: bytes,
        *,
        signing_secrets: Sequence[str],
        event_type: str,
        delivery_id: str,
        notification_id: str,
    ) -> None:
        """POST the body to the URL (after the address check), signed with each of the
        recipient's secrets. Raises WebhookRefused for a target that is not allowed,
        DeliveryFailed for anything but a 2xx answer."""
        target = await checked_target(url, allow_private=self.allow_private, resolver=self.resolver)
        if not signing_secrets:
            # A webhook saved before per-organisation secrets existed (or the key changed):
            # never sent unsigned, nor signed with anything shared.
            raise DeliveryFailed(
                "the organisation has no webhook signing secret: save the webhook URL again "
                "or rotate the secret",
                permanent=True,
            )
        headers = {
            "Host": target.host_header,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: sign(signing_secrets, body, int(time.time())),
            "X-Flow-Event": event_type,
            "X-Flow-Delivery": delivery_id,
            "X-Flow-Notification": notification_id,
        }
        try:
            response = await self.http.post(
                target.connect_url,
                content=body,
                headers=headers,
                extensions={"sni_hostname": target.server_name},
            )
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}", permanent=False) from None
        if 200 <= response.status_code < 300:
            return
        raise DeliveryFailed(
            f"the receiver answered {response.status_code}",
            permanent=not _retryable_status(response.status_code),
        )


def webhook_http_client(timeout_seconds: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_seconds),
        # Redirects could lead anywhere, past the address check.
        follow_redirects=False,
        # Environment proxies would bypass the pinned address.
        trust_env=False,
        # Connections are per address, not per host name: never reuse one across hosts.
        limits=httpx.Limits(max_keepalive_connections=0),
    )
