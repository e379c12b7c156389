"""The security headers every Flow response carries, and the CSP each path gets.

A leaf module: `security` applies them to every response as middleware, and `errors`
adds them to the 500s it answers outside the middleware stack; both import them from
here, so neither imports the other's module to get them.
"""

from __future__ import annotations

# Swagger UI needs inline script/style for its bootstrap; everything else is same-origin.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'"
)
API_CSP = "default-src 'none'; frame-ancestors 'none'"

# As ASGI header pairs (lower-case names, bytes), the form the middleware sends.
BASE_HEADERS: list[tuple[bytes, bytes]] = [
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"geolocation=(), camera=(), microphone=()"),
]
_DOCS_PREFIXES = ("/docs", "/redoc", "/openapi.json", "/static/swagger")


def csp_for(path: str) -> str:
    return DOCS_CSP if path.startswith(_DOCS_PREFIXES) else API_CSP


def security_headers(path: str) -> dict[str, str]:
    """The headers every response carries, for responses built outside the middleware."""
    headers = {k.decode(): v.decode() for k, v in BASE_HEADERS}
    headers["content-security-policy"] = csp_for(path)
    return headers
