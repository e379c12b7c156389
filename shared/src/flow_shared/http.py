"""The one way a Flow service calls another: `ServiceClient`.

Connect/read timeouts, a circuit breaker per upstream, retries with backoff
and jitter for idempotent methods only, the caller's service key and the
correlation id on every request. A dead or failing upstream becomes a 503
problem naming it, never a hang.

The wire is aiohttp's client: measured here, a call costs about a third of
the CPU of the same call through httpx (bench/README.md). Answers come back as
Flow's own `UpstreamAnswer` (status, headers, body), whichever wire carried
them, and service code reads one with flow_shared.upstream's helpers. Tests may
pass an httpx transport (`httpx.MockTransport`) to stand in for an upstream;
everything but the wire — retries, breaker, headers, errors — is the same code
either way. A service builds each of its clients with `ServiceClient.from_settings`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import httpx
import structlog
from pydantic import SecretStr

from flow_shared import json_codec
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


class AnswerHeaders(Mapping[str, str]):
    """An answer's headers, read-only, by name in any case; the values of a repeated header
    are joined with ", " (RFC 9110, 5.3)."""

    __slots__ = ("_values",)

    def __init__(self, fields: Iterable[tuple[str, str]]) -> None:
        values: dict[str, str] = {}
        for name, value in fields:
            key = name.lower()
            values[key] = f"{values[key]}, {value}" if key in values else value
        self._values = values

    def __getitem__(self, name: str) -> str:
        return self._values[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"AnswerHeaders({self._values!r})"


@dataclass(frozen=True, slots=True)
class UpstreamAnswer:
    """What a service reads of another service's answer (2xx-4xx; 5xx never come back)."""

    status_code: int
    headers: AnswerHeaders
    content: bytes

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not JSON."""
        return json_codec.loads(self.content)


class CallerSettings(Protocol):
    """The settings a calling service gives each of its clients (its `Settings` has them)."""

    @property
    def service_name(self) -> str: ...

    @property
    def service_key(self) -> SecretStr | None: ...

    @property
    def upstream_connect_timeout_seconds(self) -> float: ...

    @property
    def upstream_read_timeout_seconds(self) -> float: ...

    @property
    def upstream_attempts(self) -> int: ...

    @property
    def breaker_failure_threshold(self) -> int: ...

    @property
    def breaker_reset_timeout_seconds(self) -> float: ...


class _RetryableStatus(Exception):
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code


class _TransportFailure(Exception):
    """No answer: the connection failed, was dropped, or the upstream was too slow."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(type(cause).__name__)
        self.cause_name = type(cause).__name__


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, _TransportFailure | _RetryableStatus)


def _query(params: Mapping[str, Any] | None) -> dict[str, str] | None:
    """Query values as httpx writes them (aiohttp refuses booleans and None)."""
    if params is None:
        return None
    written: dict[str, str] = {}
    for name, value in params.items():
        if value is None:
            written[name] = ""
        elif isinstance(value, bool):
            written[name] = "true" if value else "false"
        else:
            written[name] = str(value)
    return written


class _Wire(Protocol):
    async def send(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None,
        params: dict[str, str] | None,
        headers: dict[str, str],
    ) -> UpstreamAnswer:
        """One attempt; raises _TransportFailure when no answer came."""

    async def aclose(self) -> None: ...


