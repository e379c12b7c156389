"""RFC 9457 problem details: every error a Flow service answers has this shape.

Services raise `DomainError` subclasses that carry their status; the handlers
registered by `install_error_handlers` turn those, framework errors and
unexpected exceptions into `application/problem+json` with the request's
correlation id. Nothing internal (tracebacks, SQL, secrets) reaches a client.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from flow_shared.correlation import REQUEST_ID_HEADER, get_correlation_id
from flow_shared.jsonutil import dumps

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://flow.example/problems/"

log = structlog.get_logger("flow.errors")


class DomainError(Exception):
    """A failure with a meaning for clients. Subclass per case, set `status`/`code`."""

    status: int = 400
    code: str = "bad-request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = list(errors) if errors is not None else None
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


class NotFound(DomainError):
    status, code, title = 404, "not-found", "Not found"


class Conflict(DomainError):
    status, code, title = 409, "conflict", "Conflict"


class Unauthorized(DomainError):
    status, code, title = 401, "unauthorized", "Unauthorized"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kwargs)


class Forbidden(DomainError):
    status, code, title = 403, "forbidden", "Forbidden"


class UnprocessableEntity(DomainError):
    status, code, title = 422, "validation-error", "Validation failed"


class TooManyRequests(DomainError):
    status, code, title = 429, "rate-limited", "Too many requests"


class ServiceUnavailable(DomainError):
    status, code, title = 503, "service-unavailable", "Service unavailable"


def problem_response(
    request: Request | None,
    *,
    status: int,
    title: str | None = None,
    detail: str | None = None,
    code: str | None = None,
    errors: Sequence[Mapping[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    """Build a problem+json response; usable outside exception handlers too."""
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + (code or phrase.lower().replace(" ", "-")),
        "title": title or phrase,
        "status": status,
        "detail": detail or title or phrase,
        "instance": request.url.path if request is not None else None,
        "correlation_id": get_correlation_id(),
    }
    if errors is not None:
        body["errors"] = list(errors)
    if extra:
        body.update({k: v for k, v in extra.items() if k not in body})
    response_headers = dict(headers or {})
    correlation_id = body["correlation_id"]
    if correlation_id:
        # Errors raised outside the middleware stack (500s) still carry the id.
        response_headers.setdefault(REQUEST_ID_HEADER, correlation_id)
    return Response(
        content=dumps(body),
        status_code=status,
        media_type=PROBLEM_CONTENT_TYPE,
        headers=response_headers,
    )


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Only location and message: pydantic's `input`/`ctx` could echo secrets back.
    return [
        {"loc": [str(part) for part in err.get("loc", ())], "msg": str(err.get("msg", ""))}
        for err in exc.errors()
    ]


async def _domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return problem_response(
        request,
        status=exc.status,
        title=exc.title,
        detail=exc.detail,
        code=exc.code,
        errors=exc.errors,
        headers=exc.headers,
        extra=exc.extra,
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else None
    return problem_response(
        request, status=exc.status_code, detail=detail, headers=exc.headers or {}
    )


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return problem_response(
        request,
        status=422,
        title="Validation failed",
        code="validation-error",
        detail="The request is not valid; see `errors`.",
        errors=_validation_errors(exc),
    )


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    # Imported here: security.py builds its own problems with this module.
    from flow_shared.security import security_headers

    log.error("unhandled_exception", path=request.url.path, exc_info=exc)
    # This answer is sent outside the middleware stack, so it brings its own headers.
    return problem_response(
        request,
        status=500,
        code="internal-error",
        detail="An unexpected error occurred. Quote the correlation_id when reporting it.",
        headers=security_headers(request.url.path),
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
