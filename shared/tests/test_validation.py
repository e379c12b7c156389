"""Input PostgreSQL would refuse (NUL in text, integers and amounts past their columns)
is a 422 at the edge, and the OpenAPI documents every error as problem+json."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import httpx
import jsonschema
import pytest
from fastapi import FastAPI, Query
from pydantic import BaseModel, StringConstraints, TypeAdapter, ValidationError

from flow_shared.errors import (
    PROBLEM_CONTENT_TYPE,
    PROBLEM_SCHEMA,
    document_problems,
    install_error_handlers,
    install_problem_docs,
)
from flow_shared.testing.infra import asgi_client
from flow_shared.validation import (
    DB_INTEGER_MAX,
    MAX_AMOUNT,
    MAX_UNITS,
    NO_NUL_PATTERN,
    Amount,
    AmountTooLarge,
    NoNul,
    PositiveUnits,
    Text,
    Units,
    UnitsDelta,
    ensure_amount_fits,
)

Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20), NoNul()
]


class Site(BaseModel):
    name: Name
    note: Text | None = None


@pytest.mark.parametrize("value", ["\x00", "ward\x00b", "  \x00  "])
def test_text_with_nul_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="NUL"):
        Site(name=value)
    with pytest.raises(ValidationError, match="NUL"):
        Site(name="ok", note=value)


def test_text_keeps_its_own_constraints_and_messages() -> None:
    assert Site(name="  Ward B ").name == "Ward B"
    with pytest.raises(ValidationError, match="at most 20 characters"):
        Site(name="x" * 21)


def test_schema_documents_no_nul_unless_a_tighter_pattern_is_given() -> None:
    schema = Site.model_json_schema()
    assert schema["properties"]["name"]["pattern"] == NO_NUL_PATTERN
    assert schema["properties"]["name"]["maxLength"] == 20
    own = TypeAdapter(Annotated[str, StringConstraints(pattern=r"^[a-z]+$"), NoNul()])
    assert own.json_schema()["pattern"] == r"^[a-z]+$"
    with pytest.raises(ValidationError):
        own.validate_python("a\x00")


@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [
        (Units, [0, MAX_UNITS], [-1, MAX_UNITS + 1, 5252014337]),
        (PositiveUnits, [1, MAX_UNITS], [0, MAX_UNITS + 1]),
        (UnitsDelta, [-MAX_UNITS, MAX_UNITS], [-MAX_UNITS - 1, 3_000_000_000]),
    ],
)
def test_unit_counts_are_bounded_inside_a_postgres_integer(
    kind: Any, good: list[int], bad: list[int]
) -> None:
    adapter = TypeAdapter(kind)
    assert MAX_UNITS * 2 <= DB_INTEGER_MAX  # a level plus an adjustment still fits
    for value in good:
        assert adapter.validate_python(value) == value
    for value in bad:
        with pytest.raises(ValidationError):
            adapter.validate_python(value)


def test_amounts_fit_numeric_14_2_and_never_arrive_as_floats() -> None:
    adapter = TypeAdapter(Amount)
    assert adapter.validate_python("999999999999.99") == MAX_AMOUNT
    for bad in ["1000000000000.00", "1.001", "-1", "NaN", "Infinity", 12.5]:
        with pytest.raises(ValidationError):
            adapter.validate_python(bad)


def test_a_computed_amount_too_large_to_store_is_a_422() -> None:
    assert ensure_amount_fits(MAX_AMOUNT, what="total") == MAX_AMOUNT
    with pytest.raises(AmountTooLarge) as raised:
        ensure_amount_fits(MAX_AMOUNT + Decimal("0.01"), what="quote total")
    assert raised.value.status == 422
    assert "quote total" in raised.value.detail


def _app_with_text_query() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    install_problem_docs(app)

    @app.get("/search")
    async def search(q: Annotated[Text, Query(max_length=50)]) -> dict[str, str]:
        return {"q": q}

    @app.get("/things/{thing_id}", responses={404: {"description": "No such thing"}})
    async def thing(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    return app


async def test_nul_in_a_query_parameter_is_a_422_problem() -> None:
    async with asgi_client(_app_with_text_query()) as client:
        refused = await client.get("/search", params={"q": "oxy\x00gen"})
        accepted = await client.get("/search", params={"q": "oxygen"})

    assert refused.status_code == 422
    assert refused.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert refused.json()["errors"][0]["loc"] == ["query", "q"]
    assert accepted.json() == {"q": "oxygen"}


def _error_responses(document: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    return [
        (path, method, code, response)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        for code, response in operation["responses"].items()
        if code[0] in "45"
    ]


async def test_openapi_documents_every_error_as_a_problem(showcase: httpx.AsyncClient) -> None:
    document = (await showcase.get("/openapi.json")).json()

    for item in document["paths"].values():
        for operation in item.values():
            assert {"4XX", "5XX"} <= operation["responses"].keys()
    errors = _error_responses(document)
    assert any(code == "422" for _, _, code, _ in errors)
    for _, _, _, response in errors:
        assert response["content"] == {
            PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
        }
    schemas = document["components"]["schemas"]
    assert schemas["Problem"] == PROBLEM_SCHEMA
    # FastAPI's JSON validation error is not what is answered, so it is not documented.
    assert "HTTPValidationError" not in schemas


async def test_answered_problems_match_the_documented_schema(showcase: httpx.AsyncClient) -> None:
    answers = [
        await showcase.get("/items/not-a-number"),
        await showcase.get("/no/such/route"),
        await showcase.get("/conflict"),
        await showcase.get("/boom"),
    ]
    for answer in answers:
        assert answer.headers["content-type"] == PROBLEM_CONTENT_TYPE
        jsonschema.validate(answer.json(), PROBLEM_SCHEMA)


def test_named_error_responses_become_problems_and_document_problems_is_idempotent() -> None:
    document = _app_with_text_query().openapi()
    not_found = document["paths"]["/things/{thing_id}"]["get"]["responses"]["404"]
    assert not_found["description"] == "No such thing"
    assert PROBLEM_CONTENT_TYPE in not_found["content"]
    assert "application/json" not in not_found["content"]
    assert document_problems(document) == document
