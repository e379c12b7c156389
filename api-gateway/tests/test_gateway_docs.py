"""`/docs`: Swagger UI from local assets only, and one merged OpenAPI of every routed
service that survives a service being down."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conftest import Gateway

    OpenGateway = Callable[..., AbstractAsyncContextManager[Gateway]]

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
VALIDATION_ERROR = {
    "title": "HTTPValidationError",
    "type": "object",
    "properties": {
        "detail": {"type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}}
    },
}
VALIDATION_ITEM = {"title": "ValidationError", "type": "object", "properties": {}}


def json_response(ref: dict[str, str]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": ref}}}


USER_OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "user-service", "version": "1"},
    "paths": {
        "/api/v1/auth/login": {
            "post": {"operationId": "login", "tags": ["auth"], "responses": {"200": {}}}
        },
        "/api/v1/users/me": {
            "get": {
                "operationId": "read_me",
                "responses": {
                    "200": json_response({"$ref": "#/components/schemas/User"}),
                    "404": json_response(PROBLEM_REF),
                    "422": json_response({"$ref": "#/components/schemas/HTTPValidationError"}),
                },
            }
        },
        "/internal/organizations": {"get": {"operationId": "internal_orgs", "responses": {}}},
        "/health/live": {"get": {"operationId": "live", "responses": {}}},
    },
    "components": {
        "schemas": {
            "User": {"type": "object", "properties": {"email": {"type": "string"}}},
            "Problem": {"type": "object", "properties": {"user_detail": {"type": "string"}}},
            "HTTPValidationError": VALIDATION_ERROR,
            "ValidationError": VALIDATION_ITEM,
        }
    },
    "tags": [{"name": "auth"}],
}
ADMIN_OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "admin-service", "version": "1"},
    "paths": {
        "/api/v1/admin/vendors": {
            "get": {
                "operationId": "read_me",
                "responses": {
                    "200": json_response({"$ref": "#/components/schemas/VendorPage"}),
                    "403": json_response(PROBLEM_REF),
                    "422": json_response({"$ref": "#/components/schemas/HTTPValidationError"}),
                },
            }
        },
        # A path another service owns: the route table decides, so it is left out.
        "/api/v1/users/impostor": {"get": {"operationId": "impostor", "responses": {}}},
    },
    "components": {
        "schemas": {
            "VendorPage": {"type": "object", "properties": {"problem": PROBLEM_REF}},
            "Problem": {"type": "object", "properties": {"admin_detail": {"type": "integer"}}},
            "HTTPValidationError": VALIDATION_ERROR,
            "ValidationError": VALIDATION_ITEM,
        }
    },
    "tags": [{"name": "admin"}],
}


def all_refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref":
                yield item
            else:
                yield from all_refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from all_refs(item)


def response_schema_ref(document: dict[str, Any], path: str, status: str) -> str:
    response = document["paths"][path]["get"]["responses"][status]
    ref: str = response["content"]["application/json"]["schema"]["$ref"]
    return ref


def resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


async def test_docs_page_uses_only_local_assets(open_gateway: OpenGateway) -> None:
    async with open_gateway() as gw:
        page = await gw.client.get("/docs")
        references = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assets = {ref: await gw.client.get(ref) for ref in references}

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "'self'" in page.headers["content-security-policy"]
    assert "/static/swagger/swagger-ui-bundle.js" in references
    assert "/static/swagger/swagger-ui.css" in references
    assert "/openapi.json" in page.text
    assert all(ref.startswith("/static/swagger/") for ref in references)
    assert not re.search(r"https?://", page.text)
    for ref, asset in assets.items():
        assert asset.status_code == 200, ref
        assert len(asset.content) > 0
    assert "SwaggerUIBundle" in assets["/static/swagger/swagger-ui-bundle.js"].text
    assert (
        assets["/static/swagger/swagger-ui-bundle.js"]
        .headers["content-type"]
        .startswith("text/javascript")
    )
    assert assets["/static/swagger/swagger-ui.css"].headers["content-type"].startswith("text/css")


async def test_only_known_swagger_assets_are_served(open_gateway: OpenGateway) -> None:
    async with open_gateway() as gw:
        other_file = await gw.client.get("/static/swagger/redoc.standalone.js")
        traversal = await gw.client.get("/static/swagger/..%2f..%2fconfig.py")

    assert other_file.status_code == 404
    assert traversal.status_code == 404


async def test_openapi_merges_routed_services_and_survives_one_being_down(
    open_gateway: OpenGateway, stub_factory: Any, closed_port_url: str
) -> None:
    users = await stub_factory("user-service", openapi=USER_OPENAPI)
    admin = await stub_factory("admin-service", openapi=ADMIN_OPENAPI)
    async with open_gateway(
        user_service_url=users.url,
        admin_service_url=admin.url,
        order_service_url=closed_port_url,
    ) as gw:
        response = await gw.client.get("/openapi.json")
        again = await gw.client.get("/openapi.json")

    assert response.status_code == 200
    merged = response.json()
    assert merged["openapi"].startswith("3.1")
    assert set(merged["paths"]) == {
        "/api/v1/auth/login",
        "/api/v1/users/me",
        "/api/v1/admin/vendors",
    }
    assert merged["x-flow-services"] == {
        "included": ["admin-service", "user-service"],
        "unavailable": ["order-service"],
    }
    # Every reference resolves inside the merged document.
    for ref in all_refs(merged):
        resolve(merged, ref)
    schemas = merged["components"]["schemas"]
    # Same name, different shapes: each service keeps its own, under distinct names.
    admin_problem = resolve(merged, response_schema_ref(merged, "/api/v1/admin/vendors", "403"))
    user_problem = resolve(merged, response_schema_ref(merged, "/api/v1/users/me", "404"))
    assert "admin_detail" in admin_problem["properties"]
    assert "user_detail" in user_problem["properties"]
    vendor_page = schemas["VendorPage"]
    assert (
        "admin_detail"
        in resolve(merged, vendor_page["properties"]["problem"]["$ref"])["properties"]
    )
    # Identical components are shared once.
    assert [name for name in schemas if name.endswith("HTTPValidationError")] == [
        "HTTPValidationError"
    ]
    operation_ids = [op["operationId"] for item in merged["paths"].values() for op in item.values()]
    assert len(operation_ids) == len(set(operation_ids))
    # Bearer auth for the Authorize button; login itself needs no token.
    assert merged["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert {"bearerAuth": []} in merged["security"]
    assert merged["paths"]["/api/v1/auth/login"]["post"]["security"] == []
    assert {tag["name"] for tag in merged["tags"]} == {"auth", "admin"}
    # Cached: the second call fetched nothing again.
    assert again.json() == merged
    assert users.openapi_fetches == 1
    assert admin.openapi_fetches == 1


async def test_openapi_with_every_service_down_is_still_a_document(
    open_gateway: OpenGateway, closed_port_url: str
) -> None:
    async with open_gateway(user_service_url=closed_port_url) as gw:
        response = await gw.client.get("/openapi.json")

    assert response.status_code == 200
    assert response.json()["paths"] == {}
    assert response.json()["x-flow-services"]["unavailable"] == ["user-service"]


async def test_a_service_that_was_down_is_fetched_again_after_the_retry_delay(
    open_gateway: OpenGateway, stub_factory: Any
) -> None:
    users = await stub_factory("user-service", openapi=None)  # answers 404 for now
    async with open_gateway(user_service_url=users.url, openapi_retry_seconds=0.2) as gw:
        first = (await gw.client.get("/openapi.json")).json()
        users.openapi = USER_OPENAPI
        immediately = (await gw.client.get("/openapi.json")).json()
        await asyncio.sleep(0.3)
        later = (await gw.client.get("/openapi.json")).json()

    assert first["paths"] == {}
    assert immediately["paths"] == {}
    assert "/api/v1/users/me" in later["paths"]
    assert users.openapi_fetches == 2
