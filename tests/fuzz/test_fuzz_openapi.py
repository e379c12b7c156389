"""Zero findings: every service's OpenAPI, fuzzed with schemathesis as every role, never
answers a server error, an undocumented status or content type, or a body that does not
match its documented schema. Each service is fuzzed on its own port (not through the
gateway), and the gateway's merged document through the gateway itself."""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from flow_shared.testing.fleet import IsolatedFleet

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Small on purpose: the tier runs in `make test` on a 2-core machine. Each example is sent
# once per role, so an operation sees MAX_EXAMPLES x roles requests.
MAX_EXAMPLES = int(os.environ.get("FLOW_FUZZ_MAX_EXAMPLES", "25"))
SERVICES = [
    "user-service",
    "location-service",
    "inventory-service",
    "order-service",
    "pricing-service",
    "payment-service",
    "review-service",
    "notification-service",
    "admin-service",
    "api-gateway",
]
# Operations that end the caller's session run last, so the others keep a live token.
SESSION_ENDING = ("/api/v1/auth/logout", "/api/v1/users/me/password")
REQUEST_TIMEOUT = 10
EVENT_STREAM = "text/event-stream"


class Accounts(Protocol):
    """The `accounts` fixture (conftest.py): a login per role."""

    def role_headers(self) -> dict[str, dict[str, str]]: ...


@dataclass(frozen=True)
class Finding:
    operation: str
    role: str
    report: str


def _event_streams(document: dict[str, Any]) -> set[tuple[str, str]]:
    """(METHOD, path) of the operations answering server-sent events."""
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if any(
            EVENT_STREAM in response.get("content", {})
            for response in operation.get("responses", {}).values()
        )
    }


def _operations(
    schema: schemathesis.BaseSchema, skip: set[tuple[str, str]]
) -> list[schemathesis.APIOperation]:
    operations = [
        operation
        for operation in (result.ok() for result in schema.get_all_operations())
        if (operation.method.upper(), operation.path) not in skip
    ]
    return sorted(operations, key=lambda op: any(op.path.startswith(p) for p in SESSION_ENDING))


@dataclass
class Tally:
    findings: list[Finding] = field(default_factory=list)
    # Answers received: proof that the run fuzzed something and did not pass by doing nothing.
    answered: int = 0


def _fuzz(
    operation: schemathesis.APIOperation,
    base_url: str,
    roles: dict[str, dict[str, str]],
    tally: Tally,
) -> None:

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,  # the same cases every run: a finding reproduces
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def run(case: schemathesis.Case) -> None:
        for role, headers in roles.items():
            try:
                response = case.call(base_url=base_url, headers=headers, timeout=REQUEST_TIMEOUT)
                tally.answered += 1
                case.validate_response(response, checks=CHECKS)
            # A failed check (schemathesis raises a BaseExceptionGroup) or no answer in time.
            except (Exception, BaseExceptionGroup) as failure:
                tally.findings.append(
                    Finding(
                        operation.label,
                        role,
                        f"{case.as_curl_command()}\n{''.join(traceback.format_exception_only(failure))}",
                    )
                )

    run()


def _probe_event_stream(
    path: str, base_url: str, roles: dict[str, dict[str, str]]
) -> list[Finding]:
    """A stream never ends on its own, so schemathesis (which reads whole bodies) cannot
    take it: each role opens it and reads only the status and content type."""
    findings: list[Finding] = []
    for role, headers in roles.items():
        with httpx.stream("GET", base_url + path, headers=headers, timeout=REQUEST_TIMEOUT) as r:
            content_type = r.headers.get("content-type", "").split(";")[0]
            expected = EVENT_STREAM if r.status_code == 200 else "application/problem+json"
            if r.status_code >= 500 or content_type != expected:
                findings.append(Finding(f"GET {path}", role, f"{r.status_code} {content_type}"))
    return findings


@pytest.mark.timeout(900)
@pytest.mark.parametrize("service", SERVICES)
def test_fuzzing_finds_nothing(service: str, fleet: IsolatedFleet, accounts: Accounts) -> None:
    base_url = fleet.url(service)
    document = httpx.get(f"{base_url}/openapi.json", timeout=30).raise_for_status().json()
    schema = schemathesis.openapi.from_dict(document)
    streams = _event_streams(document)
    roles = accounts.role_headers()
    operations = _operations(schema, skip=streams)
    tally = Tally()
    for operation in operations:
        _fuzz(operation, base_url, roles, tally)
    for _, path in sorted(streams):
        tally.findings += _probe_event_stream(path, base_url, roles)
    findings = tally.findings
    report = "\n\n".join(f"{f.operation} as {f.role}:\n{f.report}" for f in findings[:40])
    assert not findings, f"{len(findings)} findings on {service}:\n{report}"
    # Every operation was called, as every role, at least once.
    assert operations
    assert tally.answered >= len(operations) * len(roles), (tally.answered, len(operations))
