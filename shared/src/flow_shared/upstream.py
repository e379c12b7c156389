"""Reading another Flow service's answer, the same way in every caller.

ServiceClient (flow_shared.http) already turns no answer and 5xx into a 503 naming the
upstream. What comes back is a 2xx-4xx answer, and a caller reads it with these: the
problem+json members of a refusal (`problem_of`, `problem_code`, `problem_detail`,
`problem_extensions`), the body as its model (`parse_answer`), and `unexpected_answer`
for a status the upstream's internal API does not promise. An answer that breaks the
contract is `BadUpstreamResponse`, a 502 naming the upstream: our fault (a misconfigured
key, a contract drift), never the client's.
"""

from __future__ import annotations

from typing import Any, TypeVar

import structlog
from pydantic import BaseModel, ValidationError

from flow_shared.errors import DomainError
from flow_shared.http import UpstreamAnswer

_Model = TypeVar("_Model", bound=BaseModel)

log = structlog.get_logger("flow.upstream")

# RFC 9457's members and Flow's own; anything else in a problem is the upstream's extension.
_PROBLEM_MEMBERS = frozenset(
    {"type", "title", "status", "detail", "instance", "correlation_id", "errors", "code"}
)


class BadUpstreamResponse(DomainError):
    """Another service answered, but not as its internal API promises."""

    status, code, title = 502, "bad-upstream-response", "Bad gateway"


def problem_of(answer: UpstreamAnswer) -> dict[str, Any]:
    """The answer's problem+json object; empty when the body is not a JSON object."""
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def problem_code(problem: dict[str, Any]) -> str:
    """Flow's `code` member, else the last segment of `type`; empty when neither is there."""
    code = problem.get("code")
    if isinstance(code, str):
        return code
    problem_type = problem.get("type")
    return problem_type.rsplit("/", 1)[-1] if isinstance(problem_type, str) else ""


def problem_detail(problem: dict[str, Any], default: str) -> str:
    detail = problem.get("detail")
    return detail if isinstance(detail, str) and detail else default


def problem_extensions(problem: dict[str, Any]) -> dict[str, Any]:
    """The problem's own members (e.g. which products have no price), to pass on to our
    client."""
    return {k: v for k, v in problem.items() if k not in _PROBLEM_MEMBERS}


def unexpected_answer(upstream: str, answer: UpstreamAnswer) -> BadUpstreamResponse:
    """The error to raise for a status the upstream does not promise here."""
    # 401/403/422 here mean a misconfigured key or a contract drift, not the client's fault.
    log.error("upstream_unexpected_status", upstream=upstream, status=answer.status_code)
    return BadUpstreamResponse(f"{upstream} answered {answer.status_code}.")


def parse_answer(
    upstream: str, answer: UpstreamAnswer, model: type[_Model], *, expect: int | None = None
) -> _Model:
    """The answer's body as `model` (unknown fields ignored as the model says); a body that
    does not fit is `BadUpstreamResponse`. With `expect`, any other status is too
    (`unexpected_answer`): the caller has dealt with the statuses it knows before."""
    if expect is not None and answer.status_code != expect:
        raise unexpected_answer(upstream, answer)
    try:
        return model.model_validate_json(answer.content)
    except ValidationError:
        log.error("upstream_bad_body", upstream=upstream, model=model.__name__)
        raise BadUpstreamResponse(f"{upstream} sent an unreadable answer.") from None
