"""Every error is RFC 9457 problem+json with the correlation id, and nothing internal leaks."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

PROBLEM_FIELDS = {"type", "title", "status", "detail", "instance", "correlation_id"}


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body.keys() >= PROBLEM_FIELDS
    assert body["status"] == status
    assert body["instance"] == response.request.url.path
    assert body["correlation_id"] == response.headers["X-Request-ID"]
    return body


async def test_unknown_route_is_a_404_problem(showcase: httpx.AsyncClient) -> None:
    response = await showcase.get("/no/such/route")

    body = assert_problem(response, 404)
    assert body["title"] == "Not Found"


async def test_wrong_method_is_a_405_problem_that_keeps_allow(
    showcase: httpx.AsyncClient,
) -> None:
    response = await showcase.delete("/items/1")

    assert_problem(response, 405)
    assert response.headers["allow"] == "GET"


async def test_invalid_path_parameter_is_a_422_problem_with_loc_and_msg(
    showcase: httpx.AsyncClient,
) -> None:
    response = await showcase.get("/items/not-a-number")

    body = assert_problem(response, 422)
    assert [e["loc"] for e in body["errors"]] == [["path", "item_id"]]
    assert body["errors"][0]["msg"]


async def test_validation_errors_never_echo_what_was_sent(showcase: httpx.AsyncClient) -> None:
    response = await showcase.post(
        "/items", json={"name": "cylinder", "password": "short-s3cret", "role": "platform_admin"}
    )

    body = assert_problem(response, 422)
    errors = body["errors"]
    assert {tuple(e["loc"]) for e in errors} == {("body", "password"), ("body", "role")}
    assert all(set(e) == {"loc", "msg"} for e in errors)
    assert "short-s3cret" not in response.text


async def test_malformed_json_is_a_422_problem(showcase: httpx.AsyncClient) -> None:
    response = await showcase.post(
        "/items", content=b'{"name": ', headers={"Content-Type": "application/json"}
    )

    assert_problem(response, 422)


async def test_unexpected_exception_is_a_500_problem_without_internals(
    showcase: httpx.AsyncClient,
) -> None:
    response = await showcase.get("/boom", headers={"X-Request-ID": "boom-1"})

    body = assert_problem(response, 500)
    assert body["correlation_id"] == "boom-1"
    for internal in ("Traceback", "RuntimeError", "SELECT", "secret_table", "db-s3cret"):
        assert internal not in response.text


async def test_domain_error_carries_its_status_code_headers_and_extras(
    showcase: httpx.AsyncClient,
) -> None:
    response = await showcase.get("/conflict")

    body = assert_problem(response, 409)
    assert body["type"] == "https://flow.example/problems/oxygen-on-fire"
    assert body["title"] == "Oxygen on fire"
    assert body["detail"] == "Depot 7 reports a fire."
    assert body["depot"] == 7
    assert response.headers["retry-after"] == "60"


async def test_unauthenticated_is_a_401_problem(showcase: httpx.AsyncClient) -> None:
    response = await showcase.get("/whoami")

    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("path", ["/no/such/route", "/boom", "/items/x"])
async def test_error_answers_are_problem_json_even_to_browsers(
    showcase: httpx.AsyncClient, path: str
) -> None:
    response = await showcase.get(path, headers={"Accept": "text/html"})

    assert response.headers["content-type"] == "application/problem+json"
