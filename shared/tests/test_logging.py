"""Correlation ids are accepted or generated and echoed; log lines are JSON, carry the id,
and never contain secrets."""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from flow_shared.logging import REDACTED, redact

if TYPE_CHECKING:
    from conftest import ShowcaseClientFactory

LOG_SECRETS = (
    "hunter2-password",
    "refresh-secret-value",
    "abc.def.ghi-secret",
    "plain-bearer-secret",
    "eyJhbGciOiJSUzI1NiJ9",
    "amqp-s3cret",
)


def json_lines(captured: str) -> list[dict[str, Any]]:
    """Every non-empty stdout line, parsed: a line that is not JSON fails the test here."""
    return [json.loads(line) for line in captured.splitlines() if line.strip()]


async def test_a_safe_client_request_id_is_kept_and_echoed(showcase: httpx.AsyncClient) -> None:
    response = await showcase.get("/items/1", headers={"X-Request-ID": "client-42.a:b_c"})

    assert response.headers["X-Request-ID"] == "client-42.a:b_c"


async def test_a_request_id_is_generated_when_none_is_sent(showcase: httpx.AsyncClient) -> None:
    first = await showcase.get("/items/1")
    second = await showcase.get("/items/1")

    assert re.fullmatch(r"[0-9a-f]{32}", first.headers["X-Request-ID"])
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]


@pytest.mark.parametrize(
    "unsafe", ["two words", "<script>alert(1)</script>", "x" * 129, "a;b=c", ""]
)
async def test_an_unsafe_request_id_is_replaced(showcase: httpx.AsyncClient, unsafe: str) -> None:
    response = await showcase.get("/no/such/route", headers={"X-Request-ID": unsafe})

    echoed = response.headers["X-Request-ID"]
    assert echoed != unsafe
    assert re.fullmatch(r"[0-9a-f]{32}", echoed)
    assert response.json()["correlation_id"] == echoed


async def test_log_lines_are_json_with_the_correlation_id(
    showcase_client_for: ShowcaseClientFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    async with showcase_client_for() as client:
        capsys.readouterr()
        await client.get("/log", headers={"X-Request-ID": "log-line-1"})
        await client.get("/items/7", headers={"X-Request-ID": "log-line-2"})
    lines = json_lines(capsys.readouterr().out)

    by_event = {(line["event"], line.get("correlation_id")): line for line in lines}
    app_line = by_event[("login_attempt", "log-line-1")]
    assert app_line["service"] == "shared-showcase"
    assert app_line["level"] == "info"
    assert app_line["timestamp"].endswith("Z")
    access_line = by_event[("request", "log-line-2")]
    # The access line names the route template, so logs aggregate like metrics do.
    assert (access_line["route"], access_line["path"]) == ("/items/{item_id}", "/items/7")
    assert access_line["status"] == 200


async def test_secrets_are_redacted_from_log_lines(
    showcase_client_for: ShowcaseClientFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    async with showcase_client_for() as client:
        capsys.readouterr()
        await client.get("/log")
    out = capsys.readouterr().out

    [line] = [line for line in json_lines(out) if line["event"] == "login_attempt"]
    for secret in LOG_SECRETS:
        assert secret not in out
    assert line["password"] == REDACTED
    assert line["refresh_token"] == REDACTED
    assert line["headers"] == {"Authorization": REDACTED}
    assert line["note"] == f"client sent Bearer {REDACTED} in a note"
    assert line["jwt_like"] == REDACTED
    assert line["dsn"] == f"amqp://guest:{REDACTED}@rabbit:5672/"
    # Redaction is targeted: ordinary fields stay readable.
    assert line["email"] == "nurse@hospital.test"


async def test_standard_library_log_lines_are_json_and_redacted(
    showcase_client_for: ShowcaseClientFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    async with showcase_client_for():
        capsys.readouterr()
        logging.getLogger("some.library").warning(
            "connecting to %s with %s",
            "postgresql://flow:pg-s3cret@db/flow",
            "Authorization: Bearer lib-bearer-secret",
        )
    out = capsys.readouterr().out

    [line] = [line for line in json_lines(out) if line.get("logger") == "some.library"]
    assert "pg-s3cret" not in out
    assert "lib-bearer-secret" not in out
    assert line["level"] == "warning"
    assert line["service"] == "shared-showcase"


async def test_an_unexpected_error_is_logged_with_its_trace_and_id_but_no_secret(
    showcase_client_for: ShowcaseClientFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    async with showcase_client_for() as client:
        capsys.readouterr()
        await client.get("/boom", headers={"X-Request-ID": "boom-log-1"})
    out = capsys.readouterr().out

    [line] = [line for line in json_lines(out) if line["event"] == "unhandled_exception"]
    assert line["correlation_id"] == "boom-log-1"
    assert line["level"] == "error"
    assert "RuntimeError" in line["exception"]
    assert "db-s3cret" not in out


def test_redact_walks_nested_structures() -> None:
    event = {
        "user": {"email": "a@b.test", "Password": "p", "api_key": "k"},
        "items": [{"service_key": "s"}, "Bearer tok.en", ("cookie", "fine")],
        "X-Service-Key": "x",
        "url": "redis://default:redis-pw@cache:6379/0",
        "count": 3,
    }

    assert redact(event) == {
        "user": {"email": "a@b.test", "Password": REDACTED, "api_key": REDACTED},
        "items": [{"service_key": REDACTED}, f"Bearer {REDACTED}", ["cookie", "fine"]],
        "X-Service-Key": REDACTED,
        "url": f"redis://default:{REDACTED}@cache:6379/0",
        "count": 3,
    }
