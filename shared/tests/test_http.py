"""ServiceClient, the one way a service calls another: correlation id and service key on every
call, retries for idempotent methods only, 4xx back to the caller, failures as a 503 naming the
upstream, and a breaker that stops calling a dead upstream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from flow_shared.correlation import set_correlation_id
from flow_shared.errors import ServiceUnavailable
from flow_shared.http import AnswerHeaders, ServiceClient, UpstreamAnswer, UpstreamUnavailable
from flow_shared.resilience import BreakerState, CircuitBreaker, CircuitOpen


class Upstream:
    """A stubbed upstream: answers from a script of responses/exceptions, records requests."""

    def __init__(self, *script: httpx.Response | type[httpx.TransportError]) -> None:
        self.script = list(script)
        self.requests: list[httpx.Request] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, httpx.Response):
            return step
        raise step("upstream failure", request=request)


def client_for(upstream: Upstream, **kwargs: Any) -> ServiceClient:
    kwargs.setdefault("service_key", "caller-key-123")
    return ServiceClient(
        "inventory-service",
        "http://inventory.test",
        caller="http-test",
        transport=httpx.MockTransport(upstream.handle),
        **kwargs,
    )


@pytest.fixture
def request_id() -> Iterator[str]:
    set_correlation_id("corr-http-1")
    yield "corr-http-1"
    set_correlation_id(None)


async def test_every_call_carries_the_correlation_id_and_service_key(request_id: str) -> None:
    upstream = Upstream(httpx.Response(200, json={"ok": True}))
    client = client_for(upstream)

    await client.get("/internal/stock", params={"depot": "7"})
    await client.post("/internal/reservations", json={"order_id": "o-1"})

    for sent in upstream.requests:
        assert sent.headers["X-Request-ID"] == request_id
        assert sent.headers["X-Service-Key"] == "caller-key-123"
    assert upstream.requests[0].url == "http://inventory.test/internal/stock?depot=7"
    assert json.loads(upstream.requests[1].content) == {"order_id": "o-1"}
    await client.aclose()


async def test_no_service_key_header_when_the_caller_has_none() -> None:
    upstream = Upstream(httpx.Response(200))
    client = client_for(upstream, service_key=None)

    await client.get("/public")

    assert "X-Service-Key" not in upstream.requests[0].headers
    await client.aclose()


@pytest.mark.parametrize(
    "first_failure", [httpx.ConnectError, httpx.ReadTimeout, httpx.Response(503)]
)
async def test_a_get_is_retried_after_transient_failures(
    first_failure: httpx.Response | type[httpx.TransportError],
) -> None:
    upstream = Upstream(first_failure, first_failure, httpx.Response(200, json={"stock": 5}))
    client = client_for(upstream, attempts=3)

    response = await client.get("/internal/stock")

    assert response.status_code == 200
    assert response.json() == {"stock": 5}
    assert len(upstream.requests) == 3
    await client.aclose()


async def test_an_answer_is_flows_own_type_with_headers_by_name_in_any_case() -> None:
    upstream = Upstream(
        httpx.Response(
            409,
            headers=[("X-Upstream", "stub"), ("Vary", "Accept"), ("Vary", "Origin")],
            content=b'{"code": "short"}',
        )
    )
    client = client_for(upstream)

    answer = await client.get("/internal/stock")
    await client.aclose()

    assert type(answer) is UpstreamAnswer
    assert answer.status_code == 409
    assert answer.content == b'{"code": "short"}'
    assert answer.json() == {"code": "short"}
    assert answer.headers["x-upstream"] == answer.headers["X-UPSTREAM"] == "stub"
    # A repeated header reads as one value, its values in the order they came.
    assert answer.headers["vary"] == "Accept, Origin"
    assert "content-length" in answer.headers


def test_an_answer_is_read_only_and_a_body_that_is_not_json_is_a_value_error() -> None:
    answer = UpstreamAnswer(200, AnswerHeaders([("Content-Type", "text/plain")]), b"ok")

    with pytest.raises(ValueError, match="char 0"):
        answer.json()
    with pytest.raises(AttributeError):
        answer.status_code = 500  # type: ignore[misc]
    with pytest.raises(TypeError):
        answer.headers["content-type"] = "application/json"  # type: ignore[index]
    assert dict(answer.headers) == {"content-type": "text/plain"}
    assert answer.headers.get("Missing") is None


async def test_a_put_is_idempotent_and_retried() -> None:
    upstream = Upstream(httpx.ConnectError, httpx.Response(200))
    client = client_for(upstream, attempts=3)

    response = await client.put("/internal/stock/1", json={"on_hand": 3})

    assert response.status_code == 200
    assert len(upstream.requests) == 2
    await client.aclose()


@pytest.mark.parametrize("failure", [httpx.ConnectError, httpx.ReadTimeout, httpx.Response(502)])
async def test_a_post_is_never_sent_twice(
    failure: httpx.Response | type[httpx.TransportError],
) -> None:
    upstream = Upstream(failure, httpx.Response(201))
    client = client_for(upstream, attempts=3)

    with pytest.raises(UpstreamUnavailable):
        await client.post("/internal/reservations", json={"order_id": "o-1"})

    assert len(upstream.requests) == 1
    await client.aclose()


@pytest.mark.parametrize("status", [400, 401, 404, 409, 422])
async def test_client_errors_come_back_to_the_caller_untouched(status: int) -> None:
    upstream = Upstream(httpx.Response(status, json={"title": "nope"}))
    client = client_for(upstream, attempts=3)

    response = await client.get("/internal/thing")

    assert response.status_code == status
    assert response.json() == {"title": "nope"}
    assert len(upstream.requests) == 1
    # A 4xx is an answer, not a sign of a sick upstream.
    assert client.breaker.state is BreakerState.CLOSED
    await client.aclose()


async def test_an_upstream_that_keeps_failing_is_a_503_naming_it() -> None:
    upstream = Upstream(httpx.Response(500))
    client = client_for(upstream, attempts=2)

    with pytest.raises(UpstreamUnavailable) as failure:
        await client.get("/internal/stock")

    assert isinstance(failure.value, ServiceUnavailable)
    assert failure.value.status == 503
    assert failure.value.code == "upstream-unavailable"
    assert "inventory-service" in failure.value.detail
    assert len(upstream.requests) == 2
    await client.aclose()


async def test_the_breaker_opens_and_then_fails_without_calling() -> None:
    upstream = Upstream(httpx.ConnectError)
    breaker = CircuitBreaker("inventory-service", failure_threshold=3, reset_timeout=30)
    client = client_for(upstream, attempts=1, breaker=breaker)

    for _ in range(3):
        with pytest.raises(UpstreamUnavailable):
            await client.post("/internal/reservations", json={})
    assert breaker.state is BreakerState.OPEN
    calls_when_opened = len(upstream.requests)

    with pytest.raises(CircuitOpen) as refused:
        await client.get("/internal/stock")

    assert len(upstream.requests) == calls_when_opened == 3
    assert refused.value.status == 503
    assert "inventory-service" in refused.value.detail
    await client.aclose()


async def test_the_breaker_closes_again_after_a_good_probe() -> None:
    now = [0.0]
    upstream = Upstream(httpx.Response(503), httpx.Response(503), httpx.Response(200))
    breaker = CircuitBreaker(
        "inventory-service", failure_threshold=2, reset_timeout=5, clock=lambda: now[0]
    )
    client = client_for(upstream, attempts=1, breaker=breaker)
    for _ in range(2):
        with pytest.raises(UpstreamUnavailable):
            await client.get("/internal/stock")
    assert breaker.state is BreakerState.OPEN

    now[0] += 5
    response = await client.get("/internal/stock")

    assert response.status_code == 200
    assert breaker.state is BreakerState.CLOSED
    await client.aclose()


async def test_a_cancelled_probe_does_not_keep_the_breaker_open_forever() -> None:
    now = [0.0]
    probe_arrived = asyncio.Event()
    calls: list[httpx.Request] = []

    async def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 2:  # the probe: hangs until its caller gives up
            probe_arrived.set()
            await asyncio.Event().wait()
        return httpx.Response(503 if len(calls) == 1 else 200)

    breaker = CircuitBreaker(
        "inventory-service", failure_threshold=1, reset_timeout=5, clock=lambda: now[0]
    )
    client = ServiceClient(
        "inventory-service",
        "http://inventory.test",
        service_key=None,
        attempts=1,
        breaker=breaker,
        transport=httpx.MockTransport(handle),
    )
    with pytest.raises(UpstreamUnavailable):
        await client.get("/internal/stock")
    now[0] += 5
    probe = asyncio.create_task(client.get("/internal/stock"))
    await probe_arrived.wait()
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe

    now[0] += 60
    try:
        response = await client.get("/internal/stock")
    finally:
        await client.aclose()

    assert response.status_code == 200


async def test_a_silent_upstream_times_out_into_a_503_instead_of_hanging() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def never_answer(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = ServiceClient(
        "slow-service",
        f"http://127.0.0.1:{port}",
        service_key=None,
        read_timeout=0.3,
        attempts=1,
    )
    try:
        with pytest.raises(UpstreamUnavailable, match="slow-service"):
            await client.get("/anything")
    finally:
        await client.aclose()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()
    assert len(accepted) == 1


# --- over a real socket: the aiohttp wire every service uses in production -------------------


class NetworkUpstream:
    """A real HTTP/1.1 server on loopback that follows a script: a status to answer with,
    or DROP to close the connection without answering. Records each request as it arrived."""

    DROP = "drop"

    def __init__(self, *script: int | str) -> None:
        self.script = list(script)
        self.requests: list[dict[str, Any]] = []
        self.connections = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> NetworkUpstream:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                request_line, *header_lines = head.decode("latin-1").split("\r\n")[:-2]
                headers = {
                    name.lower(): value.strip()
                    for name, value in (line.split(":", 1) for line in header_lines)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                method, target, _ = request_line.split(" ")
                self.requests.append(
                    {"method": method, "target": target, "headers": headers, "body": body}
                )
                step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
                if step == self.DROP:
                    break
                answer = b'{"answered": true}'
                writer.write(
                    f"HTTP/1.1 {step} X\r\nContent-Type: application/json\r\n"
                    f"X-Upstream: stub\r\nContent-Length: {len(answer)}\r\n\r\n".encode()
                    + answer
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def network_client(upstream: NetworkUpstream, **kwargs: Any) -> ServiceClient:
    kwargs.setdefault("service_key", "caller-key-123")
    kwargs.setdefault("attempts", 3)
    return ServiceClient("inventory-service", upstream.base_url, caller="http-test", **kwargs)


async def test_over_the_network_headers_query_and_body_arrive_and_the_answer_returns(
    request_id: str,
) -> None:
    async with NetworkUpstream(200) as upstream:
        client = network_client(upstream)
        try:
            read = await client.get(
                "/internal/stock", params={"lat": 51.5, "open": True, "note": None, "page": 2}
            )
            written = await client.post("/internal/reservations", json={"order_id": "o-1"})
        finally:
            await client.aclose()

    assert type(read) is UpstreamAnswer
    assert read.status_code == 200
    assert read.json() == {"answered": True}
    assert read.content == b'{"answered": true}'
    assert read.headers["X-Upstream"] == read.headers["x-upstream"] == "stub"
    assert written.json() == {"answered": True}
    get, post = upstream.requests
    assert (get["method"], get["target"]) == (
        "GET",
        "/internal/stock?lat=51.5&open=true&note=&page=2",
    )
    assert (post["method"], post["target"]) == ("POST", "/internal/reservations")
    assert json.loads(post["body"]) == {"order_id": "o-1"}
    assert post["headers"]["content-type"] == "application/json"
    for sent in (get, post):
        assert sent["headers"]["x-request-id"] == request_id
        assert sent["headers"]["x-service-key"] == "caller-key-123"


async def test_over_the_network_calls_share_one_kept_alive_connection() -> None:
    async with NetworkUpstream(200) as upstream:
        client = network_client(upstream)
        try:
            for _ in range(5):
                assert (await client.get("/internal/stock")).status_code == 200
        finally:
            await client.aclose()
    assert len(upstream.requests) == 5
    assert upstream.connections == 1


async def test_over_the_network_a_dropped_get_is_retried_and_a_dropped_post_is_not() -> None:
    async with NetworkUpstream(NetworkUpstream.DROP, 200) as upstream:
        client = network_client(upstream)
        try:
            assert (await client.get("/internal/stock")).status_code == 200
            assert len(upstream.requests) == 2

            upstream.script = [NetworkUpstream.DROP, 201]
            with pytest.raises(UpstreamUnavailable, match="inventory-service did not answer"):
                await client.post("/internal/reservations", json={"order_id": "o-1"})
        finally:
            await client.aclose()
    assert [sent["method"] for sent in upstream.requests] == ["GET", "GET", "POST"]


async def test_over_the_network_a_503_is_retried_for_a_get() -> None:
    async with NetworkUpstream(503, 200) as upstream:
        client = network_client(upstream)
        try:
            response = await client.get("/internal/stock")
        finally:
            await client.aclose()
    assert response.status_code == 200
    assert len(upstream.requests) == 2


async def test_a_closed_port_is_a_503_after_every_attempt_and_counts_against_the_breaker() -> None:
    async with NetworkUpstream(200) as upstream:
        base_url = upstream.base_url
    # The server is gone: connections to its port are refused.
    breaker = CircuitBreaker("inventory-service", failure_threshold=2, reset_timeout=30)
    client = ServiceClient(
        "inventory-service", base_url, service_key=None, attempts=2, breaker=breaker
    )
    try:
        with pytest.raises(UpstreamUnavailable, match="inventory-service did not answer"):
            await client.get("/internal/stock")
    finally:
        await client.aclose()
    # Both attempts failed and were counted: two failures open a breaker with threshold 2.
    assert breaker.state is BreakerState.OPEN