class _AiohttpWire:
    """Keep-alive connections to one upstream; the session opens on the first call."""

    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        *,
        connect_timeout: float,
        read_timeout: float,
        max_connections: int,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._headers = headers
        # `connect` bounds the wait for a free pooled connection as well: with every
        # connection busy, a call fails (and is retried, and counted) instead of queueing.
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=read_timeout, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # Created inside the running event loop, as aiohttp requires.
        session = aiohttp.ClientSession(
            headers=self._headers,
            timeout=self._timeout,
            connector=aiohttp.TCPConnector(
                limit=self._max_connections, keepalive_timeout=CLIENT_KEEPALIVE_SECONDS
            ),
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
        )
        # aiohttp would silently resend an idempotent request once when a pooled connection
        # drops; ServiceClient's own retries and the breaker's count are the whole truth.
        session._retry_connection = False
        return session

    async def send(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None,
        params: dict[str, str] | None,
        headers: dict[str, str],
    ) -> UpstreamAnswer:
        if self._session is None:
            self._session = self._open()
        url = self._base_url + path
        try:
            async with self._session.request(
                method, url, data=body, params=params, headers=headers
            ) as response:
                content = await response.read()
                return UpstreamAnswer(
                    response.status, AnswerHeaders(response.headers.items()), content
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _TransportFailure(exc) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class _HttpxWire:
    """An httpx transport in place of the network: how tests stand in for an upstream."""

    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        transport: httpx.AsyncBaseTransport,
        *,
        connect_timeout: float,
        read_timeout: float,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers=headers,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            transport=transport,
        )

    async def send(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None,
        params: dict[str, str] | None,
        headers: dict[str, str],
    ) -> UpstreamAnswer:
        try:
            response = await self._client.request(
                method, path, content=body, params=params, headers=headers
            )
        except httpx.TransportError as exc:
            raise _TransportFailure(exc) from exc
        return UpstreamAnswer(
            response.status_code, AnswerHeaders(response.headers.multi_items()), response.content
        )

    async def aclose(self) -> None:
        await self._client.aclose()


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
        self._wire: _Wire
        if transport is None:
            self._wire = _AiohttpWire(
                base_url,
                headers,
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                max_connections=max_connections,
            )
        else:
            self._wire = _HttpxWire(
                base_url,
                headers,
                transport,
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
            )

    @classmethod
    def from_settings(
        cls,
        settings: CallerSettings,
        upstream: str,
        base_url: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        send_service_key: bool = True,
    ) -> ServiceClient:
        """The client of `upstream` as every service builds it: its key, its timeouts and
        attempts, and a breaker of its own reporting under the caller's name.

        `send_service_key=False` for an upstream outside Flow (a public geocoder), which
        must never receive the caller's key."""
        service_key = settings.service_key if send_service_key else None
        return cls(
            upstream,
            base_url,
            service_key=service_key.get_secret_value() if service_key else None,
            caller=settings.service_name,
            connect_timeout=settings.upstream_connect_timeout_seconds,
            read_timeout=settings.upstream_read_timeout_seconds,
            attempts=settings.upstream_attempts,
            breaker=CircuitBreaker(
                upstream,
                failure_threshold=settings.breaker_failure_threshold,
                reset_timeout=settings.breaker_reset_timeout_seconds,
                service=settings.service_name,
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
    ) -> UpstreamAnswer:
        """Send a request; 2xx-4xx come back to the caller, failures raise 503."""
        method = method.upper()
        outgoing = dict(headers or {})
        correlation_id = get_correlation_id()
        if correlation_id:
            outgoing[REQUEST_ID_HEADER] = correlation_id
        body = None
        if json is not None:
            body = json_codec.dumps(json)
            outgoing["Content-Type"] = "application/json"
        query = _query(params)
        # A POST may have taken effect before the failure: never send it twice.
        attempts = self.attempts if method in IDEMPOTENT_METHODS else 1
        try:
            async for attempt in retrying(attempts=attempts, retry_on=_is_transient):
                with attempt:
                    return await self._send_once(method, path, body, query, outgoing)
        except _RetryableStatus as exc:
            raise UpstreamUnavailable(f"{self.upstream} answered {exc.status_code}.") from None
        except _TransportFailure as exc:
            raise UpstreamUnavailable(
                f"{self.upstream} did not answer ({exc.cause_name})."
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send_once(
        self,
        method: str,
        path: str,
        body: bytes | None,
        params: dict[str, str] | None,
        headers: dict[str, str],
    ) -> UpstreamAnswer:
        self.breaker.before_call()
        try:
            response = await self._wire.send(
                method, path, body=body, params=params, headers=headers
            )
        except _TransportFailure:
            self.breaker.record_failure()
            log.warning("upstream_call_failed", upstream=self.upstream, method=method, path=path)
            raise
        if response.status_code >= 500:
            self.breaker.record_failure()
            raise _RetryableStatus(response.status_code)
        self.breaker.record_success()
        return response

    async def get(self, path: str, **kwargs: Any) -> UpstreamAnswer:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> UpstreamAnswer:
        return await self.request("POST", path, **kwargs)

    async def put(self, path: str, **kwargs: Any) -> UpstreamAnswer:
        return await self.request("PUT", path, **kwargs)

    async def aclose(self) -> None:
        await self._wire.aclose()
