"""PUT /api/v1/admin/organizations/{org_id}/allocation: platform admins only, forwarded to
order-service's /internal/allocation/{org_id} with admin-service's key and the admin as
actor, answered with the resulting caps; order-service down is a 503."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from admin_service.config import Settings
from admin_service.main import create_app
from flow_shared.testing.infra import TestInfra, asgi_client
from flow_shared.testing.tokens import TokenIssuer

ORDER_URL = "http://order-service.test"


class OrderServiceStub:
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.down = False

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.down:
            raise httpx.ConnectError("refused", request=request)
        body = json.loads(request.content)
        items = [
            {
                "product_id": c["product_id"],
                "cap": c["units"],
                "open_units": 0,
                "source": "override",
            }
            for c in body["caps"]
        ]
        return httpx.Response(200, json={"items": items})


async def _put(
    infra: TestInfra,
    token_issuer: TokenIssuer,
    stub: OrderServiceStub,
    headers: dict[str, str],
    org_id: uuid.UUID,
    body: Any,
) -> httpx.Response:
    settings = Settings(**infra.settings_kwargs("admin-service", order_service_url=ORDER_URL))
    app = create_app(
        settings,
        jwks_fetcher=token_issuer.fetch_jwks,
        order_service_transport=httpx.MockTransport(stub.handle),
    )
    async with asgi_client(app) as client:
        return await client.put(
            f"/api/v1/admin/organizations/{org_id}/allocation", json=body, headers=headers
        )


async def test_an_admin_override_goes_to_order_service_and_answers_the_caps(
    infra: TestInfra, token_issuer: TokenIssuer
) -> None:
    stub = OrderServiceStub()
    admin_id, org_id, product = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    headers = token_issuer.headers(
        org_kind="platform", role="platform_admin", org_id=uuid.uuid4(), user_id=admin_id
    )
    body = {"caps": [{"product_id": str(product), "units": 5}]}

    answer = await _put(infra, token_issuer, stub, headers, org_id, body)

    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "org_id": str(org_id),
        "items": [{"product_id": str(product), "cap": 5, "open_units": 0, "source": "override"}],
    }
    [sent] = stub.requests
    assert (sent.method, sent.url.path) == ("PUT", f"/internal/allocation/{org_id}")
    assert sent.headers["X-Service-Key"] == "test-key-admin-service"
    assert json.loads(sent.content) == {**body, "actor_id": str(admin_id)}


async def test_others_are_refused_bad_caps_are_422_and_order_service_down_is_503(
    infra: TestInfra, token_issuer: TokenIssuer
) -> None:
    stub = OrderServiceStub()
    org_id, product = uuid.uuid4(), uuid.uuid4()
    body = {"caps": [{"product_id": str(product), "units": 5}]}
    hospital = token_issuer.headers(
        org_kind="hospital", role="org_admin", org_id=org_id, user_id=uuid.uuid4()
    )
    admin = token_issuer.headers(
        org_kind="platform", role="platform_admin", org_id=uuid.uuid4(), user_id=uuid.uuid4()
    )

    assert (await _put(infra, token_issuer, stub, hospital, org_id, body)).status_code == 403
    negative = {"caps": [{"product_id": str(product), "units": -1}]}
    assert (await _put(infra, token_issuer, stub, admin, org_id, negative)).status_code == 422
    assert stub.requests == []

    stub.down = True
    down = await _put(infra, token_issuer, stub, admin, org_id, body)
    assert down.status_code == 503, down.text
    assert down.headers["content-type"] == "application/problem+json"
