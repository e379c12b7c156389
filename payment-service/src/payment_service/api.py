"""Public payment API: parse, authorize, call the service, shape the answer."""

from __future__ import annotations

import time
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.security import OAuth2PasswordBearer
from pydantic import ValidationError

from flow_shared.auth import CurrentPrincipal
from flow_shared.errors import UnprocessableEntity
from flow_shared.idempotency import IdempotencyKey
from flow_shared.json_codec import ORJSONResponse
from flow_shared.pagination import Page, Pagination
from flow_shared.unit_of_work import DbSession
from payment_service import queries
from payment_service.deps import ProviderDep, SettingsDep
from payment_service.errors import UnknownWebhookProvider
from payment_service.models import InvoiceStatus
from payment_service.schemas import (
    InvoiceOut,
    PaymentOut,
    RefundRequest,
    SandboxWebhook,
    WebhookAck,
    webhook_body_schema,
)
from payment_service.service import refunds, webhooks

# Only for the docs' Authorize button; CurrentPrincipal does the verifying.
_docs_oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)

router = APIRouter(
    prefix="/api/v1/payments", tags=["payments"], dependencies=[Depends(_docs_oauth2)]
)
# Called by providers, without a token: the signature is the authentication.
webhook_router = APIRouter(prefix="/api/v1/payments/webhooks", tags=["payment webhooks"])


@router.get("")
async def list_payments(
    principal: CurrentPrincipal,
    session: DbSession,
    pagination: Pagination,
    order_id: Annotated[uuid.UUID | None, Query()] = None,
) -> Page[PaymentOut]:
    return await queries.list_payments(session, principal, order_id=order_id, params=pagination)


@router.get("/invoices")
async def list_invoices(
    principal: CurrentPrincipal,
    session: DbSession,
    pagination: Pagination,
    status: Annotated[InvoiceStatus | None, Query()] = None,
) -> Page[InvoiceOut]:
    """Invoices of `invoice` orders (net 30): a hospital's own, a vendor's, or all (admin)."""
    return await queries.list_invoices(session, principal, status=status, params=pagination)


@router.get("/{payment_id}", responses={404: {"description": "Unknown, or not yours"}})
async def get_payment(
    payment_id: uuid.UUID, principal: CurrentPrincipal, session: DbSession
) -> PaymentOut:
    return PaymentOut.of(await queries.get_payment(session, principal, payment_id))


@router.post(
    "/{payment_id}/refund",
    response_model=PaymentOut,
    responses={
        403: {"description": "Not the order's vendor nor a platform admin"},
        404: {"description": "Unknown, or not yours"},
        409: {"description": "Nothing to refund, or more than captured minus refunded"},
        422: {"description": "Invalid body, or Idempotency-Key reused with another body"},
        503: {"description": "The payment provider did not answer; nothing was refunded"},
    },
)
async def refund_payment(
    payment_id: uuid.UUID,
    body: RefundRequest,
    principal: CurrentPrincipal,
    session: DbSession,
    provider: ProviderDep,
    idempotency_key: IdempotencyKey = None,
) -> ORJSONResponse:
    answer = await refunds.refund(
        session, provider, principal, payment_id, body, idempotency_key=idempotency_key
    )
    return answer.response()


@webhook_router.post(
    "/{provider}",
    openapi_extra={"requestBody": webhook_body_schema()},
    responses={
        401: {"description": "Missing, malformed, stale or wrong Flow-Signature"},
        404: {"description": "Unknown provider"},
    },
)
async def receive_webhook(
    provider: str, request: Request, session: DbSession, settings: SettingsDep
) -> WebhookAck:
    """A provider reports what happened to a charge. Signed with `Flow-Signature:
    t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`; a replayed event id has no effect."""
    if provider != webhooks.SANDBOX:
        raise UnknownWebhookProvider(f"No webhooks are taken for provider {provider!r}.")
    raw_body = await request.body()
    webhooks.verify_signature(
        request.headers.get(webhooks.SIGNATURE_HEADER),
        raw_body,
        secret=settings.webhook_secret,
        tolerance_seconds=settings.webhook_tolerance_seconds,
        now=time.time(),
    )
    try:
        event = SandboxWebhook.model_validate_json(raw_body)
    except ValidationError as exc:
        raise UnprocessableEntity(
            "The webhook body is not valid; see `errors`.",
            errors=[
                {"loc": [str(part) for part in err["loc"]], "msg": err["msg"]}
                for err in exc.errors()
            ],
        ) from exc
    outcome = await webhooks.handle_sandbox_webhook(session, event)
    return WebhookAck(id=event.id, outcome=outcome)
