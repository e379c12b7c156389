"""The merged /docs keeps what every service documents about errors: one Problem schema,
problem+json on every error response, so clients generated from it expect what they get."""

from __future__ import annotations

from typing import Any

from api_gateway.docs import merge_openapi
from flow_shared.errors import PROBLEM_CONTENT_TYPE, PROBLEM_SCHEMA, document_problems


def _service_document(path: str, operation_id: str) -> dict[str, Any]:
    return document_problems(
        {
            "openapi": "3.1.0",
            "paths": {
                path: {
                    "get": {
                        "operationId": operation_id,
                        "responses": {
                            "200": {"description": "OK", "content": {"application/json": {}}},
                            "404": {"description": "Not yours"},
                            "422": {
                                "description": "Validation Error",
                                "content": {
                                    "application/json": {
                                        "schema": {
                                            "$ref": "#/components/schemas/HTTPValidationError"
                                        }
                                    }
                                },
                            },
                        },
                    }
                }
            },
            "components": {
                "schemas": {
                    "HTTPValidationError": {"type": "object"},
                    "ValidationError": {"type": "object"},
                }
            },
        }
    )


def test_merged_document_has_one_problem_schema_on_every_error_response() -> None:
    merged = merge_openapi(
        {
            "user-service": _service_document("/api/v1/users/me", "me"),
            "order-service": _service_document("/api/v1/orders/{order_id}", "order"),
        },
        routes={"users": "user-service", "orders": "order-service"},
        public_routes=set(),
        unavailable=[],
    )

    schemas = merged["components"]["schemas"]
    assert schemas["Problem"] == PROBLEM_SCHEMA
    assert not [name for name in schemas if name.endswith("Problem") and name != "Problem"]
    assert "HTTPValidationError" not in schemas
    for item in merged["paths"].values():
        responses = item["get"]["responses"]
        assert {"404", "422", "4XX", "5XX"} <= responses.keys()
        for code, response in responses.items():
            if code[0] in "45":
                assert response["content"] == {
                    PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
                }
