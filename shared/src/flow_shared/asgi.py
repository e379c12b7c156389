"""What the pure ASGI middlewares every app stacks (correlation ids, security headers,
the body cap) have in common: they act on HTTP requests only, and read request headers
straight from the scope (no per-request task or body buffering)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send


class HttpMiddleware(ABC):
    """A pure ASGI middleware for HTTP requests (`handle`); any other scope (lifespan,
    websocket) passes straight through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    @abstractmethod
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None: ...


def request_header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of the request header `name` (lower case, as ASGI names them)."""
    headers: Iterable[tuple[bytes, bytes]] = scope.get("headers", ())
    for header, value in headers:
        if header == name:
            return value
    return None
