"""Edge hygiene every service applies: security headers (the set is in
`flow_shared.security_headers`), trusted hosts and a request body cap."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flow_shared.asgi import HttpMiddleware, request_header
from flow_shared.errors import problem_response
from flow_shared.security_headers import BASE_HEADERS, csp_for


class SecurityHeadersMiddleware(HttpMiddleware):
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        csp = csp_for(scope["path"])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                headers = list(message.get("headers", []))
                headers.extend(h for h in BASE_HEADERS if h[0] not in present)
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", csp.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class TrustedHostMiddleware:
    """Refuse requests for hosts we do not serve (Host-header attacks), as a problem.

    `exempt_paths` pass whatever their Host: probes and scrapers address a pod or
    container by its IP, and health and metrics answers do not depend on the host."""

    def __init__(
        self, app: ASGIApp, allowed_hosts: list[str], exempt_paths: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self.allow_any = "*" in allowed_hosts
        self.exempt_paths = exempt_paths
        self.exact = {h.lower() for h in allowed_hosts if not h.startswith("*.")}
        self.suffixes = tuple(h[1:].lower() for h in allowed_hosts if h.startswith("*."))

    def _allowed(self, host: str) -> bool:
        return host in self.exact or (bool(self.suffixes) and host.endswith(self.suffixes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.allow_any
            or scope["type"] not in ("http", "websocket")
            or scope["path"] in self.exempt_paths
        ):
            await self.app(scope, receive, send)
            return
        host = (request_header(scope, b"host") or b"").decode("latin-1").lower()
        hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if self._allowed(hostname):
            await self.app(scope, receive, send)
            return
        from starlette.requests import Request

        response = problem_response(
            Request(scope), status=400, code="invalid-host", detail="This host is not served here."
        )
        await response(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


class BodySizeLimitMiddleware(HttpMiddleware):
    """413 for bodies over the limit: by Content-Length up front, else while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        super().__init__(app)
        self.max_bytes = max_bytes

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        content_length = request_header(scope, b"content-length")
        if content_length is not None:
            try:
                declared = int(content_length)
            except ValueError:
                declared = -1
            if declared > self.max_bytes or declared < 0:
                await self._reject(scope, receive, send, declared < 0)
                return

        received = 0
        too_large = False
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                if response_started:
                    return
                response_started = True
                if too_large:
                    # The framework may have turned our signal into its own error page.
                    await self._reject(scope, receive, send, False)
                    return
            elif too_large:
                return
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not response_started:
                await self._reject(scope, receive, send, False)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, malformed: bool) -> None:
        from starlette.requests import Request

        response = problem_response(
            Request(scope),
            status=400 if malformed else 413,
            code="bad-content-length" if malformed else "payload-too-large",
            detail=(
                "Content-Length is not a valid number."
                if malformed
                else f"The request body exceeds {self.max_bytes} bytes."
            ),
        )
        await response(scope, receive, send)
