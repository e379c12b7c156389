"""RFC 9457 problem details: every error a Flow service answers has this shape.

Services raise `DomainError` subclasses that carry their status; the handlers
registered by `install_error_handlers` turn those, framework errors and
unexpected exceptions into `application/problem+json` with the request's
correlation id. Nothing internal (tracebacks, SQL, secrets) reaches a client.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from flow_shared.correlation import REQUEST_ID_HEADER, get_correlation_id
from flow_shared.json_codec import dumps
from flow_shared.security_headers import security_headers

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
    log.error("unhandled_exception", path=request.url.path, exc_info=exc)
    # This answer is sent outside the middleware stack, so it brings its own headers.
    return problem_response(
        request,
        status=500,
        code="internal-error",
        detail="An unexpected error occurred. Quote the correlation_id when reporting it.",
        headers=security_headers(request.url.path),
    )


# --- the OpenAPI side: every error an operation can answer is documented as a problem ----

PROBLEM_SCHEMA_NAME = "Problem"
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": PROBLEM_SCHEMA_NAME,
    "description": "RFC 9457 problem details, as every Flow error is answered.",
    "type": "object",
    "required": ["type", "title", "status", "detail", "instance", "correlation_id"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": ["string", "null"]},
        "correlation_id": {"type": ["string", "null"]},
        "errors": {
            "type": "array",
            "description": "Validation errors ({loc, msg}) or the case's own details.",
            "items": {"type": "object"},
        },
    },
    # A case may add its own members (a conflict's short items, a cap's numbers).
    "additionalProperties": True,
}
# Ranges as well as the codes a route names: auth (401/403), size (413), limits (429),
# outages (503) and the unexpected (500) can meet any operation.
PROBLEM_RANGES = {"4XX": "A client error", "5XX": "A server error"}
# FastAPI's own description of 422, which problem+json replaces.
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
_OPERATION_KEYS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _is_error_status(code: str) -> bool:
    return code[:1] in {"4", "5"}


def document_problems(document: dict[str, Any]) -> dict[str, Any]:
    """Rewrite an OpenAPI document in place so every operation's error responses
    (the codes it names, and 4XX/5XX for the rest) are `application/problem+json`
    with the Problem schema, as the handlers above answer them."""
    problem_content = {
        PROBLEM_CONTENT_TYPE: {"schema": {"$ref": f"#/components/schemas/{PROBLEM_SCHEMA_NAME}"}}
    }
    for path_item in document.get("paths", {}).values():
        for method in _OPERATION_KEYS:
            operation = path_item.get(method)
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            for code, response in responses.items():
                if _is_error_status(str(code)) and "$ref" not in response:
                    response["content"] = copy.deepcopy(problem_content)
            if "422" in responses:
                responses["422"]["description"] = "Validation failed: see `errors`"
            for code, description in PROBLEM_RANGES.items():
                responses.setdefault(
                    code, {"description": description, "content": copy.deepcopy(problem_content)}
                )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas[PROBLEM_SCHEMA_NAME] = copy.deepcopy(PROBLEM_SCHEMA)
    for name in _FASTAPI_VALIDATION_SCHEMAS:  # the outer one first: it refers to the other
        if f'"#/components/schemas/{name}"'.encode() not in dumps(document):
            schemas.pop(name, None)
    return document


def install_problem_docs(app: FastAPI) -> None:
    """Make `app.openapi()` document problem responses on every operation."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
