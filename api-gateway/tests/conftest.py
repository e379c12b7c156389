"""Fixtures for the gateway: the app in-process on real Redis, and upstream Flow services
stood in for by small real HTTP servers on 127.0.0.1 (their HTTP boundary only)."""

from __future__ import annotations

import asyncio
import hashlib
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from aiohttp import web
from fastapi import FastAPI

from api_gateway.config import Settings
from api_gateway.main import create_app
from flow_shared.testing.infra import asgi_client
from flow_shared.testing.ports import free_port
from flow_shared.testing.service_app import SettingsFactory, settings_factory

if TYPE_CHECKING:
    from flow_shared.testing.infra import TestInfra
    from flow_shared.testing.tokens import TokenIssuer

UPSTREAM_URL_FIELDS = (
    "user_service_url",
    "location_service_url",
    "inventory_service_url",
    "order_service_url",
    "pricing_service_url",
    "payment_service_url",
    "review_service_url",
    "notification_service_url",
    "admin_service_url",
)
STREAM_CHUNK = 64 * 1024


def stream_payload(size: int) -> bytes:
    """Deterministic, non-repeating bytes so a reordered or lost chunk changes the hash."""
    blocks = (hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(size // 32 + 1))
    return b"".join(blocks)[:size]


@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass
class StubUpstream:
    """A stand-in Flow service: records what it receives, answers per path.

    `.../fail` answers 500 (or every path, with `failing = True`), `.../slow` sleeps past
    any gateway timeout, `.../stream` streams `stream_size` bytes in chunks, `.../trickle`
    streams `trickle_block` (an SSE heartbeat) `trickle_blocks` times, `trickle_gap_seconds`
    apart (an idle event stream), `.../redirect` redirects to its own absolute URL, anything
    else echoes the request as JSON.
    """

    name: str
    openapi: dict[str, Any] | None = None
    failing: bool = False
    stream_size: int = 4 * 1024 * 1024
    trickle_block: bytes = b": keepalive\n\n"
    trickle_blocks: int = 8
    trickle_gap_seconds: float = 0.3
    requests: list[Received] = field(default_factory=list)
    openapi_fetches: int = 0
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> StubUpstream:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        # Cancel a handler when the gateway gives up on it (timeouts), as a real server would.
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def stream_bytes(self) -> bytes:
        return stream_payload(self.stream_size)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/openapi.json":
            self.openapi_fetches += 1
            if self.openapi is None:
                return web.json_response({"detail": "no docs"}, status=404)
            return web.json_response(self.openapi)
        body = await request.read()
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        self.requests.append(
            Received(
                request.method, request.raw_path.split("?")[0], request.query_string, headers, body
            )
        )
        last = request.path.rstrip("/").rsplit("/", 1)[-1]
        if self.failing or last == "fail":
            return web.json_response(
                {"type": "about:blank", "title": "Internal error", "status": 500},
                status=500,
                content_type="application/problem+json",
            )
        if last == "slow":
            await asyncio.sleep(30)
        if last == "stream":
            response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
            await response.prepare(request)
            payload = self.stream_bytes()
            for start in range(0, len(payload), STREAM_CHUNK):
                await response.write(payload[start : start + STREAM_CHUNK])
            await response.write_eof()
            return response
        if last == "trickle":
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            for _ in range(self.trickle_blocks):
                await response.write(self.trickle_block)
                await asyncio.sleep(self.trickle_gap_seconds)
            await response.write_eof()
            return response
        if last == "redirect":
            raise web.HTTPTemporaryRedirect(f"{self.url}/api/v1/orders/elsewhere")
        return web.json_response(
            {
                "service": self.name,
                "method": request.method,
                "path": request.raw_path.split("?")[0],
                "query": request.query_string,
                "headers": headers,
                "body_length": len(body),
                "body_sha256": hashlib.sha256(body).hexdigest(),
            },
            headers={
                "X-Upstream": self.name,
                "Connection": "keep-alive, X-Upstream-Hop",
                "X-Upstream-Hop": "secret-hop",
            },
        )


class FlakyServer:
    """A bare HTTP/1.1 server that drops the first `drop_first` connections after reading
    the request head (no response at all), then answers 200. Counts what reached it."""

    def __init__(self, drop_first: int) -> None:
        self.drop_first = drop_first
        self.connections = 0
        self.request_heads: list[bytes] = []
        self._server: asyncio.Server | None = None
        self.url = ""

    async def start(self) -> FlakyServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        drop = self.connections <= self.drop_first
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.request_heads.append(head)
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if drop:
                    return
                if length:
                    await reader.readexactly(length)
                body = b'{"ok": true}'
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
def closed_port_url() -> str:
    """An address where nothing listens (a service that is down)."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
async def stub_factory() -> AsyncIterator[Callable[..., Any]]:
    started: list[StubUpstream] = []

    async def make(name: str = "stub", **kwargs: Any) -> StubUpstream:
        stub = await StubUpstream(name=name, **kwargs).start()
        started.append(stub)
        return stub

    yield make
    for stub in started:
        await stub.stop()


@pytest.fixture
async def flaky_factory() -> AsyncIterator[Callable[[int], Any]]:
    started: list[FlakyServer] = []

    async def make(drop_first: int) -> FlakyServer:
        server = await FlakyServer(drop_first).start()
        started.append(server)
        return server

    yield make
    for server in started:
        await server.stop()


@pytest.fixture
def gateway_settings(infra: TestInfra) -> SettingsFactory[Settings]:
    """Settings on this session's Redis, with a key prefix of their own per test (rate-limit
    counters never leak between tests) and no upstream unless a test names it."""
    prefix = f"{infra.redis_prefix}gw-{uuid.uuid4().hex[:8]}:"
    return settings_factory(
        infra,
        "api-gateway",
        Settings,
        redis_key_prefix=prefix,
        **dict.fromkeys(UPSTREAM_URL_FIELDS),
    )


@dataclass
class Gateway:
    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings

    async def raw_get(self, raw_path: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """GET with the path exactly as given: HTTP clients would normalise dot segments
        before sending, an attacker's raw socket would not. Returns (status, body)."""
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": urllib.parse.unquote(raw_path.decode("latin-1")),
            "raw_path": raw_path,
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"testserver")]
            + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            "client": ("127.0.0.1", 40000),
            "server": ("testserver", 80),
        }
        sent: list[dict[str, Any]] = []
        request_sent = False

        async def receive() -> dict[str, Any]:
            nonlocal request_sent
            if not request_sent:
                request_sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.Event().wait()  # the client never disconnects on its own
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await self.app(scope, receive, send)
        status = next(m["status"] for m in sent if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return status, body

    def client_from(self, ip: str) -> httpx.AsyncClient:
        """Another client of the same running app, seen by the gateway as coming from `ip`."""
        transport = httpx.ASGITransport(app=self.app, client=(ip, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
def open_gateway(
    gateway_settings: SettingsFactory[Settings], token_issuer: TokenIssuer
) -> Callable[..., AbstractAsyncContextManager[Gateway]]:
    @asynccontextmanager
    async def run(**overrides: Any) -> AsyncIterator[Gateway]:
        settings = gateway_settings(**overrides)
        app = create_app(settings, jwks_fetcher=token_issuer.fetch_jwks)
        async with asgi_client(app) as client:
            yield Gateway(app=app, client=client, settings=settings)

    return run
