"""Webhooks: a notification POSTed as JSON, signed so the receiver can trust it.

`X-Flow-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}.{body}")>`.
The receiver recomputes the HMAC over the raw body with the shared secret, compares
in constant time, and rejects timestamps too far from its clock (replays).
"""

from __future__ import annotations

import hashlib
import hmac
import time

import httpx

from notification_service.delivery.guard import Resolver, checked_target, resolve_host

SIGNATURE_HEADER = "X-Flow-Signature"
USER_AGENT = "Flow-Notifications/1.0"


class DeliveryFailed(Exception):
    """A send that did not succeed. `permanent`: trying again cannot help."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def _retryable_status(status: int) -> bool:
    # Server trouble and "slow down" are worth another try; other refusals are final.
    return status >= 500 or status in (408, 425, 429)


class WebhookSender:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        secret: str,
        allow_private: bool,
        resolver: Resolver = resolve_host,
    ) -> None:
        self.http = http
        self.secret = secret
        self.allow_private = allow_private
        self.resolver = resolver

    async def send(
        self, url: str, body: bytes, *, event_type: str, delivery_id: str, notification_id: str
    ) -> None:
        """POST the body to the URL (after the address check). Raises WebhookRefused for a
        target that is not allowed, DeliveryFailed for anything but a 2xx answer."""
        target = await checked_target(url, allow_private=self.allow_private, resolver=self.resolver)
        headers = {
            "Host": target.host_header,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: sign(self.secret, body, int(time.time())),
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
