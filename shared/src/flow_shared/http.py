"""The one way a Flow service calls another: `ServiceClient`.

Connect/read timeouts, a circuit breaker per upstream, retries with backoff
and jitter for idempotent methods only, the caller's service key and the
correlation id on every request. A dead or failing upstream becomes a 503
problem naming it, never a hang.
"""

from __future__ import annotations

from typing import Any

import httpx
import structlog

from flow_shared.auth import SERVICE_KEY_HEADER
from flow_shared.correlation import REQUEST_ID_HEADER, get_correlation_id
from flow_shared.errors import ServiceUnavailable
from flow_shared.resilience import IDEMPOTENT_METHODS, CircuitBreaker, retrying

log = structlog.get_logger("flow.http")

# Every Flow server keeps an idle connection this long (uvicorn --timeout-keep-alive), and
# every client pool lets go well before: otherwise the server may close a pooled connection
# just as a request goes out on it, and a POST, which is never retried, fails.
SERVER_KEEPALIVE_SECONDS = 75
CLIENT_KEEPALIVE_SECONDS = 5.0


class UpstreamUnavailable(ServiceUnavailable):
    code = "upstream-unavailable"
    title = "Upstream unavailable"


class _RetryableStatus(Exception):
    def __init__(self, response: httpx.Response) -> None:
        self.response = response


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, httpx.TransportError | _RetryableStatus)


class ServiceClient:
    def __init__(
        self,
        upstream: str,
        base_url: str,
        *,
        service_key: str | None,
        caller: str = "",
        connect_timeout: float = 1.0,
        read_timeout: float = 5.0,
        attempts: int = 3,
        breaker: CircuitBreaker | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 100,
    ) -> None:
        self.upstream = upstream
        self.attempts = attempts
        self.breaker = breaker or CircuitBreaker(upstream, service=caller)
        headers = {SERVICE_KEY_HEADER: service_key} if service_key else {}
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers=headers,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=20,
                keepalive_expiry=CLIENT_KEEPALIVE_SECONDS,
            ),
            transport=transport,
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send a request; 2xx-4xx come back to the caller, failures raise 503."""
        method = method.upper()
        outgoing = dict(headers or {})
        correlation_id = get_correlation_id()
        if correlation_id:
            outgoing[REQUEST_ID_HEADER] = correlation_id
        # A POST may have taken effect before the failure: never send it twice.
        attempts = self.attempts if method in IDEMPOTENT_METHODS else 1
        try:
            async for attempt in retrying(attempts=attempts, retry_on=_is_transient):
                with attempt:
                    return await self._send_once(method, path, json, params, outgoing)
        except _RetryableStatus as exc:
            raise UpstreamUnavailable(
                f"{self.upstream} answered {exc.response.status_code}."
            ) from None
        except httpx.TransportError as exc:
            raise UpstreamUnavailable(
                f"{self.upstream} did not answer ({type(exc).__name__})."
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send_once(
        self,
        method: str,
        path: str,
        json: Any,
        params: dict[str, Any] | None,
        headers: dict[str, str],
    ) -> httpx.Response:
        self.breaker.before_call()
        try:
            response = await self._client.request(
                method, path, json=json, params=params, headers=headers
            )
        except httpx.TransportError:
            self.breaker.record_failure()
            log.warning("upstream_call_failed", upstream=self.upstream, method=method, path=path)
            raise
        if response.status_code >= 500:
            self.breaker.record_failure()
            raise _RetryableStatus(response)
        self.breaker.record_success()
        return response

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", path, **kwargs)

    async def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PUT", path, **kwargs)

    async def aclose(self) -> None:
        await self._client.aclose()
