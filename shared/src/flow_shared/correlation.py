"""Correlation ids (`X-Request-ID`): accepted or generated, echoed, propagated.

The id lives in a context variable so logs, outgoing HTTP calls and events pick
it up without being handed it.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

from starlette.types import Message, Receive, Scope, Send

from flow_shared.asgi import HttpMiddleware, request_header

REQUEST_ID_HEADER = "X-Request-ID"
_HEADER_BYTES = REQUEST_ID_HEADER.lower().encode()
# A client-chosen id is kept only if it is short and harmless in logs and headers.
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

_correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)


def get_correlation_id() -> str | None:
    return _correlation_id.get()


def set_correlation_id(value: str | None) -> None:
    _correlation_id.set(value)


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def accept_correlation_id(candidate: str | None) -> str:
    if candidate and _SAFE_ID.match(candidate):
        return candidate
    return new_correlation_id()


class CorrelationIdMiddleware(HttpMiddleware):
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        incoming = request_header(scope, _HEADER_BYTES)
        request_id = accept_correlation_id(incoming.decode("latin-1") if incoming else None)
        # Not reset afterwards on purpose: the 500 handler runs outside this middleware
        # and still needs the id. Each request runs in its own task, so nothing leaks.
        _correlation_id.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != _HEADER_BYTES
                ]
                headers.append((_HEADER_BYTES, request_id.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)
