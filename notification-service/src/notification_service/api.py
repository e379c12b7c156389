"""Public notification API: parse, authorize, call the service, shape the answer.

Everything is scoped to the caller's organisation (from the token), and within it to
what is for everyone, for the caller's role or for the caller (audience.py): another
organisation's notifications, or an org-admins-only one to staff, are invisible (404),
never forbidden (403).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.security import OAuth2PasswordBearer
from starlette.responses import StreamingResponse

from flow_shared.auth import CurrentPrincipal, bearer_token
from flow_shared.pagination import Page, Pagination
from flow_shared.unit_of_work import DbSession
from notification_service import service
from notification_service.audience import Reader
from notification_service.deps import (
    DatabaseDep,
    HubDep,
    OrgAdmin,
    SettingsDep,
    StreamLeasesDep,
    TokenVerifierDep,
    WebhookSecretCipherDep,
)
from notification_service.schemas import (
    NotificationOut,
    PreferencesIn,
    PreferencesOut,
    PreferencesSaved,
    ReadAllOut,
    WebhookSecretRotated,
)
from notification_service.stream import notification_stream, parse_last_event_id

# Only for the docs' Authorize button; CurrentPrincipal does the verifying.
_docs_oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)

router = APIRouter(
    prefix="/api/v1/notifications",
    tags=["notifications"],
    dependencies=[Depends(_docs_oauth2)],
)

_NOT_FOUND: dict[int | str, dict[str, str]] = {
    404: {"description": "No such notification in your organisation"}
}


@router.get("", response_model=Page[NotificationOut])
async def list_notifications(
    session: DbSession,
    principal: CurrentPrincipal,
    params: Pagination,
    unread: Annotated[
        bool | None,
        Query(description="true: only unread; false: only read; absent: all"),
    ] = None,
) -> Page[NotificationOut]:
    rows, total = await service.list_notifications(
        session, Reader.of(principal), unread=unread, params=params
    )
    return Page[NotificationOut].of([NotificationOut.of(n) for n in rows], params, total)


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Server-sent events: `id` = notification id, `event` = type, "
            "`data` = the notification as in the list. Send `Last-Event-ID` on reconnect "
            "to get what was missed.",
            "content": {"text/event-stream": {}},
        },
        429: {
            "description": "The user already holds SSE_MAX_STREAMS_PER_USER open streams "
            "(default 5); `Retry-After` says when to try again"
        },
    },
)
async def stream_notifications(
    request: Request,
    principal: CurrentPrincipal,
    database: DatabaseDep,
    hub: HubDep,
    settings: SettingsDep,
    stream_leases: StreamLeasesDep,
    token_verifier: TokenVerifierDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=100)] = None,
) -> StreamingResponse:
    lease = await stream_leases.acquire(principal.user_id)
    # No DbSession here: the stream outlives the request's transaction; it reads by itself.
    return StreamingResponse(
        notification_stream(
            database=database,
            hub=hub,
            settings=settings,
            principal=principal,
            # Verified again every SSE_AUTH_RECHECK_SECONDS: revocation ends the stream.
            token=bearer_token(request) or "",
            verifier=token_verifier,
            lease=lease,
            last_event_id=parse_last_event_id(last_event_id),
        ),
        media_type="text/event-stream",
        headers={
            "Cache-Control": "no-cache, no-transform",
            # Tells nginx-style proxies not to buffer the stream.
            "X-Accel-Buffering": "no",
        },
    )


@router.post("/read-all", response_model=ReadAllOut)
async def read_all(session: DbSession, principal: CurrentPrincipal) -> ReadAllOut:
    return ReadAllOut(updated=await service.mark_all_read(session, Reader.of(principal)))


@router.post("/{notification_id}/read", response_model=NotificationOut, responses=_NOT_FOUND)
async def read_one(
    notification_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal
) -> NotificationOut:
    notification = await service.mark_read(session, Reader.of(principal), notification_id)
    return NotificationOut.of(notification)


@router.get("/preferences", response_model=PreferencesOut)
async def get_preferences(session: DbSession, principal: CurrentPrincipal) -> PreferencesOut:
    return await service.get_preferences(session, principal.org_id)


@router.put(
    "/preferences",
    response_model=PreferencesSaved,
    # webhook_secret appears only in the answer that created it.
    response_model_exclude_unset=True,
    responses={
        403: {"description": "Only the organisation's admins change its preferences"},
        422: {"description": "Invalid body, or a webhook URL that is not allowed"},
    },
)
async def put_preferences(
    body: PreferencesIn,
    session: DbSession,
    principal: OrgAdmin,
    settings: SettingsDep,
    cipher: WebhookSecretCipherDep,
    response: Response,
) -> PreferencesSaved:
    response.headers["Cache-Control"] = "no-store"  # it may carry the signing secret
    return await service.update_preferences(session, settings, cipher, principal, body)


@router.post(
    "/preferences/webhook-secret",
    response_model=WebhookSecretRotated,
    responses={
        403: {"description": "Only the organisation's admins rotate its webhook secret"},
        422: {"description": "Webhooks are not available on this server"},
    },
)
async def rotate_webhook_secret(
    session: DbSession,
    principal: OrgAdmin,
    settings: SettingsDep,
    cipher: WebhookSecretCipherDep,
    response: Response,
) -> WebhookSecretRotated:
    """A new webhook signing secret, shown only in this answer. The previous one keeps
    signing deliveries (beside the new one) until `previous_secret_valid_until`."""
    response.headers["Cache-Control"] = "no-store"
    return await service.rotate_webhook_secret(session, settings, cipher, principal)
